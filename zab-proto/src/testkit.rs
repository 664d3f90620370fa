//! Test helpers: samples of every message variant (with extreme values, so
//! byte-order and width mistakes show), framing helpers and a seeded RNG.

use std::fmt::Debug;

use bytes::{Buf, Bytes, BytesMut};

use crate::acl::{Acl, Perms};
use crate::connect::{ConnectRequest, PASSWORD_BYTES, PROTOCOL_VERSION};
use crate::error::DecodeError;
use crate::frame::{FRAME_BYTES_DEFAULT, LEN_PREFIX_BYTES};
use crate::request::{
    CheckRequest, CreateRequest, DeleteRequest, MultiOp, OpCode, ReadOp, Request, RequestFrame,
    SetDataRequest, SetWatches,
};
use crate::response::{
    ConnectRefused, ConnectReply, ConnectResponse, CreateReply, MultiResult, Outcome, ReadResult,
    Reply, Response, ServerFrame, WatchEvent,
};
use crate::types::{
    AddWatchMode, CreateMode, ErrorCode, Stat, WatchEventKind, WatcherKind, Xid, ANY_VERSION,
};

/// Encodes one frame with `encode`, checks its length prefix, and returns
/// the body.
pub(crate) fn body_of(encode: impl FnOnce(&mut BytesMut)) -> Bytes {
    let mut frame = frame_of(encode);
    let len = frame.get_u32() as usize;
    assert_eq!(len, frame.len(), "length prefix disagrees with the body");
    frame
}

/// Encodes one frame with `encode` and returns it whole.
pub(crate) fn frame_of(encode: impl FnOnce(&mut BytesMut)) -> Bytes {
    let mut buf = BytesMut::new();
    encode(&mut buf);
    assert!(buf.len() >= LEN_PREFIX_BYTES);
    buf.freeze()
}

/// A hand-written body.
pub(crate) fn raw_body(bytes: &[u8]) -> Bytes {
    Bytes::copy_from_slice(bytes)
}

/// Bytes as space-separated lowercase hex pairs.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every strict prefix of `body` fails to decode, as a truncation.
pub(crate) fn assert_truncations_fail<T: Debug>(
    body: &Bytes,
    decode: impl Fn(Bytes) -> Result<T, DecodeError>,
) {
    for cut in 0..body.len() {
        let got = decode(body.slice(..cut));
        assert!(
            matches!(got, Err(DecodeError::Truncated { .. })),
            "cut at {cut} of {}: {got:?}",
            hex(body)
        );
    }
}

/// Decodes `body` with one extra byte appended.
pub(crate) fn with_trailing_byte<T>(
    body: &Bytes,
    decode: impl Fn(Bytes) -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    let mut longer = body.to_vec();
    longer.push(0);
    decode(Bytes::from(longer))
}

pub(crate) fn xid(v: i32) -> Xid {
    Xid::new(v).expect("test xids are not negative")
}

/// A stat whose every field is distinct and wide.
pub(crate) fn stat() -> Stat {
    Stat {
        czxid: 0x0000_0005_0000_0001,
        mzxid: 0x0000_0005_0000_0002,
        ctime: 1_700_000_000_000,
        mtime: -1,
        version: i32::MAX,
        cversion: i32::MIN,
        aversion: 0,
        ephemeral_owner: u64::MAX,
        data_length: 300,
        num_children: 7,
        pzxid: 0x0102_0304_0506_0708,
    }
}

pub(crate) fn connect_requests() -> Vec<ConnectRequest> {
    vec![
        ConnectRequest {
            protocol_version: PROTOCOL_VERSION,
            last_zxid_seen: 0,
            timeout_ms: 10_000,
            session_id: 0,
            password: [0; PASSWORD_BYTES],
            max_frame_bytes: FRAME_BYTES_DEFAULT,
        },
        ConnectRequest {
            protocol_version: PROTOCOL_VERSION,
            last_zxid_seen: u64::MAX,
            timeout_ms: u32::MAX,
            session_id: 0x0100_0000_0000_002a,
            password: *b"0123456789abcdef",
            max_frame_bytes: u32::MAX,
        },
    ]
}

pub(crate) fn connect_replies() -> Vec<ConnectReply> {
    vec![
        ConnectReply::Accepted(ConnectResponse {
            protocol_version: PROTOCOL_VERSION,
            timeout_ms: 40_000,
            session_id: 0x0100_0000_0000_002a,
            password: [0xA5; PASSWORD_BYTES],
            max_frame_bytes: 4096,
            server_id: u64::MAX,
            last_zxid: 0x0000_0005_0000_0014,
        }),
        ConnectReply::Refused(ConnectRefused {
            code: ErrorCode::ServerBehind,
            message: "server 2 has applied 0x500000010, the client has seen 0x500000014".into(),
        }),
        ConnectReply::Refused(ConnectRefused {
            code: ErrorCode::Unknown(-4242),
            message: String::new(),
        }),
    ]
}

