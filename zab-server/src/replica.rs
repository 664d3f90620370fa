//! The replicated state machine: the znode tree plus session passwords,
//! driven by *commands* in the log.
//!
//! A command is a client request as the origin server received it (session,
//! xid, the server's clock), not a pre-resolved transaction. Every replica
//! resolves it against its own tree at apply time, with `DataTree::prepare`
//! and no pending overlay, then applies the result. Because every replica
//! applies the same commands in the same order to the same state, they reach
//! the same result (sequential names, version checks, errors) without a
//! leader-side resolution step. This is safe here because our snapshots are
//! exact (taken at a delivered zxid, replay starts strictly after it), so no
//! command is ever applied twice; ZooKeeper needs idempotent transactions
//! only because its snapshots are fuzzy. See docs/design.md.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use zab_core::Zxid;
use zab_proto::{CreateMode, MultiOp, Reader, Request, RequestFrame, PASSWORD_BYTES};

use crate::acl::Caller;
use crate::server::Application;
use crate::tree::NodeKind;
use crate::tree::Request as TreeRequest;
use crate::tree::{Applied, Change, DataTree, FrozenTree, Outcome};

/// Version 2 added [`Command::request`]; version 3 has a codec of its own on
/// zab-proto's field-checked [`Reader`] (a client request is written as
/// its opcode and body, not as a whole client frame). Versions 1 and 2
/// still decode.
const COMMAND_VERSION: u8 = 3;

/// The caller of commands that record none: sessions, expiries, sweeps
/// (which no ACL governs) and writes logged before ACLs existed.
static ANONYMOUS: Caller = Caller {
    ip: None,
    ids: Vec::new(),
    superuser: false,
};

/// Why a log record's payload is not a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandDecodeError {
    Empty,
    UnknownVersion(u8),
    /// A command kind this build does not know (a newer server's?).
    UnknownKind(u8),
    /// A field is short, trailing bytes follow, or a value is out of range.
    Field(zab_proto::DecodeError),
    /// A version 1 or 2 record that does not decode.
    Legacy(String),
}

impl std::fmt::Display for CommandDecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommandDecodeError::Empty => write!(f, "empty command"),
            CommandDecodeError::UnknownVersion(v) => write!(f, "unknown command version {v}"),
            CommandDecodeError::UnknownKind(k) => write!(f, "bad command kind {k}"),
            CommandDecodeError::Field(e) => write!(f, "command: {e}"),
            CommandDecodeError::Legacy(e) => write!(f, "command (version 1 or 2): {e}"),
        }
    }
}

impl std::error::Error for CommandDecodeError {}

impl From<zab_proto::DecodeError> for CommandDecodeError {
    fn from(e: zab_proto::DecodeError) -> Self {
        CommandDecodeError::Field(e)
    }
}

/// Command kinds on the wire.
const KIND_CREATE_SESSION: u8 = 1;
const KIND_CLOSE_SESSION: u8 = 2;
const KIND_EXPIRE_SESSION: u8 = 3;
const KIND_OP: u8 = 4;
const KIND_DELETE_EXPIRED: u8 = 5;
const KIND_MOVE_SESSION: u8 = 6;
const KIND_OP_AS: u8 = 7;

/// What a command asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandBody {
    CreateSession {
        timeout_ms: u32,
        password: [u8; PASSWORD_BYTES],
    },
    /// The client closed its session.
    CloseSession,
    /// The leader expired the session.
    ExpireSession,
    /// The client re-attached its session to the origin server: the
    /// session's connections on other servers are stale from here on, and
    /// writes they logged after this fail with SessionMoved.
    MoveSession,
    /// A write from the client (create, delete, setData, check, multi,
    /// setAcl) and who made it, for the ACL checks every replica runs.
    OpAs(Caller, Request),
    /// A write recorded before ACLs existed: applied as
    /// [`Caller::anonymous`]'s (every node was open then, so the verdicts
    /// are unchanged). Decoded from old logs, never written by this build.
    Op(Request),
    /// The leader removes an empty container or an expired TTL node, as it
    /// stood at the sweep (`mzxid`, `pzxid`): if anything changed since,
    /// the command does nothing.
    DeleteExpired {
        path: String,
        mzxid: Zxid,
        pzxid: Zxid,
    },
}

