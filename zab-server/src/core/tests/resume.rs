//! Resumable watches at the server core: a session that reconnects with
//! the last zxid it saw is sent exactly the events a connection that never
//! broke would have carried, while this server holds the changes since.

use super::*;
use zab_proto::{Acl, SetWatches, WatchEvent, WatchEventKind as K};

/// Sends a write and commits it.
fn write(h: &mut Harness, conn: ConnId, xid: i32, request: Request) {
    let inputs = h.send(conn, xid, request);
    h.commit(inputs);
}

fn set_data(path: &str, data: &'static [u8]) -> Request {
    Request::SetData(zab_proto::SetDataRequest {
        path: path.into(),
        data: Bytes::from_static(data),
        version: -1,
    })
}

fn delete(path: &str) -> Request {
    Request::Delete(zab_proto::DeleteRequest {
        path: path.into(),
        version: -1,
    })
}

fn events(frames: &[ServerFrame]) -> Vec<WatchEvent> {
    frames
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Watch { event, .. } => Some(event.clone()),
            _ => None,
        })
        .collect()
}

/// The watches both the live session and the resuming one hold.
fn watches() -> SetWatches {
    SetWatches {
        relative_zxid: 0,
        data: vec!["/a/x".into()],
        exists: vec!["/a/new".into()],
        children: vec!["/a".into()],
        persistent: vec!["/a".into()],
        persistent_recursive: vec!["/a".into()],
    }
}

/// A burst of changes under /a, a multi among them.
fn changes(h: &mut Harness, conn: ConnId) {
    let mut xid = 100;
    let mut next = || {
        xid += 1;
        xid
    };
    write(h, conn, next(), set_data("/a/x", b"1"));
    write(h, conn, next(), set_data("/a/x", b"2"));
    write(h, conn, next(), create("/a/new"));
    write(h, conn, next(), create("/a/new/deep"));
    let multi = Request::Multi(vec![
        zab_proto::MultiOp::SetData(zab_proto::SetDataRequest {
            path: "/a".into(),
            data: Bytes::from_static(b"m"),
            version: -1,
        }),
        zab_proto::MultiOp::Delete(zab_proto::DeleteRequest {
            path: "/a/new/deep".into(),
            version: -1,
        }),
    ]);
    write(h, conn, next(), multi);
    write(h, conn, next(), delete("/a/x"));
    write(h, conn, next(), set_data("/elsewhere", b"no"));
}

fn setup(h: &mut Harness) -> (Credentials, u64) {
    h.connect(1, None); // the writer
    for path in ["/a", "/a/x", "/elsewhere"] {
        write(h, 1, 1, create(path));
    }
    h.frames(1, &[OpCode::Create; 3]);
    // The live watcher arms its watches with SetWatches at the current
    // zxid (nothing to catch up); so does the one that will resume.
    let applied = h.replica.tree.last_applied_zxid().0;
    let live = SetWatches {
        relative_zxid: applied,
        ..watches()
    };
    h.connect(2, None);
    h.send(2, 1, Request::SetWatches(live.clone()));
    assert!(events(&h.frames(2, &[OpCode::SetWatches])).is_empty());
    let resumer = h.connect(3, None);
    h.send(3, 1, Request::SetWatches(live));
    assert!(events(&h.frames(3, &[OpCode::SetWatches])).is_empty());
    // The last zxid the resumer saw: everything applied so far.
    (resumer, h.replica.tree.last_applied_zxid().0)
}

#[test]
fn a_resumed_session_gets_exactly_the_events_it_missed() {
    let mut h = Harness::new();
    let (resumer, seen) = setup(&mut h);
    h.close(3);
    changes(&mut h, 1);
    let live = events(&h.frames(2, &[]));
    assert!(live.len() >= 8, "the burst fired: {live:?}");

    // The resumer reconnects (another connection) and re-arms from the
    // last zxid it saw, as the client does.
    h.connect(4, Some(resumer));
    h.frames(4, &[]);
    let resume = SetWatches {
        relative_zxid: seen,
        ..watches()
    };
    h.send(4, 1, Request::SetWatches(resume));
    let frames = h.frames(4, &[OpCode::SetWatches]);
    assert!(matches!(
        frames.last(),
        Some(ServerFrame::Reply(r)) if matches!(r.outcome, WireOutcome::Ok(_))
    ));
    let replayed = events(&frames);
    assert_eq!(replayed, live, "the replay differs from the live events");
    assert!(replayed.iter().all(|e| e.kind != K::ContinuityLost));

    // Afterwards both hear the same live events again: the one-shot
    // watches the replay fired are gone, the persistent ones stay.
    write(&mut h, 1, 200, set_data("/a", b"after"));
    let live = events(&h.frames(2, &[]));
    assert_eq!(events(&h.frames(4, &[])), live);
    assert_eq!(live.len(), 1);
}

#[test]
fn a_gap_older_than_the_window_is_continuity_lost() {
    let mut h = Harness::new();
    h.fe.watches = crate::watches::Watches::new(crate::watches::WatchLimits {
        resume_changes: 3,
        ..crate::watches::WatchLimits::default()
    });
    let (resumer, seen) = setup(&mut h);
    h.close(3);
    changes(&mut h, 1);
    h.connect(4, Some(resumer));
    h.frames(4, &[]);
    let resume = SetWatches {
        relative_zxid: seen,
        ..watches()
    };
    h.send(4, 1, Request::SetWatches(resume));
    let replayed = events(&h.frames(4, &[OpCode::SetWatches]));
    let lost: Vec<&str> = replayed
        .iter()
        .filter(|e| e.kind == K::ContinuityLost)
        .map(|e| e.path.as_str())
        .collect();
    // One per persistent watch (both on /a).
    assert_eq!(lost, ["/a", "/a"], "{replayed:?}");
}

