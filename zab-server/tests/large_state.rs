//! Large state and limits on real processes: a tree far larger than any peer
//! frame is transferred to a follower that lost everything, and it serves
//! again; replies and writes past the frame limit are refused cleanly, and
//! a listing too large for one reply is paged.

mod common;

use std::time::{Duration, Instant};

use common::{retry, Ensemble};
use zab_client::{Consistency, CreateMode, CreateRequest, Error, ErrorCode, MultiOp};

/// Nodes of [`DATA_BYTES`] each: 40 MB in all, more than twice the 16 MiB a
/// single peer frame may carry, so only a streamed snapshot can move it.
const NODES: usize = 40;
const DATA_BYTES: usize = 1_000_000;

fn payload(k: usize) -> Vec<u8> {
    (0..DATA_BYTES)
        .map(|i| ((i * 31 + k) % 251) as u8)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_follower_rejoins_a_tree_larger_than_any_frame() {
    // A short DIFF window and frequent snapshots: the wiped follower can
    // only be brought back by a snapshot of the whole tree.
    let mut e = Ensemble::start_with(
        3,
        "bigsnap",
        "snapshot_every_txns = 8\ndiff_window_txns = 8",
    );
    let leader = e.wait_for_leader(None).await;
    let victim = (leader + 1) % 3;
    let writer = e.client(leader, 10_000).await;
    for k in 0..NODES {
        let (path, data) = (format!("/big{k}"), payload(k));
        retry(|| writer.create(&path, &data, CreateMode::Persistent))
            .await
            .expect("a 1 MB create");
    }
    e.kill(victim);
    let dir = e.dir.join(format!("{}", victim + 1));
    for entry in std::fs::read_dir(&dir).expect("data dir").flatten() {
        let name = entry.file_name();
        if name != "zab.toml" && name != "server.log" {
            std::fs::remove_file(entry.path()).expect("wiping");
        }
    }
    let wiped_at = Instant::now();
    e.spawn(victim);
    let reader = e.client(victim, 10_000).await;
    let newest = format!("/big{}", NODES - 1);
    let (last, _) = retry(|| reader.get(&newest, Consistency::Local))
        .await
        .expect("the rejoined follower serves");
    eprintln!(
        "a wiped follower served a {} MB tree {:?} after its restart",
        NODES * DATA_BYTES / 1_000_000,
        wiped_at.elapsed()
    );
    assert_eq!(&last[..], &payload(NODES - 1)[..]);
    for k in 0..NODES {
        let (data, _) = reader
            .get(&format!("/big{k}"), Consistency::Local)
            .await
            .expect("read from the rejoined follower");
        assert!(
            data[..] == payload(k)[..],
            "node {k} differs after the transfer"
        );
    }
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    assert!(
        !log.contains("exceeds the limit"),
        "the transfer hit a frame limit:\n{log}"
    );
    // Nothing is lost on the rest of the ensemble either.
    writer
        .create("/after", b"x", CreateMode::Persistent)
        .await
        .expect("the ensemble still takes writes");
    tokio::time::timeout(Duration::from_secs(20), async {
        retry(|| reader.get("/after", Consistency::Linearizable)).await
    })
    .await
    .expect("in time")
    .expect("the follower follows after the transfer");
}

fn create_op(path: String, mode: CreateMode) -> MultiOp {
    MultiOp::Create(CreateRequest {
        path,
        data: bytes::Bytes::new(),
        mode,
        ttl_ms: 0,
        acl: None,
    })
}

/// Replies and writes against the 1 MiB frame limit the client negotiates:
/// a listing too large for one frame is answered FrameTooLarge and the
/// connection goes on serving; a multi whose reply would not fit applies
/// nothing; data that no client could read back is not written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_over_the_frame_limit_are_refused_and_the_connection_stays_usable() {
    let e = Ensemble::start(3, "limits");
    e.wait_for_leader(None).await;
    let c = e.client(0, 10_000).await;
    retry(|| c.create("/dir", b"", CreateMode::Persistent))
        .await
        .expect("parent");
    // 6,000 children of 200-byte names: a 1.2 MB listing.
    let name = "n".repeat(190);
    for batch in 0..60 {
        let ops = (0..100)
            .map(|k| {
                create_op(
                    format!("/dir/{name}{batch:03}{k:03}"),
                    CreateMode::Persistent,
                )
            })
            .collect();
        c.multi(ops).await.expect("a batch of creates");
    }
    let (_, stat) = c.get("/dir", Consistency::Local).await.expect("stat");
    assert_eq!(stat.num_children, 6_000);
    assert_eq!(
        c.children("/dir", Consistency::Local, false)
            .await
            .map(|(names, _)| names.len()),
        Err(Error::Server(ErrorCode::FrameTooLarge))
    );
    // The same connection serves the next request.
    assert_eq!(
        c.exists("/dir", Consistency::Local, false)
            .await
            .expect("exists")
            .map(|s| s.num_children),
        Some(6_000)
    );
    // Paged, the whole listing comes back, in order, each page in a frame.
    let all = c
        .all_children("/dir", Consistency::Linearizable)
        .await
        .expect("a paged listing");
    assert_eq!(all.len(), 6_000);
    assert!(all.windows(2).all(|w| w[0] < w[1]), "pages out of order");
    let (page, stat, more) = c
        .children_page("/dir", &all[99], 100, Consistency::Local)
        .await
        .expect("a page of 100");
    assert_eq!(
        (page.as_slice(), stat.num_children, more),
        (&all[100..200], 6_000, true)
    );
    let session = c.session_id();

    // 15,000 sequential creates: the request is ~0.6 MB, its reply would be
    // ~1.6 MB. Refused whole, before anything is applied.
    let ops = (0..15_000)
        .map(|k| create_op(format!("/q{k}-"), CreateMode::PersistentSequential))
        .collect();
    match c.multi(ops).await {
        Err(Error::MultiFailed { err, errors }) => {
            assert_eq!(err, ErrorCode::FrameTooLarge);
            assert!(errors.is_empty(), "{errors:?}");
        }
        other => panic!("an oversized multi was not refused: {other:?}"),
    }
    c.sync("/").await.expect("sync");
    let (root, _) = c
        .children("/", Consistency::Linearizable, false)
        .await
        .expect("ls /");
    assert!(
        !root.iter().any(|n| n.starts_with('q')),
        "part of a refused multi was applied: {:?}",
        root.iter()
            .filter(|n| n.starts_with('q'))
            .take(5)
            .collect::<Vec<_>>()
    );

    // Data whose read-back could not fit a 1 MiB frame is not written,
    // though the create itself fits.
    let data = vec![7u8; 1024 * 1024 - 40];
    assert_eq!(
        c.create("/edge", &data, CreateMode::Persistent).await,
        Err(Error::Server(ErrorCode::FrameTooLarge))
    );
    assert_eq!(
        c.exists("/edge", Consistency::Linearizable, false).await,
        Ok(None)
    );
    // Just under the bound, it is written and read back whole.
    let data = vec![7u8; 1024 * 1024 - 100];
    c.create("/edge", &data, CreateMode::Persistent)
        .await
        .expect("a create at the bound");
    let (read, _) = c.get("/edge", Consistency::Local).await.expect("read back");
    assert_eq!(read.len(), data.len());
    assert_eq!(c.session_id(), session, "the session never changed");
}

