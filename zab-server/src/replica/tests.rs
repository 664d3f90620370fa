//! Commands and their application to the replica.

use super::*;
use zab_core::Epoch;
use zab_proto::{CreateRequest, SetDataRequest};

fn cmd(session: u64, xid: i32, body: CommandBody) -> Bytes {
    Command {
        origin: 1,
        session,
        xid,
        request: 0,
        time_ms: 1_000 + i64::from(xid),
        body,
    }
    .encode()
}

fn every_kind() -> Vec<Command> {
    let base = Command {
        origin: 3,
        session: 0x0100_0000_0000_0001,
        xid: 7,
        request: 0x1234_5678_9abc,
        time_ms: 123,
        body: CommandBody::CloseSession,
    };
    let bodies = [
        CommandBody::CreateSession {
            timeout_ms: 30_000,
            password: [9; PASSWORD_BYTES],
        },
        CommandBody::CloseSession,
        CommandBody::ExpireSession,
        CommandBody::MoveSession,
        CommandBody::DeleteExpired {
            path: "/c/ttl".into(),
            mzxid: Zxid(0x1_0000_0004),
            pzxid: Zxid(0x1_0000_0007),
        },
        CommandBody::Op(Request::SetData(SetDataRequest {
            path: "/a".into(),
            data: Bytes::from_static(b"v"),
            version: -1,
        })),
        CommandBody::Op(Request::Multi(vec![
            MultiOp::Create(CreateRequest {
                path: "/m/n-".into(),
                data: Bytes::from_static(b"data"),
                mode: CreateMode::PersistentSequential,
                ttl_ms: 0,
                acl: None,
            }),
            MultiOp::Delete(zab_proto::DeleteRequest {
                path: "/m/old".into(),
                version: 3,
            }),
        ])),
    ];
    bodies
        .into_iter()
        .map(|body| Command {
            body,
            ..base.clone()
        })
        .collect()
}

/// A client write as version 2 logged it: the header, kind 4, then the
/// request as a whole client frame (what older logs hold).
fn encode_v2_op(c: &Command) -> BytesMut {
    let CommandBody::Op(request) = &c.body else {
        panic!("an op");
    };
    let mut b = BytesMut::new();
    b.put_u8(2);
    b.put_u64(c.origin);
    b.put_u64(c.session);
    b.put_i32(c.xid);
    b.put_u64(c.request);
    b.put_i64(c.time_ms);
    b.put_u8(4);
    RequestFrame::Op {
        xid: zab_proto::Xid::new(c.xid).expect("positive"),
        request: request.clone(),
    }
    .encode(&mut b);
    b
}

#[test]
fn commands_round_trip() {
    for c in every_kind() {
        assert_eq!(Command::decode(c.encode()), Ok(c.clone()));
    }
    assert!(Command::decode(Bytes::from_static(b"\x01garbage")).is_err());
    assert_eq!(
        Command::decode(Bytes::new()),
        Err(CommandDecodeError::Empty)
    );
    assert_eq!(
        Command::decode(Bytes::from_static(b"\x09")),
        Err(CommandDecodeError::UnknownVersion(9))
    );
}

#[test]
fn version_1_and_2_records_still_decode() {
    let c = every_kind().pop().expect("an op");
    let v2 = encode_v2_op(&c);
    assert_eq!(Command::decode(v2.clone().freeze()), Ok(c.clone()));
    // A version-1 record (no request token) decodes with token 0, which
    // no connection waits on.
    let mut v1 = BytesMut::new();
    v1.put_u8(1);
    v1.put_slice(&v2[1..1 + 8 + 8 + 4]);
    v1.put_slice(&v2[1 + 8 + 8 + 4 + 8..]);
    assert_eq!(
        Command::decode(v1.freeze()),
        Ok(Command { request: 0, ..c })
    );
}

