//! A model client: a small model of what zab-client does on the wire
//! (handshake, resume, pings every third of the timeout, leaving a server
//! silent for two thirds of it, an ephemeral per session, a recursive watch,
//! writes), speaking through the real codecs. It checks what it can see
//! itself: every reply answers the request it was sent for, no watch event
//! precedes its watch's reply, and a moved session's old connection never
//! applies a write. It also does what the real client never does but a
//! server must survive: its xids start afresh on every connection, and a
//! bounce reuses the xid of a write left in flight.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use zab_proto::{
    AddWatchMode, ConnectReply, ConnectRequest, CreateMode, CreateRequest, ErrorCode, OpCode,
    Outcome, Request, RequestFrame, Response, ServerFrame, Xid, FRAME_BYTES_DEFAULT,
    PASSWORD_BYTES, PROTOCOL_VERSION,
};
use zab_server::core::ConnId;
use zab_tests::sim::rng::Rng;

use super::{Action, Received, Session, ROOT};

/// A request waiting for its reply, in order.
#[derive(Debug)]
enum Pending {
    Create {
        path: String,
        /// Sent on a moved session's old connection: it must not apply.
        stale: bool,
    },
    AddWatch,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Watch {
    None,
    Requested,
    Registered,
}

#[derive(Debug)]
pub struct Conn {
    pub id: ConnId,
    pub server: usize,
    pub accepted: bool,
    opened_us: u64,
    last_recv_us: u64,
    last_sent_us: u64,
    buf: BytesMut,
    pending: VecDeque<Pending>,
    next_xid: i32,
    watch: Watch,
}

#[derive(Debug)]
pub struct ModelClient {
    pub index: usize,
    pub session: Option<Session>,
    pub conn: Option<Conn>,
    /// A moved session's old connection, kept open to test it is stale.
    pub stale: Option<Conn>,
    /// Move the session to this server at the next chance.
    move_to: Option<usize>,
    /// After a bounce: the next connection starts at this xid and writes
    /// as soon as it is accepted, so its write reuses the xid of the write
    /// its predecessor left in flight.
    reuse_xid: Option<i32>,
    pub requested_timeout_ms: u32,
    writes: u64,
    pub violation: Option<String>,
    pub sessions_started: u64,
    pub acked_writes: u64,
    /// Persistent nodes whose creation was acknowledged: they must never be
    /// lost, whatever crashed.
    pub acked_paths: Vec<String>,
    /// The largest zxid seen in any header or ConnectResponse of the
    /// session, sent with every hello: a server behind it refuses the
    /// client (ServerBehind), so the client never goes back in time and
    /// never resumes on a server that has not seen its session's last move.
    last_zxid: u64,
    /// Print every frame received (`ZAB_WHOLE_SIM_TRACE`).
    pub trace: bool,
}

impl ModelClient {
    pub fn new(index: usize, requested_timeout_ms: u32) -> ModelClient {
        ModelClient {
            index,
            session: None,
            conn: None,
            stale: None,
            move_to: None,
            reuse_xid: None,
            requested_timeout_ms,
            writes: 0,
            violation: None,
            sessions_started: 0,
            acked_writes: 0,
            acked_paths: Vec::new(),
            last_zxid: 0,
            trace: false,
        }
    }

    fn fail(&mut self, why: String) {
        if self.violation.is_none() {
            self.violation = Some(format!("client {}: {why}", self.index));
        }
    }

    /// Periodic work: connect, ping, leave a silent server, write.
    pub fn wake(
        &mut self,
        now: u64,
        rng: &mut Rng,
        servers: usize,
        next_conn: &mut ConnId,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(c) = &mut self.conn else {
            let server = rng.below(servers as u64) as usize;
            self.open(now, server, next_conn, &mut out);
            return out;
        };
        if !c.accepted {
            if now.saturating_sub(c.opened_us) > 3_000_000 {
                out.push(Action::Close { conn: c.id });
                self.conn = None;
            }
            return out;
        }
        let timeout_us = u64::from(self.session.map_or(6_000, |s| s.timeout_ms)) * 1000;
        if now.saturating_sub(c.last_recv_us) > timeout_us * 2 / 3 {
            // A server that stopped answering is left, as zab-client does.
            out.push(Action::Close { conn: c.id });
            self.conn = None;
            return out;
        }
        if let Some(server) = self.move_to.take() {
            if server != c.server && self.stale.is_none() {
                // The old connection stays open: the client moves its
                // session while it still works (a flaky network, say).
                self.stale = self.conn.take();
                self.open(now, server, next_conn, &mut out);
                return out;
            }
        }
        if now.saturating_sub(c.last_sent_us) >= timeout_us / 3 {
            let mut b = BytesMut::new();
            RequestFrame::Ping.encode(&mut b);
            c.last_sent_us = now;
            out.push(Action::Send {
                conn: c.id,
                bytes: b.freeze(),
            });
        }
        if rng.chance(0.25) {
            self.writes += 1;
            let path = format!("{ROOT}/c{}-{}", self.index, self.writes);
            let conn = self.conn.as_mut().expect("checked");
            out.push(create(conn, now, &path, CreateMode::Persistent, false));
        }
        out
    }

