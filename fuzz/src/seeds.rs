//! Starting corpora: valid encodings built with the crates' own encoders
//! (and, for storage, directories written by the storage code itself over
//! the in-memory file system). Built only with the `seeds` feature: it
//! names every message field, so it follows the wire types; the committed
//! corpora, not this generator, are what the replay test reads.

use std::path::Path;

use bytes::{BufMut, Bytes, BytesMut};
use zab_core::codec::{self, frames};
use zab_core::{
    EnsembleId, Epoch, Message, PeerId, PersistOp, RequestId, ServerState, Standing,
    Txn as CoreTxn, Vote, Zxid,
};
use zab_proto::{
    Acl, AddWatchMode, CheckRequest, ConnectRefused, ConnectReply, ConnectRequest, ConnectResponse,
    CreateMode, CreateReply, DeleteRequest, ErrorCode, MultiOp, MultiResult, Outcome, Perms, Reply,
    Request, RequestFrame, Response, ServerFrame, SetDataRequest, SetWatches, Stat, WatchEvent,
    WatchEventKind, WatcherKind, Xid, FRAME_BYTES_DEFAULT, PROTOCOL_VERSION,
};
use zab_server::acl::{Caller, Identity};
use zab_server::replica::{Command, CommandBody, Replica};
use zab_server::server::Application;
use zab_server::storage::record;
use zab_server::storage::txn_log::{LogConfig, TxnLog};
use zab_server::storage::{epoch_file, snapshot_file, standing_file, Store, StoreConfig};
use zab_server::tree::{DataTree, NodeKind, Request as TreeRequest, TxnHeader};

mod storage;

use storage::*;

use crate::dir;
use crate::memfs::MemFs;

/// Every target's seeds.
pub fn all() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    vec![
        ("proto_frame_stream", proto_frame_stream()),
        ("proto_request", proto_request()),
        ("proto_server_frame", proto_server_frame()),
        ("proto_connect", proto_connect()),
        ("core_message", core_message()),
        ("core_stream", core_stream()),
        (
            "server_command",
            commands().iter().map(|c| c.to_vec()).collect(),
        ),
        ("server_replica_apply", replica_apply()),
        ("server_txn", txn()),
        ("server_tree_snapshot", tree_snapshot()),
        ("server_replica_restore", replica_restore()),
        ("server_log_record", log_record()),
        ("server_txn_log_open", txn_log_open()),
        ("server_store_open", store_open()),
        ("server_snapshot_file", snapshot_file_seeds()),
        ("server_meta_files", meta_files()),
        ("server_peer_handshake", peer_handshake()),
    ]
}

fn enc(f: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
    let mut b = BytesMut::new();
    f(&mut b);
    b.to_vec()
}

fn body(frame: &[u8]) -> Vec<u8> {
    frame[4..].to_vec()
}

fn stat(n: u64) -> Stat {
    Stat {
        czxid: n,
        mzxid: n + 1,
        ctime: 1_700_000_000_000,
        mtime: 1_700_000_000_001,
        version: 2,
        cversion: 3,
        aversion: 0,
        ephemeral_owner: 0,
        data_length: 5,
        num_children: 1,
        pzxid: n + 2,
    }
}

fn create(path: &str, mode: CreateMode, acl: Option<Vec<Acl>>) -> zab_proto::CreateRequest {
    zab_proto::CreateRequest {
        path: path.into(),
        data: Bytes::from_static(b"hello"),
        mode,
        ttl_ms: if mode.has_ttl() { 60_000 } else { 0 },
        acl,
    }
}

fn digest_acl() -> Vec<Acl> {
    vec![
        Acl::new(Perms::READ, "world", "anyone"),
        Acl::new(Perms::ALL, "digest", "alice:xyz="),
    ]
}

