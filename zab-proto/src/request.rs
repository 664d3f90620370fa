//! Client-to-server frames after the handshake: [`RequestFrame`] (a ping,
//! or a [`Request`] with its [`Xid`]), and the [`OpCode`] that names each
//! operation.
//!
//! ```text
//! request frame body:  xid i32 | opcode u8 | op body (per opcode)
//! ping frame body:     xid i32 = -2 | opcode u8 = 14
//! ```

use bytes::{BufMut, Bytes};

use crate::acl::{read_acls, write_acls, Acl};
use crate::error::DecodeError;
use crate::types::{AddWatchMode, CreateMode, WatcherKind, Xid, XID_PING};
use crate::wire::{self, wire_enum, Body, Reader, Sink};

wire_enum! {
    /// Names an operation in a request header, in a multi's ops and in a
    /// multi reply's results. Never renumbered or reused; 0 is reserved so a
    /// zero-filled buffer is never a valid request.
    pub enum OpCode {
        Create = 1,
        Delete = 2,
        Exists = 3,
        GetData = 4,
        SetData = 5,
        GetChildren = 6,
        Check = 7,
        Multi = 8,
        Sync = 9,
        AddWatch = 10,
        RemoveWatches = 11,
        SetWatches = 12,
        CloseSession = 13,
        GetChildrenPage = 15,
        /// A Create with an explicit ACL (a plain Create gives the node
        /// [`Acl::open_unsafe`]).
        CreateAcl = 16,
        GetAcl = 17,
        SetAcl = 18,
        AddAuth = 19,
        GetEphemerals = 20,
        GetAllChildrenNumber = 21,
        MultiRead = 22,
        /// Whether the session holds a matching watch, without removing it
        /// (ZooKeeper's checkWatches, which its Java client sends to
        /// remove one of several local watchers on a path).
        CheckWatches = 23,
    }
}

/// The opcode of a ping (always with xid [`XID_PING`]). Not an [`OpCode`]:
/// a ping is not an operation and has no [`Request`] or
/// [`Response`](crate::Response).
pub const PING_OPCODE: u8 = 14;

impl OpCode {
    /// The opcode whose reply layout answers this one: a CreateAcl is
    /// answered as a Create ([`Response::opcode`](crate::Response::opcode)
    /// of its reply is `Create`); every other opcode answers itself.
    pub const fn reply(self) -> OpCode {
        match self {
            OpCode::CreateAcl => OpCode::Create,
            other => other,
        }
    }

    /// Whether the op may appear inside a multi.
    pub const fn is_multi_op(self) -> bool {
        matches!(
            self,
            OpCode::Create | OpCode::CreateAcl | OpCode::Delete | OpCode::SetData | OpCode::Check
        )
    }
}

/// Creates a node. The reply names the node actually created (with its
/// sequence suffix for sequential modes).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CreateRequest {
    pub path: String,
    pub data: Bytes,
    pub mode: CreateMode,
    /// Time to live for the TTL modes (must be positive); 0 for the others.
    /// A mismatch is answered with `BadArguments`, not a decode error.
    pub ttl_ms: u64,
    /// The node's ACL; `None` is [`Acl::open_unsafe`]. Sent as opcode
    /// [`OpCode::CreateAcl`] when present, [`OpCode::Create`] when not, so
    /// every create has one encoding.
    pub acl: Option<Vec<Acl>>,
}

impl CreateRequest {
    /// The opcode this create is sent as.
    pub fn opcode(&self) -> OpCode {
        match self.acl {
            Some(_) => OpCode::CreateAcl,
            None => OpCode::Create,
        }
    }
}

/// Deletes a node if its version matches (`-1`, [`ANY_VERSION`], matches
/// any).
///
/// [`ANY_VERSION`]: crate::ANY_VERSION
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DeleteRequest {
    pub path: String,
    pub version: i32,
}

/// Replaces a node's data if its version matches (`-1` matches any).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SetDataRequest {
    pub path: String,
    pub data: Bytes,
    pub version: i32,
}

