//! Real processes on 127.0.0.1: a 3-server ensemble of the release binary's
//! test build, driven through zab-client over TCP. Every wait is bounded.

mod common;

use std::time::{Duration, Instant};

use common::{connect_retry, retry, Ensemble};
use zab_client::{Consistency, CreateMode, Error, ErrorCode, WatchEventKind};
use zab_tests::proxy::{Direction, Proxy, Rule};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn znode_operations_and_linearizable_follower_reads() {
    let e = Ensemble::start(3, "ops");
    let a = e.client(0, 4000).await;
    let b = e.client(1, 4000).await;
    let c = e.client(2, 4000).await;

    let path = retry(|| a.create("/config", b"v1", CreateMode::Persistent))
        .await
        .expect("create");
    assert_eq!(path, "/config");
    assert_eq!(
        a.create("/config", b"again", CreateMode::Persistent).await,
        Err(Error::Server(ErrorCode::NodeExists))
    );
    // Stat after create, then after a set (REFERENCE §3).
    let (data, st) = a
        .get("/config", Consistency::Local)
        .await
        .expect("read own write");
    assert_eq!(&data[..], b"v1");
    assert_eq!(
        (st.version, st.cversion, st.data_length, st.num_children),
        (0, 0, 2, 0)
    );
    assert_eq!(st.czxid, st.mzxid);
    assert_eq!(st.pzxid, st.czxid);
    let st2 = a
        .set("/config", b"v2!", 0)
        .await
        .expect("set with the right version");
    assert_eq!((st2.version, st2.data_length, st2.czxid), (1, 3, st.czxid));
    assert!(st2.mzxid > st.mzxid);
    assert_eq!(
        a.set("/config", b"x", 0).await,
        Err(Error::Server(ErrorCode::BadVersion))
    );

    // Written at one server, read linearizably at the others.
    for reader in [&b, &c] {
        let (data, stat) = reader
            .get("/config", Consistency::Linearizable)
            .await
            .expect("sync then read");
        assert_eq!(&data[..], b"v2!");
        assert_eq!(stat.version, 1);
    }

    // Sequential names count every child create and never go back.
    a.create("/q", b"", CreateMode::Persistent)
        .await
        .expect("parent");
    let s1 = a
        .create("/q/job-", b"", CreateMode::PersistentSequential)
        .await
        .expect("seq");
    a.create("/q/plain", b"", CreateMode::Persistent)
        .await
        .expect("plain child");
    a.delete("/q/plain", -1).await.expect("delete");
    let s2 = a
        .create("/q/job-", b"", CreateMode::PersistentSequential)
        .await
        .expect("seq");
    assert_eq!(
        (s1.as_str(), s2.as_str()),
        ("/q/job-0000000000", "/q/job-0000000002")
    );
    let (children, qstat) = b
        .children("/q", Consistency::Linearizable, false)
        .await
        .expect("children");
    assert_eq!(
        children,
        vec!["job-0000000000".to_string(), "job-0000000002".to_string()]
    );
    assert_eq!((qstat.cversion, qstat.num_children), (4, 2));
    assert_eq!(
        a.delete("/q", -1).await,
        Err(Error::Server(ErrorCode::NotEmpty))
    );
    assert_eq!(
        a.get("/missing", Consistency::Local).await,
        Err(Error::Server(ErrorCode::NoNode))
    );
    assert_eq!(
        a.get("bad//path", Consistency::Local).await,
        Err(Error::Server(ErrorCode::BadArguments))
    );
    // Over the negotiated frame limit: a typed error, and the session goes on.
    let big = vec![0u8; 2 << 20];
    assert_eq!(
        a.set("/config", &big, -1).await,
        Err(Error::Server(ErrorCode::FrameTooLarge))
    );
    let (data, _) = a
        .get("/config", Consistency::Local)
        .await
        .expect("still serving");
    assert_eq!(&data[..], b"v2!");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemerals_go_with_close_and_expiry_and_watches_fire_once() {
    let e = Ensemble::start(3, "sessions");
    let owner = e.client(1, 1000).await;
    let watcher = e.client(2, 4000).await;
    retry(|| owner.create("/svc", b"", CreateMode::Persistent))
        .await
        .expect("parent");
    owner
        .create("/svc/a", b"addr", CreateMode::Ephemeral)
        .await
        .expect("ephemeral");
    assert_eq!(
        owner
            .create("/svc/a/child", b"", CreateMode::Persistent)
            .await,
        Err(Error::Server(ErrorCode::NoChildrenForEphemerals))
    );
    let (_, st) = watcher
        .get_watch("/svc/a", Consistency::Linearizable, true)
        .await
        .expect("watch armed");
    assert_eq!(st.ephemeral_owner, owner.session_id());
    let (kids, _) = watcher
        .children("/svc", Consistency::Local, true)
        .await
        .expect("child watch");
    assert_eq!(kids, vec!["a".to_string()]);

    // Explicit close removes the ephemeral at once; both watches fire, once.
    owner.close().await.expect("close");
    let mut kinds = Vec::new();
    for _ in 0..2 {
        let ev = tokio::time::timeout(Duration::from_secs(10), watcher.next_event())
            .await
            .expect("watch event in time")
            .expect("event stream open");
        kinds.push((ev.kind, ev.path));
    }
    kinds.sort_by_key(|(k, _)| *k as u8);
    assert_eq!(
        kinds,
        vec![
            (WatchEventKind::NodeDeleted, "/svc/a".to_string()),
            (WatchEventKind::NodeChildrenChanged, "/svc".to_string())
        ]
    );
    assert!(watcher
        .exists("/svc/a", Consistency::Linearizable, false)
        .await
        .expect("exists")
        .is_none());

    // Expiry: a session that stops talking loses its ephemerals.
    let gone = e.client(0, 1000).await;
    gone.create("/svc/b", b"", CreateMode::Ephemeral)
        .await
        .expect("ephemeral");
    let sid = gone.session_id();
    gone.abandon(); // the connection closes; nobody pings for this session
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let st = watcher
            .exists("/svc/b", Consistency::Linearizable, false)
            .await
            .expect("exists");
        match st {
            None => break,
            Some(s) => assert_eq!(s.ephemeral_owner, sid),
        }
        assert!(Instant::now() < deadline, "session never expired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_keeps_acknowledged_writes_and_serves_again() {
    let mut e = Ensemble::start(3, "failover");
    // Every server joins before the leader is killed (a server that never
    // finished its first sync does not vote).
    e.wait_for_leader(None).await;
    let writer = e.client(0, 4000).await;
    retry(|| writer.create("/k", b"0", CreateMode::Persistent))
        .await
        .expect("create");
    for i in 1..=20 {
        writer
            .set("/k", i.to_string().as_bytes(), -1)
            .await
            .expect("acknowledged write");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let leader = loop {
        if let Some(l) = e.leader() {
            break l;
        }
        assert!(Instant::now() < deadline, "no leader in the logs");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    e.kill(leader);
    let survivor = (0..3).find(|&i| i != leader).expect("two survivors");
    let other = e.client(survivor, 4000).await;
    // Every acknowledged write survives, and the ensemble takes writes again.
    let (data, _) = retry(|| other.get("/k", Consistency::Linearizable))
        .await
        .expect("read after failover");
    assert_eq!(&data[..], b"20");
    retry(|| other.set("/k", b"21", -1))
        .await
        .expect("write through the new leader");
    let third = (0..3)
        .find(|&i| i != leader && i != survivor)
        .expect("third");
    let reader = e.client(third, 4000).await;
    let (data, _) = retry(|| reader.get("/k", Consistency::Linearizable))
        .await
        .expect("read");
    assert_eq!(&data[..], b"21");
    // The restarted server catches up.
    e.spawn(leader);
    let back = e.client(leader, 4000).await;
    let (data, _) = retry(|| back.get("/k", Consistency::Linearizable))
        .await
        .expect("read on the restarted server");
    assert_eq!(&data[..], b"21");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_is_all_or_nothing_and_expired_nodes_are_removed() {
    use zab_client::{CheckRequest, CreateRequest, MultiOp, MultiResult, SetDataRequest};
    let e = Ensemble::start(3, "multi");
    let c = e.client(0, 4000).await;
    retry(|| c.create("/m", b"", CreateMode::Persistent))
        .await
        .expect("parent");
    let create = |p: &str| {
        MultiOp::Create(CreateRequest {
            path: p.into(),
            data: bytes::Bytes::new(),
            mode: CreateMode::Persistent,
            ttl_ms: 0,
            acl: None,
        })
    };
    let ok = c
        .multi(vec![
            create("/m/a"),
            MultiOp::SetData(SetDataRequest {
                path: "/m/a".into(),
                data: bytes::Bytes::from_static(b"x"),
                version: 0,
            }),
            MultiOp::Check(CheckRequest {
                path: "/m".into(),
                version: 0,
            }),
        ])
        .await
        .expect("multi applies");
    assert!(matches!(&ok[0], MultiResult::Create(r) if r.path == "/m/a"));
    assert!(matches!(&ok[1], MultiResult::SetData(st) if st.version == 1));
    let failed = c
        .multi(vec![create("/m/b"), create("/m/a"), create("/m/c")])
        .await;
    assert_eq!(
        failed,
        Err(Error::MultiFailed {
            err: ErrorCode::NodeExists,
            errors: vec![
                ErrorCode::Ok,
                ErrorCode::NodeExists,
                ErrorCode::RuntimeInconsistency
            ],
        })
    );
    assert!(c
        .exists("/m/b", Consistency::Linearizable, false)
        .await
        .expect("exists")
        .is_none());

    // The leader removes a TTL node left alone and a container whose last child went.
    c.create_ttl("/m/ttl", b"", CreateMode::PersistentWithTtl, 300)
        .await
        .expect("ttl node");
    c.create("/m/box", b"", CreateMode::Container)
        .await
        .expect("container");
    c.create("/m/box/item", b"", CreateMode::Persistent)
        .await
        .expect("child");
    c.delete("/m/box/item", -1).await.expect("last child goes");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ttl = c
            .exists("/m/ttl", Consistency::Linearizable, false)
            .await
            .expect("exists");
        let bx = c
            .exists("/m/box", Consistency::Local, false)
            .await
            .expect("exists");
        if ttl.is_none() && bx.is_none() {
            break;
        }
        assert!(Instant::now() < deadline, "expired nodes never removed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_behind_the_client_refuses_it() {
    use zab_proto::ConnectReply;
    let e = Ensemble::start(3, "behind");
    let c = e.client(0, 4000).await;
    retry(|| c.create("/x", b"", CreateMode::Persistent))
        .await
        .expect("write");
    // Server 2 serves (the bootstrap waits for every voter, so it may still
    // be joining); then a client that has seen a zxid far in its future.
    let probe = e.client(1, 4000).await;
    drop(probe);
    let (_stream, reply) = common::raw_handshake(e.clients[1], 0x7fff_0000_0000_0000).await;
    match reply {
        ConnectReply::Refused(r) => assert_eq!(r.code, ErrorCode::ServerBehind),
        ConnectReply::Accepted(_) => panic!("a lagging server accepted a client from its future"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_are_rearmed_after_reconnect_with_catch_up() {
    let mut e = Ensemble::start(3, "rearm");
    // Every server joins before one is killed: a server that never finished
    // its first sync does not vote (docs/disk-faults.md), and with it and
    // one other left there is no quorum. (Seen: server 2 still joining when
    // server 1 was killed 0.2 s after the start.)
    e.wait_for_leader(None).await;
    let writer = e.client(2, 4000).await;
    retry(|| writer.create("/w", b"0", CreateMode::Persistent))
        .await
        .expect("create");
    // Wait until server 1 serves, then watch from a client bound to it first.
    // Its way to server 2 is held shut until the change is made, so the
    // change surely happens while the watcher is away (else it could
    // re-arm first and see the change live).
    let _probe = e.client(0, 4000).await;
    let gate = Proxy::start(e.clients[1]).await.expect("a proxy");
    gate.set(Direction::ToTarget, Rule::DROP);
    gate.set(Direction::FromTarget, Rule::DROP);
    let order = [e.clients[0], gate.addr()];
    let watcher = connect_retry(&order, 20_000).await.expect("watcher");
    watcher
        .get_watch("/w", Consistency::Linearizable, true)
        .await
        .expect("data watch");
    let mut persistent = watcher
        .add_watch("/w", false)
        .await
        .expect("persistent watch");
    // Its server dies; a change happens while it reconnects elsewhere.
    // Exactly one change: the set is conditional, so a retry after a lost
    // reply (the write applied, then a leader change dropped the
    // connection) cannot change the node a second time; then the change is
    // the one the stat shows. (Seen with an unconditional set: the first
    // attempt applied at one zxid and the retry at another, and the
    // one-shot watch rightly reported the first.)
    e.kill(0);
    let written_mzxid = match retry(|| writer.set("/w", b"1", 0)).await {
        Ok(stat) => stat.mzxid,
        Err(Error::Server(ErrorCode::BadVersion)) => {
            let (data, stat) = retry(|| writer.get("/w", Consistency::Linearizable))
                .await
                .expect("read after a set whose reply was lost");
            assert_eq!(&data[..], b"1", "the lost set was applied");
            stat.mzxid
        }
        Err(other) => panic!("write during the outage: {other:?}"),
    };
    gate.heal();
    // Server 2 still holds the change, so the re-registration replays it
    // (resumable watches): the one-shot watch and the persistent one both
    // report the very change they missed, at its zxid, and no
    // ContinuityLost.
    let wait = Duration::from_secs(20);
    let missed = tokio::time::timeout(wait, watcher.next_event())
        .await
        .expect("the one-shot watch's catch-up within 20 s")
        .expect("an event");
    assert_eq!(
        (missed.kind, missed.path.as_str(), missed.zxid),
        (WatchEventKind::NodeDataChanged, "/w", written_mzxid)
    );
    let ev = tokio::time::timeout(wait, persistent.next())
        .await
        .expect("the persistent watch's catch-up within 20 s")
        .expect("an event");
    assert_eq!(
        (ev.kind, ev.path.as_str(), ev.zxid),
        (WatchEventKind::NodeDataChanged, "/w", written_mzxid)
    );
    let (data, _) = watcher
        .get("/w", Consistency::Linearizable)
        .await
        .expect("session survived");
    assert_eq!(&data[..], b"1");
    assert_eq!(
        watcher.session_state(),
        zab_client::SessionState::Reconnected
    );
}

/// REFERENCE §2: a leader that was paused (SIGSTOP) while the others elected
/// a new one still believes it leads when it wakes. A sync through it must
/// not complete on its stale view: a read after a successful sync never
/// returns a value older than a write acknowledged elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leader_cannot_complete_a_stale_sync() {
    let e = Ensemble::start(3, "deposed");
    let first = e.client(0, 8000).await;
    retry(|| first.create("/v", b"old", CreateMode::Persistent))
        .await
        .expect("create");
    let old = e.wait_for_leader(None).await;
    // A session on the old leader, established before it is paused.
    let stale = connect_retry(&[e.clients[old]], 8000)
        .await
        .expect("client on the old leader");
    let (data, _) = stale
        .get("/v", Consistency::Linearizable)
        .await
        .expect("read");
    assert_eq!(&data[..], b"old");

    e.signal(old, "STOP");
    let new = e.wait_for_leader(Some(old)).await;
    let fresh = connect_retry(&[e.clients[new]], 8000)
        .await
        .expect("client on the new leader");
    retry(|| fresh.set("/v", b"new", -1))
        .await
        .expect("acknowledged by the new quorum");
    e.signal(old, "CONT");

    // Every successful sync-then-read through the woken server sees "new".
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match stale.get("/v", Consistency::Linearizable).await {
            Ok((data, _)) => {
                assert_eq!(
                    &data[..],
                    b"new",
                    "a sync completed on a deposed leader's stale view"
                );
                break;
            }
            Err(Error::Server(ErrorCode::NotLeaderNoQuorum) | Error::ConnectionLoss) => {
                assert!(Instant::now() < deadline, "the woken server never rejoined");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
}

/// REFERENCE §4: expiry is the leader's job, and a new leader restarts every
/// session's clock; a session whose client is gone still expires after a
/// leader change, taking its ephemerals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemerals_expire_across_a_leader_change() {
    let mut e = Ensemble::start(3, "expiry-failover");
    let leader = e.wait_for_leader(None).await;
    // Every server has joined the ensemble before its leader goes: a server
    // that never finished its first synchronization restores blank, and
    // blank servers do not vote for a named ensemble (docs/disk-faults.md).
    for i in 0..3 {
        let c = e.client(i, 4000).await;
        retry(|| c.sync("/")).await.expect("every server serves");
    }
    let other = (0..3).find(|&i| i != leader).expect("a follower");
    let third = (0..3)
        .find(|&i| i != leader && i != other)
        .expect("another");
    let owner = connect_retry(&[e.clients[other]], 1000)
        .await
        .expect("owner");
    retry(|| owner.create("/lease", b"", CreateMode::Ephemeral))
        .await
        .expect("ephemeral");
    // Left to expire (a close would end it at once).
    owner.abandon();
    e.kill(leader);
    let watcher = e.client(third, 8000).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match watcher
            .exists("/lease", Consistency::Linearizable, false)
            .await
        {
            Ok(None) => break,
            Ok(Some(_))
            | Err(Error::Server(ErrorCode::NotLeaderNoQuorum) | Error::ConnectionLoss) => {
                assert!(
                    Instant::now() < deadline,
                    "the session never expired after the leader change"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
}