fn requests() -> Vec<Request> {
    vec![
        Request::Create(create("/app", CreateMode::Persistent, None)),
        Request::Create(create("/app/e-", CreateMode::EphemeralSequential, None)),
        Request::Create(create("/app/t", CreateMode::PersistentWithTtl, None)),
        Request::Create(create("/app/c", CreateMode::Container, Some(digest_acl()))),
        Request::Delete(DeleteRequest {
            path: "/app".into(),
            version: -1,
        }),
        Request::Exists {
            path: "/app".into(),
            watch: true,
        },
        Request::GetData {
            path: "/app".into(),
            watch: false,
        },
        Request::SetData(SetDataRequest {
            path: "/app".into(),
            data: Bytes::from_static(b"v2"),
            version: 0,
        }),
        Request::GetChildren {
            path: "/".into(),
            watch: true,
        },
        Request::Check(CheckRequest {
            path: "/app".into(),
            version: 3,
        }),
        Request::Multi(vec![
            MultiOp::Create(create("/m", CreateMode::Persistent, None)),
            MultiOp::Check(CheckRequest {
                path: "/m".into(),
                version: 0,
            }),
            MultiOp::SetData(SetDataRequest {
                path: "/m".into(),
                data: Bytes::from_static(b"x"),
                version: -1,
            }),
            MultiOp::Delete(DeleteRequest {
                path: "/m".into(),
                version: -1,
            }),
        ]),
        Request::Sync { path: "/".into() },
        Request::AddWatch {
            path: "/app".into(),
            mode: AddWatchMode::PersistentRecursive,
        },
        Request::RemoveWatches {
            path: "/app".into(),
            kind: WatcherKind::Any,
        },
        Request::SetWatches(SetWatches {
            relative_zxid: 0x5_0000_0001,
            data: vec!["/a".into()],
            exists: vec!["/b".into()],
            children: vec!["/".into()],
            persistent: vec![],
            persistent_recursive: vec!["/c".into()],
        }),
        Request::CloseSession,
        Request::GetChildrenPage {
            path: "/".into(),
            after: "a".into(),
            max: 10,
            watch: false,
        },
        Request::GetAcl {
            path: "/app".into(),
        },
        Request::SetAcl {
            path: "/app".into(),
            acl: digest_acl(),
            version: -1,
        },
        Request::AddAuth {
            scheme: "digest".into(),
            auth: Bytes::from_static(b"alice:secret"),
        },
    ]
}

fn request_frames() -> Vec<Vec<u8>> {
    let mut out = vec![enc(|b| RequestFrame::Ping.encode(b))];
    for (i, request) in requests().into_iter().enumerate() {
        let xid = Xid::new(i as i32 + 1).expect("positive");
        out.push(enc(|b| RequestFrame::Op { xid, request }.encode(b)));
    }
    out
}

fn responses() -> Vec<Response> {
    vec![
        Response::Create(CreateReply {
            path: "/app/e-0000000001".into(),
            stat: stat(5),
        }),
        Response::Delete,
        Response::Exists(Some(stat(6))),
        Response::Exists(None),
        Response::GetData {
            data: Bytes::from_static(b"hello"),
            stat: stat(7),
        },
        Response::SetData(stat(8)),
        Response::GetChildren {
            children: vec!["a".into(), "b".into()],
            stat: stat(9),
        },
        Response::GetChildrenPage {
            children: vec!["c".into()],
            stat: stat(10),
            more: true,
        },
        Response::Check,
        Response::Multi(vec![
            MultiResult::Create(CreateReply {
                path: "/m".into(),
                stat: stat(11),
            }),
            MultiResult::Check,
            MultiResult::SetData(stat(12)),
            MultiResult::Delete,
        ]),
        Response::Sync {
            zxid: 0x5_0000_0014,
        },
        Response::AddWatch,
        Response::RemoveWatches,
        Response::SetWatches,
        Response::CloseSession,
    ]
}

