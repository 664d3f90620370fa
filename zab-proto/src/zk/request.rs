//! ZooKeeper's client-to-server frames, read into this crate's requests.
//!
//! Every ZooKeeper operation that has a counterpart here becomes that
//! [`Request`], with a [`Shape`] that says how to write its reply the way
//! ZooKeeper's client expects (create and create2 carry the same request
//! but not the same reply). Operations without one become
//! [`Incoming::Unsupported`], answered `Unimplemented`.

use bytes::Bytes;

use super::jute::{JuteError, JuteReader};
use crate::{
    AddWatchMode, CheckRequest, CreateMode, CreateRequest, DeleteRequest, MultiOp, ReadOp, Request,
    SetDataRequest, SetWatches, WatcherKind,
};

/// ZooKeeper's opcodes.
pub mod op {
    pub const CREATE: i32 = 1;
    pub const DELETE: i32 = 2;
    pub const EXISTS: i32 = 3;
    pub const GET_DATA: i32 = 4;
    pub const SET_DATA: i32 = 5;
    pub const GET_ACL: i32 = 6;
    pub const SET_ACL: i32 = 7;
    pub const GET_CHILDREN: i32 = 8;
    pub const SYNC: i32 = 9;
    pub const PING: i32 = 11;
    pub const GET_CHILDREN2: i32 = 12;
    pub const CHECK: i32 = 13;
    pub const MULTI: i32 = 14;
    pub const CREATE2: i32 = 15;
    pub const RECONFIG: i32 = 16;
    pub const CHECK_WATCHES: i32 = 17;
    pub const REMOVE_WATCHES: i32 = 18;
    pub const CREATE_CONTAINER: i32 = 19;
    pub const DELETE_CONTAINER: i32 = 20;
    pub const CREATE_TTL: i32 = 21;
    pub const MULTI_READ: i32 = 22;
    pub const AUTH: i32 = 100;
    pub const SET_WATCHES: i32 = 101;
    pub const SASL: i32 = 102;
    pub const GET_EPHEMERALS: i32 = 103;
    pub const GET_ALL_CHILDREN_NUMBER: i32 = 104;
    pub const SET_WATCHES2: i32 = 105;
    pub const ADD_WATCH: i32 = 106;
    pub const WHO_AM_I: i32 = 107;
    pub const CLOSE_SESSION: i32 = -11;
    /// The type of the header that ends a multi's ops or results, and of an
    /// error result inside one.
    pub const MULTI_END_OR_ERROR: i32 = -1;
}

/// The xids ZooKeeper reserves: a watch notification, a ping, an AddAuth,
/// and a SetWatches after a reconnect.
pub mod xid {
    pub const NOTIFICATION: i32 = -1;
    pub const PING: i32 = -2;
    pub const AUTH: i32 = -4;
    pub const SET_WATCHES: i32 = -8;
}

/// A session handshake, ZooKeeper's `ConnectRequest`.
#[derive(Clone, PartialEq, Eq)]
pub struct ZkConnect {
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub password: Bytes,
    /// Sent by 3.4+ clients; a server without a read-only mode ignores it.
    pub read_only: bool,
}