fn create(path: &str, data: &'static [u8], mode: CreateMode, ttl_ms: u64) -> CreateRequest {
    CreateRequest {
        path: path.into(),
        data: Bytes::from_static(data),
        mode,
        ttl_ms,
        acl: None,
    }
}

fn acls() -> Vec<Acl> {
    vec![
        Acl::new(Perms::READ, "world", "anyone"),
        Acl::new(Perms::ALL, "digest", "bob:fyVmFCwVbTJYrznoSu1koqYEYF0="),
        Acl::new(Perms::NONE, "ip", "10.0.0.0/8"),
    ]
}

/// At least one frame per opcode, every enum value, and a multi with every
/// kind of op.
pub(crate) fn request_frames() -> Vec<RequestFrame> {
    let op = |x: i32, request: Request| RequestFrame::Op {
        xid: xid(x),
        request,
    };
    let s = |p: &str| p.to_string();
    let mut frames = vec![
        RequestFrame::Ping,
        op(
            0,
            Request::Create(create("/", b"", CreateMode::Persistent, 0)),
        ),
        op(
            i32::MAX,
            Request::Create(create(
                "/ünï/€-",
                b"\x00\xff",
                CreateMode::PersistentSequentialWithTtl,
                u64::MAX,
            )),
        ),
        op(
            3,
            Request::Delete(DeleteRequest {
                path: s("/a/b"),
                version: ANY_VERSION,
            }),
        ),
        op(
            4,
            Request::Exists {
                path: s("/a"),
                watch: true,
            },
        ),
        op(
            5,
            Request::Exists {
                path: s(""),
                watch: false,
            },
        ),
        op(
            6,
            Request::GetData {
                path: s("/config"),
                watch: true,
            },
        ),
        op(
            7,
            Request::SetData(SetDataRequest {
                path: s("/config"),
                data: Bytes::from(vec![0xAB; 300]),
                version: i32::MIN,
            }),
        ),
        op(
            8,
            Request::GetChildren {
                path: s("/"),
                watch: false,
            },
        ),
        op(
            9,
            Request::Check(CheckRequest {
                path: s("/a"),
                version: 3,
            }),
        ),
        op(10, Request::Multi(vec![])),
        op(
            11,
            Request::Multi(vec![
                MultiOp::Check(CheckRequest {
                    path: s("/lock"),
                    version: 0,
                }),
                MultiOp::Create(create(
                    "/q/item-",
                    b"x",
                    CreateMode::PersistentSequential,
                    0,
                )),
                MultiOp::SetData(SetDataRequest {
                    path: s("/lock"),
                    data: Bytes::new(),
                    version: ANY_VERSION,
                }),
                MultiOp::Delete(DeleteRequest {
                    path: s("/old"),
                    version: 12,
                }),
                MultiOp::Create(CreateRequest {
                    acl: Some(acls()),
                    ..create("/q/mine", b"", CreateMode::Ephemeral, 0)
                }),
            ]),
        ),
        op(12, Request::Sync { path: s("/") }),
        op(13, Request::SetWatches(SetWatches::default())),
        op(
            14,
            Request::SetWatches(SetWatches {
                relative_zxid: 0x0000_0005_0000_0010,
                data: vec![s("/a"), s("/b")],
                exists: vec![s("/gone")],
                children: vec![],
                persistent: vec![s("/p")],
                persistent_recursive: vec![s("/r"), s("/s"), s("")],
            }),
        ),
        op(15, Request::CloseSession),
        op(
            16,
            Request::GetChildrenPage {
                path: s("/big"),
                after: s("n-0000000041"),
                max: 500,
                watch: true,
            },
        ),
        op(
            17,
            Request::Create(CreateRequest {
                acl: Some(acls()),
                ..create("/secret", b"s", CreateMode::Persistent, 0)
            }),
        ),
        op(
            18,
            Request::Create(CreateRequest {
                acl: Some(vec![]),
                ..create("/empty-acl", b"", CreateMode::Persistent, 0)
            }),
        ),
        op(19, Request::GetAcl { path: s("/secret") }),
        op(
            23,
            Request::SetAcl {
                path: s("/secret"),
                acl: acls(),
                version: 4,
            },
        ),
        op(
            24,
            Request::AddAuth {
                scheme: s("digest"),
                auth: Bytes::from_static(b"bob:secret"),
            },
        ),
        op(25, Request::GetEphemerals { prefix: s("/app/") }),
        op(26, Request::GetAllChildrenNumber { path: s("/") }),
        op(27, Request::MultiRead(vec![])),
        op(
            28,
            Request::MultiRead(vec![
                ReadOp::GetData { path: s("/a") },
                ReadOp::GetChildren { path: s("/") },
            ]),
        ),
    ];
    for &mode in CreateMode::ALL {
        frames.push(op(20, Request::Create(create("/m", b"d", mode, 1))));
    }
    for &mode in AddWatchMode::ALL {
        frames.push(op(
            21,
            Request::AddWatch {
                path: s("/w"),
                mode,
            },
        ));
    }
    for &kind in WatcherKind::ALL {
        frames.push(op(
            22,
            Request::RemoveWatches {
                path: s("/w"),
                kind,
            },
        ));
        frames.push(op(
            23,
            Request::CheckWatches {
                path: s("/w"),
                kind,
            },
        ));
    }
    frames
}