/// One log record's payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// The server whose client asked (it sends the reply).
    pub origin: u64,
    pub session: u64,
    pub xid: i32,
    /// The origin server's token for this request (its `RequestId`), so the
    /// reply reaches the connection that asked and no other: a session's
    /// next connection reuses xids, and a write its earlier connection left
    /// behind may still commit. 0 for commands no client waits on.
    pub request: u64,
    /// The origin server's clock, ms since the Unix epoch: ctime and mtime.
    pub time_ms: i64,
    pub body: CommandBody,
}

impl Command {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(64);
        b.put_u8(COMMAND_VERSION);
        b.put_u64(self.origin);
        b.put_u64(self.session);
        b.put_i32(self.xid);
        b.put_u64(self.request);
        b.put_i64(self.time_ms);
        match &self.body {
            CommandBody::CreateSession {
                timeout_ms,
                password,
            } => {
                b.put_u8(KIND_CREATE_SESSION);
                b.put_u32(*timeout_ms);
                b.put_slice(password);
            }
            CommandBody::CloseSession => b.put_u8(KIND_CLOSE_SESSION),
            CommandBody::ExpireSession => b.put_u8(KIND_EXPIRE_SESSION),
            CommandBody::MoveSession => b.put_u8(KIND_MOVE_SESSION),
            CommandBody::DeleteExpired { path, mzxid, pzxid } => {
                b.put_u8(KIND_DELETE_EXPIRED);
                b.put_u64(mzxid.0);
                b.put_u64(pzxid.0);
                // Paths are bounded far below u32::MAX by validation.
                b.put_u32(u32::try_from(path.len()).unwrap_or(u32::MAX));
                b.put_slice(path.as_bytes());
            }
            CommandBody::Op(request) => {
                b.put_u8(KIND_OP);
                request.write_record(&mut b);
            }
            CommandBody::OpAs(caller, request) => {
                b.put_u8(KIND_OP_AS);
                caller.write(&mut b);
                request.write_record(&mut b);
            }
        }
        b.freeze()
    }

    pub fn decode(data: Bytes) -> Result<Command, CommandDecodeError> {
        match data.first() {
            None => Err(CommandDecodeError::Empty),
            Some(1 | 2) => Command::decode_legacy(data).map_err(CommandDecodeError::Legacy),
            Some(&COMMAND_VERSION) => Command::decode_v3(data),
            Some(&v) => Err(CommandDecodeError::UnknownVersion(v)),
        }
    }

    fn decode_v3(data: Bytes) -> Result<Command, CommandDecodeError> {
        let mut r = Reader::new(data, "log command");
        r.u8("version")?;
        let origin = r.u64("origin")?;
        let session = r.u64("session")?;
        let xid = r.i32("xid")?;
        let request = r.u64("request token")?;
        let time_ms = r.i64("time")?;
        let body = match r.u8("kind")? {
            KIND_CREATE_SESSION => CommandBody::CreateSession {
                timeout_ms: r.u32("timeout")?,
                password: r.raw("password")?,
            },
            KIND_CLOSE_SESSION => CommandBody::CloseSession,
            KIND_EXPIRE_SESSION => CommandBody::ExpireSession,
            KIND_MOVE_SESSION => CommandBody::MoveSession,
            KIND_DELETE_EXPIRED => CommandBody::DeleteExpired {
                mzxid: Zxid(r.u64("mzxid")?),
                pzxid: Zxid(r.u64("pzxid")?),
                path: r.string("path")?,
            },
            KIND_OP => CommandBody::Op(Request::read_record(&mut r)?),
            KIND_OP_AS => {
                let caller = Caller::read(&mut r)?;
                CommandBody::OpAs(caller, Request::read_record(&mut r)?)
            }
            kind => return Err(CommandDecodeError::UnknownKind(kind)),
        };
        r.finish()?;
        Ok(Command {
            origin,
            session,
            xid,
            request,
            time_ms,
            body,
        })
    }

    /// Versions 1 and 2, whose client requests were whole client frames.
    fn decode_legacy(mut data: Bytes) -> Result<Command, String> {
        if data.remaining() < 1 + 8 + 8 + 4 + 8 + 1 {
            return Err("command shorter than its header".into());
        }
        let version = data.get_u8();
        if version != 1 && version != 2 {
            return Err(format!("unknown command version {version}"));
        }
        let origin = data.get_u64();
        let session = data.get_u64();
        let xid = data.get_i32();
        let request = match version {
            1 => 0,
            // The token, then at least the time and the kind.
            _ if data.remaining() > 8 + 8 => data.get_u64(),
            _ => return Err("command shorter than its header".into()),
        };
        let time_ms = data.get_i64();
        let body = match data.get_u8() {
            1 if data.remaining() == 4 + PASSWORD_BYTES => {
                let timeout_ms = data.get_u32();
                let mut password = [0u8; PASSWORD_BYTES];
                data.copy_to_slice(&mut password);
                CommandBody::CreateSession {
                    timeout_ms,
                    password,
                }
            }
            2 if data.is_empty() => CommandBody::CloseSession,
            3 if data.is_empty() => CommandBody::ExpireSession,
            6 if data.is_empty() => CommandBody::MoveSession,
            4 => {
                let mut buf = BytesMut::from(&data[..]);
                let frame = zab_proto::decode_frame(&mut buf, u32::MAX)
                    .map_err(|e| e.to_string())?
                    .ok_or("truncated request in command")?;
                match RequestFrame::decode(frame).map_err(|e| e.to_string())? {
                    RequestFrame::Op { request, .. } => CommandBody::Op(request),
                    RequestFrame::Ping => return Err("ping in a command".into()),
                }
            }
            5 if data.remaining() >= 16 => {
                let mzxid = Zxid(data.get_u64());
                let pzxid = Zxid(data.get_u64());
                let path = String::from_utf8(data.to_vec()).map_err(|_| "path is not UTF-8")?;
                CommandBody::DeleteExpired { path, mzxid, pzxid }
            }
            kind => return Err(format!("bad command kind {kind}")),
        };
        Ok(Command {
            origin,
            session,
            xid,
            request,
            time_ms,
            body,
        })
    }
}