    /// The process restarted: it knows no session and has seen nothing.
    pub fn forget_session(&mut self) {
        self.session = None;
        self.last_zxid = 0;
    }

    /// Asks for the session to be moved to `server` (a nemesis fault).
    pub fn move_session(&mut self, server: usize) {
        self.move_to = Some(server);
    }

    /// A nemesis fault: the client sends a write, drops the connection at
    /// once and reconnects to the same server, whose xids then repeat the
    /// one left in flight.
    pub fn bounce(&mut self, now: u64, next_conn: &mut ConnId) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(c) = self.conn.as_mut().filter(|c| c.accepted) else {
            return out;
        };
        self.writes += 1;
        let path = format!("{ROOT}/c{}-{}", self.index, self.writes);
        let xid = c.next_xid;
        out.push(create(c, now, &path, CreateMode::Persistent, false));
        out.push(Action::Close { conn: c.id });
        let server = c.server;
        self.conn = None;
        self.open(now, server, next_conn, &mut out);
        // AddWatch takes the xid before, the write the one left in flight.
        self.reuse_xid = Some(xid);
        if let Some(c) = self.conn.as_mut() {
            c.next_xid = (xid - 1).max(1);
        }
        out
    }

    fn open(&mut self, now: u64, server: usize, next_conn: &mut ConnId, out: &mut Vec<Action>) {
        let id = *next_conn;
        *next_conn += 1;
        out.push(Action::Connect { conn: id, server });
        let (session_id, password) = self
            .session
            .map_or((0, [0; PASSWORD_BYTES]), |s| (s.id, s.password));
        let mut b = BytesMut::new();
        ConnectRequest {
            protocol_version: PROTOCOL_VERSION,
            last_zxid_seen: self.last_zxid,
            timeout_ms: self.requested_timeout_ms,
            session_id,
            password,
            max_frame_bytes: FRAME_BYTES_DEFAULT,
        }
        .encode(&mut b);
        out.push(Action::Send {
            conn: id,
            bytes: b.freeze(),
        });
        self.conn = Some(Conn {
            id,
            server,
            accepted: false,
            opened_us: now,
            last_recv_us: now,
            last_sent_us: now,
            buf: BytesMut::new(),
            pending: VecDeque::new(),
            // Xids start afresh on each connection: the server must match
            // replies by its own token, never by (session, xid).
            next_xid: 1,
            watch: Watch::None,
        });
    }

    /// The server closed `conn` (or it was refused).
    pub fn closed(&mut self, conn: ConnId) {
        if self.conn.as_ref().is_some_and(|c| c.id == conn) {
            self.conn = None;
        }
        if self.stale.as_ref().is_some_and(|c| c.id == conn) {
            self.stale = None;
        }
    }

    /// The client abandons its connections (it crashed, or a nemesis made
    /// it bounce); returns what to close.
    pub fn drop_connections(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        for c in [self.conn.take(), self.stale.take()].into_iter().flatten() {
            out.push(Action::Close { conn: c.id });
        }
        out
    }

