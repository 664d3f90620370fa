//! Server-to-client frames: the handshake answer ([`ConnectReply`]) and,
//! after it, [`ServerFrame`]s: replies, ping replies and watch notifications.
//!
//! ```text
//! server frame body:  xid i32 | zxid u64 | err i32 | rest
//!   xid >= 0   reply:         rest = reply body if err == 0 (for Multi: always)
//!   xid == -2  ping reply:    rest empty, err 0
//!   xid == -1  notification:  rest = WatchEvent, err 0
//! ```
//!
//! `zxid` is the last zxid the server had applied when it sent the frame.
//! A reply body's layout depends on the request's opcode, which the frame
//! does not repeat: decoding needs it ([`Response::decode`],
//! [`ServerFrame::decode`]).

use std::fmt;

use bytes::{BufMut, Bytes};

use crate::acl::{read_acls, write_acls, Acl};
use crate::connect::PASSWORD_BYTES;
use crate::error::DecodeError;
use crate::request::OpCode;
use crate::types::{ErrorCode, Stat, WatchEventKind, Xid, XID_NOTIFICATION, XID_PING};
use crate::wire::{self, Body, Reader, Sink};

/// The reply to a create: the name actually created and its metadata.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CreateReply {
    /// The path created, with the sequence suffix for sequential modes.
    pub path: String,
    pub stat: Stat,
}

/// One op's result in a successful multi reply.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum MultiResult {
    Create(CreateReply),
    Delete,
    /// The node's metadata after the set.
    SetData(Stat),
    Check,
}

impl MultiResult {
    /// The opcode of the op this is the result of.
    pub fn opcode(&self) -> OpCode {
        match self {
            MultiResult::Create(_) => OpCode::Create,
            MultiResult::Delete => OpCode::Delete,
            MultiResult::SetData(_) => OpCode::SetData,
            MultiResult::Check => OpCode::Check,
        }
    }
}

/// One result of a [`Request::MultiRead`](crate::Request::MultiRead), for
/// the op in the same place.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ReadResult {
    GetData {
        data: Bytes,
        stat: Stat,
    },
    /// Children's names in ascending bytewise order.
    GetChildren {
        children: Vec<String>,
        stat: Stat,
    },
    /// The op failed (`NoNode`, `NoAuth`, `BadArguments`); the others
    /// still ran. Never [`ErrorCode::Ok`].
    Error(ErrorCode),
}

/// The body of a successful reply (`err == 0`), one variant per [`OpCode`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Response {
    Create(CreateReply),
    Delete,
    /// `None` if the node does not exist, which is not an error.
    Exists(Option<Stat>),
    GetData {
        data: Bytes,
        stat: Stat,
    },
    /// The node's metadata after the set.
    SetData(Stat),
    /// Children's names (not paths), in no particular order.
    GetChildren {
        children: Vec<String>,
        stat: Stat,
    },
    Check,
    /// One page of children's names, in bytewise order, the parent's stat,
    /// and whether more names follow the last one.
    GetChildrenPage {
        children: Vec<String>,
        stat: Stat,
        more: bool,
    },
    /// One result per op, in op order.
    Multi(Vec<MultiResult>),
    /// The zxid the server had applied when it answered: every write
    /// committed before the sync was sent is at or below it.
    Sync {
        zxid: u64,
    },
    AddWatch,
    RemoveWatches,
    CheckWatches,
    SetWatches,
    CloseSession,
    /// The node's ACL (digest ids shown as `user:x` to a caller without
    /// ADMIN on the node) and its stat.
    GetAcl {
        acl: Vec<Acl>,
        stat: Stat,
    },
    /// The node's metadata after the change (`aversion` moved by one).
    SetAcl(Stat),
    AddAuth,
    /// Ephemeral paths, sorted.
    GetEphemerals {
        paths: Vec<String>,
    },
    GetAllChildrenNumber {
        count: u64,
    },
    MultiRead(Vec<ReadResult>),
}

