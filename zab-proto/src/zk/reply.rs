//! This crate's replies and events, written as ZooKeeper's client reads
//! them: a `ReplyHeader` (xid, zxid, err) and the body its opcode expects.

use bytes::{BufMut, BytesMut};

use super::jute::{
    put_acls, put_bool, put_buffer, put_int, put_long, put_stat, put_strings, put_ustring,
};
use super::request::{op, xid, Shape};
use crate::{ErrorCode, MultiResult, Outcome, ReadResult, Response, WatchEvent, WatchEventKind};

/// ZooKeeper's `KeeperState.SyncConnected`, the state of every event a
/// connected session receives.
const STATE_SYNC_CONNECTED: i32 = 3;

/// Writes one frame: a length prefix, then what `body` writes.
fn frame(dst: &mut BytesMut, body: impl FnOnce(&mut BytesMut)) {
    let at = dst.len();
    dst.put_i32(0);
    body(dst);
    let len = dst.len() - at - 4;
    let len = i32::try_from(len).unwrap_or(i32::MAX).to_be_bytes();
    dst[at..at + 4].copy_from_slice(&len);
}

fn header(dst: &mut BytesMut, xid: i32, zxid: i64, err: ErrorCode) {
    put_int(dst, xid);
    put_long(dst, zxid);
    put_int(dst, zk_code(err));
}

/// The code ZooKeeper's client knows for `err`: ours are ZooKeeper's, but
/// for the few this protocol adds.
///
/// A code its client does not know breaks it (Java's client cannot even
/// make an exception of one), so every code this protocol adds has one.
pub fn zk_code(err: ErrorCode) -> i32 {
    match err {
        // The reply would not fit the client's buffer: ZooKeeper's client
        // calls that a marshalling error.
        ErrorCode::FrameTooLarge => ErrorCode::MarshallingError.code(),
        // Over a limit: shed, retry later.
        ErrorCode::TooManyRequests | ErrorCode::TooManyWatches => ErrorCode::Throttled.code(),
        // No quorum: ZooKeeper's clients see the connection drop then,
        // and retry; a definite refusal may be retried too.
        ErrorCode::ServerBehind | ErrorCode::NotLeaderNoQuorum => ErrorCode::ConnectionLoss.code(),
        other => other.code(),
    }
}

/// `ConnectResponse`: the negotiated timeout, the session and its
/// password. A `timeout_ms` of 0 tells the client its session expired.
pub fn encode_connect_response(dst: &mut BytesMut, timeout_ms: i32, session: i64, password: &[u8]) {
    frame(dst, |b| {
        put_int(b, 0); // protocolVersion
        put_int(b, timeout_ms);
        put_long(b, session);
        put_buffer(b, password);
        put_bool(b, false); // readOnly: there is no read-only mode
    });
}

pub fn encode_ping_reply(dst: &mut BytesMut, zxid: i64) {
    frame(dst, |b| header(b, xid::PING, zxid, ErrorCode::Ok));
}

/// An error reply with no body.
pub fn encode_error(dst: &mut BytesMut, xid: i32, zxid: i64, err: ErrorCode) {
    frame(dst, |b| header(b, xid, zxid, err));
}

/// WhoAmI's `WhoAmIResponse`: (scheme, id) of each identity.
pub fn encode_who_am_i(dst: &mut BytesMut, xid: i32, zxid: i64, ids: &[(String, String)]) {
    frame(dst, |b| {
        header(b, xid, zxid, ErrorCode::Ok);
        put_int(b, i32::try_from(ids.len()).unwrap_or(i32::MAX));
        for (scheme, id) in ids {
            put_ustring(b, scheme);
            put_ustring(b, id);
        }
    });
}

/// A watch notification; `false` (nothing written) for an event ZooKeeper
/// has no type for (`ContinuityLost`: its clients re-read on reconnect).
pub fn encode_notification(dst: &mut BytesMut, event: &WatchEvent) -> bool {
    let kind = match event.kind {
        WatchEventKind::NodeCreated => 1,
        WatchEventKind::NodeDeleted => 2,
        WatchEventKind::NodeDataChanged => 3,
        WatchEventKind::NodeChildrenChanged => 4,
        WatchEventKind::ContinuityLost => return false,
    };
    frame(dst, |b| {
        // ZooKeeper stamps notifications with zxid -1.
        header(b, xid::NOTIFICATION, -1, ErrorCode::Ok);
        put_int(b, kind);
        put_int(b, STATE_SYNC_CONNECTED);
        put_ustring(b, &event.path);
    });
    true
}

