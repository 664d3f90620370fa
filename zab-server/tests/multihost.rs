//! An ensemble across hosts: each server in its own network namespace on a
//! switched network with latency and loss (`zab_tests::netns`), configured
//! by host name, and partitions that are silent as real ones are (no reset:
//! the connections stay open and hear nothing).
//!
//! Needs root. Where it cannot run, the tests say so and pass, unless
//! `ZAB_REQUIRE_NETNS=1` (CI sets it), which makes that a failure.

mod common;

use std::time::{Duration, Instant};

use common::Ensemble;
use zab_client::{Client, Consistency, CreateMode};
use zab_tests::netns::{LinkRule, Net};

/// 1 ms each way (2 ms round trip), 1% of frames lost on every link.
const LAN: LinkRule = LinkRule {
    delay: Duration::from_millis(1),
    loss: 0.01,
    cut: false,
};

fn secs_from_env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A fresh session on server `i` alone, and a linearizable read of `path`
/// through it; the value read.
async fn read_via(e: &Ensemble, i: usize, path: &str) -> Option<Vec<u8>> {
    let c = tokio::time::timeout(
        Duration::from_secs(2),
        Client::connect(&[e.clients[i]], 4000),
    )
    .await
    .ok()?
    .ok()?;
    let got = tokio::time::timeout(
        Duration::from_secs(2),
        c.get(path, Consistency::Linearizable),
    )
    .await
    .ok()?
    .ok()
    .map(|(data, _)| data.to_vec());
    let _ = c.close().await;
    got
}

#[test]
fn a_follower_partitioned_for_a_minute_serves_again_within_seconds_of_the_heal() {
    let Some(net) = Net::for_test("p", 3, LAN, 0x5eed) else {
        return;
    };
    let secs = secs_from_env("MULTIHOST_PARTITION_SECS", 60);
    let n = net.clone();
    net.block_on_client(move || async move {
        // MULTIHOST_EXTRA: config lines for experiments, e.g.
        // `peer_silence_timeout_ms = 3600000` to see recovery without it.
        let extra = std::env::var("MULTIHOST_EXTRA").unwrap_or_default();
        let mut e = Ensemble::start_multihost(n, "multihost-partition", &extra);
        let leader = e.wait_for_leader(None).await;
        let follower = (leader + 1) % 3;
        let writer = e.client(leader, 10_000).await;
        common::retry(|| writer.create("/x", b"before", CreateMode::Persistent))
            .await
            .expect("/x");
        // Before the cut, the follower serves (retried: the links lose 1%).
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut before = None;
        while before.is_none() && Instant::now() < deadline {
            before = read_via(&e, follower, "/x").await;
        }
        assert_eq!(before.as_deref(), Some(&b"before"[..]));

        e.isolate(follower);
        println!("server {} isolated for {secs} s", follower + 1);
        let until = Instant::now() + Duration::from_secs(secs);
        let mut n = 0u64;
        // Writes go on without it (bounded by the partition's length).
        while Instant::now() < until {
            n += 1;
            let value = format!("during {n}");
            common::retry(|| writer.set("/x", value.as_bytes(), -1))
                .await
                .expect("the majority writes");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let last = format!("during {n}");
        assert_ne!(
            read_via(&e, follower, "/x").await.as_deref(),
            Some(last.as_bytes()),
            "an isolated follower served a linearizable read"
        );
        e.heal();
        let healed = Instant::now();
        let deadline = healed + Duration::from_secs(30);
        let mut served = None;
        while Instant::now() < deadline {
            if read_via(&e, follower, "/x").await.as_deref() == Some(last.as_bytes()) {
                served = Some(healed.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let served = served.unwrap_or_else(|| {
            e.keep_logs();
            panic!("server {} never served again after the heal", follower + 1)
        });
        println!(
            "server {} isolated {secs} s (2 ms RTT, 1% loss): a linearizable read through it \
             succeeded {:.2} s after the heal",
            follower + 1,
            served.as_secs_f64()
        );
        // The figure is a benchmark's, reported above; this bound only
        // catches the failure mode (recovery waiting on TCP's backoff, 51 s
        // before peer heartbeats).
        assert!(served < Duration::from_secs(15), "{served:?}");
    });
}