fn server_frames() -> Vec<ServerFrame> {
    let mut out = vec![
        ServerFrame::Ping {
            zxid: 0x5_0000_0001,
        },
        ServerFrame::Watch {
            zxid: 0x5_0000_0002,
            event: WatchEvent {
                kind: WatchEventKind::NodeDataChanged,
                path: "/app".into(),
                zxid: 0x5_0000_0002,
            },
        },
    ];
    for (i, r) in responses().into_iter().enumerate() {
        out.push(ServerFrame::Reply(Reply {
            xid: Xid::new(i as i32 + 1).expect("positive"),
            zxid: 0x5_0000_0003,
            outcome: Outcome::Ok(r),
        }));
    }
    out.push(ServerFrame::Reply(Reply {
        xid: Xid::FIRST,
        zxid: 9,
        outcome: Outcome::Err(ErrorCode::NoNode),
    }));
    out.push(ServerFrame::Reply(Reply {
        xid: Xid::new(8).expect("positive"),
        zxid: 9,
        outcome: Outcome::MultiErr {
            err: ErrorCode::BadVersion,
            errors: vec![
                ErrorCode::Ok,
                ErrorCode::BadVersion,
                ErrorCode::RuntimeInconsistency,
            ],
        },
    }));
    out
}

fn connect_request() -> ConnectRequest {
    ConnectRequest {
        protocol_version: PROTOCOL_VERSION,
        last_zxid_seen: 0x5_0000_0014,
        timeout_ms: 10_000,
        session_id: 0x0100_0000_0000_002a,
        password: *b"0123456789abcdef",
        max_frame_bytes: FRAME_BYTES_DEFAULT,
    }
}

fn connect_replies() -> Vec<ConnectReply> {
    vec![
        ConnectReply::Accepted(ConnectResponse {
            protocol_version: PROTOCOL_VERSION,
            timeout_ms: 10_000,
            session_id: 0x0100_0000_0000_002a,
            password: *b"0123456789abcdef",
            max_frame_bytes: FRAME_BYTES_DEFAULT,
            server_id: 1,
            last_zxid: 0x5_0000_0014,
        }),
        ConnectReply::Refused(ConnectRefused {
            code: ErrorCode::SessionExpired,
            message: "session expired".into(),
        }),
    ]
}

fn proto_frame_stream() -> Vec<Vec<u8>> {
    let mut frames = vec![enc(|b| connect_request().encode(b))];
    frames.extend(connect_replies().iter().map(|m| enc(|b| m.encode(b))));
    frames.extend(request_frames());
    frames.extend(server_frames().iter().map(|m| enc(|b| m.encode(b))));
    let mut out: Vec<Vec<u8>> = frames
        .iter()
        .map(|f| [&[6u8][..], f].concat()) // limit: FRAME_BYTES_DEFAULT
        .collect();
    // Back to back, and under a small limit.
    out.push([vec![6u8], frames.concat()].concat());
    out.push([vec![3u8], frames[..4].concat()].concat());
    out
}

fn proto_request() -> Vec<Vec<u8>> {
    request_frames().iter().map(|f| body(f)).collect()
}

fn proto_server_frame() -> Vec<Vec<u8>> {
    // The first byte picks the opcode by its index in OpCode::ALL.
    let index = |op| {
        zab_proto::OpCode::ALL
            .iter()
            .position(|&o| o == op)
            .expect("known opcode") as u8
    };
    server_frames()
        .iter()
        .map(|m| {
            let op = match m {
                ServerFrame::Reply(Reply {
                    outcome: Outcome::Ok(r),
                    ..
                }) => index(r.opcode()),
                ServerFrame::Reply(Reply {
                    outcome: Outcome::MultiErr { .. },
                    ..
                }) => index(zab_proto::OpCode::Multi),
                _ => 0,
            };
            [vec![op], body(&enc(|b| m.encode(b)))].concat()
        })
        .collect()
}

fn proto_connect() -> Vec<Vec<u8>> {
    let mut out = vec![body(&enc(|b| connect_request().encode(b)))];
    out.extend(
        connect_replies()
            .iter()
            .map(|m| body(&enc(|b| m.encode(b)))),
    );
    out
}