/// The reply to a request of `shape` under `xid`.
pub fn encode_reply(dst: &mut BytesMut, xid: i32, zxid: i64, shape: &Shape, outcome: &Outcome) {
    frame(dst, |b| match outcome {
        Outcome::Err(err) => header(b, xid, zxid, *err),
        // ZooKeeper's multi error: header err 0 (its client reads the
        // results), one ErrorResult per op.
        // A failure that is no one op's (Throttled): the header says it.
        Outcome::MultiErr { err, errors } if errors.is_empty() => header(b, xid, zxid, *err),
        Outcome::MultiErr { errors, .. } => {
            header(b, xid, zxid, ErrorCode::Ok);
            for e in errors {
                multi_error(b, *e);
            }
            multi_end(b);
        }
        Outcome::Ok(Response::Exists(None)) => header(b, xid, zxid, ErrorCode::NoNode),
        Outcome::Ok(response) => {
            header(b, xid, zxid, ErrorCode::Ok);
            body(b, shape, response);
        }
    });
}

fn multi_header(b: &mut BytesMut, kind: i32, err: i32) {
    put_int(b, kind);
    put_bool(b, false);
    put_int(b, err);
}

fn multi_error(b: &mut BytesMut, err: ErrorCode) {
    multi_header(b, op::MULTI_END_OR_ERROR, zk_code(err));
    put_int(b, zk_code(err));
}

fn multi_end(b: &mut BytesMut) {
    put_int(b, op::MULTI_END_OR_ERROR);
    put_bool(b, true);
    put_int(b, -1);
}

fn body(b: &mut BytesMut, shape: &Shape, response: &Response) {
    match (shape, response) {
        (Shape::Create, Response::Create(c)) => put_ustring(b, &c.path),
        (Shape::Create2, Response::Create(c)) => {
            put_ustring(b, &c.path);
            put_stat(b, &c.stat);
        }
        (Shape::Exists, Response::Exists(Some(stat)))
        | (Shape::Stat, Response::SetData(stat) | Response::SetAcl(stat)) => put_stat(b, stat),
        (Shape::GetData, Response::GetData { data, stat }) => {
            put_buffer(b, data);
            put_stat(b, stat);
        }
        (Shape::GetAcl, Response::GetAcl { acl, stat }) => {
            put_acls(b, acl);
            put_stat(b, stat);
        }
        (Shape::GetChildren, Response::GetChildren { children, .. }) => put_strings(b, children),
        (Shape::GetChildren2, Response::GetChildren { children, stat }) => {
            put_strings(b, children);
            put_stat(b, stat);
        }
        (Shape::Sync { path }, Response::Sync { .. }) => put_ustring(b, path),
        (Shape::Multi { ops }, Response::Multi(results)) => {
            // A plain create's result is written as create (the path);
            // create2, createContainer and createTTL's as create2 (the
            // path and the stat), the types ZooKeeper's client reads.
            for (result, &kind) in results.iter().zip(ops) {
                match result {
                    MultiResult::Create(c) if kind == op::CREATE => {
                        multi_header(b, op::CREATE, 0);
                        put_ustring(b, &c.path);
                    }
                    MultiResult::Create(c) => {
                        multi_header(b, op::CREATE2, 0);
                        put_ustring(b, &c.path);
                        put_stat(b, &c.stat);
                    }
                    MultiResult::SetData(stat) => {
                        multi_header(b, op::SET_DATA, 0);
                        put_stat(b, stat);
                    }
                    MultiResult::Delete => multi_header(b, op::DELETE, 0),
                    MultiResult::Check => multi_header(b, op::CHECK, 0),
                }
            }
            multi_end(b);
        }
        (Shape::MultiRead, Response::MultiRead(results)) => {
            for result in results {
                match result {
                    ReadResult::GetData { data, stat } => {
                        multi_header(b, op::GET_DATA, 0);
                        put_buffer(b, data);
                        put_stat(b, stat);
                    }
                    ReadResult::GetChildren { children, .. } => {
                        multi_header(b, op::GET_CHILDREN, 0);
                        put_strings(b, children);
                    }
                    ReadResult::Error(e) => multi_error(b, *e),
                }
            }
            multi_end(b);
        }
        // ZooKeeper answers addWatch with an ErrorResponse (its code, 0),
        // which its Java client reads.
        (Shape::AddWatch, Response::AddWatch) => put_int(b, 0),
        (Shape::GetEphemerals, Response::GetEphemerals { paths }) => put_strings(b, paths),
        (Shape::GetAllChildrenNumber, Response::GetAllChildrenNumber { count }) => {
            put_int(b, i32::try_from(*count).unwrap_or(i32::MAX));
        }
        // Delete, check, watches, auth, close: the header says it all.
        _ => {}
    }
}
