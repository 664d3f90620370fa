//! Client throughput on one session (`cargo bench -p zab-server --bench client`):
//! a 3-server ensemble of real processes on loopback, one session, writes
//! (setData of 128 bytes) and local reads with 1 and with 64 requests in
//! flight. Reported as ops/s and as the ratio of 64 to 1 in the same run.
//! `ZAB_BENCH_SECS` sets the time per case (default 3).

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{retry, Ensemble};
use zab_client::{Client, Consistency, CreateMode};

async fn run(client: Arc<Client>, in_flight: usize, secs: f64, write: bool) -> f64 {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..in_flight {
        let c = client.clone();
        tasks.spawn(async move {
            let payload = vec![b'x'; 128];
            let path = format!("/bench/k{w}");
            let mut n = 0u64;
            while Instant::now() < deadline {
                if write {
                    c.set(&path, &payload, -1).await.expect("write");
                } else {
                    c.get(&path, Consistency::Local).await.expect("read");
                }
                n += 1;
            }
            n
        });
    }
    let mut total = 0;
    while let Some(n) = tasks.join_next().await {
        total += n.expect("task");
    }
    total as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let secs: f64 = std::env::var("ZAB_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let e = Ensemble::start(3, "bench");
        let client = Arc::new(e.client(0, 10_000).await);
        retry(|| client.create("/bench", b"", CreateMode::Persistent)).await.expect("dir");
        for w in 0..64 {
            client.create(&format!("/bench/k{w}"), b"", CreateMode::Persistent).await.expect("key");
        }
        println!("one session, 3 servers on loopback, {secs} s per case");
        for (label, write) in [("setData 128 B", true), ("getData (local)", false)] {
            let one = run(client.clone(), 1, secs, write).await;
            let many = run(client.clone(), 64, secs, write).await;
            println!(
                "{label:<18} 1 in flight: {one:>9.0} ops/s   64 in flight: {many:>9.0} ops/s   ratio {:.1}x",
                many / one
            );
        }
    });
}