impl Response {
    /// The opcode of the request this answers (a CreateAcl is answered
    /// with a Create reply, so `Create` for both).
    pub fn opcode(&self) -> OpCode {
        match self {
            Response::Create(_) => OpCode::Create,
            Response::Delete => OpCode::Delete,
            Response::Exists(_) => OpCode::Exists,
            Response::GetData { .. } => OpCode::GetData,
            Response::SetData(_) => OpCode::SetData,
            Response::GetChildren { .. } => OpCode::GetChildren,
            Response::GetChildrenPage { .. } => OpCode::GetChildrenPage,
            Response::Check => OpCode::Check,
            Response::Multi(_) => OpCode::Multi,
            Response::Sync { .. } => OpCode::Sync,
            Response::AddWatch => OpCode::AddWatch,
            Response::RemoveWatches => OpCode::RemoveWatches,
            Response::CheckWatches => OpCode::CheckWatches,
            Response::SetWatches => OpCode::SetWatches,
            Response::CloseSession => OpCode::CloseSession,
            Response::GetAcl { .. } => OpCode::GetAcl,
            Response::SetAcl(_) => OpCode::SetAcl,
            Response::AddAuth => OpCode::AddAuth,
            Response::GetEphemerals { .. } => OpCode::GetEphemerals,
            Response::GetAllChildrenNumber { .. } => OpCode::GetAllChildrenNumber,
            Response::MultiRead(_) => OpCode::MultiRead,
        }
    }

    /// Decodes the body of a successful reply (what follows a reply header
    /// with `err == 0`) to a request with `opcode`. The whole of `body` must
    /// be used. Bytes fields are zero-copy slices of `body`.
    pub fn decode(opcode: OpCode, body: Bytes) -> Result<Response, DecodeError> {
        let mut r = Reader::new(body, reply_name(opcode));
        let response = read_response(opcode, &mut r)?;
        r.finish()?;
        Ok(response)
    }
}

/// A watch notification's body.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct WatchEvent {
    pub kind: WatchEventKind,
    /// The node the event is about (for a recursive watch, the node that
    /// changed, not the watched ancestor).
    pub path: String,
    /// The zxid of the change (for `ContinuityLost`: the zxid from which
    /// events are complete again).
    pub zxid: u64,
}

/// How a request went.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Outcome {
    /// `err == 0`: the request succeeded; its reply body.
    Ok(Response),
    /// `err != 0` on any request but a multi: no body follows. Never
    /// [`ErrorCode::Ok`].
    Err(ErrorCode),
    /// `err != 0` on a multi: nothing was applied, and the body still has
    /// one code per op: [`ErrorCode::Ok`] for the ops before the failing
    /// one, the failing op's own error (equal to `err`), and
    /// [`ErrorCode::RuntimeInconsistency`] for the ops after it. The list is
    /// empty when the failure was not one op's (e.g. `Throttled`).
    MultiErr {
        err: ErrorCode,
        errors: Vec<ErrorCode>,
    },
}

/// The answer to one request.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Reply {
    /// The request's xid.
    pub xid: Xid,
    /// The last zxid the server had applied when it replied.
    pub zxid: u64,
    pub outcome: Outcome,
}

/// One server-to-client frame after the handshake.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ServerFrame {
    /// `xid >= 0`: the answer to the oldest outstanding request.
    Reply(Reply),
    /// `xid == -2`: the answer to a ping. `zxid` is the server's last
    /// applied zxid.
    Ping { zxid: u64 },
    /// `xid == -1`: a watch fired. `zxid` is the server's last applied zxid
    /// (at least `event.zxid`).
    Watch { zxid: u64, event: WatchEvent },
}

impl ServerFrame {
    /// Appends the frame (length prefix and body) to `dst`.
    ///
    /// # Panics
    ///
    /// If the body would exceed `u32::MAX` bytes. Check [`Self::body_len`]
    /// against the negotiated frame limit first (and reply `FrameTooLarge`
    /// instead).
    pub fn encode(&self, dst: &mut impl BufMut) {
        wire::encode_frame(self, dst);
    }

    /// The body length: the value of the frame's length prefix.
    pub fn body_len(&self) -> usize {
        wire::body_len(self)
    }