/// Fails unless the node exists with this version (`-1`: only exists).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CheckRequest {
    pub path: String,
    pub version: i32,
}

/// Re-registers watches after a reconnect. The server arms them and fires
/// an event for every change after `relative_zxid` that one of them would
/// have reported (or `ContinuityLost` where it cannot tell).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct SetWatches {
    /// The last zxid the client saw on its previous connection.
    pub relative_zxid: u64,
    /// Paths with a one-shot watch armed by get_data.
    pub data: Vec<String>,
    /// Paths with a one-shot watch armed by exists.
    pub exists: Vec<String>,
    /// Paths with a one-shot watch armed by get_children.
    pub children: Vec<String>,
    /// Paths with a persistent watch.
    pub persistent: Vec<String>,
    /// Paths with a persistent recursive watch.
    pub persistent_recursive: Vec<String>,
}

/// An operation inside a multi.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum MultiOp {
    Create(CreateRequest),
    Delete(DeleteRequest),
    SetData(SetDataRequest),
    Check(CheckRequest),
}

impl MultiOp {
    pub fn opcode(&self) -> OpCode {
        match self {
            MultiOp::Create(c) => c.opcode(),
            MultiOp::Delete(_) => OpCode::Delete,
            MultiOp::SetData(_) => OpCode::SetData,
            MultiOp::Check(_) => OpCode::Check,
        }
    }
}

/// A read inside a [`Request::MultiRead`]: no watch, answered from the same
/// state as every other read in it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ReadOp {
    GetData { path: String },
    GetChildren { path: String },
}

impl ReadOp {
    pub fn opcode(&self) -> OpCode {
        match self {
            ReadOp::GetData { .. } => OpCode::GetData,
            ReadOp::GetChildren { .. } => OpCode::GetChildren,
        }
    }

    pub fn path(&self) -> &str {
        match self {
            ReadOp::GetData { path } | ReadOp::GetChildren { path } => path,
        }
    }
}

/// An operation: the body after the request header. Paths are not checked
/// here: an invalid path is the server's `BadArguments` reply, not a
/// malformed frame.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Request {
    Create(CreateRequest),
    Delete(DeleteRequest),
    /// `watch` arms a one-shot watch for created, deleted and data-changed,
    /// whether or not the node exists.
    Exists {
        path: String,
        watch: bool,
    },
    /// `watch` arms a one-shot watch for deleted and data-changed.
    GetData {
        path: String,
        watch: bool,
    },
    SetData(SetDataRequest),
    /// `watch` arms a one-shot watch for deleted and children-changed.
    GetChildren {
        path: String,
        watch: bool,
    },
    Check(CheckRequest),
    /// All ops or none, at one zxid; later ops see earlier ops' effects.
    Multi(Vec<MultiOp>),
    /// Linearizable: once answered, reads on this connection see every
    /// write committed before the sync was sent.
    Sync {
        path: String,
    },
    AddWatch {
        path: String,
        mode: AddWatchMode,
    },
    RemoveWatches {
        path: String,
        kind: WatcherKind,
    },
    /// `NoWatcher` unless the session holds a watch of `kind` at `path`;
    /// removes nothing.
    CheckWatches {
        path: String,
        kind: WatcherKind,
    },
    SetWatches(SetWatches),
    /// Ends the session (its ephemeral nodes go at one zxid); the server
    /// replies, then closes the connection.
    CloseSession,
    /// One page of a node's children, in bytewise order, starting after the
    /// name `after` ("" for the first page): at most `max` names (0: no
    /// count limit), and never more than fit the connection's frame. The
    /// reply says whether more follow; the last name is the next cursor.
    /// `watch` arms the same watch as GetChildren's.
    GetChildrenPage {
        path: String,
        after: String,
        max: u32,
        watch: bool,
    },
    /// The node's ACL and stat. Needs READ or ADMIN on the node; digest
    /// ids are shown only to a caller with ADMIN.
    GetAcl {
        path: String,
    },
    /// Replaces the node's ACL if its `aversion` matches `version` (-1:
    /// any). Needs ADMIN on the node.
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    /// Adds an identity to this connection: scheme `digest` with
    /// `user:password` as `auth`. Connections start with only their
    /// address (`ip`) and, over TLS, their certificate (`x509`); a client
    /// sends its AddAuths again after every reconnect.
    AddAuth {
        scheme: String,
        auth: Bytes,
    },
    /// The paths of this session's ephemeral nodes that start with
    /// `prefix` (a string prefix: `/app/n` matches `/app/node1`), sorted.
    GetEphemerals {
        prefix: String,
    },
    /// How many nodes lie below `path` (its children, theirs, and so on;
    /// not the node itself). Needs READ on the node.
    GetAllChildrenNumber {
        path: String,
    },
    /// Several reads answered from one state of the tree: a result each,
    /// in order, each its own success or error.
    MultiRead(Vec<ReadOp>),
}

