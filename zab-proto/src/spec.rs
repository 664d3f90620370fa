//! Keeps `wire-spec.md` and the code in step.
//!
//! Each example message below is encoded, checked against a pinned hex
//! string, and rendered as an annotated dump (hex on the left, field on the
//! right) that must appear verbatim in `wire-spec.md` after a line
//! `dump: <name>`. The spec's tables must list every opcode, enum value and
//! error code. After a deliberate wire change, print the dumps with
//! `cargo test -p zab-proto print_spec_dumps -- --ignored --nocapture`.

use bytes::Bytes;

use crate::connect::{ConnectRequest, PROTOCOL_VERSION};
use crate::frame::FRAME_BYTES_DEFAULT;
use crate::request::{CreateRequest, OpCode, Request, RequestFrame};
use crate::response::{
    ConnectRefused, ConnectReply, ConnectResponse, CreateReply, Outcome, Reply, Response,
    ServerFrame, WatchEvent,
};
use crate::testkit::{frame_of, hex, xid};
use crate::types::{
    AddWatchMode, CreateMode, ErrorCode, Stat, WatchEventKind, WatcherKind, XID_NOTIFICATION,
    XID_PING,
};

const SESSION: u64 = 0x0100_0000_0000_002a;
const PASSWORD: [u8; 16] = [
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
];

/// One example: its frame, its pinned hex, and its fields as
/// (width in bytes, annotation), in order.
struct Dump {
    name: &'static str,
    frame: Bytes,
    pinned: &'static str,
    fields: Vec<(usize, String)>,
}

fn prefix(frame: &Bytes) -> (usize, String) {
    (4, format!("length prefix: {}-byte body", frame.len() - 4))
}

fn f(width: usize, text: impl Into<String>) -> (usize, String) {
    (width, text.into())
}

fn string_field(name: &str, s: &str) -> Vec<(usize, String)> {
    vec![
        f(4, format!("{name}: length {}", s.len())),
        f(s.len(), format!("  \"{s}\"")),
    ]
}

fn stat_fields(stat: &Stat) -> Vec<(usize, String)> {
    vec![
        f(8, format!("stat.czxid {:#x}", stat.czxid)),
        f(8, format!("stat.mzxid {:#x}", stat.mzxid)),
        f(8, format!("stat.ctime {}", stat.ctime)),
        f(8, format!("stat.mtime {}", stat.mtime)),
        f(4, format!("stat.version {}", stat.version)),
        f(4, format!("stat.cversion {}", stat.cversion)),
        f(4, format!("stat.aversion {}", stat.aversion)),
        f(
            8,
            format!("stat.ephemeral_owner {:#x}", stat.ephemeral_owner),
        ),
        f(4, format!("stat.data_length {}", stat.data_length)),
        f(4, format!("stat.num_children {}", stat.num_children)),
        f(8, format!("stat.pzxid {:#x}", stat.pzxid)),
    ]
}

fn reply_header(xid: i32, zxid: u64, err: ErrorCode) -> Vec<(usize, String)> {
    let err = match err {
        ErrorCode::Ok => "err 0 (Ok)".to_string(),
        other => format!("err {} ({other:?})", other.code()),
    };
    vec![
        f(4, format!("xid {xid}")),
        f(8, format!("zxid {zxid:#x} (server's last applied)")),
        f(4, err),
    ]
}

fn created_stat() -> Stat {
    Stat {
        czxid: 0x5_0000_0015,
        mzxid: 0x5_0000_0015,
        ctime: 1_700_000_000_000,
        mtime: 1_700_000_000_000,
        version: 0,
        cversion: 0,
        aversion: 0,
        ephemeral_owner: SESSION,
        data_length: 2,
        num_children: 0,
        pzxid: 0x5_0000_0015,
    }
}

fn config_stat() -> Stat {
    Stat {
        czxid: 0x3_0000_0002,
        mzxid: 0x5_0000_0011,
        ctime: 1_690_000_000_000,
        mtime: 1_700_000_000_000,
        version: 4,
        cversion: 0,
        aversion: 0,
        ephemeral_owner: 0,
        data_length: 5,
        num_children: 0,
        pzxid: 0x3_0000_0002,
    }
}