/// Opens a raw session on `addr`, below the client library.
async fn raw_session(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    match common::raw_handshake(addr, 0).await {
        (stream, zab_proto::ConnectReply::Accepted(_)) => stream,
        (_, zab_proto::ConnectReply::Refused(r)) => panic!("refused: {r:?}"),
    }
}

/// Clients that pipeline reads of a 1 MB node and never read the replies
/// cannot grow the server's memory: their connections stop being read once
/// their queue is full, and they are closed; everyone else is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_read_cannot_exhaust_memory() {
    use tokio::io::AsyncWriteExt;
    use zab_proto::{Request, RequestFrame, Xid};
    let e = Ensemble::start(3, "noread");
    e.wait_for_leader(None).await;
    let c = e.client(0, 10_000).await;
    let big = vec![1u8; 1_000_000];
    retry(|| c.create("/big", &big, CreateMode::Persistent))
        .await
        .expect("a 1 MB node");
    let before = e.rss_bytes(0).expect("server 1 runs");
    let mut frame = bytes::BytesMut::new();
    for xid in 1..=64 {
        RequestFrame::Op {
            xid: Xid::new(xid).expect("xid"),
            request: Request::GetData {
                path: "/big".into(),
                watch: false,
            },
        }
        .encode(&mut frame);
    }
    let frame = frame.freeze();
    let mut hogs = Vec::new();
    for _ in 0..3 {
        let mut stream = raw_session(e.clients[0]).await;
        let frame = frame.clone();
        hogs.push(tokio::spawn(async move {
            // Write requests until the server stops taking them and then
            // closes the connection; bounded at 60 s and 10,000 rounds.
            let started = Instant::now();
            for _ in 0..10_000 {
                let write = stream.write_all(&frame);
                match tokio::time::timeout(Duration::from_secs(60), write).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return Some(started.elapsed()),
                    Err(_) => return None,
                }
            }
            None
        }));
    }
    let mut peak = before;
    let deadline = Instant::now() + Duration::from_secs(8);
    while Instant::now() < deadline {
        peak = peak.max(e.rss_bytes(0).unwrap_or(0));
        // Others are still served meanwhile (a reconnect allowed: on a
        // loaded machine the server may change leaders under the flood).
        common::retry(|| c.exists("/big", Consistency::Local, false))
            .await
            .expect("another client is served");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for hog in hogs {
        let closed = hog.await.expect("task");
        assert!(
            closed.is_some(),
            "a client that never reads was never closed"
        );
        eprintln!(
            "a never-reading client was closed after {:?}",
            closed.unwrap_or_default()
        );
    }
    let growth = peak.saturating_sub(before);
    eprintln!(
        "server RSS {} MiB before, peak {} MiB with three never-reading clients",
        before >> 20,
        peak >> 20
    );
    assert!(
        growth < 64 << 20,
        "three clients that never read grew the server by {} MiB",
        growth >> 20
    );
}