/// The result of one applied command, for the server whose client asked and
/// for the watch manager.
#[derive(Clone, Debug)]
pub struct Completion {
    pub zxid: Zxid,
    pub origin: u64,
    pub session: u64,
    pub xid: i32,
    /// [`Command::request`].
    pub request: u64,
    pub outcome: Outcome,
    pub changes: Vec<Change>,
    /// A MoveSession that took effect: `origin` owns the session now.
    pub moved: bool,
}

#[derive(Debug, Default)]
pub struct Replica {
    pub tree: DataTree,
    passwords: BTreeMap<u64, [u8; PASSWORD_BYTES]>,
    /// The server each session is attached to (replicated: set by
    /// CreateSession and MoveSession). Absent for sessions restored from a
    /// snapshot of an older build, whose owner is unknown.
    owners: BTreeMap<u64, u64>,
    /// Completions since the driver last drained them.
    pub completed: Vec<Completion>,
    /// Committed records skipped since start because they are not commands
    /// (see `skip`); not replicated state.
    pub skipped_records: u64,
}

impl Replica {
    pub fn new() -> Replica {
        Replica::default()
    }

    /// The replicated state as it is now, for a snapshot encoded later and
    /// elsewhere: O(1) in the tree's size (see [`FrozenTree`]), O(sessions)
    /// for the session tables.
    pub fn freeze(&self) -> FrozenState {
        FrozenState {
            tree: self.tree.freeze(),
            passwords: self.passwords.clone(),
            owners: self.owners.clone(),
        }
    }

    /// Ends every session, deleting its ephemeral nodes, one zxid each
    /// after `after` (in its epoch): what a restored state starts from, so
    /// that a client of the backed-up ensemble cannot resume its session on
    /// a state older than what it saw (it gets SessionExpired and starts
    /// afresh). Returns the zxid of the state it leaves.
    pub fn end_every_session(&mut self, after: Zxid) -> Result<Zxid, String> {
        let mut at = after;
        for (session, _) in self.tree.sessions() {
            let counter = at
                .counter()
                .checked_add(1)
                .ok_or("the epoch has no zxid left to end the sessions with")?;
            at = Zxid::new(at.epoch(), counter);
            self.tree
                .apply(at, 0, &crate::tree::Txn::CloseSession { session })
                .map_err(|e| format!("ending session {session:#x}: {e:?}"))?;
            self.passwords.remove(&session);
            self.owners.remove(&session);
        }
        Ok(at)
    }

    pub fn password(&self, session: u64) -> Option<[u8; PASSWORD_BYTES]> {
        self.passwords.get(&session).copied()
    }

    /// The server `session` is attached to, if known.
    pub fn owner(&self, session: u64) -> Option<u64> {
        self.owners.get(&session).copied()
    }