    /// Decodes one frame's body (as returned by
    /// [`decode_frame`](crate::decode_frame)).
    ///
    /// `opcode_of` maps a reply's xid to the opcode of the request it
    /// answers, which the reply body's layout depends on. Since replies come
    /// back in request order, that is the client's oldest outstanding
    /// request; return `None` if the xid is not its xid
    /// ([`DecodeError::UnexpectedXid`]). It is not called for pings and
    /// notifications.
    pub fn decode(
        body: Bytes,
        opcode_of: impl FnOnce(Xid) -> Option<OpCode>,
    ) -> Result<ServerFrame, DecodeError> {
        let mut r = Reader::new(body, "reply header");
        let xid = r.i32("xid")?;
        let zxid = r.u64("zxid")?;
        let err = r.error_code("err")?;
        let frame = match xid {
            XID_PING => {
                r.set_message("ping reply");
                no_error("ping reply", err)?;
                ServerFrame::Ping { zxid }
            }
            XID_NOTIFICATION => {
                r.set_message("watch notification");
                no_error("watch notification", err)?;
                ServerFrame::Watch {
                    zxid,
                    event: WatchEvent {
                        kind: r.enum_u8("kind", WatchEventKind::from_u8)?,
                        path: r.string("path")?,
                        zxid: r.u64("event zxid")?,
                    },
                }
            }
            _ => {
                let unexpected = DecodeError::UnexpectedXid { xid };
                let x = Xid::new(xid).ok_or(unexpected.clone())?;
                let op = opcode_of(x).ok_or(unexpected)?;
                let outcome = if err.is_ok() {
                    r.set_message(reply_name(op));
                    Outcome::Ok(read_response(op, &mut r)?)
                } else if op == OpCode::Multi {
                    r.set_message("failed Multi reply");
                    Outcome::MultiErr {
                        err,
                        errors: read_multi_errors(&mut r)?,
                    }
                } else {
                    r.set_message("error reply");
                    Outcome::Err(err)
                };
                ServerFrame::Reply(Reply {
                    xid: x,
                    zxid,
                    outcome,
                })
            }
        };
        r.finish()?;
        Ok(frame)
    }
}

fn no_error(message: &'static str, err: ErrorCode) -> Result<(), DecodeError> {
    if err.is_ok() {
        Ok(())
    } else {
        Err(DecodeError::BadErr { message, err })
    }
}

impl Body for ServerFrame {
    fn write<S: Sink>(&self, s: &mut S) {
        match self {
            ServerFrame::Reply(reply) => {
                s.i32(reply.xid.get());
                s.u64(reply.zxid);
                match &reply.outcome {
                    Outcome::Ok(response) => {
                        s.error_code(ErrorCode::Ok);
                        write_response(response, s);
                    }
                    Outcome::Err(err) => s.error_code(*err),
                    Outcome::MultiErr { err, errors } => {
                        s.error_code(*err);
                        s.count(errors.len());
                        for e in errors {
                            s.error_code(*e);
                        }
                    }
                }
            }
            ServerFrame::Ping { zxid } => {
                s.i32(XID_PING);
                s.u64(*zxid);
                s.error_code(ErrorCode::Ok);
            }
            ServerFrame::Watch { zxid, event } => {
                s.i32(XID_NOTIFICATION);
                s.u64(*zxid);
                s.error_code(ErrorCode::Ok);
                s.u8(event.kind.to_u8());
                s.str(&event.path);
                s.u64(event.zxid);
            }
        }
    }
}

fn reply_name(op: OpCode) -> &'static str {
    match op {
        OpCode::Create => "Create reply",
        OpCode::Delete => "Delete reply",
        OpCode::Exists => "Exists reply",
        OpCode::GetData => "GetData reply",
        OpCode::SetData => "SetData reply",
        OpCode::GetChildren => "GetChildren reply",
        OpCode::Check => "Check reply",
        OpCode::Multi => "Multi reply",
        OpCode::Sync => "Sync reply",
        OpCode::AddWatch => "AddWatch reply",
        OpCode::RemoveWatches => "RemoveWatches reply",
        OpCode::CheckWatches => "CheckWatches reply",
        OpCode::SetWatches => "SetWatches reply",
        OpCode::CloseSession => "CloseSession reply",
        OpCode::GetChildrenPage => "GetChildrenPage reply",
        OpCode::CreateAcl => "CreateAcl reply",
        OpCode::GetAcl => "GetAcl reply",
        OpCode::SetAcl => "SetAcl reply",
        OpCode::AddAuth => "AddAuth reply",
        OpCode::GetEphemerals => "GetEphemerals reply",
        OpCode::GetAllChildrenNumber => "GetAllChildrenNumber reply",
        OpCode::MultiRead => "MultiRead reply",
    }
}

