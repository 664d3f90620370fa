//! Hierarchical configuration: one node per setting, grouped by path.
//!
//! ```text
//! /app/config
//! ├── db
//! │   ├── url          postgres://db.internal:5432/app
//! │   └── pool_size    8
//! └── features
//!     └── new_ui       off
//! ```
//!
//! Writes the tree, reads it back whole, follows one typed setting with a
//! `ConfigWatcher` and the whole subtree with a recursive watch, then changes
//! two settings. Needs a running ensemble (`scripts/cluster.sh up`):
//!
//! ```sh
//! cargo run -p zab-client --example config_tree
//! ZAB_SERVERS=127.0.0.1:2181 cargo run -p zab-client --example config_tree
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use zab_client::recipes::ConfigWatcher;
use zab_client::{Client, Consistency, CreateMode, Error, ErrorCode};

const ROOT: &str = "/app/config";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let servers = servers()?;
    let admin = Client::connect(&servers, 10_000).await?;
    put(
        &admin,
        "/app/config/db/url",
        "postgres://db.internal:5432/app",
    )
    .await?;
    put(&admin, "/app/config/db/pool_size", "8").await?;
    put(&admin, "/app/config/features/new_ui", "off").await?;

    println!("{ROOT}:");
    for (path, value) in read_tree(&admin, ROOT).await? {
        println!("  {path} = {value}");
    }

    // One setting, typed and kept current (the watcher owns its session).
    let parse = |b: &[u8]| String::from_utf8_lossy(b).trim().parse::<u32>();
    let mut pool_size = ConfigWatcher::new(
        Client::connect(&servers, 10_000).await?,
        "/app/config/db/pool_size",
        parse,
    )
    .await?;
    println!("pool_size = {}", pool_size.current());

    // Every change anywhere under the root, on another session.
    let tree_watcher = Client::connect(&servers, 10_000).await?;
    let mut tree_events = tree_watcher.add_watch(ROOT, true).await?;

    put(&admin, "/app/config/db/pool_size", "16").await?;
    put(&admin, "/app/config/features/new_ui", "on").await?;

    let size = tokio::time::timeout(Duration::from_secs(10), pool_size.next()).await??;
    println!("pool_size changed to {size}");
    for _ in 0..2 {
        match tokio::time::timeout(Duration::from_secs(10), tree_events.next()).await? {
            Some(event) => println!("changed under {ROOT}: {:?} {}", event.kind, event.path),
            None => break,
        }
    }
    tree_watcher.close().await?;
    pool_size.into_client().close().await?;
    admin.close().await?;
    Ok(())
}

/// Sets `path` to `value`, creating it and any missing parents.
async fn put(client: &Client, path: &str, value: &str) -> Result<(), Error> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let mut prefix = String::new();
    for (i, part) in parts.iter().enumerate() {
        prefix.push('/');
        prefix.push_str(part);
        let leaf = i + 1 == parts.len();
        let data = if leaf { value.as_bytes() } else { b"" };
        match client.create(&prefix, data, CreateMode::Persistent).await {
            Ok(_) => {}
            Err(Error::Server(ErrorCode::NodeExists)) if leaf => {
                client.set(&prefix, data, -1).await?;
            }
            Err(Error::Server(ErrorCode::NodeExists)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Every leaf under `root`, path to value. Each read reflects every write
/// acknowledged before the walk began (one sync first); it is not an atomic
/// snapshot of the tree: writes during the walk may or may not be seen.
async fn read_tree(client: &Client, root: &str) -> Result<BTreeMap<String, String>, Error> {
    client.sync(root).await?;
    let mut leaves = BTreeMap::new();
    let mut todo = vec![root.to_string()];
    while let Some(path) = todo.pop() {
        let (children, _) = match client.children(&path, Consistency::Local, false).await {
            Err(Error::Server(ErrorCode::NoNode)) => continue, // deleted meanwhile
            other => other?,
        };
        if children.is_empty() {
            let (data, _) = client.get(&path, Consistency::Local).await?;
            leaves.insert(path, String::from_utf8_lossy(&data).into_owned());
        } else {
            todo.extend(children.into_iter().map(|c| format!("{path}/{c}")));
        }
    }
    Ok(leaves)
}

/// `ZAB_SERVERS` (comma-separated), or the ensemble `scripts/cluster.sh up` starts.
fn servers() -> Result<Vec<SocketAddr>, std::net::AddrParseError> {
    std::env::var("ZAB_SERVERS")
        .unwrap_or_else(|_| "127.0.0.1:2181,127.0.0.1:2182,127.0.0.1:2183".into())
        .split(',')
        .map(|s| s.trim().parse())
        .collect()
}