impl Request {
    /// Appends the request as a server logs it: its opcode, then its body
    /// exactly as in a frame, without the frame's length and xid.
    pub fn write_record(&self, dst: &mut impl BufMut) {
        let mut w = wire::Writer(dst);
        w.u8(self.opcode().to_u8());
        write_request(self, &mut w);
    }

    /// Reads what [`Request::write_record`] wrote, leaving `r` after it.
    pub fn read_record(r: &mut Reader) -> Result<Request, DecodeError> {
        let opcode = r.u8("opcode")?;
        let op = OpCode::from_u8(opcode).ok_or(DecodeError::UnknownOpCode { opcode })?;
        r.set_message(request_name(op));
        read_request(op, r)
    }

    pub fn opcode(&self) -> OpCode {
        match self {
            Request::Create(c) => c.opcode(),
            Request::Delete(_) => OpCode::Delete,
            Request::Exists { .. } => OpCode::Exists,
            Request::GetData { .. } => OpCode::GetData,
            Request::SetData(_) => OpCode::SetData,
            Request::GetChildren { .. } => OpCode::GetChildren,
            Request::GetChildrenPage { .. } => OpCode::GetChildrenPage,
            Request::Check(_) => OpCode::Check,
            Request::Multi(_) => OpCode::Multi,
            Request::Sync { .. } => OpCode::Sync,
            Request::AddWatch { .. } => OpCode::AddWatch,
            Request::RemoveWatches { .. } => OpCode::RemoveWatches,
            Request::CheckWatches { .. } => OpCode::CheckWatches,
            Request::SetWatches(_) => OpCode::SetWatches,
            Request::CloseSession => OpCode::CloseSession,
            Request::GetAcl { .. } => OpCode::GetAcl,
            Request::SetAcl { .. } => OpCode::SetAcl,
            Request::AddAuth { .. } => OpCode::AddAuth,
            Request::GetEphemerals { .. } => OpCode::GetEphemerals,
            Request::GetAllChildrenNumber { .. } => OpCode::GetAllChildrenNumber,
            Request::MultiRead(_) => OpCode::MultiRead,
        }
    }
}

/// One client-to-server frame after the handshake.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum RequestFrame {
    /// Keeps the session alive; sent when the client has sent nothing for a
    /// third of the session timeout. Answered in order with the replies.
    Ping,
    /// An operation; its reply carries the same xid.
    Op { xid: Xid, request: Request },
}

impl RequestFrame {
    /// Appends the frame (length prefix and body) to `dst`.
    ///
    /// # Panics
    ///
    /// If the body would exceed `u32::MAX` bytes. Check [`Self::body_len`]
    /// against the negotiated frame limit before encoding.
    pub fn encode(&self, dst: &mut impl BufMut) {
        wire::encode_frame(self, dst);
    }

    /// The body length: the value of the frame's length prefix, which must
    /// not exceed the negotiated frame limit.
    pub fn body_len(&self) -> usize {
        wire::body_len(self)
    }