fn write_response<S: Sink>(response: &Response, s: &mut S) {
    match response {
        Response::Create(c) => write_create_reply(c, s),
        Response::Exists(stat) => {
            s.bool(stat.is_some());
            if let Some(stat) = stat {
                stat.write(s);
            }
        }
        Response::GetData { data, stat } => {
            s.bytes(data);
            stat.write(s);
        }
        Response::SetData(stat) => stat.write(s),
        Response::GetChildren { children, stat } => {
            s.strs(children);
            stat.write(s);
        }
        Response::GetChildrenPage {
            children,
            stat,
            more,
        } => {
            s.strs(children);
            stat.write(s);
            s.bool(*more);
        }
        Response::Multi(results) => write_multi_results(results, s),
        Response::Sync { zxid } => s.u64(*zxid),
        Response::GetAcl { acl, stat } => {
            write_acls(acl, s);
            stat.write(s);
        }
        Response::SetAcl(stat) => stat.write(s),
        Response::GetEphemerals { paths } => s.strs(paths),
        Response::GetAllChildrenNumber { count } => s.u64(*count),
        Response::MultiRead(results) => write_read_results(results, s),
        Response::Delete
        | Response::AddAuth
        | Response::Check
        | Response::AddWatch
        | Response::RemoveWatches
        | Response::CheckWatches
        | Response::SetWatches
        | Response::CloseSession => {}
    }
}

/// Each result: its error code i32; if 0, the op's opcode u8 and its
/// reply body.
fn write_read_results<S: Sink>(results: &[ReadResult], s: &mut S) {
    s.count(results.len());
    for result in results {
        match result {
            ReadResult::GetData { data, stat } => {
                s.error_code(ErrorCode::Ok);
                s.u8(OpCode::GetData.to_u8());
                s.bytes(data);
                stat.write(s);
            }
            ReadResult::GetChildren { children, stat } => {
                s.error_code(ErrorCode::Ok);
                s.u8(OpCode::GetChildren.to_u8());
                s.strs(children);
                stat.write(s);
            }
            ReadResult::Error(code) => s.error_code(*code),
        }
    }
}

fn read_read_results(r: &mut Reader) -> Result<Vec<ReadResult>, DecodeError> {
    // The smallest result is an error code alone.
    let n = r.count("results", 4)?;
    let mut results = Vec::with_capacity(n);
    for _ in 0..n {
        let err = r.error_code("results.err")?;
        if err != ErrorCode::Ok {
            results.push(ReadResult::Error(err));
            continue;
        }
        let opcode = r.u8("results.opcode")?;
        results.push(match OpCode::from_u8(opcode) {
            Some(OpCode::GetData) => ReadResult::GetData {
                data: r.bytes("results.data")?,
                stat: Stat::read(r)?,
            },
            Some(OpCode::GetChildren) => ReadResult::GetChildren {
                children: r.strings("results.children")?,
                stat: Stat::read(r)?,
            },
            _ => return Err(r.bad_value("results.opcode", opcode)),
        });
    }
    Ok(results)
}

fn write_create_reply<S: Sink>(c: &CreateReply, s: &mut S) {
    s.str(&c.path);
    c.stat.write(s);
}

/// Each result: the op's opcode u8, then its result body.
fn write_multi_results<S: Sink>(results: &[MultiResult], s: &mut S) {
    s.count(results.len());
    for result in results {
        s.u8(result.opcode().to_u8());
        match result {
            MultiResult::Create(c) => write_create_reply(c, s),
            MultiResult::SetData(stat) => stat.write(s),
            MultiResult::Delete | MultiResult::Check => {}
        }
    }
}

