//! ACLs at the server core: reads and watches checked with the
//! connection's identities, AddAuth per connection, getAcl's redaction,
//! writes judged by the caller the command records, and recursive watches
//! that never report a node their watcher may not read.

use super::*;
use zab_proto::{Acl, Perms, WatchEvent, WatchEventKind};

fn add_auth(h: &mut Harness, conn: ConnId, xid: i32, credentials: &str) -> ServerFrame {
    let request = Request::AddAuth {
        scheme: "digest".into(),
        auth: Bytes::copy_from_slice(credentials.as_bytes()),
    };
    assert!(h.send(conn, xid, request).is_empty(), "AddAuth is local");
    let mut frames = h.frames(conn, &[OpCode::AddAuth]);
    assert_eq!(frames.len(), 1);
    frames.remove(0)
}

/// Sends a write and commits it; returns its reply.
fn write(h: &mut Harness, conn: ConnId, xid: i32, request: Request) -> WireOutcome {
    let op = request.opcode();
    let inputs = h.send(conn, xid, request);
    h.commit(inputs);
    reply(h.frames(conn, &[op]))
}

/// Sends a read; returns its reply.
fn read(h: &mut Harness, conn: ConnId, xid: i32, request: Request) -> WireOutcome {
    let op = request.opcode();
    assert!(h.send(conn, xid, request).is_empty(), "a read is local");
    reply(h.frames(conn, &[op]))
}

fn reply(frames: Vec<ServerFrame>) -> WireOutcome {
    match frames.as_slice() {
        [ServerFrame::Reply(r)] => r.outcome.clone(),
        other => panic!("expected one reply, got {other:?}"),
    }
}

fn create_acl(path: &str, acl: Vec<Acl>) -> Request {
    Request::Create(CreateRequest {
        path: path.into(),
        data: Bytes::from_static(b"secret"),
        mode: CreateMode::Persistent,
        ttl_ms: 0,
        acl: Some(acl),
    })
}

fn set_data(path: &str) -> Request {
    Request::SetData(zab_proto::SetDataRequest {
        path: path.into(),
        data: Bytes::from_static(b"v2"),
        version: -1,
    })
}

const NO_AUTH: WireOutcome = WireOutcome::Err(ErrorCode::NoAuth);

#[test]
fn identities_belong_to_the_connection_and_guard_every_read_and_watch() {
    let mut h = Harness::new();
    h.connect(1, None); // bob
    h.connect(2, None); // anyone
    let ServerFrame::Reply(r) = add_auth(&mut h, 1, 1, "bob:secret") else {
        panic!("a reply");
    };
    assert_eq!(r.outcome, WireOutcome::Ok(Response::AddAuth));
    let created = write(&mut h, 1, 2, create_acl("/b", Acl::creator_all()));
    assert!(
        matches!(created, WireOutcome::Ok(Response::Create(_))),
        "{created:?}"
    );

    // Every read and every way to arm a watch on /b is refused to anyone.
    let path = || "/b".to_string();
    for (xid, request) in [
        (
            1,
            Request::GetData {
                path: path(),
                watch: false,
            },
        ),
        (
            2,
            Request::Exists {
                path: path(),
                watch: true,
            },
        ),
        (
            3,
            Request::GetChildren {
                path: path(),
                watch: true,
            },
        ),
        (
            4,
            Request::GetChildrenPage {
                path: path(),
                after: String::new(),
                max: 0,
                watch: false,
            },
        ),
        (5, Request::GetAcl { path: path() }),
        (
            6,
            Request::AddWatch {
                path: path(),
                mode: AddWatchMode::Persistent,
            },
        ),
        (
            7,
            Request::SetWatches(zab_proto::SetWatches {
                data: vec![path()],
                ..Default::default()
            }),
        ),
    ] {
        assert_eq!(
            read(&mut h, 2, xid, request.clone()),
            NO_AUTH,
            "{request:?}"
        );
    }
    assert_eq!(h.fe.watches.count(h.fe.conns[&2].session.expect("open")), 0);
    // A write from anyone is refused where it is applied.
    assert_eq!(write(&mut h, 2, 8, set_data("/b")), NO_AUTH);
    // Bob reads; a wrong password proves nothing; a bad scheme fails.
    let got = read(
        &mut h,
        1,
        3,
        Request::GetData {
            path: path(),
            watch: false,
        },
    );
    assert!(
        matches!(got, WireOutcome::Ok(Response::GetData { .. })),
        "{got:?}"
    );
    let ServerFrame::Reply(r) = add_auth(&mut h, 2, 9, "bob:guess") else {
        panic!("a reply");
    };
    assert_eq!(r.outcome, WireOutcome::Ok(Response::AddAuth));
    assert_eq!(
        read(
            &mut h,
            2,
            10,
            Request::GetData {
                path: path(),
                watch: false
            }
        ),
        NO_AUTH
    );
    let request = Request::AddAuth {
        scheme: "ip".into(),
        auth: Bytes::from_static(b"127.0.0.1"),
    };
    assert_eq!(
        read(&mut h, 2, 11, request),
        WireOutcome::Err(ErrorCode::AuthFailed)
    );
    // A node that does not exist is not protected by anything: NoNode.
    let missing = Request::GetData {
        path: "/b/none".into(),
        watch: false,
    };
    assert_eq!(
        read(&mut h, 2, 12, missing),
        WireOutcome::Err(ErrorCode::NoNode)
    );
}