fn dumps() -> Vec<Dump> {
    let mut out = Vec::new();

    let m = ConnectRequest {
        protocol_version: PROTOCOL_VERSION,
        last_zxid_seen: 0x5_0000_0012,
        timeout_ms: 10_000,
        session_id: SESSION,
        password: PASSWORD,
        max_frame_bytes: FRAME_BYTES_DEFAULT,
    };
    let frame = frame_of(|b| m.encode(b));
    out.push(Dump {
        name: "connect_request",
        fields: vec![
            prefix(&frame),
            f(4, "magic \"ZABC\""),
            f(2, "protocol_version 1"),
            f(8, "last_zxid_seen 0x500000012"),
            f(4, "timeout_ms 10000"),
            f(8, "session_id 0x10000000000002a (resume)"),
            f(16, "password (16 bytes)"),
            f(4, "max_frame_bytes 1048576"),
        ],
        frame,
        pinned: "00 00 00 2e 5a 41 42 43 00 01 00 00 00 05 00 00 00 12 00 00 27 10 01 00 00 00 00 00 00 2a 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 00 10 00 00",
    });

    let m = ConnectReply::Accepted(ConnectResponse {
        protocol_version: PROTOCOL_VERSION,
        timeout_ms: 10_000,
        session_id: SESSION,
        password: PASSWORD,
        max_frame_bytes: FRAME_BYTES_DEFAULT,
        server_id: 2,
        last_zxid: 0x5_0000_0014,
    });
    let frame = frame_of(|b| m.encode(b));
    out.push(Dump {
        name: "connect_response",
        fields: vec![
            prefix(&frame),
            f(1, "status 1 (accepted)"),
            f(2, "protocol_version 1"),
            f(4, "timeout_ms 10000 (negotiated)"),
            f(8, "session_id 0x10000000000002a"),
            f(16, "password (16 bytes)"),
            f(4, "max_frame_bytes 1048576 (negotiated)"),
            f(8, "server_id 2"),
            f(8, "last_zxid 0x500000014"),
        ],
        frame,
        pinned: "00 00 00 33 01 00 01 00 00 27 10 01 00 00 00 00 00 00 2a 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 00 10 00 00 00 00 00 00 00 00 00 02 00 00 00 05 00 00 00 14",
    });

    let message = "behind";
    let m = ConnectReply::Refused(ConnectRefused {
        code: ErrorCode::ServerBehind,
        message: message.into(),
    });
    let frame = frame_of(|b| m.encode(b));
    let mut fields = vec![
        prefix(&frame),
        f(1, "status 2 (refused)"),
        f(4, "code -900 (ServerBehind)"),
    ];
    fields.extend(string_field("message", message));
    out.push(Dump {
        name: "connect_refused",
        fields,
        frame,
        pinned: "00 00 00 0f 02 ff ff fc 7c 00 00 00 06 62 65 68 69 6e 64",
    });

    let path = "/app/lock-";
    let m = RequestFrame::Op {
        xid: xid(1),
        request: Request::Create(CreateRequest {
            path: path.into(),
            data: Bytes::from_static(b"hi"),
            mode: CreateMode::EphemeralSequential,
            ttl_ms: 0,
            acl: None,
        }),
    };
    let frame = frame_of(|b| m.encode(b));
    let mut fields = vec![prefix(&frame), f(4, "xid 1"), f(1, "opcode 1 (Create)")];
    fields.extend(string_field("path", path));
    fields.extend([
        f(4, "data: length 2"),
        f(2, "  \"hi\""),
        f(1, "mode 3 (EphemeralSequential)"),
        f(8, "ttl_ms 0"),
    ]);
    out.push(Dump {
        name: "create_request",
        fields,
        frame,
        pinned: "00 00 00 22 00 00 00 01 01 00 00 00 0a 2f 61 70 70 2f 6c 6f 63 6b 2d 00 00 00 02 68 69 03 00 00 00 00 00 00 00 00",
    });

    let path = "/app/lock-0000000007";
    let stat = created_stat();
    let m = ServerFrame::Reply(Reply {
        xid: xid(1),
        zxid: 0x5_0000_0015,
        outcome: Outcome::Ok(Response::Create(CreateReply {
            path: path.into(),
            stat,
        })),
    });
    let frame = frame_of(|b| m.encode(b));
    let mut fields = vec![prefix(&frame)];
    fields.extend(reply_header(1, 0x5_0000_0015, ErrorCode::Ok));
    fields.extend(string_field("path", path));
    fields.extend(stat_fields(&stat));
    out.push(Dump {
        name: "create_reply",
        fields,
        frame,
        pinned: "00 00 00 6c 00 00 00 01 00 00 00 05 00 00 00 15 00 00 00 00 00 00 00 14 2f 61 70 70 2f 6c 6f 63 6b 2d 30 30 30 30 30 30 30 30 30 37 00 00 00 05 00 00 00 15 00 00 00 05 00 00 00 15 00 00 01 8b cf e5 68 00 00 00 01 8b cf e5 68 00 00 00 00 00 00 00 00 00 00 00 00 00 01 00 00 00 00 00 00 2a 00 00 00 02 00 00 00 00 00 00 00 05 00 00 00 15",
    });

    let stat = config_stat();
    let m = ServerFrame::Reply(Reply {
        xid: xid(2),
        zxid: 0x5_0000_0015,
        outcome: Outcome::Ok(Response::GetData {
            data: Bytes::from_static(b"hello"),
            stat,
        }),
    });
    let frame = frame_of(|b| m.encode(b));
    let mut fields = vec![prefix(&frame)];
    fields.extend(reply_header(2, 0x5_0000_0015, ErrorCode::Ok));
    fields.extend([f(4, "data: length 5"), f(5, "  \"hello\"")]);
    fields.extend(stat_fields(&stat));
    out.push(Dump {
        name: "get_data_reply",
        fields,
        frame,
        pinned: "00 00 00 5d 00 00 00 02 00 00 00 05 00 00 00 15 00 00 00 00 00 00 00 05 68 65 6c 6c 6f 00 00 00 03 00 00 00 02 00 00 00 05 00 00 00 11 00 00 01 89 7b d9 84 00 00 00 01 8b cf e5 68 00 00 00 00 04 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 05 00 00 00 00 00 00 00 03 00 00 00 02",
    });

    let path = "/app/config";
    let m = ServerFrame::Watch {
        zxid: 0x5_0000_0016,
        event: WatchEvent {
            kind: WatchEventKind::NodeDataChanged,
            path: path.into(),
            zxid: 0x5_0000_0016,
        },
    };
    let frame = frame_of(|b| m.encode(b));
    let mut fields = vec![prefix(&frame)];
    fields.extend(reply_header(XID_NOTIFICATION, 0x5_0000_0016, ErrorCode::Ok));
    fields.push(f(1, "kind 3 (NodeDataChanged)"));
    fields.extend(string_field("path", path));
    fields.push(f(8, "zxid 0x500000016 (of the change)"));
    out.push(Dump {
        name: "watch_event",
        fields,
        frame,
        pinned: "00 00 00 28 ff ff ff ff 00 00 00 05 00 00 00 16 00 00 00 00 03 00 00 00 0b 2f 61 70 70 2f 63 6f 6e 66 69 67 00 00 00 05 00 00 00 16",
    });

    let m = ServerFrame::Reply(Reply {
        xid: xid(3),
        zxid: 0x5_0000_0016,
        outcome: Outcome::Err(ErrorCode::NoNode),
    });
    let frame = frame_of(|b| m.encode(b));
    let mut fields = vec![prefix(&frame)];
    fields.extend(reply_header(3, 0x5_0000_0016, ErrorCode::NoNode));
    out.push(Dump {
        name: "error_reply",
        fields,
        frame,
        pinned: "00 00 00 10 00 00 00 03 00 00 00 05 00 00 00 16 ff ff ff 9b",
    });

    let m = ServerFrame::Reply(Reply {
        xid: xid(4),
        zxid: 0x5_0000_0016,
        outcome: Outcome::MultiErr {
            err: ErrorCode::BadVersion,
            errors: vec![
                ErrorCode::Ok,
                ErrorCode::BadVersion,
                ErrorCode::RuntimeInconsistency,
            ],
        },
    });
    let frame = frame_of(|b| m.encode(b));
    let mut fields = vec![prefix(&frame)];
    fields.extend(reply_header(4, 0x5_0000_0016, ErrorCode::BadVersion));
    fields.extend([
        f(4, "errors: count 3"),
        f(4, "  op 0: 0 (Ok)"),
        f(4, "  op 1: -103 (BadVersion): the failing op"),
        f(4, "  op 2: -2 (RuntimeInconsistency)"),
    ]);
    out.push(Dump {
        name: "multi_error_reply",
        fields,
        frame,
        pinned: "00 00 00 20 00 00 00 04 00 00 00 05 00 00 00 16 ff ff ff 99 00 00 00 03 00 00 00 00 ff ff ff 99 ff ff ff fe",
    });

    let frame = frame_of(|b| RequestFrame::Ping.encode(b));
    out.push(Dump {
        name: "ping_request",
        fields: vec![prefix(&frame), f(4, "xid -2"), f(1, "opcode 14 (ping)")],
        frame,
        pinned: "00 00 00 05 ff ff ff fe 0e",
    });

    let frame = frame_of(|b| {
        ServerFrame::Ping {
            zxid: 0x5_0000_0016,
        }
        .encode(b)
    });
    let mut fields = vec![prefix(&frame)];
    fields.extend(reply_header(XID_PING, 0x5_0000_0016, ErrorCode::Ok));
    out.push(Dump {
        name: "ping_reply",
        fields,
        frame,
        pinned: "00 00 00 10 ff ff ff fe 00 00 00 05 00 00 00 16 00 00 00 00",
    });

    out
}

