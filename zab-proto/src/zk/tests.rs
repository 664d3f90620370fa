//! ZooKeeper frames written field by field, as its client writes them,
//! read into our requests; our replies read back field by field.

use bytes::{Buf, Bytes, BytesMut};

use super::jute::{put_acls, put_bool, put_buffer, put_int, put_long, put_ustring, JuteReader};
use super::*;
use crate::{
    Acl, CreateMode, CreateReply, ErrorCode, MultiOp, MultiResult, Outcome, Perms, Request,
    Response, Stat, WatchEvent, WatchEventKind,
};

fn open() -> Vec<Acl> {
    vec![Acl {
        perms: Perms::ALL,
        scheme: "world".into(),
        id: "anyone".into(),
    }]
}

fn create_body(b: &mut Vec<u8>, path: &str, flags: i32) {
    put_ustring(b, path);
    put_buffer(b, b"v");
    put_acls(b, &open());
    put_int(b, flags);
}

#[test]
fn a_create2_is_our_create_with_its_acl_and_a_create2_shape() {
    let mut b = Vec::new();
    put_int(&mut b, 7);
    put_int(&mut b, op::CREATE2);
    create_body(&mut b, "/a-", 3);
    let got = Incoming::decode(Bytes::from(b)).expect("valid");
    let Incoming::Op {
        xid: 7,
        shape: Shape::Create2,
        request: Request::Create(c),
    } = got
    else {
        panic!("{got:?}");
    };
    assert_eq!(
        (c.path.as_str(), c.mode),
        ("/a-", CreateMode::EphemeralSequential)
    );
    assert_eq!(c.acl, Some(open()));
}

#[test]
fn a_multi_keeps_each_ops_zookeeper_type_and_its_reply_reads_back() {
    let mut b = Vec::new();
    put_int(&mut b, 9);
    put_int(&mut b, op::MULTI);
    for (kind, path) in [(op::CREATE, "/x"), (op::CREATE_CONTAINER, "/y")] {
        put_int(&mut b, kind);
        put_bool(&mut b, false);
        put_int(&mut b, -1);
        create_body(&mut b, path, 0);
    }
    put_int(&mut b, op::DELETE);
    put_bool(&mut b, false);
    put_int(&mut b, -1);
    put_ustring(&mut b, "/z");
    put_int(&mut b, -1);
    put_int(&mut b, -1);
    put_bool(&mut b, true);
    put_int(&mut b, -1);
    let Incoming::Op { shape, request, .. } = Incoming::decode(Bytes::from(b)).expect("valid")
    else {
        panic!("not an op");
    };
    let Request::Multi(ops) = &request else {
        panic!("{request:?}");
    };
    assert!(matches!(&ops[1], MultiOp::Create(c) if c.mode == CreateMode::Container));
    assert_eq!(
        shape,
        Shape::Multi {
            ops: vec![op::CREATE, op::CREATE_CONTAINER, op::DELETE]
        }
    );
    let created = |path: &str| {
        MultiResult::Create(CreateReply {
            path: path.into(),
            stat: Stat::default(),
        })
    };
    let outcome = Outcome::Ok(Response::Multi(vec![
        created("/x"),
        created("/y"),
        MultiResult::Delete,
    ]));
    let mut out = BytesMut::new();
    encode_reply(&mut out, 9, 0x100, &shape, &outcome);
    let mut r = JuteReader::new(out.freeze().slice(4..), "reply");
    assert_eq!(
        (r.int("xid"), r.long("zxid"), r.int("err")),
        (Ok(9), Ok(0x100), Ok(0))
    );
    // create: the path; createContainer: written as create2, path and stat.
    assert_eq!(
        (r.int("t"), r.bool("d"), r.int("e")),
        (Ok(op::CREATE), Ok(false), Ok(0))
    );
    assert_eq!(r.ustring("path").as_deref(), Ok("/x"));
    assert_eq!(r.int("t"), Ok(op::CREATE2));
    let _ = (r.bool("d"), r.int("e"));
    assert_eq!(r.ustring("path").as_deref(), Ok("/y"));
    // A stat is 68 bytes: 17 ints' worth.
    for _ in 0..17 {
        let _ = r.int("stat");
    }
    assert_eq!(r.int("t"), Ok(op::DELETE));
    let _ = (r.bool("d"), r.int("e"));
    assert_eq!(
        (r.int("t"), r.bool("d"), r.int("e")),
        (Ok(-1), Ok(true), Ok(-1))
    );
}