#[test]
fn damaged_commands_never_panic_and_what_decodes_is_canonical() {
    let valid: Vec<Bytes> = every_kind().iter().map(Command::encode).collect();
    let mut rng = zab_tests::sim::rng::Rng::new(0xc0de);
    let mut decoded = 0;
    for _ in 0..100_000 {
        let mut b = valid[rng.index(valid.len())].to_vec();
        for _ in 0..1 + rng.below(3) {
            match rng.below(3) {
                0 if !b.is_empty() => {
                    let at = rng.index(b.len());
                    b[at] = rng.next_u64() as u8;
                }
                1 => b.truncate(rng.index(b.len() + 1)),
                _ => {
                    let n = 1 + rng.index(4);
                    b.extend(rng.bytes(n));
                }
            }
        }
        if let Ok(c) = Command::decode(Bytes::from(b.clone())) {
            decoded += 1;
            if b.first() == Some(&COMMAND_VERSION) {
                assert_eq!(c.encode(), b, "not canonical: {c:?}");
            }
        }
    }
    assert!(
        decoded > 1_000,
        "only {decoded} decoded: the mutations are too harsh"
    );
}

/// A write its client sent just as the leader expired the session is
/// logged after the expiry: it fails, and does not apply for a session
/// that no longer exists (the tree's session check).
#[test]
fn a_write_logged_after_its_sessions_expiry_fails() {
    let mut r = Replica::new();
    let z = |c| Zxid::new(Epoch(1), c);
    let session = 0x0100_0000_0000_0007;
    let open = CommandBody::CreateSession {
        timeout_ms: 4_000,
        password: [7; PASSWORD_BYTES],
    };
    r.apply(z(1), &cmd(session, 0, open)).expect("applies");
    r.apply(z(2), &cmd(session, 0, CommandBody::ExpireSession))
        .expect("applies");
    let create = CommandBody::Op(Request::Create(CreateRequest {
        path: "/late".into(),
        data: Bytes::new(),
        mode: CreateMode::Persistent,
        ttl_ms: 0,
        acl: None,
    }));
    r.apply(z(3), &cmd(session, 1, create)).expect("applies");
    assert!(
        r.tree.exists("/late").is_none(),
        "a dead session's write applied"
    );
    let last = r.completed.last().expect("a completion");
    assert!(
        matches!(
            last.outcome,
            Outcome::Error(zab_proto::ErrorCode::SessionExpired)
        ),
        "{:?}",
        last.outcome
    );
}

#[test]
fn expiry_commands_do_nothing_if_the_node_changed_since_the_sweep() {
    let mut r = Replica::new();
    let z = |c| Zxid::new(Epoch(1), c);
    let ttl = Request::Create(CreateRequest {
        path: "/t".into(),
        data: Bytes::new(),
        mode: CreateMode::PersistentWithTtl,
        ttl_ms: 10,
        acl: None,
    });
    let session = CommandBody::CreateSession {
        timeout_ms: 4000,
        password: [1; 16],
    };
    r.apply(z(1), &cmd(7, 0, session)).expect("session");
    r.apply(z(2), &cmd(7, 1, CommandBody::Op(ttl)))
        .expect("ttl node");
    let st = r.tree.exists("/t").expect("created");
    let set = Request::SetData(SetDataRequest {
        path: "/t".into(),
        data: Bytes::from_static(b"touched"),
        version: -1,
    });
    r.apply(z(3), &cmd(7, 2, CommandBody::Op(set)))
        .expect("set");
    let stale = CommandBody::DeleteExpired {
        path: "/t".into(),
        mzxid: Zxid(st.mzxid),
        pzxid: Zxid(st.pzxid),
    };
    r.apply(z(4), &cmd(0, 0, stale)).expect("no-op");
    assert!(
        r.tree.exists("/t").is_some(),
        "modified since the sweep: kept"
    );
    let now = r.tree.exists("/t").expect("still there");
    let fresh = CommandBody::DeleteExpired {
        path: "/t".into(),
        mzxid: Zxid(now.mzxid),
        pzxid: Zxid(now.pzxid),
    };
    assert_eq!(
        Command::decode(cmd(0, 0, fresh.clone())).map(|c| c.body),
        Ok(fresh.clone())
    );
    r.apply(z(5), &cmd(0, 0, fresh)).expect("delete");
    assert!(r.tree.exists("/t").is_none());
}