/// Bytes per line in a dump, so the annotation column stays narrow.
const DUMP_BYTES_PER_LINE: usize = 8;

/// The dump as it appears in the spec: hex on the left, annotation on the
/// right; fields wider than a line continue on lines of their own.
fn annotate(d: &Dump) -> String {
    let total: usize = d.fields.iter().map(|(w, _)| w).sum();
    assert_eq!(
        total,
        d.frame.len(),
        "{}: fields do not cover the frame",
        d.name
    );
    let width = DUMP_BYTES_PER_LINE * 3 - 1;
    let mut out = format!("dump: {}\n", d.name);
    let mut at = 0;
    for (w, text) in &d.fields {
        for (i, chunk) in d.frame[at..at + w].chunks(DUMP_BYTES_PER_LINE).enumerate() {
            let note = if i == 0 { text.as_str() } else { "" };
            let line = format!("{:<width$}  {note}", hex(chunk));
            out.push_str(line.trim_end());
            out.push('\n');
        }
        at += w;
    }
    out
}

fn spec_text() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../wire-spec.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

#[test]
fn examples_are_pinned() {
    for d in dumps() {
        assert_eq!(hex(&d.frame), d.pinned, "{} changed on the wire", d.name);
    }
}

#[test]
fn examples_decode_back() {
    for d in dumps() {
        let body = d.frame.slice(4..);
        let ok = match d.name {
            "connect_request" => ConnectRequest::decode(body).is_ok(),
            "connect_response" | "connect_refused" => ConnectReply::decode(body).is_ok(),
            "create_request" | "ping_request" => RequestFrame::decode(body).is_ok(),
            name => {
                let op = match name {
                    "create_reply" => OpCode::Create,
                    "multi_error_reply" => OpCode::Multi,
                    _ => OpCode::GetData,
                };
                ServerFrame::decode(body, |_| Some(op)).is_ok()
            }
        };
        assert!(ok, "{} does not decode", d.name);
    }
}