impl std::fmt::Debug for ZkConnect {
    /// The password is a session credential: it is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZkConnect")
            .field("protocol_version", &self.protocol_version)
            .field(
                "last_zxid_seen",
                &format_args!("{:#x}", self.last_zxid_seen),
            )
            .field("timeout_ms", &self.timeout_ms)
            .field("session_id", &format_args!("{:#x}", self.session_id))
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

impl ZkConnect {
    pub fn decode(body: Bytes) -> Result<ZkConnect, JuteError> {
        let mut r = JuteReader::new(body, "ConnectRequest");
        Ok(ZkConnect {
            protocol_version: r.int("protocolVersion")?,
            last_zxid_seen: r.long("lastZxidSeen")?,
            timeout_ms: r.int("timeOut")?,
            session_id: r.long("sessionId")?,
            password: r.buffer("passwd")?,
            // Older clients end the record here.
            read_only: r.remaining() > 0 && r.bool("readOnly")?,
        })
    }
}

/// How to write a reply for ZooKeeper's client: the shape of the body its
/// opcode expects, and anything the request knew that the reply does not
/// carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `CreateResponse`: the path.
    Create,
    /// `Create2Response`: the path and the stat (create2, createContainer,
    /// createTTL).
    Create2,
    /// No body: delete, check, setWatches, removeWatches, auth,
    /// closeSession.
    Empty,
    /// `ErrorResponse`: the code (0), as ZooKeeper answers addWatch.
    AddWatch,
    /// `ExistsResponse`: the stat; a missing node is the error `NoNode`.
    Exists,
    GetData,
    /// `SetDataResponse` / `SetACLResponse`: the stat.
    Stat,
    GetAcl,
    /// `GetChildrenResponse`: the names only.
    GetChildren,
    /// `GetChildren2Response`: the names and the stat.
    GetChildren2,
    /// `SyncResponse`: the path synced, which our reply does not carry.
    Sync {
        path: String,
    },
    /// The ZooKeeper opcode of each op, which its result is written as.
    Multi {
        ops: Vec<i32>,
    },
    MultiRead,
    GetEphemerals,
    GetAllChildrenNumber,
}

/// One request frame from a ZooKeeper client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming {
    Ping,
    /// An operation this server runs: reply under `xid`, shaped as `shape`.
    Op {
        xid: i32,
        shape: Shape,
        request: Request,
    },
    /// WhoAmI: answered from the connection's own identities.
    WhoAmI {
        xid: i32,
    },
    /// An opcode this server does not run (reconfig, SASL...):
    /// answered `Unimplemented`, in order.
    Unsupported {
        xid: i32,
        opcode: i32,
    },
    /// A well-framed request with a value out of range (create flags, a
    /// watch mode or type): answered `BadArguments`, in order, as
    /// ZooKeeper does, and the connection goes on.
    Invalid {
        xid: i32,
        error: JuteError,
    },
}

impl Incoming {
    /// Reads one request frame's body (after its length prefix).
    pub fn decode(body: Bytes) -> Result<Incoming, JuteError> {
        let mut r = JuteReader::new(body, "RequestHeader");
        let xid = r.int("xid")?;
        let opcode = r.int("type")?;
        match Incoming::decode_op(&mut r, xid, opcode) {
            Err(error @ JuteError::BadValue { .. }) => Ok(Incoming::Invalid { xid, error }),
            other => other,
        }
    }