fn messages() -> Vec<Message> {
    let e = Epoch(5);
    let z = Zxid::new(e, 7);
    vec![
        Message::Notification {
            vote: Vote {
                epoch: e,
                zxid: z,
                leader: PeerId(2),
            },
            round: 3,
            state: ServerState::Looking,
            standing: Standing::Member(EnsembleId(9)),
        },
        Message::FollowerInfo {
            accepted_epoch: e,
            observer: false,
            join: 1,
            standing: Standing::Blank,
        },
        Message::LeaderInfo {
            term: e,
            epoch: Epoch(6),
            join: 1,
            ensemble: EnsembleId(9),
        },
        Message::AckEpoch {
            epoch: e,
            join: 1,
            fresh: true,
            current_epoch: Epoch(4),
            last_zxid: z,
            log_start: Zxid::ZERO,
        },
        Message::Diff { epoch: e, join: 1 },
        Message::Trunc {
            epoch: e,
            join: 1,
            to: z,
        },
        Message::Snapshot {
            epoch: e,
            join: 1,
            zxid: z,
            data: Bytes::from_static(b"ZTRE snapshot bytes"),
        },
        Message::NewLeader {
            epoch: e,
            join: 1,
            current_epoch: e,
            zxid: z,
        },
        Message::AckNewLeader { epoch: e, join: 1 },
        Message::UpToDate {
            epoch: e,
            committed: z,
        },
        Message::Proposal {
            epoch: e,
            prev: z,
            txn: CoreTxn {
                zxid: Zxid::new(e, 8),
                payload: Bytes::from_static(b"payload"),
            },
        },
        Message::Ack { epoch: e, zxid: z },
        Message::Commit { epoch: e, zxid: z },
        Message::Ping { epoch: e, round: 4 },
        Message::PingAck { epoch: e, round: 4 },
        Message::NewEpoch {
            epoch: e,
            new_epoch: Epoch(6),
            last: z,
        },
        Message::AckNewEpoch {
            epoch: e,
            new_epoch: Epoch(6),
        },
        Message::Forward {
            epoch: e,
            id: RequestId(11),
            payload: Bytes::from_static(b"command"),
        },
        Message::Rejected {
            epoch: e,
            id: RequestId(11),
        },
        Message::Sync {
            epoch: e,
            id: RequestId(12),
        },
        Message::SyncReply {
            epoch: e,
            id: RequestId(12),
            zxid: z,
        },
        Message::Relay {
            epoch: e,
            payload: Bytes::from_static(b"relayed"),
        },
    ]
}

fn core_message() -> Vec<Vec<u8>> {
    let all: Vec<Vec<u8>> = messages()
        .iter()
        .map(|m| codec::encode_to_bytes(m).to_vec())
        .collect();
    let mut out: Vec<Vec<u8>> = all.iter().map(|f| [&[5u8, 7][..], f].concat()).collect();
    out.push([vec![5u8, 3], all.concat()].concat());
    out
}

fn core_stream() -> Vec<Vec<u8>> {
    let snapshot = Message::Snapshot {
        epoch: Epoch(5),
        join: 2,
        zxid: Zxid::new(Epoch(5), 9),
        data: Bytes::from(
            (0..300u32)
                .map(|i| (i * 7 % 251) as u8)
                .collect::<Vec<u8>>(),
        ),
    };
    let streamed: Vec<u8> = frames(&snapshot, 64).concat();
    let others: Vec<u8> = messages()
        .iter()
        .map(|m| codec::encode_to_bytes(m).to_vec())
        .collect::<Vec<_>>()
        .concat();
    // frame limit 4096, snapshot limit 1 MiB, then the cut sizes.
    vec![
        [vec![2u8, 3, 3, 1, 17, 200], streamed.clone()].concat(),
        [vec![2u8, 3, 0], streamed.clone(), others.clone()].concat(),
        [vec![3u8, 4, 2, 5, 64], others, streamed].concat(),
    ]
}