#[test]
fn a_missing_node_is_nonode_for_exists_and_a_failed_multi_lists_its_errors() {
    let mut out = BytesMut::new();
    encode_reply(
        &mut out,
        3,
        5,
        &Shape::Exists,
        &Outcome::Ok(Response::Exists(None)),
    );
    let mut body = out.split().freeze().slice(4..);
    assert_eq!(
        (body.get_i32(), body.get_i64(), body.get_i32()),
        (3, 5, -101)
    );
    assert!(body.is_empty());
    let failed = Outcome::MultiErr {
        err: ErrorCode::NodeExists,
        errors: vec![
            ErrorCode::Ok,
            ErrorCode::NodeExists,
            ErrorCode::RuntimeInconsistency,
        ],
    };
    let shape = Shape::Multi {
        ops: vec![op::CREATE; 3],
    };
    encode_reply(&mut out, 4, 5, &shape, &failed);
    let mut r = JuteReader::new(out.split().freeze().slice(4..), "reply");
    assert_eq!(
        (r.int("xid"), r.long("zxid"), r.int("err")),
        (Ok(4), Ok(5), Ok(0))
    );
    for code in [0, -110, -2] {
        assert_eq!(
            (r.int("t"), r.bool("d"), r.int("e")),
            (Ok(-1), Ok(false), Ok(code))
        );
        assert_eq!(r.int("err"), Ok(code));
    }
}

#[test]
fn handshakes_read_with_or_without_the_read_only_flag() {
    let mut b = Vec::new();
    put_int(&mut b, 0);
    put_long(&mut b, 0x1_0000_0002);
    put_int(&mut b, 30_000);
    put_long(&mut b, 0);
    put_buffer(&mut b, &[0; 16]);
    let old = ZkConnect::decode(Bytes::from(b.clone())).expect("3.3-style");
    assert!(!old.read_only);
    put_bool(&mut b, true);
    let new = ZkConnect::decode(Bytes::from(b)).expect("3.4+");
    assert!(new.read_only && new.timeout_ms == 30_000 && new.password.len() == 16);
}

#[test]
fn continuity_lost_has_no_zookeeper_event_and_the_rest_do() {
    let mut out = BytesMut::new();
    let lost = WatchEvent {
        kind: WatchEventKind::ContinuityLost,
        path: "/a".into(),
        zxid: 1,
    };
    assert!(!encode_notification(&mut out, &lost));
    assert!(out.is_empty());
    let changed = WatchEvent {
        kind: WatchEventKind::NodeDataChanged,
        ..lost
    };
    assert!(encode_notification(&mut out, &changed));
    let mut r = JuteReader::new(out.freeze().slice(4..), "event");
    assert_eq!(
        (r.int("xid"), r.long("zxid"), r.int("err")),
        (Ok(-1), Ok(-1), Ok(0))
    );
    assert_eq!((r.int("type"), r.int("state")), (Ok(3), Ok(3)));
    assert_eq!(r.ustring("path").as_deref(), Ok("/a"));
}

#[test]
fn unknown_opcodes_and_bad_values_are_answered_and_truncation_is_an_error() {
    let mut b = Vec::new();
    put_int(&mut b, 2);
    put_int(&mut b, op::RECONFIG);
    assert_eq!(
        Incoming::decode(Bytes::from(b)),
        Ok(Incoming::Unsupported {
            xid: 2,
            opcode: op::RECONFIG
        })
    );
    let mut b = Vec::new();
    put_int(&mut b, 2);
    put_int(&mut b, op::CREATE);
    create_body(&mut b, "/a", 9);
    assert!(matches!(
        Incoming::decode(Bytes::from(b)),
        Ok(Incoming::Invalid {
            xid: 2,
            error: JuteError::BadValue { value: 9, .. }
        })
    ));
    let mut b = Vec::new();
    put_int(&mut b, 2);
    put_int(&mut b, op::GET_DATA);
    put_ustring(&mut b, "/a");
    assert!(matches!(
        Incoming::decode(Bytes::from(b)),
        Err(JuteError::Truncated { .. })
    ));
}