    fn decode_op(r: &mut JuteReader, xid: i32, opcode: i32) -> Result<Incoming, JuteError> {
        let (shape, request) = match opcode {
            op::PING => return Ok(Incoming::Ping),
            op::WHO_AM_I => return Ok(Incoming::WhoAmI { xid }),
            op::CREATE | op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => {
                let create = create(r, opcode)?;
                let shape = match opcode {
                    op::CREATE => Shape::Create,
                    _ => Shape::Create2,
                };
                (shape, Request::Create(create))
            }
            op::DELETE => (Shape::Empty, Request::Delete(delete(r)?)),
            op::EXISTS => {
                r.record("ExistsRequest");
                let path = r.ustring("path")?;
                let watch = r.bool("watch")?;
                (Shape::Exists, Request::Exists { path, watch })
            }
            op::GET_DATA => {
                r.record("GetDataRequest");
                let path = r.ustring("path")?;
                let watch = r.bool("watch")?;
                (Shape::GetData, Request::GetData { path, watch })
            }
            op::SET_DATA => (Shape::Stat, Request::SetData(set_data(r)?)),
            op::GET_ACL => {
                r.record("GetACLRequest");
                let path = r.ustring("path")?;
                (Shape::GetAcl, Request::GetAcl { path })
            }
            op::SET_ACL => {
                r.record("SetACLRequest");
                let path = r.ustring("path")?;
                let acl = r.acls("acl")?;
                let version = r.int("version")?;
                (Shape::Stat, Request::SetAcl { path, acl, version })
            }
            op::GET_CHILDREN | op::GET_CHILDREN2 => {
                r.record("GetChildrenRequest");
                let path = r.ustring("path")?;
                let watch = r.bool("watch")?;
                let shape = match opcode {
                    op::GET_CHILDREN => Shape::GetChildren,
                    _ => Shape::GetChildren2,
                };
                (shape, Request::GetChildren { path, watch })
            }
            op::SYNC => {
                r.record("SyncRequest");
                let path = r.ustring("path")?;
                let request = Request::Sync { path: path.clone() };
                (Shape::Sync { path }, request)
            }
            op::CHECK => (Shape::Empty, Request::Check(check(r)?)),
            op::MULTI => {
                let (ops, kinds) = multi(r)?;
                (Shape::Multi { ops: kinds }, Request::Multi(ops))
            }
            op::MULTI_READ => (Shape::MultiRead, Request::MultiRead(multi_read(r)?)),
            op::ADD_WATCH => {
                r.record("AddWatchRequest");
                let path = r.ustring("path")?;
                let mode = r.int("mode")?;
                let mode = match mode {
                    0 => AddWatchMode::Persistent,
                    1 => AddWatchMode::PersistentRecursive,
                    other => return Err(bad("AddWatchRequest", "mode", other)),
                };
                (Shape::AddWatch, Request::AddWatch { path, mode })
            }
            op::REMOVE_WATCHES | op::CHECK_WATCHES => {
                // The same record for both; checkWatches removes nothing.
                let record = if opcode == op::REMOVE_WATCHES {
                    "RemoveWatchesRequest"
                } else {
                    "CheckWatchesRequest"
                };
                r.record(record);
                let path = r.ustring("path")?;
                let kind = r.int("type")?;
                let kind = u8::try_from(kind)
                    .ok()
                    .and_then(WatcherKind::from_u8)
                    .ok_or_else(|| bad(record, "type", kind))?;
                let request = if opcode == op::REMOVE_WATCHES {
                    Request::RemoveWatches { path, kind }
                } else {
                    Request::CheckWatches { path, kind }
                };
                (Shape::Empty, request)
            }
            op::SET_WATCHES | op::SET_WATCHES2 => {
                r.record("SetWatches");
                let mut set = SetWatches {
                    relative_zxid: r.long("relativeZxid")? as u64,
                    data: r.strings("dataWatches")?,
                    exists: r.strings("existWatches")?,
                    children: r.strings("childWatches")?,
                    ..SetWatches::default()
                };
                if opcode == op::SET_WATCHES2 {
                    set.persistent = r.strings("persistentWatches")?;
                    set.persistent_recursive = r.strings("persistentRecursiveWatches")?;
                }
                (Shape::Empty, Request::SetWatches(set))
            }
            op::AUTH => {
                r.record("AuthPacket");
                let _kind = r.int("type")?;
                let scheme = r.ustring("scheme")?;
                let auth = r.buffer("auth")?;
                (Shape::Empty, Request::AddAuth { scheme, auth })
            }
            op::GET_EPHEMERALS => {
                r.record("GetEphemeralsRequest");
                let prefix = r.ustring("prefixPath")?;
                (Shape::GetEphemerals, Request::GetEphemerals { prefix })
            }
            op::GET_ALL_CHILDREN_NUMBER => {
                r.record("GetAllChildrenNumberRequest");
                let path = r.ustring("path")?;
                (
                    Shape::GetAllChildrenNumber,
                    Request::GetAllChildrenNumber { path },
                )
            }
            op::CLOSE_SESSION => (Shape::Empty, Request::CloseSession),
            other => return Ok(Incoming::Unsupported { xid, opcode: other }),
        };
        Ok(Incoming::Op {
            xid,
            shape,
            request,
        })
    }
}

