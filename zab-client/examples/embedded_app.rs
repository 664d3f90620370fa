//! An application embedding the client: a worker process that
//!
//! * announces itself under `/services/worker` (ephemeral: gone when it is),
//! * follows its typed settings (`/app/config/worker/batch_size`),
//! * is elected the one active scheduler among its copies, and
//! * runs each job under a lock, fencing its writes with the lock's token.
//!
//! Needs a running ensemble (`scripts/cluster.sh up`). Run two copies: the
//! second waits until the first resigns, then leads.
//!
//! ```sh
//! ZAB_APP_ID=a cargo run -p zab-client --example embedded_app &
//! ZAB_APP_ID=b cargo run -p zab-client --example embedded_app
//! target/release/zabctl set /app/config/worker/batch_size 250   # seen by the leader
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use zab_client::recipes::{register, ConfigError, ConfigWatcher, Election, Lock};
use zab_client::{Client, Consistency, CreateMode, Error, ErrorCode};

const BATCH_SIZE: &str = "/app/config/worker/batch_size";
const PROGRESS: &str = "/app/jobs/progress";

type BoxError = Box<dyn std::error::Error>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let servers = servers()?;
    let id =
        std::env::var("ZAB_APP_ID").unwrap_or_else(|_| format!("worker-{}", std::process::id()));
    let rounds: u32 = std::env::var("ZAB_ROUNDS").map_or(Ok(5), |r| r.parse())?;

    // One session carries this process's presence and its locks: if the
    // process dies, both go when the session expires.
    let session = Client::connect(&servers, 5_000).await?;
    register(&session, "/services/worker", &id, b"{\"port\":9000}").await?;
    create_if_missing(&session, BATCH_SIZE, "100").await?;
    create_if_missing(&session, PROGRESS, "0:0").await?;

    // Watchers and the election each wait on their own session, so their
    // watch events do not mix (see zab_client::recipes).
    let parse = |b: &[u8]| String::from_utf8_lossy(b).trim().parse::<u32>();
    let mut batch =
        ConfigWatcher::new(Client::connect(&servers, 5_000).await?, BATCH_SIZE, parse).await?;
    let elector = Client::connect(&servers, 5_000).await?;
    println!("{id}: waiting to lead");
    let leadership = Election::campaign(&elector, "/election/worker", &id).await?;
    println!("{id}: leading, term {:#x}", leadership.term());

    for _ in 0..rounds {
        // Pick up a new batch size if one arrives, without stalling the work.
        tokio::select! {
            changed = batch.next() => match changed {
                Ok(size) => println!("{id}: batch size now {size}"),
                Err(ConfigError::Parse(e)) => eprintln!("{id}: ignoring a bad batch size: {e}"),
                Err(ConfigError::Client(Error::Server(ErrorCode::NoNode))) => {
                    eprintln!("{id}: batch size deleted; keeping {}", batch.current());
                }
                Err(ConfigError::Client(e)) => return Err(e.into()),
            },
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        // Leadership (like a lock) is only as good as the session: check it.
        if !leadership.check().await? {
            println!("{id}: no longer leader");
            break;
        }
        let guard = Lock::acquire(&session, "/locks/worker-jobs").await?;
        let result = run_job(&session, guard.fencing_token(), *batch.current()).await;
        guard.release().await?;
        println!("{id}: {}", result?);
    }

    leadership.resign().await?;
    elector.close().await?;
    batch.into_client().close().await?;
    session.close().await?;
    Ok(())
}

/// One job's write to the shared resource, which keeps the highest fencing
/// token that wrote it and refuses lower ones: so a holder whose session
/// expired without its noticing cannot overwrite a newer holder's work.
/// (Here the resource is a node, updated with compare-and-set; a database
/// or a storage service would check the token the same way.)
async fn run_job(client: &Client, token: u64, batch: u32) -> Result<String, BoxError> {
    loop {
        let (data, stat) = client.get(PROGRESS, Consistency::Local).await?;
        let text = String::from_utf8_lossy(&data);
        let (done, last) = text.split_once(':').ok_or("malformed progress")?;
        let (done, last): (u64, u64) = (done.parse()?, last.parse()?);
        if token < last {
            return Err(format!("fenced off: token {token:#x} < {last:#x}").into());
        }
        let next = format!("{}:{token}", done + u64::from(batch));
        match client.set(PROGRESS, next.as_bytes(), stat.version).await {
            Ok(_) => return Ok(format!("processed {batch} more ({next}), token {token:#x}")),
            // Someone wrote since our read: read again.
            Err(Error::Server(ErrorCode::BadVersion)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Creates `path` (and missing parents) with `value`; an existing value stays.
async fn create_if_missing(client: &Client, path: &str, value: &str) -> Result<(), Error> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let mut prefix = String::new();
    for (i, part) in parts.iter().enumerate() {
        prefix.push('/');
        prefix.push_str(part);
        let data = if i + 1 == parts.len() {
            value.as_bytes()
        } else {
            b""
        };
        match client.create(&prefix, data, CreateMode::Persistent).await {
            Ok(_) | Err(Error::Server(ErrorCode::NodeExists)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `ZAB_SERVERS` (comma-separated), or the ensemble `scripts/cluster.sh up` starts.
fn servers() -> Result<Vec<SocketAddr>, std::net::AddrParseError> {
    std::env::var("ZAB_SERVERS")
        .unwrap_or_else(|_| "127.0.0.1:2181,127.0.0.1:2182,127.0.0.1:2183".into())
        .split(',')
        .map(|s| s.trim().parse())
        .collect()
}