    /// Whether `cmd` comes from a server the session has moved away from:
    /// its connection there is stale (ZooKeeper's SessionMoved check).
    fn is_from_stale_connection(&self, cmd: &Command) -> bool {
        matches!(
            cmd.body,
            CommandBody::Op(_) | CommandBody::OpAs(..) | CommandBody::CloseSession
        ) && self.owner(cmd.session).is_some_and(|o| o != cmd.origin)
    }
}

/// The leader's check of a command a follower forwards, before it is
/// proposed (zab-core's `Config::forwarded_check`): it must decode, name the
/// forwarding server as its origin, be a command a follower may originate
/// (expiries and sweeps are the leader's own), and a new session must be in
/// the forwarding server's id space. A session's current owner changes with
/// the log, so it is checked when the command applies
/// (`is_from_stale_connection`), alike on every replica.
pub fn check_forwarded(from: zab_core::PeerId, payload: &Bytes) -> Result<(), String> {
    // Zero-copy: the decoded command shares the payload's buffer.
    let cmd = Command::decode(payload.clone()).map_err(|e| e.to_string())?;
    if cmd.origin != from.0 {
        return Err(format!(
            "the command names server {} as its origin",
            cmd.origin
        ));
    }
    match &cmd.body {
        CommandBody::ExpireSession | CommandBody::DeleteExpired { .. } => {
            Err("only the leader issues expiries and sweeps".into())
        }
        CommandBody::CreateSession { .. } if cmd.session >> 56 != from.0 => Err(format!(
            "new session {:#x} is outside server {from}'s id space",
            cmd.session
        )),
        CommandBody::Op(r) | CommandBody::OpAs(_, r) if tree_request(r).is_none() => {
            Err("a read, not a write".into())
        }
        _ => Ok(()),
    }
}

/// The tree's form of a client write.
pub fn tree_request(request: &Request) -> Option<TreeRequest> {
    Some(match request {
        Request::Create(c) => {
            let kind = match c.mode {
                CreateMode::Ephemeral | CreateMode::EphemeralSequential => NodeKind::Ephemeral,
                CreateMode::Container => NodeKind::Container,
                CreateMode::PersistentWithTtl | CreateMode::PersistentSequentialWithTtl => {
                    NodeKind::Ttl { ttl_ms: c.ttl_ms }
                }
                CreateMode::Persistent | CreateMode::PersistentSequential => NodeKind::Persistent,
            };
            TreeRequest::Create {
                path: c.path.clone(),
                data: c.data.clone(),
                kind,
                sequential: c.mode.is_sequential(),
                acl: c.acl.clone(),
            }
        }
        Request::Delete(d) => TreeRequest::Delete {
            path: d.path.clone(),
            version: d.version,
        },
        Request::SetData(s) => TreeRequest::SetData {
            path: s.path.clone(),
            data: s.data.clone(),
            version: s.version,
        },
        Request::Check(c) => TreeRequest::Check {
            path: c.path.clone(),
            version: c.version,
        },
        Request::SetAcl { path, acl, version } => TreeRequest::SetAcl {
            path: path.clone(),
            acl: acl.clone(),
            version: *version,
        },
        Request::Multi(ops) => TreeRequest::Multi(
            ops.iter()
                .map(|op| {
                    let single = match op {
                        MultiOp::Create(c) => Request::Create(c.clone()),
                        MultiOp::Delete(d) => Request::Delete(d.clone()),
                        MultiOp::SetData(s) => Request::SetData(s.clone()),
                        MultiOp::Check(c) => Request::Check(c.clone()),
                    };
                    tree_request(&single)
                })
                .collect::<Option<Vec<_>>>()?,
        ),
        _ => return None,
    })
}

/// Whether a request changes the tree (and so goes through the log).
pub fn is_write(request: &Request) -> bool {
    matches!(
        request,
        Request::Create(_)
            | Request::Delete(_)
            | Request::SetData(_)
            | Request::Check(_)
            | Request::Multi(_)
            | Request::SetAcl { .. }
    )
}

impl Replica {
    /// A committed record that is not a command this replica can apply
    /// (garbage a peer forwarded before the leader checked, or a record of
    /// a later format): an ordered no-op. Every replica decodes the same
    /// bytes alike, so all skip it and stay identical; stopping instead
    /// would stop every replica, and again at each restart (the record is
    /// replayed), taking the ensemble down for good.
    fn skip(&mut self, zxid: Zxid, why: &str) -> Result<(), String> {
        tracing::error!(zxid = %zxid, reason = why, "a committed log record is not a command this server can apply; skipping it (an ordered no-op on every replica)");
        self.skipped_records += 1;
        self.tree
            .apply(zxid, 0, &crate::tree::Txn::Noop)
            .map(|_| ())
            .map_err(|e| format!("applying {zxid} diverged: {e:?}"))
    }