fn bad(record: &'static str, field: &'static str, value: i32) -> JuteError {
    JuteError::BadValue {
        record,
        field,
        value: i64::from(value),
    }
}

/// A create of any of the four opcodes: the container opcode implies its
/// mode; the TTL one carries the TTL after the flags.
fn create(r: &mut JuteReader, opcode: i32) -> Result<CreateRequest, JuteError> {
    r.record("CreateRequest");
    let path = r.ustring("path")?;
    let data = r.buffer("data")?;
    let acl = r.acls("acl")?;
    let flags = r.int("flags")?;
    let mode = u8::try_from(flags)
        .ok()
        .and_then(CreateMode::from_u8)
        .ok_or_else(|| bad("CreateRequest", "flags", flags))?;
    let mode = match opcode {
        op::CREATE_CONTAINER => CreateMode::Container,
        _ => mode,
    };
    let ttl_ms = match opcode {
        op::CREATE_TTL => {
            let ttl = r.long("ttl")?;
            // A TTL that is not positive is the server's BadArguments.
            u64::try_from(ttl).unwrap_or(0)
        }
        _ => 0,
    };
    Ok(CreateRequest {
        path,
        data,
        mode,
        ttl_ms,
        acl: Some(acl),
    })
}

fn delete(r: &mut JuteReader) -> Result<DeleteRequest, JuteError> {
    r.record("DeleteRequest");
    Ok(DeleteRequest {
        path: r.ustring("path")?,
        version: r.int("version")?,
    })
}

fn set_data(r: &mut JuteReader) -> Result<SetDataRequest, JuteError> {
    r.record("SetDataRequest");
    Ok(SetDataRequest {
        path: r.ustring("path")?,
        data: r.buffer("data")?,
        version: r.int("version")?,
    })
}

fn check(r: &mut JuteReader) -> Result<CheckRequest, JuteError> {
    r.record("CheckVersionRequest");
    Ok(CheckRequest {
        path: r.ustring("path")?,
        version: r.int("version")?,
    })
}

/// A `MultiHeader`: the op's type, whether it ends the list, an error.
fn multi_header(r: &mut JuteReader) -> Result<(i32, bool), JuteError> {
    r.record("MultiHeader");
    let kind = r.int("type")?;
    let done = r.bool("done")?;
    let _err = r.int("err")?;
    Ok((kind, done))
}

/// Ops are bounded by the frame: each takes at least a header.
fn multi(r: &mut JuteReader) -> Result<(Vec<MultiOp>, Vec<i32>), JuteError> {
    let (mut ops, mut kinds) = (Vec::new(), Vec::new());
    loop {
        let (kind, done) = multi_header(r)?;
        if done {
            return Ok((ops, kinds));
        }
        let one = match kind {
            op::CREATE | op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => {
                MultiOp::Create(create(r, kind)?)
            }
            op::DELETE => MultiOp::Delete(delete(r)?),
            op::SET_DATA => MultiOp::SetData(set_data(r)?),
            op::CHECK => MultiOp::Check(check(r)?),
            other => return Err(bad("MultiHeader", "type", other)),
        };
        ops.push(one);
        kinds.push(kind);
    }
}

fn multi_read(r: &mut JuteReader) -> Result<Vec<ReadOp>, JuteError> {
    let mut ops = Vec::new();
    loop {
        let (kind, done) = multi_header(r)?;
        if done {
            return Ok(ops);
        }
        r.record("GetDataRequest");
        let path = r.ustring("path")?;
        let _watch = r.bool("watch")?;
        ops.push(match kind {
            op::GET_DATA => ReadOp::GetData { path },
            op::GET_CHILDREN => ReadOp::GetChildren { path },
            other => return Err(bad("MultiHeader", "type", other)),
        });
    }
}