#[test]
fn a_snapshot_install_ends_what_the_window_covers() {
    let mut h = Harness::new();
    let (resumer, seen) = setup(&mut h);
    h.close(3);
    changes(&mut h, 1);
    let applied = h.replica.tree.last_applied_zxid();
    h.fe.on_state_replaced(applied);
    h.drain();
    h.connect(5, Some(resumer));
    h.frames(5, &[]);
    let resume = SetWatches {
        relative_zxid: seen,
        ..watches()
    };
    h.send(5, 1, Request::SetWatches(resume));
    let replayed = events(&h.frames(5, &[OpCode::SetWatches]));
    assert!(
        replayed.iter().any(|e| e.kind == K::ContinuityLost),
        "{replayed:?}"
    );
}

#[test]
fn a_replay_reports_below_a_recursive_watch_only_what_the_watcher_may_read() {
    let mut h = Harness::new();
    h.connect(1, None);
    write(&mut h, 1, 1, create("/r"));
    let seen = h.replica.tree.last_applied_zxid().0;
    let resumer = h.connect(2, None);
    h.close(2);
    // A node nobody but bob may read, changed while the watcher was away.
    let id = zab_proto::digest_id("bob", "secret");
    let secret = Request::Create(CreateRequest {
        path: "/r/secret".into(),
        data: Bytes::new(),
        mode: CreateMode::Persistent,
        ttl_ms: 0,
        acl: Some(vec![
            Acl::parse(&format!("digest:{id}:cdrwa")).expect("an acl")
        ]),
    });
    write(&mut h, 1, 2, secret);
    write(&mut h, 1, 3, create("/r/open"));
    h.connect(3, Some(resumer));
    h.frames(3, &[]);
    let resume = SetWatches {
        relative_zxid: seen,
        persistent_recursive: vec!["/r".into()],
        ..SetWatches::default()
    };
    h.send(3, 1, Request::SetWatches(resume));
    let paths: Vec<String> = events(&h.frames(3, &[OpCode::SetWatches]))
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert_eq!(paths, ["/r/open"]);
}

#[test]
fn a_replay_past_its_byte_budget_falls_back_to_continuity_lost() {
    let mut h = Harness::new();
    h.connect(1, None);
    // A long path, so that each event is large.
    let path = format!("/{}", "p".repeat(250));
    write(&mut h, 1, 1, create(&path));
    let seen = h.replica.tree.last_applied_zxid().0;
    let resumer = h.connect(2, None);
    h.close(2);
    let per_event = 40 + path.len();
    let writes = super::super::catch_up::REPLAY_BYTES_MAX / per_event + 10;
    for i in 0..writes {
        let xid = 2 + i32::try_from(i).expect("small");
        write(&mut h, 1, xid, set_data(&path, b"x"));
    }
    h.connect(3, Some(resumer));
    h.frames(3, &[]);
    let resume = SetWatches {
        relative_zxid: seen,
        persistent: vec![path.clone()],
        ..SetWatches::default()
    };
    h.send(3, 1, Request::SetWatches(resume));
    let got = events(&h.frames(3, &[OpCode::SetWatches]));
    assert_eq!(got.len(), 1, "one marker, not {} events", got.len());
    assert_eq!(
        (got[0].kind, got[0].path.as_str()),
        (K::ContinuityLost, path.as_str())
    );
}

#[test]
fn after_a_replay_only_the_watches_left_armed_need_read() {
    let mut h = Harness::new();
    h.connect(1, None);
    write(&mut h, 1, 1, create("/d"));
    write(&mut h, 1, 2, create("/other"));
    let seen = h.replica.tree.last_applied_zxid().0;
    let resumer = h.connect(2, None);
    h.close(2);
    // While the watcher is away /d is deleted and made again, unreadable.
    write(&mut h, 1, 3, delete("/d"));
    let id = zab_proto::digest_id("bob", "secret");
    let secret = Request::Create(CreateRequest {
        path: "/d".into(),
        data: Bytes::new(),
        mode: CreateMode::Persistent,
        ttl_ms: 0,
        acl: Some(vec![
            Acl::parse(&format!("digest:{id}:cdrwa")).expect("an acl")
        ]),
    });
    write(&mut h, 1, 4, secret);
    write(&mut h, 1, 5, set_data("/other", b"x"));
    h.connect(3, Some(resumer));
    h.frames(3, &[]);
    // The data watch on /d fired at the deletion, as it would have live;
    // the persistent watch on /other goes on.
    let resume = SetWatches {
        relative_zxid: seen,
        data: vec!["/d".into()],
        persistent: vec!["/other".into()],
        ..SetWatches::default()
    };
    h.send(3, 1, Request::SetWatches(resume));
    let frames = h.frames(3, &[OpCode::SetWatches]);
    let got: Vec<(K, String)> = events(&frames)
        .into_iter()
        .map(|e| (e.kind, e.path))
        .collect();
    assert_eq!(
        got,
        [
            (K::NodeDeleted, "/d".to_string()),
            (K::NodeDataChanged, "/other".to_string())
        ]
    );
    assert!(matches!(
        frames.last(),
        Some(ServerFrame::Reply(r)) if matches!(r.outcome, WireOutcome::Ok(_))
    ));
}