#[test]
fn replicas_applying_the_same_commands_agree_byte_for_byte() {
    let log = [
        cmd(
            5,
            0,
            CommandBody::CreateSession {
                timeout_ms: 4000,
                password: [9; 16],
            },
        ),
        cmd(
            5,
            1,
            CommandBody::Op(Request::Create(CreateRequest {
                path: "/q".into(),
                data: Bytes::new(),
                mode: CreateMode::Persistent,
                ttl_ms: 0,
                acl: None,
            })),
        ),
        cmd(
            5,
            2,
            CommandBody::Op(Request::Create(CreateRequest {
                path: "/q/item-".into(),
                data: Bytes::from_static(b"x"),
                mode: CreateMode::EphemeralSequential,
                ttl_ms: 0,
                acl: None,
            })),
        ),
        cmd(
            5,
            3,
            CommandBody::Op(Request::Create(CreateRequest {
                path: "/q".into(),
                data: Bytes::new(),
                mode: CreateMode::Persistent,
                ttl_ms: 0,
                acl: None,
            })),
        ),
        cmd(5, 4, CommandBody::ExpireSession),
    ];
    let mut a = Replica::new();
    let mut b = Replica::new();
    for (i, payload) in log.iter().enumerate() {
        let zxid = Zxid::new(Epoch(1), i as u32 + 1);
        a.apply(zxid, payload).expect("applies");
        b.apply(zxid, payload).expect("applies");
    }
    assert_eq!(a.snapshot(), b.snapshot());
    let outcomes: Vec<_> = a.completed.iter().map(|c| c.outcome.clone()).collect();
    assert!(matches!(&outcomes[2], Outcome::Created { path, .. } if path == "/q/item-0000000000"));
    assert!(
        matches!(outcomes[3], Outcome::Error(_)),
        "second create of /q fails"
    );
    assert!(
        a.tree.get("/q/item-0000000000").is_none(),
        "ephemeral gone with its session"
    );
    let mut c = Replica::new();
    c.restore(&a.snapshot()).expect("restores");
    assert_eq!(c.snapshot(), a.snapshot());
}

/// A committed record that is not a command (forwarded garbage, a future
/// format, a read) is an ordered no-op on every replica, not a stop: the
/// replicas stay identical and go on applying what follows.
#[test]
fn a_committed_record_that_is_not_a_command_is_skipped_alike_everywhere() {
    let z = |c| Zxid::new(Epoch(1), c);
    let session = 0x0100_0000_0000_0009;
    let open = CommandBody::CreateSession {
        timeout_ms: 4_000,
        password: [7; PASSWORD_BYTES],
    };
    let read = CommandBody::Op(Request::GetData {
        path: "/".into(),
        watch: false,
    });
    let create = CommandBody::Op(Request::Create(CreateRequest {
        path: "/after".into(),
        data: Bytes::new(),
        mode: CreateMode::Persistent,
        ttl_ms: 0,
        acl: None,
    }));
    let records = [
        cmd(session, 0, open),
        Bytes::from_static(b"0123456789abcdef"),
        Bytes::new(),
        cmd(session, 1, read),
        cmd(session, 2, create),
    ];
    let mut replicas = [Replica::new(), Replica::new()];
    for r in &mut replicas {
        for (i, record) in records.iter().enumerate() {
            r.apply(z(i as u32 + 1), record).expect("never a stop");
        }
        assert_eq!(r.skipped_records, 3);
        assert!(r.tree.exists("/after").is_some(), "what follows applies");
    }
    assert_eq!(replicas[0].snapshot(), replicas[1].snapshot());
}

/// The leader proposes only what a follower may forward: a decodable command
/// of its own origin, not an expiry or sweep, a new session in its own id
/// space, a write.
#[test]
fn forwarded_commands_are_checked_before_they_are_proposed() {
    use zab_core::PeerId;
    let of = |origin: u64, session: u64, body: CommandBody| {
        Command {
            origin,
            session,
            xid: 1,
            request: 0,
            time_ms: 0,
            body,
        }
        .encode()
    };
    let create = CommandBody::Op(Request::Create(CreateRequest {
        path: "/x".into(),
        data: Bytes::new(),
        mode: CreateMode::Persistent,
        ttl_ms: 0,
        acl: None,
    }));
    let open = CommandBody::CreateSession {
        timeout_ms: 4_000,
        password: [1; PASSWORD_BYTES],
    };
    let two = PeerId(2);
    let mine = 2 << 56 | 5;
    assert_eq!(check_forwarded(two, &of(2, mine, create.clone())), Ok(()));
    assert_eq!(check_forwarded(two, &of(2, mine, open.clone())), Ok(()));
    assert_eq!(
        check_forwarded(two, &of(2, mine, CommandBody::CloseSession)),
        Ok(())
    );
    let refused = [
        Bytes::from_static(b"0123456789abcdef"),
        of(3, mine, create.clone()),
        of(2, mine, CommandBody::ExpireSession),
        of(
            2,
            mine,
            CommandBody::DeleteExpired {
                path: "/c".into(),
                mzxid: Zxid(1),
                pzxid: Zxid(1),
            },
        ),
        of(2, 3 << 56 | 5, open),
        of(
            2,
            mine,
            CommandBody::Op(Request::GetData {
                path: "/".into(),
                watch: false,
            }),
        ),
    ];
    for payload in refused {
        assert!(check_forwarded(two, &payload).is_err(), "{payload:?}");
    }
}