fn read_response(op: OpCode, r: &mut Reader) -> Result<Response, DecodeError> {
    Ok(match op {
        OpCode::Create | OpCode::CreateAcl => Response::Create(read_create_reply(r)?),
        OpCode::Delete => Response::Delete,
        OpCode::Exists => Response::Exists(if r.bool("stat present")? {
            Some(Stat::read(r)?)
        } else {
            None
        }),
        OpCode::GetData => Response::GetData {
            data: r.bytes("data")?,
            stat: Stat::read(r)?,
        },
        OpCode::SetData => Response::SetData(Stat::read(r)?),
        OpCode::GetChildren => Response::GetChildren {
            children: r.strings("children")?,
            stat: Stat::read(r)?,
        },
        OpCode::GetChildrenPage => Response::GetChildrenPage {
            children: r.strings("children")?,
            stat: Stat::read(r)?,
            more: r.bool("more")?,
        },
        OpCode::Check => Response::Check,
        OpCode::Multi => Response::Multi(read_multi_results(r)?),
        OpCode::Sync => Response::Sync {
            zxid: r.u64("zxid")?,
        },
        OpCode::AddWatch => Response::AddWatch,
        OpCode::RemoveWatches => Response::RemoveWatches,
        OpCode::CheckWatches => Response::CheckWatches,
        OpCode::SetWatches => Response::SetWatches,
        OpCode::CloseSession => Response::CloseSession,
        OpCode::GetAcl => Response::GetAcl {
            acl: read_acls(r)?,
            stat: Stat::read(r)?,
        },
        OpCode::SetAcl => Response::SetAcl(Stat::read(r)?),
        OpCode::AddAuth => Response::AddAuth,
        OpCode::GetEphemerals => Response::GetEphemerals {
            paths: r.strings("paths")?,
        },
        OpCode::GetAllChildrenNumber => Response::GetAllChildrenNumber {
            count: r.u64("count")?,
        },
        OpCode::MultiRead => Response::MultiRead(read_read_results(r)?),
    })
}

fn read_create_reply(r: &mut Reader) -> Result<CreateReply, DecodeError> {
    Ok(CreateReply {
        path: r.string("path")?,
        stat: Stat::read(r)?,
    })
}

fn read_multi_results(r: &mut Reader) -> Result<Vec<MultiResult>, DecodeError> {
    // The smallest result is a Delete or Check: its opcode alone.
    let n = r.count("results", 1)?;
    let mut results = Vec::with_capacity(n);
    for _ in 0..n {
        let opcode = r.u8("results.opcode")?;
        let op = OpCode::from_u8(opcode).ok_or(DecodeError::UnknownOpCode { opcode })?;
        results.push(match op {
            OpCode::Create => MultiResult::Create(read_create_reply(r)?),
            OpCode::Delete => MultiResult::Delete,
            OpCode::SetData => MultiResult::SetData(Stat::read(r)?),
            OpCode::Check => MultiResult::Check,
            other => return Err(DecodeError::NotAMultiOp { opcode: other }),
        });
    }
    Ok(results)
}

fn read_multi_errors(r: &mut Reader) -> Result<Vec<ErrorCode>, DecodeError> {
    let n = r.count("errors", 4)?;
    let mut errors = Vec::with_capacity(n);
    for _ in 0..n {
        errors.push(r.error_code("errors")?);
    }
    Ok(errors)
}

// ---------------------------------------------------------------------------
// Handshake answer
// ---------------------------------------------------------------------------

/// The server accepted the handshake: the session and the negotiated terms.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectResponse {
    /// The client's protocol version, which the server speaks.
    pub protocol_version: u16,
    /// The negotiated session timeout: the client's request clamped to the
    /// server's configured bounds (`min_session_timeout_ms`,
    /// `max_session_timeout_ms`).
    pub timeout_ms: u32,
    /// The session's id (new, or the one the client resumed).
    pub session_id: u64,
    /// The session's password, needed to resume it on another connection.
    pub password: [u8; PASSWORD_BYTES],
    /// The frame limit for this connection, both directions: the smaller of
    /// the client's and the server's.
    pub max_frame_bytes: u32,
    /// The id of the server that accepted the connection.
    pub server_id: u64,
    /// The last zxid the server had applied (at least the client's
    /// `last_zxid_seen`).
    pub last_zxid: u64,
}

