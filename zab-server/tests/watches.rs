//! Resumable watches on real processes: a watcher whose server is killed,
//! and later cut off and healed, while 1,000 writes go on, hears every
//! change exactly once, in order, and never ContinuityLost (the servers
//! hold far more than 1,000 recent changes).

mod common;

use std::time::{Duration, Instant};

use common::{connect_retry, retry, Ensemble};
use zab_client::{Consistency, CreateMode, WatchEventKind};

const WRITES: u64 = 1_000;
const NODES: u64 = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_moved_by_a_kill_and_a_partition_misses_nothing_and_hears_nothing_twice() {
    let mut e = Ensemble::start_proxied(3, "resume").await;
    let leader = e.wait_for_leader(None).await;
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let (first, second) = (followers[0], followers[1]);

    let writer = connect_retry(&[e.clients[leader]], 30_000)
        .await
        .expect("writer");
    retry(|| writer.create("/r", b"", CreateMode::Persistent))
        .await
        .expect("/r");
    for k in 0..NODES {
        let path = format!("/r/{k}");
        retry(|| writer.create(&path, b"0", CreateMode::Persistent))
            .await
            .expect("a node");
    }
    // The watcher knows the two followers only, in order: it starts on the
    // first, moves to the second when the first dies, and back to the
    // first when the second is cut off.
    let watcher = connect_retry(&[e.clients[first], e.clients[second]], 30_000)
        .await
        .expect("watcher");
    let mut events = watcher.add_watch("/r", true).await.expect("watch");
    let mut acked = Vec::new();
    for i in 0..WRITES {
        match i {
            250 => {
                println!("killing server {} (the watcher's)", first + 1);
                e.kill(first);
            }
            400 => {
                e.spawn(first);
                let back = e.client(first, 30_000).await;
                retry(|| back.sync("/")).await.expect("back in the quorum");
                let _ = back.close().await;
            }
            550 => {
                println!("cutting server {} off", second + 1);
                e.isolate(second);
            }
            800 => e.heal(),
            _ => {}
        }
        let path = format!("/r/{}", i % NODES);
        let value = i.to_string();
        let stat = retry(|| writer.set(&path, value.as_bytes(), -1))
            .await
            .expect("a write");
        acked.push(stat.mzxid);
    }
    let last = *acked.last().expect("writes");

    // Every event up to the last write.
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.last().is_none_or(|&(_, z)| z < last) {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = tokio::time::timeout(left, events.next())
            .await
            .unwrap_or_else(|_| panic!("{} events, none reached {last:#x}", seen.len()))
            .expect("the watch stream ended");
        assert_ne!(
            ev.kind,
            WatchEventKind::ContinuityLost,
            "ContinuityLost at {:#x} after {} events, though the window covers the gap",
            ev.zxid,
            seen.len()
        );
        assert_eq!(ev.kind, WatchEventKind::NodeDataChanged, "{ev:?}");
        seen.push((ev.path, ev.zxid));
    }
    // In order, none twice.
    for pair in seen.windows(2) {
        assert!(
            pair[0].1 < pair[1].1,
            "out of order or repeated: {:?} then {:?}",
            pair[0],
            pair[1]
        );
    }
    // None missing: every acknowledged write, and exactly as many events
    // as writes applied (each set adds one to its node's version).
    let zxids: std::collections::BTreeSet<u64> = seen.iter().map(|&(_, z)| z).collect();
    let missing: Vec<_> = acked.iter().filter(|z| !zxids.contains(z)).collect();
    assert!(
        missing.is_empty(),
        "acknowledged writes never heard: {missing:x?}"
    );
    let mut applied = 0u64;
    for k in 0..NODES {
        let (_, stat) = writer
            .get(&format!("/r/{k}"), Consistency::Linearizable)
            .await
            .expect("read");
        applied += u64::try_from(stat.version).expect("a version");
    }
    assert_eq!(seen.len() as u64, applied, "events against writes applied");
    println!(
        "{} events for {WRITES} writes, in order, once each, no ContinuityLost",
        seen.len()
    );
}