/// A frozen state is the state at the moment it was taken, whatever is
/// applied after it (creates, data changes, deletes, a session's end): the
/// snapshot it encodes later is byte for byte the one of that moment, and
/// the live replica goes on changing.
#[test]
fn a_frozen_state_encodes_the_moment_it_was_taken() {
    let create = |xid, path: &str, mode| {
        cmd(
            5,
            xid,
            CommandBody::Op(Request::Create(CreateRequest {
                path: path.into(),
                data: Bytes::from_static(b"before"),
                mode,
                ttl_ms: 0,
                acl: None,
            })),
        )
    };
    let session = cmd(
        5,
        0,
        CommandBody::CreateSession {
            timeout_ms: 4000,
            password: [9; 16],
        },
    );
    let mut r = Replica::new();
    let mut zxid = 0;
    let mut apply = |r: &mut Replica, payload: &Bytes| {
        zxid += 1;
        r.apply(Zxid::new(Epoch(1), zxid), payload)
            .expect("applies");
    };
    apply(&mut r, &session);
    apply(&mut r, &create(1, "/a", CreateMode::Persistent));
    for k in 0..200 {
        apply(
            &mut r,
            &create(2, &format!("/a/n{k}"), CreateMode::Persistent),
        );
    }
    apply(&mut r, &create(3, "/a/e", CreateMode::Ephemeral));
    let expected = r.snapshot();
    let frozen = r.freeze();
    // After it: data changes, deletes, creates and the session's end.
    for k in 0..100 {
        let set = CommandBody::Op(Request::SetData(SetDataRequest {
            path: format!("/a/n{k}"),
            data: Bytes::from_static(b"after"),
            version: -1,
        }));
        apply(&mut r, &cmd(5, 4, set));
        let delete = CommandBody::Op(Request::Delete(zab_proto::DeleteRequest {
            path: format!("/a/n{}", 100 + k),
            version: -1,
        }));
        apply(&mut r, &cmd(5, 5, delete));
    }
    apply(&mut r, &create(6, "/b", CreateMode::Persistent));
    apply(&mut r, &cmd(5, 7, CommandBody::CloseSession));
    assert_eq!(frozen.encode(), expected, "the frozen state moved");
    // Streamed to a file through a small buffer (many flushes), it is the
    // same bytes.
    let dir = std::env::temp_dir().join(format!("zab-frozen-stream-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let fs: std::sync::Arc<dyn crate::storage::Fs> = std::sync::Arc::new(crate::storage::RealFs);
    let (store, _) =
        crate::storage::Store::open(fs.clone(), &dir, Default::default()).expect("store");
    let (meta, len) = frozen
        .write_snapshot(&store.snapshot_writer(), Zxid::new(Epoch(1), 203), 256)
        .expect("streamed");
    let written = crate::storage::snapshot_file::read(fs.as_ref(), &meta).expect("reads back");
    assert_eq!(
        (&written.content[..], len),
        (&expected[..], expected.len() as u64)
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    assert_ne!(r.snapshot(), expected, "the live replica did not move");
    let (data, _) = r.tree.get("/a/n0").expect("/a/n0");
    assert_eq!(data, b"after");
    let mut restored = Replica::new();
    restored.restore(&frozen.encode()).expect("restores");
    let (data, _) = restored.tree.get("/a/n0").expect("/a/n0");
    assert_eq!(data, b"before");
    assert!(restored.tree.get("/a/e").is_some() && restored.tree.get("/b").is_none());
}
