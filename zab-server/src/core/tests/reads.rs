//! GetEphemerals, GetAllChildrenNumber and MultiRead at the server core.

use super::*;
use zab_proto::{Acl, ReadOp, ReadResult};

/// Sends a write and commits it; returns its reply.
fn write(h: &mut Harness, conn: ConnId, xid: i32, request: Request) -> WireOutcome {
    let op = request.opcode();
    let inputs = h.send(conn, xid, request);
    h.commit(inputs);
    only(h.frames(conn, &[op]))
}

/// Sends a read; returns its reply.
fn read(h: &mut Harness, conn: ConnId, xid: i32, request: Request) -> WireOutcome {
    let op = request.opcode();
    assert!(h.send(conn, xid, request).is_empty(), "a read is local");
    only(h.frames(conn, &[op]))
}

fn only(frames: Vec<ServerFrame>) -> WireOutcome {
    match frames.as_slice() {
        [ServerFrame::Reply(r)] => r.outcome.clone(),
        other => panic!("expected one reply, got {other:?}"),
    }
}

fn create_node(path: &str, data: &[u8], mode: CreateMode, acl: Option<Vec<Acl>>) -> Request {
    Request::Create(CreateRequest {
        path: path.into(),
        data: Bytes::copy_from_slice(data),
        mode,
        ttl_ms: 0,
        acl,
    })
}

fn created(outcome: WireOutcome) -> String {
    match outcome {
        WireOutcome::Ok(Response::Create(c)) => c.path,
        other => panic!("not created: {other:?}"),
    }
}

/// An ACL only bob (who never authenticates here) passes.
fn bobs_only() -> Vec<Acl> {
    let id = zab_proto::digest_id("bob", "secret");
    vec![Acl::parse(&format!("digest:{id}:cdrwa")).expect("an acl")]
}

fn ephemerals(h: &mut Harness, conn: ConnId, xid: i32, prefix: &str) -> WireOutcome {
    let prefix = prefix.into();
    read(h, conn, xid, Request::GetEphemerals { prefix })
}

fn paths(list: &[&str]) -> WireOutcome {
    let paths = list.iter().map(|p| p.to_string()).collect();
    WireOutcome::Ok(Response::GetEphemerals { paths })
}

#[test]
fn get_ephemerals_lists_only_the_callers_nodes_under_a_string_prefix() {
    let mut h = Harness::new();
    h.connect(1, None);
    h.connect(2, None);
    let persistent = CreateMode::Persistent;
    created(write(
        &mut h,
        1,
        1,
        create_node("/app", b"", persistent, None),
    ));
    let eph = CreateMode::Ephemeral;
    created(write(
        &mut h,
        1,
        2,
        create_node("/app/member", b"", eph, None),
    ));
    let seq = CreateMode::EphemeralSequential;
    let lock = created(write(
        &mut h,
        1,
        3,
        create_node("/app/lock-", b"", seq, None),
    ));
    created(write(&mut h, 1, 4, create_node("/top", b"", eph, None)));
    created(write(
        &mut h,
        2,
        1,
        create_node("/app/other", b"", eph, None),
    ));

    assert_eq!(
        ephemerals(&mut h, 1, 5, "/"),
        paths(&[&lock, "/app/member", "/top"])
    );
    assert_eq!(
        ephemerals(&mut h, 1, 6, "/app/"),
        paths(&[&lock, "/app/member"])
    );
    assert_eq!(ephemerals(&mut h, 1, 7, "/app/lock-"), paths(&[&lock]));
    assert_eq!(ephemerals(&mut h, 1, 8, "/nothing"), paths(&[]));
    assert_eq!(ephemerals(&mut h, 2, 2, "/"), paths(&["/app/other"]));
    assert_eq!(
        ephemerals(&mut h, 1, 9, "app"),
        WireOutcome::Err(ErrorCode::BadArguments)
    );
}

#[test]
fn get_all_children_number_counts_every_depth_and_needs_read() {
    let mut h = Harness::new();
    h.connect(1, None);
    let p = CreateMode::Persistent;
    for (xid, path) in [
        (1, "/a"),
        (2, "/a/b"),
        (3, "/a/b/c"),
        (4, "/a/d"),
        (5, "/e"),
    ] {
        created(write(&mut h, 1, xid, create_node(path, b"", p, None)));
    }
    let count = |h: &mut Harness, xid, path: &str| {
        let path = path.into();
        read(h, 1, xid, Request::GetAllChildrenNumber { path })
    };
    let n = |count| WireOutcome::Ok(Response::GetAllChildrenNumber { count });
    assert_eq!(count(&mut h, 6, "/a"), n(3));
    assert_eq!(count(&mut h, 7, "/a/b/c"), n(0));
    assert_eq!(count(&mut h, 8, "/"), n(5));
    assert_eq!(
        count(&mut h, 9, "/gone"),
        WireOutcome::Err(ErrorCode::NoNode)
    );
    let secret = Some(bobs_only());
    created(write(&mut h, 1, 10, create_node("/s", b"", p, secret)));
    assert_eq!(count(&mut h, 11, "/s"), WireOutcome::Err(ErrorCode::NoAuth));
}

#[test]
fn multi_read_answers_each_op_alone_from_one_state() {
    let mut h = Harness::new();
    h.connect(1, None);
    let p = CreateMode::Persistent;
    created(write(&mut h, 1, 1, create_node("/a", b"v", p, None)));
    created(write(&mut h, 1, 2, create_node("/a/x", b"", p, None)));
    let secret = Some(bobs_only());
    created(write(&mut h, 1, 3, create_node("/s", b"hidden", p, secret)));
    let ops = vec![
        ReadOp::GetData { path: "/a".into() },
        ReadOp::GetData {
            path: "/gone".into(),
        },
        ReadOp::GetChildren { path: "/a".into() },
        ReadOp::GetData { path: "/s".into() },
        ReadOp::GetChildren { path: "bad".into() },
    ];
    let WireOutcome::Ok(Response::MultiRead(results)) = read(&mut h, 1, 4, Request::MultiRead(ops))
    else {
        panic!("a MultiRead reply");
    };
    let stat_a = h.replica.tree.exists("/a").expect("/a");
    assert_eq!(
        results,
        vec![
            ReadResult::GetData {
                data: Bytes::from_static(b"v"),
                stat: stat_a,
            },
            ReadResult::Error(ErrorCode::NoNode),
            ReadResult::GetChildren {
                children: vec!["x".into()],
                stat: stat_a,
            },
            ReadResult::Error(ErrorCode::NoAuth),
            ReadResult::Error(ErrorCode::BadArguments),
        ]
    );
}

#[test]
fn a_multi_read_larger_than_the_frame_is_frame_too_large() {
    let mut h = Harness::new();
    h.connect(1, None);
    let big = vec![7u8; (zab_proto::FRAME_BYTES_DEFAULT / 2) as usize];
    let p = CreateMode::Persistent;
    created(write(&mut h, 1, 1, create_node("/big", &big, p, None)));
    let one = ReadOp::GetData {
        path: "/big".into(),
    };
    let fits = read(&mut h, 1, 2, Request::MultiRead(vec![one.clone()]));
    assert!(matches!(fits, WireOutcome::Ok(Response::MultiRead(_))));
    let both = Request::MultiRead(vec![one.clone(), one]);
    assert_eq!(
        read(&mut h, 1, 3, both),
        WireOutcome::Err(ErrorCode::FrameTooLarge)
    );
}