    /// Decodes one frame's body (as returned by
    /// [`decode_frame`](crate::decode_frame)). Bytes fields are zero-copy
    /// slices of `body`.
    pub fn decode(body: Bytes) -> Result<RequestFrame, DecodeError> {
        let mut r = Reader::new(body, "request header");
        let xid = r.i32("xid")?;
        let opcode = r.u8("opcode")?;
        if opcode == PING_OPCODE {
            if xid != XID_PING {
                return Err(DecodeError::BadXid { xid, opcode });
            }
            r.set_message("Ping request");
            r.finish()?;
            return Ok(RequestFrame::Ping);
        }
        let op = OpCode::from_u8(opcode).ok_or(DecodeError::UnknownOpCode { opcode })?;
        let xid = Xid::new(xid).ok_or(DecodeError::BadXid { xid, opcode })?;
        r.set_message(request_name(op));
        let request = read_request(op, &mut r)?;
        r.finish()?;
        Ok(RequestFrame::Op { xid, request })
    }
}

impl Body for RequestFrame {
    fn write<S: Sink>(&self, s: &mut S) {
        match self {
            RequestFrame::Ping => {
                s.i32(XID_PING);
                s.u8(PING_OPCODE);
            }
            RequestFrame::Op { xid, request } => {
                s.i32(xid.get());
                s.u8(request.opcode().to_u8());
                write_request(request, s);
            }
        }
    }
}

fn request_name(op: OpCode) -> &'static str {
    match op {
        OpCode::Create => "Create request",
        OpCode::Delete => "Delete request",
        OpCode::Exists => "Exists request",
        OpCode::GetData => "GetData request",
        OpCode::SetData => "SetData request",
        OpCode::GetChildren => "GetChildren request",
        OpCode::Check => "Check request",
        OpCode::Multi => "Multi request",
        OpCode::Sync => "Sync request",
        OpCode::AddWatch => "AddWatch request",
        OpCode::RemoveWatches => "RemoveWatches request",
        OpCode::CheckWatches => "CheckWatches request",
        OpCode::SetWatches => "SetWatches request",
        OpCode::CloseSession => "CloseSession request",
        OpCode::GetChildrenPage => "GetChildrenPage request",
        OpCode::CreateAcl => "CreateAcl request",
        OpCode::GetAcl => "GetAcl request",
        OpCode::SetAcl => "SetAcl request",
        OpCode::AddAuth => "AddAuth request",
        OpCode::GetEphemerals => "GetEphemerals request",
        OpCode::GetAllChildrenNumber => "GetAllChildrenNumber request",
        OpCode::MultiRead => "MultiRead request",
    }
}

fn multi_op_name(op: OpCode) -> &'static str {
    match op {
        OpCode::Create => "Create op in a Multi request",
        OpCode::CreateAcl => "CreateAcl op in a Multi request",
        OpCode::Delete => "Delete op in a Multi request",
        OpCode::SetData => "SetData op in a Multi request",
        _ => "Check op in a Multi request",
    }
}

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