#[test]
fn spec_contains_every_dump_verbatim() {
    let spec = spec_text();
    for d in dumps() {
        let block = annotate(&d);
        assert!(
            spec.contains(&block),
            "wire-spec.md lacks (or has a stale) dump `{}`; it should read:\n{block}",
            d.name
        );
    }
}

#[test]
fn spec_tables_list_every_value() {
    let spec = spec_text();
    let mut missing = Vec::new();
    let mut want = |row: String| {
        if !spec.contains(&row) {
            missing.push(row);
        }
    };
    for op in OpCode::ALL {
        want(format!("| {} | `{op:?}` |", op.to_u8()));
    }
    want(format!("| {} | ping |", crate::request::PING_OPCODE));
    for code in ErrorCode::ALL {
        want(format!("| {} | `{code:?}` |", code.code()));
    }
    for m in CreateMode::ALL {
        want(format!("| {} | `{m:?}` |", m.to_u8()));
    }
    for k in WatchEventKind::ALL {
        want(format!("| {} | `{k:?}` |", k.to_u8()));
    }
    for m in AddWatchMode::ALL {
        want(format!("| {} | `{m:?}` |", m.to_u8()));
    }
    for k in WatcherKind::ALL {
        want(format!("| {} | `{k:?}` |", k.to_u8()));
    }
    assert!(
        missing.is_empty(),
        "wire-spec.md tables lack rows:\n{}",
        missing.join("\n")
    );
}

#[test]
#[ignore = "prints the annotated dumps for pasting into wire-spec.md"]
fn print_spec_dumps() {
    for d in dumps() {
        println!("```text\n{}```\n", annotate(&d));
    }
}