impl fmt::Debug for ConnectResponse {
    /// The password is a session credential: it is never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectResponse")
            .field("protocol_version", &self.protocol_version)
            .field("timeout_ms", &self.timeout_ms)
            .field("session_id", &format_args!("{:#x}", self.session_id))
            .field("password", &"<redacted>")
            .field("max_frame_bytes", &self.max_frame_bytes)
            .field("server_id", &self.server_id)
            .field("last_zxid", &format_args!("{:#x}", self.last_zxid))
            .finish()
    }
}

/// The server refused the handshake and will close the connection.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ConnectRefused {
    /// Why: e.g. `ServerBehind`, `SessionExpired`, `AuthFailed`,
    /// `BadArguments`, `NotLeaderNoQuorum`. Never [`ErrorCode::Ok`].
    pub code: ErrorCode,
    /// A sentence for the operator (at most
    /// [`REFUSED_MESSAGE_BYTES_MAX`] bytes).
    pub message: String,
}

/// The longest refusal message a server sends, so the refusal fits in the
/// handshake frame limit.
pub const REFUSED_MESSAGE_BYTES_MAX: usize = 1024;

/// The server's answer to a [`ConnectRequest`](crate::ConnectRequest).
///
/// ```text
/// body: status u8 (1 = accepted, 2 = refused), then
///   accepted: protocol_version u16 | timeout_ms u32 | session_id u64 |
///             password [16] | max_frame_bytes u32 | server_id u64 | last_zxid u64
///   refused:  code i32 | message string
/// ```
///
/// The status byte and the refused layout are the same in every protocol
/// version, so a client of any version can read why it was refused.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ConnectReply {
    Accepted(ConnectResponse),
    Refused(ConnectRefused),
}

const STATUS_ACCEPTED: u8 = 1;
const STATUS_REFUSED: u8 = 2;

impl ConnectReply {
    /// Appends the frame (length prefix and body) to `dst`.
    pub fn encode(&self, dst: &mut impl BufMut) {
        wire::encode_frame(self, dst);
    }

    /// The body length: the value of the frame's length prefix.
    pub fn body_len(&self) -> usize {
        wire::body_len(self)
    }

    /// Decodes the handshake answer's body.
    pub fn decode(body: Bytes) -> Result<ConnectReply, DecodeError> {
        let mut r = Reader::new(body, "ConnectReply");
        let reply = match r.u8("status")? {
            STATUS_ACCEPTED => {
                r.set_message("ConnectResponse");
                ConnectReply::Accepted(ConnectResponse {
                    protocol_version: r.u16("protocol_version")?,
                    timeout_ms: r.u32("timeout_ms")?,
                    session_id: r.u64("session_id")?,
                    password: r.raw("password")?,
                    max_frame_bytes: r.u32("max_frame_bytes")?,
                    server_id: r.u64("server_id")?,
                    last_zxid: r.u64("last_zxid")?,
                })
            }
            STATUS_REFUSED => {
                r.set_message("ConnectRefused");
                let code = r.error_code("code")?;
                if code.is_ok() {
                    return Err(DecodeError::BadErr {
                        message: "ConnectRefused",
                        err: code,
                    });
                }
                ConnectReply::Refused(ConnectRefused {
                    code,
                    message: r.string("message")?,
                })
            }
            other => return Err(r.bad_value("status", other)),
        };
        r.finish()?;
        Ok(reply)
    }
}

impl Body for ConnectReply {
    fn write<S: Sink>(&self, s: &mut S) {
        match self {
            ConnectReply::Accepted(a) => {
                s.u8(STATUS_ACCEPTED);
                s.u16(a.protocol_version);
                s.u32(a.timeout_ms);
                s.u64(a.session_id);
                s.raw(&a.password);
                s.u32(a.max_frame_bytes);
                s.u64(a.server_id);
                s.u64(a.last_zxid);
            }
            ConnectReply::Refused(refused) => {
                s.u8(STATUS_REFUSED);
                s.error_code(refused.code);
                s.str(&refused.message);
            }
        }
    }
}

#[cfg(test)]
mod tests;