fn write_request<S: Sink>(request: &Request, s: &mut S) {
    match request {
        Request::Create(c) => write_create(c, s),
        Request::Delete(d) => write_delete(d, s),
        Request::Exists { path, watch }
        | Request::GetData { path, watch }
        | Request::GetChildren { path, watch } => {
            s.str(path);
            s.bool(*watch);
        }
        Request::SetData(d) => write_set_data(d, s),
        Request::Check(c) => write_check(c, s),
        Request::Multi(ops) => {
            s.count(ops.len());
            for op in ops {
                s.u8(op.opcode().to_u8());
                match op {
                    MultiOp::Create(c) => write_create(c, s),
                    MultiOp::Delete(d) => write_delete(d, s),
                    MultiOp::SetData(d) => write_set_data(d, s),
                    MultiOp::Check(c) => write_check(c, s),
                }
            }
        }
        Request::Sync { path } => s.str(path),
        Request::AddWatch { path, mode } => {
            s.str(path);
            s.u8(mode.to_u8());
        }
        Request::RemoveWatches { path, kind } | Request::CheckWatches { path, kind } => {
            s.str(path);
            s.u8(kind.to_u8());
        }
        Request::SetWatches(w) => {
            s.u64(w.relative_zxid);
            s.strs(&w.data);
            s.strs(&w.exists);
            s.strs(&w.children);
            s.strs(&w.persistent);
            s.strs(&w.persistent_recursive);
        }
        Request::CloseSession => {}
        Request::GetChildrenPage {
            path,
            after,
            max,
            watch,
        } => {
            s.str(path);
            s.str(after);
            s.u32(*max);
            s.bool(*watch);
        }
        Request::GetAcl { path } => s.str(path),
        Request::SetAcl { path, acl, version } => {
            s.str(path);
            write_acls(acl, s);
            s.i32(*version);
        }
        Request::AddAuth { scheme, auth } => {
            s.str(scheme);
            s.bytes(auth);
        }
        Request::GetEphemerals { prefix } => s.str(prefix),
        Request::GetAllChildrenNumber { path } => s.str(path),
        Request::MultiRead(ops) => {
            s.count(ops.len());
            for op in ops {
                s.u8(op.opcode().to_u8());
                s.str(op.path());
            }
        }
    }
}

fn write_create<S: Sink>(c: &CreateRequest, s: &mut S) {
    s.str(&c.path);
    s.bytes(&c.data);
    s.u8(c.mode.to_u8());
    s.u64(c.ttl_ms);
    if let Some(acl) = &c.acl {
        write_acls(acl, s);
    }
}

fn write_delete<S: Sink>(d: &DeleteRequest, s: &mut S) {
    s.str(&d.path);
    s.i32(d.version);
}

fn write_set_data<S: Sink>(d: &SetDataRequest, s: &mut S) {
    s.str(&d.path);
    s.bytes(&d.data);
    s.i32(d.version);
}

fn write_check<S: Sink>(c: &CheckRequest, s: &mut S) {
    s.str(&c.path);
    s.i32(c.version);
}

// ---------------------------------------------------------------------------
// Decoding (struct-literal fields are evaluated in source order: wire order)
// ---------------------------------------------------------------------------

/// The smallest encoded multi op: opcode, an empty path, a version.
const MULTI_OP_BYTES_MIN: usize = 1 + 4 + 4;

fn read_request(op: OpCode, r: &mut Reader) -> Result<Request, DecodeError> {
    Ok(match op {
        OpCode::Create => Request::Create(read_create(r, false)?),
        OpCode::CreateAcl => Request::Create(read_create(r, true)?),
        OpCode::Delete => Request::Delete(read_delete(r)?),
        OpCode::Exists => Request::Exists {
            path: r.string("path")?,
            watch: r.bool("watch")?,
        },
        OpCode::GetData => Request::GetData {
            path: r.string("path")?,
            watch: r.bool("watch")?,
        },
        OpCode::SetData => Request::SetData(read_set_data(r)?),
        OpCode::GetChildren => Request::GetChildren {
            path: r.string("path")?,
            watch: r.bool("watch")?,
        },
        OpCode::GetChildrenPage => Request::GetChildrenPage {
            path: r.string("path")?,
            after: r.string("after")?,
            max: r.u32("max")?,
            watch: r.bool("watch")?,
        },
        OpCode::Check => Request::Check(read_check(r)?),
        OpCode::Multi => Request::Multi(read_multi(r)?),
        OpCode::Sync => Request::Sync {
            path: r.string("path")?,
        },
        OpCode::AddWatch => Request::AddWatch {
            path: r.string("path")?,
            mode: r.enum_u8("mode", AddWatchMode::from_u8)?,
        },
        OpCode::RemoveWatches => Request::RemoveWatches {
            path: r.string("path")?,
            kind: r.enum_u8("kind", WatcherKind::from_u8)?,
        },
        OpCode::CheckWatches => Request::CheckWatches {
            path: r.string("path")?,
            kind: r.enum_u8("kind", WatcherKind::from_u8)?,
        },
        OpCode::SetWatches => Request::SetWatches(SetWatches {
            relative_zxid: r.u64("relative_zxid")?,
            data: r.strings("data")?,
            exists: r.strings("exists")?,
            children: r.strings("children")?,
            persistent: r.strings("persistent")?,
            persistent_recursive: r.strings("persistent_recursive")?,
        }),
        OpCode::CloseSession => Request::CloseSession,
        OpCode::GetAcl => Request::GetAcl {
            path: r.string("path")?,
        },
        OpCode::SetAcl => Request::SetAcl {
            path: r.string("path")?,
            acl: read_acls(r)?,
            version: r.i32("version")?,
        },
        OpCode::AddAuth => Request::AddAuth {
            scheme: r.string("scheme")?,
            auth: r.bytes("auth")?,
        },
        OpCode::GetEphemerals => Request::GetEphemerals {
            prefix: r.string("prefix")?,
        },
        OpCode::GetAllChildrenNumber => Request::GetAllChildrenNumber {
            path: r.string("path")?,
        },
        OpCode::MultiRead => Request::MultiRead(read_multi_read(r)?),
    })
}