    /// Bytes from the server on `conn`.
    pub fn received(&mut self, now: u64, conn: ConnId, bytes: &[u8]) -> Received {
        let mut out = Vec::new();
        let mut accepted = None;
        let is_stale = self.stale.as_ref().is_some_and(|c| c.id == conn);
        let Some(c) = (if is_stale {
            self.stale.as_mut()
        } else {
            self.conn.as_mut().filter(|c| c.id == conn)
        }) else {
            return Received::default();
        };
        c.buf.extend_from_slice(bytes);
        c.last_recv_us = now;
        let mut failures = Vec::new();
        loop {
            let body = match zab_proto::decode_frame(&mut c.buf, u32::MAX) {
                Ok(Some(body)) => body,
                Ok(None) => break,
                Err(e) => {
                    failures.push(format!("a bad frame from the server: {e}"));
                    break;
                }
            };
            if !c.accepted {
                match ConnectReply::decode(body) {
                    Ok(ConnectReply::Accepted(r)) => {
                        c.accepted = true;
                        self.last_zxid = self.last_zxid.max(r.last_zxid);
                        let session = Session {
                            id: r.session_id,
                            password: r.password,
                            timeout_ms: r.timeout_ms,
                        };
                        accepted = Some(session);
                    }
                    Ok(ConnectReply::Refused(r)) => {
                        let mut told_expired = None;
                        if matches!(r.code, ErrorCode::SessionExpired | ErrorCode::AuthFailed) {
                            if r.code == ErrorCode::SessionExpired {
                                told_expired = self.session.map(|s| s.id);
                            }
                            self.session = None;
                            self.last_zxid = 0;
                        }
                        out.push(Action::Close { conn });
                        self.conn = None;
                        return Received {
                            actions: out,
                            accepted: None,
                            told_expired,
                        };
                    }
                    Err(e) => failures.push(format!("a bad connect reply: {e}")),
                }
                continue;
            }
            let front = c.pending.front().map(|p| match p {
                Pending::Create { .. } => OpCode::Create,
                Pending::AddWatch => OpCode::AddWatch,
            });
            let frame = match ServerFrame::decode(body, |_| front) {
                Ok(f) => f,
                Err(e) => {
                    failures.push(format!("a frame that does not decode: {e}"));
                    break;
                }
            };
            if self.trace {
                eprintln!(
                    "          client {}: on {conn}: {frame:?} (front {front:?})",
                    self.index
                );
            }
            match frame {
                ServerFrame::Ping { .. } => {}
                ServerFrame::Watch { event, .. } => {
                    if !is_stale && event.path.starts_with(ROOT) && c.watch != Watch::Registered {
                        failures.push(format!(
                            "an event on {} at {:#x} before its watch's reply",
                            event.path, event.zxid
                        ));
                    }
                }
                ServerFrame::Reply(reply) => match c.pending.pop_front() {
                    None => failures.push(format!("a reply to nothing: {reply:?}")),
                    Some(Pending::AddWatch) => c.watch = Watch::Registered,
                    Some(Pending::Create { path, stale }) => match reply.outcome {
                        Outcome::Ok(Response::Create(r)) if stale => failures.push(format!(
                            "a write on a moved session's old connection applied: {}",
                            r.path
                        )),
                        Outcome::Ok(Response::Create(r)) if r.path != path => failures
                            .push(format!("asked to create {path}, was answered {}", r.path)),
                        Outcome::Ok(Response::Create(r)) => {
                            self.acked_writes += 1;
                            if r.path.starts_with(ROOT) && r.path != ROOT {
                                self.acked_paths.push(r.path);
                            }
                        }
                        _ => {}
                    },
                },
            }
        }
        for f in failures {
            self.fail(f);
        }
        if let Some(session) = accepted {
            out.extend(self.on_accepted(now, conn, session));
        }
        Received {
            actions: out,
            accepted,
            told_expired: None,
        }
    }

    /// A handshake was accepted: a new session makes its ephemeral; every
    /// connection re-arms its watch; a move tests the old connection.
    fn on_accepted(&mut self, now: u64, conn: ConnId, session: Session) -> Vec<Action> {
        let mut out = Vec::new();
        let fresh = self.session.map(|s| s.id) != Some(session.id);
        self.session = Some(session);
        let Some(c) = self.conn.as_mut().filter(|c| c.id == conn) else {
            return out;
        };
        if fresh {
            self.sessions_started += 1;
            if self.sessions_started == 1 {
                out.push(create(c, now, ROOT, CreateMode::Persistent, false));
            }
            let path = format!("/e{}-{}", self.index, self.sessions_started);
            out.push(create(c, now, &path, CreateMode::Ephemeral, false));
        }
        out.push(add_watch(c, now));
        if self.reuse_xid.take().is_some() {
            self.writes += 1;
            let path = format!("{ROOT}/c{}-{}", self.index, self.writes);
            out.push(create(c, now, &path, CreateMode::Persistent, false));
        }
        if fresh {
            // The move ended in a new session (the old one expired while
            // the client was moving): the old connection is that old
            // session's, not a stale one of this session.
            if let Some(old) = self.stale.take() {
                out.push(Action::Close { conn: old.id });
            }
        } else if let Some(stale) = self.stale.as_mut() {
            self.writes += 1;
            let path = format!("{ROOT}/c{}-{}-stale", self.index, self.writes);
            out.push(create(stale, now, &path, CreateMode::Persistent, true));
        }
        out
    }
}

fn send(c: &mut Conn, now: u64, request: Request) -> Action {
    let xid = Xid::new(c.next_xid).expect("positive");
    c.next_xid += 1;
    c.last_sent_us = now;
    let mut b = BytesMut::new();
    RequestFrame::Op { xid, request }.encode(&mut b);
    Action::Send {
        conn: c.id,
        bytes: b.freeze(),
    }
}

fn create(c: &mut Conn, now: u64, path: &str, mode: CreateMode, stale: bool) -> Action {
    c.pending.push_back(Pending::Create {
        path: path.to_string(),
        stale,
    });
    let request = Request::Create(CreateRequest {
        path: path.to_string(),
        data: Bytes::from_static(b"v"),
        mode,
        ttl_ms: 0,
        acl: None,
    });
    send(c, now, request)
}

fn add_watch(c: &mut Conn, now: u64) -> Action {
    c.pending.push_back(Pending::AddWatch);
    c.watch = Watch::Requested;
    let request = Request::AddWatch {
        path: ROOT.to_string(),
        mode: AddWatchMode::PersistentRecursive,
    };
    send(c, now, request)
}
