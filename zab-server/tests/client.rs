//! The client's promises, on a real 3-server ensemble: a busy session
//! survives the leader's death with its ephemerals and watches; a client
//! never goes back in time across reconnects; a linearizable follower read
//! sees every write acknowledged before it began; per-watch streams carry
//! their own watch's events only; clones share a session, and dropping
//! the last handle closes it.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{connect_retry, retry, Ensemble};
use zab_client::{Consistency, CreateMode, SessionState, WatchEventKind, WatchStream};

async fn next_event(stream: &mut WatchStream, what: &str) -> zab_client::WatchEvent {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .unwrap_or_else(|_| panic!("no event within 10 s: {what}"))
        .unwrap_or_else(|| panic!("stream ended: {what}"))
}

/// Skips `ContinuityLost` markers (a reconnect re-arms persistent watches).
async fn next_change(stream: &mut WatchStream, what: &str) -> zab_client::WatchEvent {
    loop {
        let ev = next_event(stream, what).await;
        if ev.kind != WatchEventKind::ContinuityLost {
            return ev;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_session_survives_the_leaders_death() {
    let mut e = Ensemble::start(3, "busy");
    let leader = e.wait_for_leader(None).await;
    let others: Vec<_> = (0..3).filter(|&i| i != leader).collect();
    // The busy session sits on the leader itself, the hardest place to be.
    let mut order = vec![e.clients[leader]];
    order.extend(others.iter().map(|&i| e.clients[i]));
    let busy = Arc::new(connect_retry(&order, 4000).await.expect("busy session"));
    let session = busy.session_id();
    let mut states = busy.session_states();
    let saw_expired = Arc::new(AtomicBool::new(false));
    {
        let saw_expired = saw_expired.clone();
        tokio::spawn(async move {
            while states.changed().await.is_ok() {
                if *states.borrow() == SessionState::Expired {
                    saw_expired.store(true, Ordering::SeqCst);
                }
            }
        });
    }
    retry(|| busy.create("/busy", b"", CreateMode::Persistent))
        .await
        .expect("parent");
    for p in ["/busy/w", "/busy/d", "/busy/n"] {
        retry(|| busy.create(p, b"0", CreateMode::Persistent))
            .await
            .expect("node");
    }
    retry(|| busy.create("/busy/e", b"mine", CreateMode::Ephemeral))
        .await
        .expect("ephemeral");
    let mut persistent = busy.add_watch("/busy/w", false).await.expect("watch");
    let (_, _, mut one_shot) = busy
        .get_and_watch("/busy/d", Consistency::Linearizable)
        .await
        .expect("get and watch");

    // Busy: writes back to back, counting acknowledgements, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let load = {
        let (busy, stop, acked) = (busy.clone(), stop.clone(), acked.clone());
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                i += 1;
                if busy
                    .set("/busy/n", i.to_string().as_bytes(), -1)
                    .await
                    .is_ok()
                {
                    acked.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while acked.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "no load before the kill");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    e.kill(leader);
    e.wait_for_leader(Some(leader)).await;
    let before = acked.load(Ordering::SeqCst);
    // A write acknowledged on the new connection follows its SetWatches
    // (replies come in request order), so the watches are re-armed before
    // the other session changes the watched nodes. Without this wait, a
    // change can land between the reconnect and the re-arm, where a
    // persistent watch reports only ContinuityLost, which is correct but
    // not what this test looks for.
    let rearmed = Instant::now() + Duration::from_secs(10);
    while acked.load(Ordering::SeqCst) <= before + 1 {
        assert!(Instant::now() < rearmed, "no write resumed after the kill");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let other = connect_retry(&[e.clients[others[0]]], 4000)
        .await
        .expect("other session");
    retry(|| other.set("/busy/w", b"1", -1))
        .await
        .expect("write watched node");
    retry(|| other.set("/busy/d", b"1", -1))
        .await
        .expect("write one-shot watched node");

    let ev = next_change(&mut persistent, "persistent watch after the kill").await;
    assert_eq!(
        (ev.kind, ev.path.as_str()),
        (WatchEventKind::NodeDataChanged, "/busy/w")
    );
    let ev = next_event(&mut one_shot, "one-shot watch after the kill").await;
    assert_eq!(
        (ev.kind, ev.path.as_str()),
        (WatchEventKind::NodeDataChanged, "/busy/d")
    );
    assert!(
        tokio::time::timeout(Duration::from_secs(1), one_shot.next())
            .await
            .is_ok_and(|ev| ev.is_none()),
        "a one-shot stream must end after its event"
    );

    // The load goes on through the new leader, in the same session.
    let deadline = Instant::now() + Duration::from_secs(10);
    while acked.load(Ordering::SeqCst) <= before + 10 {
        assert!(
            Instant::now() < deadline,
            "writes did not resume after the kill"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    load.await.expect("load task");
    assert_eq!(busy.session_id(), session);
    assert!(!saw_expired.load(Ordering::SeqCst), "the session expired");
    assert_ne!(busy.session_state(), SessionState::Expired);
    let st = retry(|| other.exists("/busy/e", Consistency::Linearizable, false))
        .await
        .expect("exists")
        .expect("the busy session's ephemeral survived the leader's death");
    assert_eq!(st.ephemeral_owner, session);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_never_goes_back_in_time_across_reconnects() {
    let mut e = Ensemble::start(3, "time");
    // Every server joins before servers are killed (a server that never
    // finished its first sync does not vote).
    e.wait_for_leader(None).await;
    // Long sessions: this test is about time travel, not expiry.
    let writer = connect_retry(&e.clients, 20_000).await.expect("writer");
    retry(|| writer.create("/t", b"0", CreateMode::Persistent))
        .await
        .expect("create");
    let reader = connect_retry(&e.clients, 20_000).await.expect("reader");
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                i += 1;
                let _ = writer.set("/t", i.to_string().as_bytes(), -1).await;
            }
        })
    };
    // Kill each server in turn (the reader is on one of them) and bring it
    // back behind; local reads in between must never decrease.
    let (mut last_value, mut last_zxid, mut reads) = (0u64, 0u64, 0u64);
    for victim in [0usize, 1, 2, 0, 1] {
        let until = Instant::now() + Duration::from_millis(800);
        while Instant::now() < until {
            if let Ok((data, st)) = reader.get("/t", Consistency::Local).await {
                let v: u64 = std::str::from_utf8(&data)
                    .expect("utf-8")
                    .parse()
                    .expect("a number");
                assert!(
                    v >= last_value && st.mzxid >= last_zxid,
                    "went back in time: read {v} (mzxid {:#x}) after {last_value} ({last_zxid:#x})",
                    st.mzxid
                );
                (last_value, last_zxid) = (v, st.mzxid);
                reads += 1;
            }
            assert!(reader.last_zxid() >= last_zxid);
        }
        e.kill(victim);
        tokio::time::sleep(Duration::from_millis(700)).await;
        e.spawn(victim);
        // Back in the quorum before the next one dies.
        let back = e.client(victim, 20_000).await;
        retry(|| back.sync("/"))
            .await
            .expect("the victim serves again");
        let _ = back.close().await;
    }
    stop.store(true, Ordering::SeqCst);
    load.await.expect("load");
    assert!(reads > 50, "too few reads to mean anything: {reads}");
    assert!(last_value > 0, "the writer made no progress");
    assert_ne!(reader.session_state(), SessionState::Expired);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linearizable_follower_read_sees_every_acknowledged_write() {
    let e = Ensemble::start(3, "linread");
    let leader = e.wait_for_leader(None).await;
    let writer = connect_retry(&[e.clients[leader]], 4000)
        .await
        .expect("writer on the leader");
    retry(|| writer.create("/l", b"0", CreateMode::Persistent))
        .await
        .expect("create");
    let mut readers = Vec::new();
    for i in (0..3).filter(|&i| i != leader) {
        readers.push(connect_retry(&[e.clients[i]], 4000).await.expect("reader"));
    }
    for i in 1..=300u64 {
        writer
            .set("/l", i.to_string().as_bytes(), -1)
            .await
            .expect("write");
        // Issued after the acknowledgement, on a follower.
        let reader = &readers[i as usize % readers.len()];
        let (data, _) = reader
            .get("/l", Consistency::Linearizable)
            .await
            .expect("read");
        assert_eq!(
            std::str::from_utf8(&data).expect("utf-8"),
            i.to_string(),
            "a linearizable read on a follower missed an acknowledged write"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_watch_stream_carries_its_own_events() {
    let e = Ensemble::start(3, "streams");
    let c = connect_retry(&e.clients, 4000).await.expect("session");
    for p in ["/s", "/s/a", "/s/b", "/s/a/x"] {
        retry(|| c.create(p, b"", CreateMode::Persistent))
            .await
            .expect("create");
    }
    let mut on_a = c.add_watch("/s/a", false).await.expect("persistent");
    let mut under_s = c.add_watch("/s", true).await.expect("recursive");
    let (_, mut b_exists) = c
        .exists_and_watch("/s/b", Consistency::Local)
        .await
        .expect("exists and watch");
    let (_, _, mut a_children) = c
        .children_and_watch("/s/a", Consistency::Local)
        .await
        .expect("children and watch");

    // A plain one-shot watch too: its event also reaches a stream (the
    // recursive one), and must still be on the session-wide stream.
    c.get_watch("/s/a/x", Consistency::Local, true)
        .await
        .expect("plain data watch");

    c.set("/s/b", b"1", -1).await.expect("set b");
    c.set("/s/a/x", b"1", -1).await.expect("set x");
    c.create("/s/a/y", b"", CreateMode::Persistent)
        .await
        .expect("create y");
    c.set("/s/a", b"1", -1).await.expect("set a");

    // The recursive watch sees all four changes, in order.
    let mut seen = Vec::new();
    for _ in 0..4 {
        let ev = next_change(&mut under_s, "recursive").await;
        seen.push((ev.kind, ev.path));
    }
    assert_eq!(
        seen,
        vec![
            (WatchEventKind::NodeDataChanged, "/s/b".to_string()),
            (WatchEventKind::NodeDataChanged, "/s/a/x".to_string()),
            (WatchEventKind::NodeCreated, "/s/a/y".to_string()),
            (WatchEventKind::NodeDataChanged, "/s/a".to_string()),
        ]
    );
    // The persistent watch on /s/a sees its child appear and its data change
    // (ZooKeeper's persistent watches report both), nothing about /s/b.
    let ev = next_change(&mut on_a, "persistent").await;
    assert_eq!(
        (ev.kind, ev.path.as_str()),
        (WatchEventKind::NodeChildrenChanged, "/s/a")
    );
    let ev = next_change(&mut on_a, "persistent").await;
    assert_eq!(
        (ev.kind, ev.path.as_str()),
        (WatchEventKind::NodeDataChanged, "/s/a")
    );
    let ev = next_event(&mut b_exists, "exists").await;
    assert_eq!(
        (ev.kind, ev.path.as_str()),
        (WatchEventKind::NodeDataChanged, "/s/b")
    );
    assert!(b_exists.next().await.is_none(), "one-shot streams end");
    let ev = next_event(&mut a_children, "children").await;
    assert_eq!(
        (ev.kind, ev.path.as_str()),
        (WatchEventKind::NodeChildrenChanged, "/s/a")
    );
    assert!(a_children.next().await.is_none(), "one-shot streams end");
    // Nothing else is pending on the persistent stream.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), on_a.next())
            .await
            .is_err(),
        "an event that was not /s/a's reached its stream"
    );
    // The session-wide stream has the plain watch's event, and only it:
    // events streams took are not repeated there.
    let ev = tokio::time::timeout(Duration::from_secs(5), c.next_event())
        .await
        .expect("the plain watch's event")
        .expect("session alive");
    assert_eq!(
        (ev.kind, ev.path.as_str()),
        (WatchEventKind::NodeDataChanged, "/s/a/x")
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), c.next_event())
            .await
            .is_err(),
        "a streamed event was repeated on next_event"
    );
}

/// A follower cut off from its peers (but not from its clients) falls far
/// enough behind that it resynchronizes from a snapshot. The changes the
/// snapshot carries fire no watches, so the server must not leave a
/// watcher connected as if nothing was missed: it drops its clients, and
/// the watcher's persistent watch says ContinuityLost before any later
/// event. Found by the nemesis's watch checker (writes missed, no marker).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_on_a_server_that_installs_a_snapshot_is_told_of_the_gap() {
    let e = Ensemble::start_proxied_with(
        3,
        "snapwatch",
        "snapshot_every_txns = 20\ndiff_window_txns = 20",
    )
    .await;
    let leader = e.wait_for_leader(None).await;
    let lagger = (0..3).find(|&i| i != leader).expect("a follower");
    let writer = connect_retry(&[e.clients[leader]], 4000)
        .await
        .expect("writer");
    retry(|| writer.create("/g", b"0", CreateMode::Persistent))
        .await
        .expect("create");
    // A long session: it must outlive the whole cut, heal and rejoin.
    let watcher = connect_retry(&[e.clients[lagger]], 30_000)
        .await
        .expect("watcher on the follower");
    let mut events = watcher.add_watch("/g", false).await.expect("watch");
    writer.set("/g", b"1", -1).await.expect("write");
    let ev = next_event(&mut events, "before the cut").await;
    assert_eq!(ev.kind, WatchEventKind::NodeDataChanged);

    // Cut the follower off; the other two go on and snapshot many times.
    e.isolate(lagger);
    for i in 2..=200u32 {
        let value = i.to_string();
        retry(|| writer.set("/g", value.as_bytes(), -1))
            .await
            .expect("write while the follower is cut off");
    }
    e.heal();
    // After the watcher is back on the follower (its watches re-armed, as
    // they are sent ahead of this read on the new connection), one more
    // change.
    retry(|| watcher.get("/g", Consistency::Linearizable))
        .await
        .expect("the watcher reads again after the heal");
    retry(|| writer.set("/g", b"last", -1))
        .await
        .expect("write");

    // Every event the watcher gets from here on is either for a write it
    // really saw, or the marker; a plain NodeDataChanged at a later zxid
    // with no marker before it would hide 199 changes.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut saw_marker = false;
    loop {
        assert!(Instant::now() < deadline, "the watcher never caught up");
        let ev = next_event(&mut events, "after the heal").await;
        match ev.kind {
            WatchEventKind::ContinuityLost => saw_marker = true,
            WatchEventKind::NodeDataChanged => {
                assert!(
                    saw_marker,
                    "a change at {:#x} arrived with 199 earlier changes skipped and no ContinuityLost",
                    ev.zxid
                );
                let (data, _) = watcher
                    .get("/g", Consistency::Linearizable)
                    .await
                    .expect("read");
                if &data[..] == b"last" {
                    break;
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// A watcher on a leader that is cut off and deposed, then rejoins the new
/// leader: every write acknowledged meanwhile must reach it as an event,
/// or be covered by a ContinuityLost. Checked with the nemesis's checker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_on_a_deposed_leader_misses_nothing_silently() {
    watcher_on_a_cut_off_server_misses_nothing_silently(true).await;
}

/// The same for a follower cut off and brought back with a DIFF.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_on_a_lagging_follower_misses_nothing_silently() {
    watcher_on_a_cut_off_server_misses_nothing_silently(false).await;
}

async fn watcher_on_a_cut_off_server_misses_nothing_silently(leader: bool) {
    use zab_tests::checkers::{check_watch_log, WatchLog, WatchRecord};
    let e = Ensemble::start_proxied(3, &format!("cutwatch-{leader}")).await;
    let l = e.wait_for_leader(None).await;
    let followers: Vec<usize> = (0..3).filter(|&i| i != l).collect();
    let (old, other) = if leader {
        (l, followers[0])
    } else {
        (followers[0], l)
    };
    let writer = connect_retry(&[e.clients[other]], 4000)
        .await
        .expect("writer");
    retry(|| writer.create("/h", b"0", CreateMode::Persistent))
        .await
        .expect("create");
    // A long session: it must outlive the cut, the election and the heal.
    let watcher = connect_retry(&[e.clients[old]], 30_000)
        .await
        .expect("watcher on the leader");
    let mut events = watcher.add_watch("/h", false).await.expect("watch");
    let mut log = WatchLog {
        registered_at: watcher.last_zxid(),
        events: Vec::new(),
    };
    let mut acked = Vec::new();
    e.isolate(old);
    for i in 1..=100u32 {
        let value = i.to_string();
        let st = retry(|| writer.set("/h", value.as_bytes(), -1))
            .await
            .expect("write while the old leader is cut off");
        acked.push(("/h".to_string(), st.mzxid));
    }
    e.heal();
    retry(|| watcher.get("/h", Consistency::Linearizable))
        .await
        .expect("the watcher reads again after the heal");
    let st = retry(|| writer.set("/h", b"last", -1))
        .await
        .expect("write");
    acked.push(("/h".to_string(), st.mzxid));
    let deadline = Instant::now() + Duration::from_secs(20);
    while log.events.last().is_none_or(|e| e.zxid < st.mzxid) {
        assert!(Instant::now() < deadline, "the watcher never caught up");
        let ev = next_event(&mut events, "after the heal").await;
        log.events.push(WatchRecord {
            continuity_lost: ev.kind == WatchEventKind::ContinuityLost,
            path: ev.path,
            zxid: ev.zxid,
        });
    }
    let anomalies = check_watch_log(&log, &acked);
    assert!(anomalies.is_empty(), "{anomalies:#?}\n{:#?}", log.events);
}

/// Waits (bounded) for the session's next reconnect after the states seen
/// so far (mark them seen with `borrow_and_update` before causing it).
async fn next_reconnect(states: &mut tokio::sync::watch::Receiver<SessionState>, what: &str) {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            states.changed().await.expect("session state sender alive");
            let now = *states.borrow_and_update();
            assert_ne!(now, SessionState::Expired, "{what}: session expired");
            if now == SessionState::Reconnected {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no reconnect within 20 s: {what}"));
}

/// One-shot watches are re-armed at every reconnect until they fire, not
/// only at the first; an exists watch on a node that existed reports the
/// node's deletion while the client was away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_watches_outlive_every_reconnect() {
    let mut e = Ensemble::start_proxied(3, "oneshot").await;
    e.wait_for_leader(None).await;
    let writer = e.client(2, 4000).await;
    for p in ["/c", "/x"] {
        retry(|| writer.create(p, b"0", CreateMode::Persistent))
            .await
            .expect("create");
    }
    // The watcher knows servers 1 and 2 only, so each kill below moves it
    // to the other one.
    let watcher = connect_retry(&[e.clients[0], e.clients[1]], 4000)
        .await
        .expect("watcher");
    assert_ne!(
        watcher.last_zxid(),
        0,
        "a new session starts from the zxid it was created at"
    );
    let mut states = watcher.session_states();
    let (_, _, mut data) = watcher
        .get_and_watch("/c", Consistency::Linearizable)
        .await
        .expect("get /c");
    let (stat, mut gone) = watcher
        .exists_and_watch("/x", Consistency::Linearizable)
        .await
        .expect("exists /x");
    assert!(stat.is_some());

    // /x is deleted while the watcher's server (1) is cut off, so only the
    // re-registration on server 2 can report it. The cut-off server may
    // drop the watcher (and it reconnect) at any point from here on.
    states.borrow_and_update();
    e.isolate(0);
    // A delete retried after a lost reply (the isolation may cost the
    // leader) can find its first attempt applied: NoNode then means done.
    match retry(|| writer.delete("/x", -1)).await {
        Ok(()) | Err(zab_client::Error::Server(zab_client::ErrorCode::NoNode)) => {}
        Err(e) => panic!("delete /x: {e:?}"),
    }
    let second = e.client(1, 4000).await;
    let applied = retry(|| second.exists("/x", Consistency::Linearizable, false))
        .await
        .expect("exists on server 2");
    assert!(applied.is_none(), "server 2 has applied the delete");
    e.kill(0);
    next_reconnect(&mut states, "server 1 killed").await;
    let ev = next_event(&mut gone, "the deletion of /x, reported on reconnect").await;
    assert_eq!(
        (ev.kind, ev.path.as_str()),
        (WatchEventKind::NodeDeleted, "/x")
    );

    // Second reconnect: back to server 1; the watch on /c must still be armed.
    e.heal();
    e.spawn(0);
    let first = e.client(0, 4000).await;
    retry(|| first.sync("/")).await.expect("server 1 caught up");
    states.borrow_and_update();
    e.kill(1);
    next_reconnect(&mut states, "server 2 killed").await;
    retry(|| writer.set("/c", b"1", -1)).await.expect("set /c");
    let ev = next_event(&mut data, "the change of /c after two reconnects").await;
    assert_eq!(
        (ev.kind, ev.path.as_str()),
        (WatchEventKind::NodeDataChanged, "/c")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clones_share_one_session_and_dropping_the_last_closes_it() {
    let e = Ensemble::start(3, "client-drop");
    let leader = e.wait_for_leader(None).await;
    // A 30 s session: its ephemeral going within seconds is the close, not
    // an expiry.
    let first = e.client(leader, 30_000).await;
    let second = first.clone();
    assert_eq!(first.session_id(), second.session_id());
    first
        .create("/held", b"", CreateMode::Ephemeral)
        .await
        .expect("an ephemeral");
    drop(first);
    // The other handle still serves the session, and the node stays.
    let stat = second
        .exists("/held", Consistency::Linearizable, false)
        .await
        .expect("exists")
        .expect("the node is still there");
    assert_eq!(stat.ephemeral_owner, second.session_id());
    let watcher = e.client(leader, 10_000).await;
    let dropped = Instant::now();
    drop(second);
    let deadline = dropped + Duration::from_secs(10);
    loop {
        let held = retry(|| watcher.exists("/held", Consistency::Linearizable, false))
            .await
            .expect("exists");
        if held.is_none() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the ephemeral outlived its last handle by 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "ephemeral gone {:.0} ms after the last handle was dropped",
        dropped.elapsed().as_secs_f64() * 1000.0
    );

    // Abandoned instead: the session is left to expire, as a crashed
    // owner's is.
    // 6 s: long enough that the check below runs well before expiry.
    let owner = e.client(leader, 6_000).await;
    owner
        .create("/left", b"", CreateMode::Ephemeral)
        .await
        .expect("an ephemeral");
    owner.abandon();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        retry(|| watcher.exists("/left", Consistency::Linearizable, false))
            .await
            .expect("exists")
            .is_some(),
        "an abandoned session was closed rather than left to expire"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while retry(|| watcher.exists("/left", Consistency::Linearizable, false))
        .await
        .expect("exists")
        .is_some()
    {
        assert!(
            Instant::now() < deadline,
            "the abandoned session never expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Closed through one handle: the others' calls fail for good.
    let closer = e.client(leader, 10_000).await;
    let other = closer.clone();
    closer.close().await.expect("closed");
    assert_eq!(
        other.exists("/", Consistency::Local, false).await,
        Err(zab_client::Error::SessionExpired)
    );
    assert_eq!(other.session_state(), SessionState::Expired);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_watches_end_their_streams_and_report_nothing_more() {
    let e = Ensemble::start(3, "client-remove-watches");
    let leader = e.wait_for_leader(None).await;
    let c = e.client(leader, 10_000).await;
    let mut removed = c.add_watch("/rw", false).await.expect("a watch");
    let mut sentinel = c.add_watch("/sentinel", false).await.expect("a watch");
    c.create("/rw", b"", CreateMode::Persistent)
        .await
        .expect("create");
    let created = next_change(&mut removed, "/rw created").await;
    assert_eq!(created.kind, WatchEventKind::NodeCreated);
    c.remove_watches("/rw", zab_client::WatcherKind::Persistent)
        .await
        .expect("removed");
    let ended = tokio::time::timeout(Duration::from_secs(5), removed.next())
        .await
        .expect("the stream ends");
    assert!(ended.is_none(), "{ended:?}");
    // The server no longer reports /rw to this session: a change to it,
    // then one to the sentinel, and only the sentinel's event arrives.
    c.set("/rw", b"changed", -1).await.expect("set");
    c.create("/sentinel", b"", CreateMode::Persistent)
        .await
        .expect("create");
    let seen = next_change(&mut sentinel, "/sentinel created").await;
    assert_eq!(seen.path, "/sentinel");
    let stray = tokio::time::timeout(Duration::from_millis(300), c.next_event()).await;
    assert!(stray.is_err(), "an event after the removal: {stray:?}");
    // Any removes every kind at the path, persistent ones too: after it,
    // a change to the path reaches this session nowhere.
    let mut both = c.add_watch("/rw", false).await.expect("a watch");
    c.get_watch("/rw", Consistency::Local, true)
        .await
        .expect("a data watch");
    c.remove_watches("/rw", zab_client::WatcherKind::Any)
        .await
        .expect("removed");
    let ended = tokio::time::timeout(Duration::from_secs(5), both.next())
        .await
        .expect("the stream ends");
    assert!(ended.is_none(), "{ended:?}");
    c.set("/rw", b"again", -1).await.expect("set");
    c.set("/sentinel", b"changed", -1).await.expect("set");
    let seen = next_change(&mut sentinel, "/sentinel changed").await;
    assert_eq!(seen.path, "/sentinel");
    let stray = tokio::time::timeout(Duration::from_millis(300), c.next_event()).await;
    assert!(stray.is_err(), "an event after removing Any: {stray:?}");
    // Nothing left to remove.
    let again = c
        .remove_watches("/rw", zab_client::WatcherKind::Any)
        .await
        .expect_err("nothing to remove");
    assert_eq!(
        again,
        zab_client::Error::Server(zab_client::ErrorCode::NoWatcher)
    );
}