const SESSION: u64 = 0x0100_0000_0000_0001;
const SESSION2: u64 = 0x0100_0000_0000_0002;

fn command(session: u64, xid: i32, body: CommandBody) -> Command {
    Command {
        origin: 1,
        session,
        xid,
        request: xid as u64,
        time_ms: 1_700_000_000_000 + i64::from(xid),
        body,
    }
}

fn caller() -> Caller {
    Caller {
        ip: Some([127, 0, 0, 1].into()),
        ids: vec![Identity {
            scheme: "digest".into(),
            id: "alice:xyz=".into(),
        }],
        superuser: false,
    }
}

/// A session's life as log commands, touching every command kind.
fn commands() -> Vec<Bytes> {
    let op = |s, x, r| command(s, x, CommandBody::Op(r));
    let op_as = |s, x, r| command(s, x, CommandBody::OpAs(caller(), r));
    vec![
        command(
            SESSION,
            0,
            CommandBody::CreateSession {
                timeout_ms: 10_000,
                password: *b"0123456789abcdef",
            },
        ),
        command(
            SESSION2,
            0,
            CommandBody::CreateSession {
                timeout_ms: 5_000,
                password: *b"fedcba9876543210",
            },
        ),
        op(
            SESSION,
            1,
            Request::Create(create("/app", CreateMode::Persistent, None)),
        ),
        op(
            SESSION,
            2,
            Request::Create(create("/app/e-", CreateMode::EphemeralSequential, None)),
        ),
        op(
            SESSION,
            3,
            Request::Create(create("/app/t", CreateMode::PersistentWithTtl, None)),
        ),
        op(
            SESSION,
            4,
            Request::Create(create("/app/c", CreateMode::Container, None)),
        ),
        op_as(
            SESSION,
            5,
            Request::Create(create(
                "/app/acl",
                CreateMode::Persistent,
                Some(digest_acl()),
            )),
        ),
        op(
            SESSION,
            6,
            Request::SetData(SetDataRequest {
                path: "/app".into(),
                data: Bytes::from_static(b"v2"),
                version: 0,
            }),
        ),
        op(
            SESSION,
            7,
            Request::Check(CheckRequest {
                path: "/app".into(),
                version: 1,
            }),
        ),
        op(SESSION, 8, requests()[10].clone()),
        op_as(
            SESSION,
            9,
            Request::SetAcl {
                path: "/app/acl".into(),
                acl: Acl::open_unsafe(),
                version: 0,
            },
        ),
        op(
            SESSION2,
            1,
            Request::Create(create("/app/e2", CreateMode::Ephemeral, None)),
        ),
        command(SESSION2, 0, CommandBody::MoveSession),
        command(
            0,
            0,
            CommandBody::DeleteExpired {
                path: "/app/c".into(),
                mzxid: Zxid::new(Epoch(1), 6),
                pzxid: Zxid::new(Epoch(1), 6),
            },
        ),
        op(
            SESSION,
            10,
            Request::Delete(DeleteRequest {
                path: "/app/t".into(),
                version: -1,
            }),
        ),
        command(SESSION2, 0, CommandBody::ExpireSession),
        command(SESSION, 0, CommandBody::CloseSession),
    ]
    .iter()
    .map(Command::encode)
    .collect()
}

fn replica_apply() -> Vec<Vec<u8>> {
    let cmds = commands();
    vec![
        crate::join_records(&cmds),
        crate::join_records(&cmds[..6]),
        crate::join_records(&[&cmds[0], &cmds[2], &cmds[3], &cmds[16]]),
    ]
}