    /// MoveSession: the origin server owns the session from this zxid on.
    /// It changes no node but takes its zxid (an ordered no-op), or fails
    /// with SessionExpired if the session ended before it.
    fn apply_move(&mut self, zxid: Zxid, cmd: Command) -> Result<(), String> {
        let open = self.tree.session_timeout_ms(cmd.session).is_some();
        let txn = if open {
            crate::tree::Txn::Noop
        } else {
            crate::tree::Txn::Error {
                code: zab_proto::ErrorCode::SessionExpired,
            }
        };
        let Applied { outcome, changes } = self
            .tree
            .apply(zxid, cmd.time_ms, &txn)
            .map_err(|e| format!("applying {zxid} diverged: {e:?}"))?;
        if open {
            self.owners.insert(cmd.session, cmd.origin);
        }
        self.complete(zxid, &cmd, outcome, changes, open);
        Ok(())
    }

    fn complete(
        &mut self,
        zxid: Zxid,
        cmd: &Command,
        outcome: Outcome,
        changes: Vec<Change>,
        moved: bool,
    ) {
        self.completed.push(Completion {
            zxid,
            origin: cmd.origin,
            session: cmd.session,
            xid: cmd.xid,
            request: cmd.request,
            outcome,
            changes,
            moved,
        });
    }
}

/// The replicated state frozen at one zxid: what a snapshot (to disk, or to
/// a lagging follower) holds, encoded off the thread that keeps applying.
#[derive(Clone, Debug)]
pub struct FrozenState {
    tree: FrozenTree,
    passwords: BTreeMap<u64, [u8; PASSWORD_BYTES]>,
    owners: BTreeMap<u64, u64>,
}

impl FrozenState {
    /// The digest of the frozen tree's nodes (see [`crate::tree::TreeDigest`]).
    pub fn digest(&self) -> crate::tree::TreeDigest {
        self.tree.digest()
    }

    /// How many nodes the frozen tree holds.
    pub fn node_count(&self) -> usize {
        self.tree.node_count()
    }

    /// The snapshot bytes [`Application::restore`] reads. The tree is
    /// written in place after a length patched in afterwards, so a large
    /// tree is never copied.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.put_u64(0);
        self.tree.serialize_into(&mut out);
        let tree_len = (out.len() - 8) as u64;
        out[..8].copy_from_slice(&tree_len.to_be_bytes());
        self.put_sessions(&mut out);
        out
    }

    /// Writes [`FrozenState::encode`]'s bytes to a snapshot file through a
    /// buffer of about `chunk` bytes, never holding the whole encoding (at
    /// 1M znodes it is about 200 MB). The tree's length, which leads, is
    /// known only at the end: it is the stream's 8-byte prefix. Returns the
    /// file and the encoding's length.
    pub fn write_snapshot(
        &self,
        writer: &crate::storage::SnapshotWriter,
        zxid: Zxid,
        chunk: usize,
    ) -> crate::storage::Result<(crate::storage::snapshot_file::SnapshotMeta, u64)> {
        let mut stream = writer.stream(zxid, 8)?;
        let mut buf = Vec::with_capacity(chunk + (64 << 10));
        let tree_len = self.tree.serialize_chunked(&mut buf, chunk, |b| {
            let written = stream.write(b);
            b.clear();
            written
        })?;
        // The tree's last bytes are still in the buffer; the sessions follow.
        let tree_tail = buf.len();
        self.put_sessions(&mut buf);
        stream.write(&buf)?;
        let meta = writer.finish(stream, &tree_len.to_be_bytes())?;
        Ok((meta, 8 + tree_len + (buf.len() - tree_tail) as u64))
    }

    /// What follows the tree: session passwords, then owners.
    fn put_sessions(&self, out: &mut Vec<u8>) {
        out.reserve(8 + self.passwords.len() * 24 + self.owners.len() * 16);
        out.put_u32(self.passwords.len() as u32);
        for (session, password) in &self.passwords {
            out.put_u64(*session);
            out.put_slice(password);
        }
        // Owners follow (absent in snapshots of older builds).
        out.put_u32(self.owners.len() as u32);
        for (session, owner) in &self.owners {
            out.put_u64(*session);
            out.put_u64(*owner);
        }
    }
}