#[test]
fn get_acl_shows_digests_only_to_admins() {
    let mut h = Harness::new();
    h.connect(1, None);
    h.connect(2, None);
    add_auth(&mut h, 1, 1, "bob:secret");
    let acl = vec![
        Acl::new(Perms::READ, "world", "anyone"),
        Acl::new(Perms::ALL, "digest", zab_proto::digest_id("bob", "secret")),
    ];
    write(&mut h, 1, 2, create_acl("/r", acl.clone()));
    let stat = match read(&mut h, 1, 3, Request::GetAcl { path: "/r".into() }) {
        WireOutcome::Ok(Response::GetAcl { acl: got, stat }) => {
            assert_eq!(got, acl, "bob has ADMIN: the whole list");
            stat
        }
        other => panic!("{other:?}"),
    };
    match read(&mut h, 2, 1, Request::GetAcl { path: "/r".into() }) {
        WireOutcome::Ok(Response::GetAcl { acl: got, stat: s }) => {
            assert_eq!(got[1], Acl::new(Perms::ALL, "digest", "bob:x"), "redacted");
            assert_eq!(s, stat);
        }
        other => panic!("{other:?}"),
    }
    // setAcl: ADMIN only; aversion moves.
    let open = Request::SetAcl {
        path: "/r".into(),
        acl: Acl::open_unsafe(),
        version: 0,
    };
    assert_eq!(write(&mut h, 2, 2, open.clone()), NO_AUTH);
    match write(&mut h, 1, 4, open) {
        WireOutcome::Ok(Response::SetAcl(s)) => assert_eq!(s.aversion, 1),
        other => panic!("{other:?}"),
    }
}

#[test]
fn recursive_watches_report_only_what_their_watcher_may_read() {
    let mut h = Harness::new();
    h.connect(1, None); // bob, the writer and a watcher
    h.connect(2, None); // anyone, a watcher of the whole tree
    add_auth(&mut h, 1, 1, "bob:secret");
    let root = || "/".to_string();
    let recursive = AddWatchMode::PersistentRecursive;
    for conn in [1, 2] {
        let add = Request::AddWatch {
            path: root(),
            mode: recursive,
        };
        assert_eq!(
            read(&mut h, conn, 5, add),
            WireOutcome::Ok(Response::AddWatch)
        );
    }
    // A closed node: created, changed, deleted. Anyone sees none of it.
    let inputs = h.send(1, 6, create_acl("/hidden", Acl::creator_all()));
    h.commit(inputs);
    let inputs = h.send(1, 7, set_data("/hidden"));
    h.commit(inputs);
    let inputs = h.send(
        1,
        8,
        Request::Delete(zab_proto::DeleteRequest {
            path: "/hidden".into(),
            version: -1,
        }),
    );
    h.commit(inputs);
    // An open node: anyone sees it.
    let inputs = h.send(1, 9, create_acl("/open", Acl::open_unsafe()));
    h.commit(inputs);
    let events = |frames: Vec<ServerFrame>| -> Vec<(WatchEventKind, String)> {
        frames
            .into_iter()
            .filter_map(|f| match f {
                ServerFrame::Watch {
                    event: WatchEvent { kind, path, .. },
                    ..
                } => Some((kind, path)),
                _ => None,
            })
            .collect()
    };
    let ops = [
        OpCode::CreateAcl,
        OpCode::SetData,
        OpCode::Delete,
        OpCode::CreateAcl,
    ];
    let bob = events(h.frames(1, &ops));
    assert_eq!(
        bob,
        vec![
            (WatchEventKind::NodeCreated, "/hidden".to_string()),
            (WatchEventKind::NodeDataChanged, "/hidden".to_string()),
            (WatchEventKind::NodeDeleted, "/hidden".to_string()),
            (WatchEventKind::NodeCreated, "/open".to_string()),
        ]
    );
    let anyone = events(h.frames(2, &[]));
    assert_eq!(
        anyone,
        vec![(WatchEventKind::NodeCreated, "/open".to_string())]
    );
}

#[test]
fn the_super_user_passes_every_check_and_a_caller_is_logged_with_each_write() {
    let mut h = Harness::new();
    h.fe.superusers = vec![crate::acl::Identity {
        scheme: "digest".into(),
        id: zab_proto::digest_id("super", "test"),
    }];
    h.connect(1, None);
    h.connect(2, None);
    add_auth(&mut h, 1, 1, "bob:secret");
    write(&mut h, 1, 2, create_acl("/b", Acl::creator_all()));
    add_auth(&mut h, 2, 1, "super:test");
    let got = read(
        &mut h,
        2,
        2,
        Request::GetData {
            path: "/b".into(),
            watch: false,
        },
    );
    assert!(
        matches!(got, WireOutcome::Ok(Response::GetData { .. })),
        "{got:?}"
    );
    // The write records its caller, super flag included, for every replica.
    let inputs = h.send(2, 3, set_data("/b"));
    let [Input::Propose { payload, .. }] = inputs.as_slice() else {
        panic!("{inputs:?}");
    };
    let cmd = crate::replica::Command::decode(payload.clone()).expect("a command");
    let crate::replica::CommandBody::OpAs(caller, _) = cmd.body else {
        panic!("{cmd:?}");
    };
    assert!(caller.superuser);
    assert_eq!(caller.ids.len(), 1);
    h.commit(inputs);
    assert!(matches!(
        reply(h.frames(2, &[OpCode::SetData])),
        WireOutcome::Ok(Response::SetData(_))
    ));
}