/// A tree and the payloads that built it, each resolved by `prepare`.
fn built_tree() -> (DataTree, Vec<Vec<u8>>) {
    let mut tree = DataTree::new();
    let mut payloads = Vec::new();
    let create = |path: &str, kind, sequential| TreeRequest::Create {
        path: path.into(),
        data: Bytes::from_static(b"data"),
        kind,
        sequential,
        acl: None,
    };
    let steps: Vec<(u64, TreeRequest)> = vec![
        (SESSION, TreeRequest::CreateSession { timeout_ms: 10_000 }),
        (SESSION2, TreeRequest::CreateSession { timeout_ms: 5_000 }),
        (SESSION, create("/a", NodeKind::Persistent, false)),
        (SESSION, create("/a/s-", NodeKind::Persistent, true)),
        (SESSION, create("/a/e", NodeKind::Ephemeral, false)),
        (SESSION2, create("/a/e2", NodeKind::Ephemeral, false)),
        (SESSION, create("/c", NodeKind::Container, false)),
        (SESSION, create("/c/x", NodeKind::Persistent, false)),
        (
            SESSION,
            create("/t", NodeKind::Ttl { ttl_ms: 1_000 }, false),
        ),
        (
            SESSION,
            TreeRequest::Create {
                path: "/acl".into(),
                data: Bytes::new(),
                kind: NodeKind::Persistent,
                sequential: false,
                acl: Some(digest_acl()),
            },
        ),
        (
            SESSION,
            TreeRequest::SetData {
                path: "/a".into(),
                data: Bytes::from_static(b"v2"),
                version: 0,
            },
        ),
        (
            SESSION,
            TreeRequest::Multi(vec![
                create("/m", NodeKind::Persistent, false),
                TreeRequest::Check {
                    path: "/m".into(),
                    version: 0,
                },
                TreeRequest::SetData {
                    path: "/m".into(),
                    data: Bytes::from_static(b"x"),
                    version: 0,
                },
            ]),
        ),
        (
            SESSION,
            TreeRequest::Delete {
                path: "/c/x".into(),
                version: -1,
            },
        ),
        (
            SESSION,
            TreeRequest::SetAcl {
                path: "/acl".into(),
                acl: Acl::read_unsafe(),
                version: -1,
            },
        ),
        // A failed one: the node is gone.
        (
            SESSION,
            TreeRequest::Delete {
                path: "/nope".into(),
                version: -1,
            },
        ),
        (SESSION2, TreeRequest::CloseSession),
    ];
    for (i, (session, request)) in steps.into_iter().enumerate() {
        let txn = tree
            .prepare(session, &request)
            .unwrap_or_else(|r| r.to_txn());
        let header = TxnHeader {
            session,
            cxid: i as i32,
            time_ms: 1_700_000_000_000 + i as i64,
        };
        let zxid = Zxid::new(Epoch(1), i as u32 + 1);
        tree.apply(zxid, header.time_ms, &txn)
            .expect("prepared txn applies");
        payloads.push(txn.to_payload(&header));
    }
    (tree, payloads)
}

fn txn() -> Vec<Vec<u8>> {
    let (_, payloads) = built_tree();
    vec![
        crate::join_records(&payloads),
        crate::join_records(&payloads[..5]),
        crate::join_records(&payloads[payloads.len() - 3..]),
    ]
}

fn tree_snapshot() -> Vec<Vec<u8>> {
    let (tree, _) = built_tree();
    vec![tree.serialize(), DataTree::new().serialize()]
}

fn applied_replica(n: usize) -> Replica {
    let mut replica = Replica::new();
    for (i, cmd) in commands().iter().take(n).enumerate() {
        replica
            .apply(Zxid::new(Epoch(1), i as u32 + 1), cmd)
            .expect("applies");
    }
    replica
}

fn replica_restore() -> Vec<Vec<u8>> {
    let full = applied_replica(12).snapshot();
    // The older layout: no owner table.
    let mut older = applied_replica(3).snapshot();
    older.truncate(older.len() - 4 - 16);
    vec![full, older, Replica::new().snapshot()]
}