/// Arms `paths` as exists-watches (on nodes that do not exist) with 64 in
/// flight; returns the rate in arms/s.
async fn arm_exists(c: &std::sync::Arc<zab_client::Client>, paths: std::ops::Range<usize>) -> f64 {
    let started = Instant::now();
    let n = paths.len();
    let mut tasks = tokio::task::JoinSet::new();
    let per_task = n.div_ceil(64);
    let start = paths.start;
    for t in 0..64 {
        let c = c.clone();
        let from = start + t * per_task;
        let to = (from + per_task).min(paths.end);
        tasks.spawn(async move {
            for k in from..to {
                c.exists(&format!("/absent/w{k}"), Consistency::Local, true)
                    .await
                    .expect("an exists watch within the limit");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("arming task");
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// One limit on every path that arms a watch: 100,000 per session by
/// default; past it exists, getData and getChildren watches and AddWatch
/// fail with TooManyWatches (nothing read or armed), a watch already armed
/// re-arms, and arming stays O(1) (the last 10,000 arm as fast as the first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_stop_at_the_limit_on_every_path() {
    let e = Ensemble::start(3, "watchcap");
    e.wait_for_leader(None).await;
    let c = std::sync::Arc::new(e.client(0, 20_000).await);
    retry(|| c.create("/n", b"x", CreateMode::Persistent))
        .await
        .expect("a node to watch");
    let started = Instant::now();
    let first = arm_exists(&c, 0..10_000).await;
    arm_exists(&c, 10_000..90_000).await;
    let last = arm_exists(&c, 90_000..99_998).await;
    eprintln!(
        "100,000 watches armed in {:?}: first 10,000 at {first:.0}/s, last at {last:.0}/s",
        started.elapsed()
    );
    // Two left: a data watch and a persistent one take them.
    c.get_watch("/n", Consistency::Local, true)
        .await
        .expect("the 99,999th watch");
    let _stream = c.add_watch("/n", false).await.expect("the 100,000th watch");
    let refused = Err(Error::Server(ErrorCode::TooManyWatches));
    assert_eq!(
        c.exists("/absent/one-more", Consistency::Local, true)
            .await
            .map(|_| ()),
        refused
    );
    assert_eq!(
        c.get_watch("/", Consistency::Local, true).await.map(|_| ()),
        refused
    );
    assert_eq!(
        c.children("/n", Consistency::Local, true).await.map(|_| ()),
        refused
    );
    assert_eq!(
        c.add_watch("/n", true).await.map(|_| ()),
        refused,
        "a recursive watch past the limit"
    );
    // Re-arming what is armed is no new watch; reads without one still work.
    c.exists("/absent/w5", Consistency::Local, true)
        .await
        .expect("re-arming an armed watch");
    c.children("/n", Consistency::Local, false)
        .await
        .expect("a read that arms nothing");
    // Another session has its own 100,000.
    let other = e.client(0, 20_000).await;
    other
        .exists("/absent/w0", Consistency::Local, true)
        .await
        .expect("another session's watch");
}

/// A data quota: past it, writes that add data are refused with
/// QuotaExceeded (a multi as a whole), while deletes and shrinking writes
/// go on, and room comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_quota_refuses_growth_but_never_cleanup() {
    let e = Ensemble::start_with(3, "quota", "max_data_bytes = 2500000");
    e.wait_for_leader(None).await;
    let c = e.client(0, 10_000).await;
    let mb = vec![3u8; 1_000_000];
    retry(|| c.create("/a", &mb, CreateMode::Persistent))
        .await
        .expect("1 MB within the quota");
    c.create("/b", &mb, CreateMode::Persistent)
        .await
        .expect("2 MB within the quota");
    let over = Err(Error::Server(ErrorCode::QuotaExceeded));
    assert_eq!(c.create("/c", &mb, CreateMode::Persistent).await, over);
    assert_eq!(
        c.exists("/c", Consistency::Linearizable, false).await,
        Ok(None)
    );
    match c
        .multi(vec![
            MultiOp::SetData(zab_client::SetDataRequest {
                path: "/a".into(),
                data: bytes::Bytes::from_static(b"shrinks"),
                version: -1,
            }),
            MultiOp::Create(CreateRequest {
                path: "/m".into(),
                data: vec![0u8; 600_000].into(),
                mode: CreateMode::Persistent,
                ttl_ms: 0,
                acl: None,
            }),
        ])
        .await
    {
        Err(Error::MultiFailed { err, .. }) => assert_eq!(err, ErrorCode::QuotaExceeded),
        other => panic!("a multi over the quota was not refused: {other:?}"),
    }
    // Shrinking and deleting are always taken; then there is room again.
    c.set("/a", b"small", -1).await.expect("a shrinking write");
    c.delete("/b", -1).await.expect("a delete");
    c.create("/c", &mb, CreateMode::Persistent)
        .await
        .expect("room again after cleanup");
}

/// Creates `count` nodes under `parent` in multis of 500, with `mode`.
async fn create_many(
    c: &zab_client::Client,
    parent: &str,
    tag: &str,
    count: usize,
    mode: CreateMode,
) {
    for batch in 0..count.div_ceil(500) {
        let ops = (batch * 500..((batch + 1) * 500).min(count))
            .map(|k| {
                MultiOp::Create(CreateRequest {
                    path: format!("{parent}/{tag}{k}"),
                    data: vec![b'e'; 128].into(),
                    mode,
                    ttl_ms: 0,
                    acl: None,
                })
            })
            .collect();
        c.multi(ops).await.expect("a batch of creates");
    }
}

/// 200 small writes: with `diff_window_txns = 200`, they push what came
/// before out of the log window (and `snapshot_every_txns = 200` takes a
/// snapshot after it).
async fn churn(c: &zab_client::Client) {
    for _ in 0..200 {
        c.set("/eph", b"x", -1).await.expect("a small write");
    }
}

/// Server 1's resident memory once settled: past the allocator's decay
/// time (10 s), the least of six readings half a second apart, taken the
/// same way before and after.
async fn settled_rss(e: &Ensemble) -> u64 {
    tokio::time::sleep(Duration::from_secs(12)).await;
    let mut least = u64::MAX;
    for _ in 0..6 {
        least = least.min(e.rss_bytes(0).expect("server 1 runs"));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    least
}

/// Memory comes back after an ephemeral-heavy run: 100,000 persistent
/// nodes, then 64 sessions holding 160,000 ephemerals between them, then
/// those sessions close. Once their nodes are gone, a snapshot has trimmed
/// the log window and the allocator's decay time has passed, the server
/// holds no more than 1.2× what it held with the persistent nodes alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_returns_after_an_ephemeral_heavy_run() {
    // Frequent snapshots, and a log window (recent transactions, kept for
    // DIFFs) of at most 200 of them.
    let e = Ensemble::start_with(
        3,
        "ephmem",
        "snapshot_every_txns = 200\ndiff_window_txns = 200",
    );
    e.wait_for_leader(None).await;
    let c = e.client(0, 20_000).await;
    retry(|| c.create("/base", b"", CreateMode::Persistent))
        .await
        .expect("/base");
    c.create("/eph", b"", CreateMode::Persistent)
        .await
        .expect("/eph");
    create_many(&c, "/base", "n", 100_000, CreateMode::Persistent).await;
    churn(&c).await;
    let before = settled_rss(&e).await;
    let mut holders = Vec::new();
    for s in 0..64 {
        let holder = e.client(s % 3, 20_000).await;
        let tag = format!("s{s}-");
        create_many(&holder, "/eph", &tag, 2_500, CreateMode::Ephemeral).await;
        holders.push(holder);
    }
    let full = e.rss_bytes(0).expect("server 1 runs");
    for holder in holders {
        holder.close().await.expect("close");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, stat) = c
            .get("/eph", Consistency::Linearizable)
            .await
            .expect("/eph");
        if stat.num_children == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ephemerals still there: {}",
            stat.num_children
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    churn(&c).await;
    let after = settled_rss(&e).await;
    eprintln!(
        "server 1 RSS: {} MiB with 100k persistent nodes, {} MiB with 160k ephemerals more, \
         {} MiB once they were gone",
        before >> 20,
        full >> 20,
        after >> 20
    );
    assert!(
        after * 10 <= before * 12,
        "memory did not come back: {} MiB before, {} MiB after",
        before >> 20,
        after >> 20
    );
}

/// Snapshots come by bytes as well as by count: with the default count
/// (100,000) a few large writes still trigger one, so the log a restart
/// replays stays bounded in bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_writes_trigger_snapshots_by_bytes() {
    let e = Ensemble::start_with(3, "snapbytes", "snapshot_every_bytes = 4000000");
    e.wait_for_leader(None).await;
    let c = e.client(0, 10_000).await;
    let snapshots = |i: usize| {
        std::fs::read_dir(e.dir.join(format!("{}", i + 1)))
            .map(|d| {
                d.flatten()
                    .filter(|f| f.file_name().to_string_lossy().starts_with("snap."))
                    .count()
            })
            .unwrap_or(0)
    };
    let before = snapshots(0);
    let mb = vec![5u8; 1_000_000];
    retry(|| c.create("/w", &mb, CreateMode::Persistent))
        .await
        .expect("a 1 MB create");
    for _ in 0..9 {
        c.set("/w", &mb, -1).await.expect("a 1 MB write");
    }
    // Ten writes of 1 MB pass 4 MB twice; the snapshots are written off
    // the driver, so give them a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    while snapshots(0) < before + 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        snapshots(0) > before,
        "no snapshot after 10 MB of writes with snapshot_every_bytes = 4 MB"
    );
}
