//! Service discovery with ephemeral nodes.
//!
//! Three instances of a service register under `/services/api`, each from
//! its own session (as three processes would); a consumer lists them and
//! follows the set. When an instance's session ends (closed here; a crashed
//! process's session expires after its timeout) its registration goes, and
//! the consumer sees it. Needs a running ensemble (`scripts/cluster.sh up`):
//!
//! ```sh
//! cargo run -p zab-client --example service_discovery
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use zab_client::recipes::{register, Discovery};
use zab_client::Client;

const SERVICE: &str = "/services/api";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let servers = servers()?;

    let mut instances = Vec::new();
    for i in 1..=3 {
        let session = Client::connect(&servers, 5_000).await?;
        let payload = format!("{{\"addr\":\"10.0.0.{i}:8080\",\"zone\":\"z{}\"}}", i % 2);
        let path = register(&session, SERVICE, &format!("api-{i}"), payload.as_bytes()).await?;
        println!("registered {path}");
        instances.push(session);
    }

    let mut discovery = Discovery::new(Client::connect(&servers, 5_000).await?, SERVICE);
    print_live(&mut discovery).await?;

    // api-2 shuts down cleanly: its registration goes at once.
    let leaving = instances.remove(1);
    leaving.close().await?;
    tokio::time::timeout(Duration::from_secs(10), discovery.changed()).await??;
    print_live(&mut discovery).await?;

    for session in instances {
        session.close().await?;
    }
    discovery.into_client().close().await?;
    Ok(())
}

async fn print_live(discovery: &mut Discovery) -> Result<(), zab_client::Error> {
    let live = discovery.live().await?;
    println!("{} live instance(s) of {SERVICE}:", live.len());
    for (name, payload) in live {
        println!("  {name} {}", String::from_utf8_lossy(&payload));
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