impl Application for Replica {
    fn apply(&mut self, zxid: Zxid, payload: &Bytes) -> Result<(), String> {
        let cmd = match Command::decode(payload.clone()) {
            Ok(cmd) => cmd,
            Err(e) => return self.skip(zxid, &e.to_string()),
        };
        let request = match &cmd.body {
            CommandBody::CreateSession { timeout_ms, .. } => TreeRequest::CreateSession {
                timeout_ms: *timeout_ms,
            },
            CommandBody::CloseSession | CommandBody::ExpireSession => TreeRequest::CloseSession,
            CommandBody::MoveSession => return self.apply_move(zxid, cmd),
            CommandBody::Op(r) | CommandBody::OpAs(_, r) => match tree_request(r) {
                Some(request) => request,
                None => return self.skip(zxid, "a read, not a write"),
            },
            CommandBody::DeleteExpired { path, .. } => {
                TreeRequest::DeleteExpired { path: path.clone() }
            }
        };
        let unchanged = match &cmd.body {
            CommandBody::DeleteExpired { path, mzxid, pzxid } => self
                .tree
                .exists(path)
                .is_some_and(|st| st.mzxid == mzxid.0 && st.pzxid == pzxid.0),
            _ => true,
        };
        let prepared = if self.is_from_stale_connection(&cmd) {
            Err(crate::tree::Rejected::Op(
                zab_proto::ErrorCode::SessionMoved,
            ))
        } else if unchanged {
            let caller = match &cmd.body {
                CommandBody::OpAs(caller, _) => caller,
                _ => &ANONYMOUS,
            };
            self.tree.prepare_as(cmd.session, caller, &request)
        } else {
            Err(crate::tree::Rejected::Op(zab_proto::ErrorCode::BadVersion))
        };
        let txn = prepared.unwrap_or_else(|rejected| rejected.to_txn());
        let Applied { outcome, changes } = self
            .tree
            .apply(zxid, cmd.time_ms, &txn)
            .map_err(|e| format!("applying {zxid} diverged: {e:?}"))?;
        match (&cmd.body, &outcome) {
            (CommandBody::CreateSession { password, .. }, Outcome::SessionCreated) => {
                self.passwords.insert(cmd.session, *password);
                self.owners.insert(cmd.session, cmd.origin);
            }
            (CommandBody::CloseSession | CommandBody::ExpireSession, Outcome::SessionClosed) => {
                self.passwords.remove(&cmd.session);
                self.owners.remove(&cmd.session);
            }
            _ => {}
        }
        self.complete(zxid, &cmd, outcome, changes, false);
        Ok(())
    }

    fn snapshot(&self) -> Vec<u8> {
        self.freeze().encode()
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), String> {
        let mut b = data;
        if b.remaining() < 8 {
            return Err("snapshot too short".into());
        }
        let len = usize::try_from(b.get_u64()).map_err(|_| "snapshot length overflows")?;
        // Checked: a hostile length near u64::MAX must not wrap.
        if len.checked_add(4).is_none_or(|need| b.remaining() < need) {
            return Err("snapshot truncated".into());
        }
        let tree = DataTree::deserialize(&b[..len]).map_err(|e| format!("{e:?}"))?;
        b.advance(len);
        let count = b.get_u32() as usize;
        count
            .checked_mul(8 + PASSWORD_BYTES)
            .filter(|&n| n <= b.remaining())
            .ok_or("snapshot session table has the wrong size")?;
        let mut passwords = BTreeMap::new();
        for _ in 0..count {
            let session = b.get_u64();
            let mut password = [0u8; PASSWORD_BYTES];
            b.copy_to_slice(&mut password);
            passwords.insert(session, password);
        }
        let mut owners = BTreeMap::new();
        if b.has_remaining() {
            if b.remaining() < 4 {
                return Err("snapshot owner table truncated".into());
            }
            let count = b.get_u32() as usize;
            if count.checked_mul(16) != Some(b.remaining()) {
                return Err("snapshot owner table has the wrong size".into());
            }
            for _ in 0..count {
                owners.insert(b.get_u64(), b.get_u64());
            }
        }
        self.tree = tree;
        self.passwords = passwords;
        self.owners = owners;
        self.completed.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests;