/// At least one frame per response variant and outcome, every watch kind,
/// each with the opcode its reply needs to decode.
pub(crate) fn server_frames() -> Vec<(ServerFrame, Option<OpCode>)> {
    let ok = |x: i32, response: Response| {
        let opcode = response.opcode();
        (
            ServerFrame::Reply(Reply {
                xid: xid(x),
                zxid: 0x0000_0005_0000_0015,
                outcome: Outcome::Ok(response),
            }),
            Some(opcode),
        )
    };
    let created = |path: &str| CreateReply {
        path: path.into(),
        stat: stat(),
    };
    let mut frames = vec![
        (ServerFrame::Ping { zxid: 0 }, None),
        (ServerFrame::Ping { zxid: u64::MAX }, None),
        ok(1, Response::Create(created("/app/lock-0000000007"))),
        ok(2, Response::Delete),
        ok(3, Response::Exists(Some(stat()))),
        ok(4, Response::Exists(None)),
        ok(
            5,
            Response::GetData {
                data: Bytes::from_static(b"hello"),
                stat: stat(),
            },
        ),
        ok(
            6,
            Response::GetData {
                data: Bytes::new(),
                stat: Stat::default(),
            },
        ),
        ok(7, Response::SetData(stat())),
        ok(
            8,
            Response::GetChildren {
                children: vec![],
                stat: stat(),
            },
        ),
        ok(
            9,
            Response::GetChildren {
                children: vec!["a".into(), "lock-0000000001".into(), "ü".into()],
                stat: stat(),
            },
        ),
        ok(10, Response::Check),
        ok(11, Response::Multi(vec![])),
        ok(
            12,
            Response::Multi(vec![
                MultiResult::Check,
                MultiResult::Create(created("/q/item-0000000000")),
                MultiResult::SetData(stat()),
                MultiResult::Delete,
            ]),
        ),
        ok(13, Response::Sync { zxid: u64::MAX }),
        ok(14, Response::AddWatch),
        ok(15, Response::RemoveWatches),
        ok(15, Response::CheckWatches),
        ok(16, Response::SetWatches),
        ok(
            17,
            Response::GetChildrenPage {
                children: vec!["n-0000000042".into(), "n-0000000043".into()],
                stat: stat(),
                more: true,
            },
        ),
        ok(i32::MAX, Response::CloseSession),
        ok(
            17,
            Response::GetAcl {
                acl: acls(),
                stat: stat(),
            },
        ),
        ok(18, Response::SetAcl(stat())),
        ok(19, Response::AddAuth),
        ok(20, Response::GetEphemerals { paths: vec![] }),
        ok(
            21,
            Response::GetEphemerals {
                paths: vec!["/app/lock-0000000003".into(), "/app/member".into()],
            },
        ),
        ok(22, Response::GetAllChildrenNumber { count: 1 << 40 }),
        ok(23, Response::MultiRead(vec![])),
        ok(
            24,
            Response::MultiRead(vec![
                ReadResult::GetData {
                    data: Bytes::from_static(b"v"),
                    stat: stat(),
                },
                ReadResult::Error(ErrorCode::NoNode),
                ReadResult::GetChildren {
                    children: vec!["a".into(), "b".into()],
                    stat: stat(),
                },
                ReadResult::Error(ErrorCode::NoAuth),
            ]),
        ),
    ];
    let failed = |x: i32, opcode: OpCode, outcome: Outcome| {
        (
            ServerFrame::Reply(Reply {
                xid: xid(x),
                zxid: 0x0000_0005_0000_0016,
                outcome,
            }),
            Some(opcode),
        )
    };
    frames.extend([
        failed(20, OpCode::GetData, Outcome::Err(ErrorCode::NoNode)),
        failed(
            0,
            OpCode::Create,
            Outcome::Err(ErrorCode::Unknown(i32::MIN)),
        ),
        failed(21, OpCode::Sync, Outcome::Err(ErrorCode::NotLeaderNoQuorum)),
        failed(
            22,
            OpCode::Multi,
            Outcome::MultiErr {
                err: ErrorCode::BadVersion,
                errors: vec![
                    ErrorCode::Ok,
                    ErrorCode::BadVersion,
                    ErrorCode::RuntimeInconsistency,
                ],
            },
        ),
        failed(
            23,
            OpCode::Multi,
            Outcome::MultiErr {
                err: ErrorCode::Throttled,
                errors: vec![],
            },
        ),
    ]);
    for &kind in WatchEventKind::ALL {
        frames.push((
            ServerFrame::Watch {
                zxid: 0x0000_0005_0000_0017,
                event: WatchEvent {
                    kind,
                    path: "/app/config".into(),
                    zxid: 0x0000_0005_0000_0016,
                },
            },
            None,
        ));
    }
    frames
}