fn read_multi(r: &mut Reader) -> Result<Vec<MultiOp>, DecodeError> {
    let n = r.count("ops", MULTI_OP_BYTES_MIN)?;
    let mut ops = Vec::with_capacity(n);
    for _ in 0..n {
        r.set_message("Multi request");
        let opcode = r.u8("ops.opcode")?;
        let op = OpCode::from_u8(opcode).ok_or(DecodeError::UnknownOpCode { opcode })?;
        if !op.is_multi_op() {
            return Err(DecodeError::NotAMultiOp { opcode: op });
        }
        r.set_message(multi_op_name(op));
        ops.push(match op {
            OpCode::Create => MultiOp::Create(read_create(r, false)?),
            OpCode::CreateAcl => MultiOp::Create(read_create(r, true)?),
            OpCode::Delete => MultiOp::Delete(read_delete(r)?),
            OpCode::SetData => MultiOp::SetData(read_set_data(r)?),
            _ => MultiOp::Check(read_check(r)?),
        });
    }
    r.set_message("Multi request");
    Ok(ops)
}

fn read_multi_read(r: &mut Reader) -> Result<Vec<ReadOp>, DecodeError> {
    // The smallest op: its opcode and an empty path.
    let n = r.count("ops", 1 + 4)?;
    let mut ops = Vec::with_capacity(n);
    for _ in 0..n {
        let opcode = r.u8("ops.opcode")?;
        let path = |r: &mut Reader| r.string("ops.path");
        ops.push(match OpCode::from_u8(opcode) {
            Some(OpCode::GetData) => ReadOp::GetData { path: path(r)? },
            Some(OpCode::GetChildren) => ReadOp::GetChildren { path: path(r)? },
            _ => return Err(r.bad_value("ops.opcode", opcode)),
        });
    }
    Ok(ops)
}

fn read_create(r: &mut Reader, with_acl: bool) -> Result<CreateRequest, DecodeError> {
    Ok(CreateRequest {
        path: r.string("path")?,
        data: r.bytes("data")?,
        mode: r.enum_u8("mode", CreateMode::from_u8)?,
        ttl_ms: r.u64("ttl_ms")?,
        acl: if with_acl { Some(read_acls(r)?) } else { None },
    })
}

fn read_delete(r: &mut Reader) -> Result<DeleteRequest, DecodeError> {
    Ok(DeleteRequest {
        path: r.string("path")?,
        version: r.i32("version")?,
    })
}

fn read_set_data(r: &mut Reader) -> Result<SetDataRequest, DecodeError> {
    Ok(SetDataRequest {
        path: r.string("path")?,
        data: r.bytes("data")?,
        version: r.i32("version")?,
    })
}

fn read_check(r: &mut Reader) -> Result<CheckRequest, DecodeError> {
    Ok(CheckRequest {
        path: r.string("path")?,
        version: r.i32("version")?,
    })
}

#[cfg(test)]
mod tests;
