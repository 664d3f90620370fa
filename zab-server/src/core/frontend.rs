//! The client side of the server core: connections, their handshakes and
//! sessions. Requests become log commands, syncs and local reads; replies
//! and watch events go out as [`ClientOutput`]s.
//!
//! Ordering: each connection's replies leave in request order. Writes go
//! through the log; a read queued behind a write of the same connection waits
//! until that write is applied here (read-your-writes); a sync is answered
//! once this server has applied everything the leader confirmed. Watch events
//! are sent as changes are applied, so an event always precedes any reply
//! that reflects its change.
//!
//! Sessions are replicated (created, moved and closed through the log). The
//! leader expires them ([`super::liveness`]): a session is alive only while
//! its client sends something (requests or pings); an open connection alone
//! proves nothing, since a partitioned or paused client leaves its socket
//! open.

use core::net::IpAddr;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use bytes::{Bytes, BytesMut};
use tracing::{debug, info, warn};
use zab_core::{Input, RequestId, Role, Zxid};
use zab_proto::{
    ConnectRefused, ConnectReply, ConnectRequest, ConnectResponse, ErrorCode, Outcome, Reply,
    Request, RequestFrame, ServerFrame, Xid, PASSWORD_BYTES, PROTOCOL_VERSION,
};

use subtle::ConstantTimeEq;

use super::{Clock, ConnId, Entropy, SessionLimits};
use crate::acl::{self, Caller};
use crate::replica::{is_write, Command, CommandBody, Replica};
use crate::watches::Watches;

/// Requests a connection may have outstanding before it is closed.
pub const OUTSTANDING_MAX: usize = 10_000;

/// What the core asks of one client connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientOutput {
    /// Write these bytes (one or more whole frames) to the connection.
    Send { conn: ConnId, bytes: Bytes },
    /// Close the connection once what was sent before is written.
    Close { conn: ConnId },
}

/// One item of a connection's reply queue, in request order.
#[derive(Debug)]
pub(super) enum Item {
    /// A write in the log; filled in when applied here. A multi's
    /// refusal has a body of its own (wire-spec: a multi's error always
    /// lists its ops' codes), so the item says which it is.
    Write {
        id: RequestId,
        multi: bool,
    },
    /// A read or watch request (AddWatch, RemoveWatches, SetWatches)
    /// that must wait for the writes before it.
    Read {
        xid: Xid,
        request: Request,
        /// When it arrived (monotonic µs), for read latency.
        arrived_us: u64,
    },
    /// A sync waiting for the leader's confirmation.
    Sync {
        id: RequestId,
    },
    Ready(ServerFrame),
    /// Close the connection once everything before it is sent.
    Close,
}

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// Accepted; no handshake yet, or its session is being created or moved
    /// here through the log. Bounded by the handshake timeout.
    Handshaking,
    /// The session is attached here with this negotiated timeout.
    Open { timeout_ms: u32 },
    /// The session was re-attached to another connection (here or on
    /// another server): requests get SessionMoved and the connection closes.
    Moved,
}

#[derive(Debug)]
pub(super) struct Conn {
    pub(super) phase: Phase,
    pub(super) session: Option<u64>,
    pub(super) queue: VecDeque<Item>,
    /// The handshake, while the session is created or moved here through
    /// the log, and the token of that command.
    pub(super) connecting: Option<(ConnectRequest, RequestId)>,
    /// Monotonic µs when the client was last heard on this connection (or
    /// when it opened).
    pub(super) heard_us: u64,
    /// The frame limit negotiated in its handshake: no frame sent to it is
    /// larger ([`super::limits`]).
    pub(super) frame_bytes_max: u32,
    /// Who is asking on this connection: its address and what it proved
    /// (AddAuth). Per connection, as in ZooKeeper: a client proves itself
    /// again after a reconnect.
    pub(super) caller: Caller,
}

/// The client-facing state of the server core.
#[derive(Debug)]
pub struct Frontend {
    pub(super) me: u64,
    pub(super) limits: SessionLimits,
    /// The time of the input being handled.
    pub(super) clock: Clock,
    /// Ordered, so that what the core does at a tick is the same in every run
    /// of the same inputs (the simulator replays seeds exactly).
    pub(super) conns: BTreeMap<ConnId, Conn>,
    pub(super) by_session: HashMap<u64, ConnId>,
    /// Writes, syncs and session creations or moves submitted to the core.
    pub(super) requests: HashMap<RequestId, (ConnId, i32)>,
    /// When each write or sync was submitted (monotonic µs), for latency.
    pub(super) submitted: HashMap<RequestId, u64>,
    pub(super) metrics: std::sync::Arc<crate::metrics::Metrics>,
    pub(super) next_request: u64,
    pub(super) watches: Watches,
    /// Sessions heard from since the last tick (relayed to the leader).
    pub(super) touched: BTreeSet<u64>,
    /// Leader only: when each session was last heard from, monotonic µs.
    pub(super) last_heard: HashMap<u64, u64>,
    /// Leader only: sessions whose expiry is in the log already.
    pub(super) expiring: BTreeSet<u64>,
    /// Leader only: expired nodes already proposed for removal, as swept.
    pub(super) sweeping: BTreeSet<(String, Zxid, Zxid)>,
    pub(super) leading: bool,
    /// Whether this server is in a working quorum (leading or following in
    /// broadcast): only then does it take handshakes or keep connections.
    pub(super) broadcasting: bool,
    pub(super) defects: Defects,
    /// The super users' identities (a digest id, a certificate subject): a
    /// connection that proves one passes every ACL check.
    pub(super) superusers: Vec<acl::Identity>,
    pub(super) out: VecDeque<ClientOutput>,
}

/// Deliberately broken rules of the server core, each one a bug this layer
/// had or could have, so the whole-server simulator and the real-process
/// tests can show that they catch it. All off unless a test turns one on
/// (`defects` feature).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Defects {
    /// An open connection counts as a live session, traffic or not.
    pub connection_is_liveness: bool,
    /// The leader times sessions on the wall clock.
    pub expire_on_wall_clock: bool,
    /// A resumed session attaches without moving through the log, so its
    /// old connection elsewhere never learns it is stale.
    pub no_session_moved: bool,
    /// AddWatch, RemoveWatches and SetWatches run when they arrive, ahead
    /// of the replies queued before them.
    pub watch_requests_ahead_of_replies: bool,
    /// Replies are matched to requests by (session, xid), not by token.
    pub replies_by_session_xid: bool,
    /// Sync is answered from this server's applied state, without the
    /// leader's quorum round, so a read after it on a lagging follower is
    /// stale.
    pub sync_answered_locally: bool,
}

impl Defects {
    /// The defect switch called `name`.
    pub fn named(name: &str) -> Option<Defects> {
        let mut d = Defects::default();
        match name {
            "connection_is_liveness" => d.connection_is_liveness = true,
            "expire_on_wall_clock" => d.expire_on_wall_clock = true,
            "no_session_moved" => d.no_session_moved = true,
            "watch_requests_ahead_of_replies" => d.watch_requests_ahead_of_replies = true,
            "replies_by_session_xid" => d.replies_by_session_xid = true,
            "sync_answered_locally" => d.sync_answered_locally = true,
            _ => return None,
        }
        Some(d)
    }

    /// Every name [`Defects::named`] knows.
    pub const NAMES: &'static [&'static str] = &[
        "connection_is_liveness",
        "expire_on_wall_clock",
        "no_session_moved",
        "watch_requests_ahead_of_replies",
        "replies_by_session_xid",
        "sync_answered_locally",
    ];
}

impl Frontend {
    /// `token_seed` must come from entropy: request tokens are logged with
    /// each command (`Command::request`) and must not match a request of an
    /// earlier run of this server, whose writes may still commit.
    pub fn new(
        me: u64,
        limits: SessionLimits,
        token_seed: u64,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
    ) -> Frontend {
        Frontend {
            me,
            limits,
            clock: Clock::default(),
            conns: BTreeMap::new(),
            by_session: HashMap::new(),
            requests: HashMap::new(),
            submitted: HashMap::new(),
            metrics,
            next_request: token_seed | 1,
            watches: Watches::new(limits.watches),
            touched: BTreeSet::new(),
            last_heard: HashMap::new(),
            expiring: BTreeSet::new(),
            sweeping: BTreeSet::new(),
            leading: false,
            broadcasting: false,
            defects: Defects::default(),
            superusers: Vec::new(),
            out: VecDeque::new(),
        }
    }

    /// Names the super users: digest ids (ZooKeeper's `superDigest`) and
    /// certificate subjects (its x509 `superUser`).
    pub fn with_superusers(mut self, superusers: Vec<acl::Identity>) -> Frontend {
        self.superusers = superusers;
        self
    }

    /// Turns on deliberately broken rules (tests only).
    #[cfg(feature = "defects")]
    pub fn with_defects(mut self, defects: Defects) -> Frontend {
        self.defects = defects;
        self
    }

    /// The clock sessions are timed on: monotonic µs (the wall clock, in
    /// µs, under the `expire_on_wall_clock` defect).
    pub(super) fn liveness_now(&self) -> u64 {
        if self.defects.expire_on_wall_clock {
            (self.clock.wall_ms.max(0) as u64).saturating_mul(1000)
        } else {
            self.clock.mono_us
        }
    }

    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Writes, syncs and session changes submitted and not answered yet.
    pub fn outstanding(&self) -> usize {
        self.requests.len()
    }

    /// The next output for a connection, in order.
    pub fn poll_output(&mut self) -> Option<ClientOutput> {
        self.out.pop_front()
    }

    pub(super) fn send_bytes(&mut self, conn: ConnId, bytes: Bytes) {
        self.out.push_back(ClientOutput::Send { conn, bytes });
    }

    /// Sends `frame`, or `FrameTooLarge` for a reply over the connection's
    /// limit.
    pub(super) fn send_frame(&mut self, conn: ConnId, frame: ServerFrame) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let frame = super::limits::fitted(frame, c.frame_bytes_max);
        let mut out = BytesMut::with_capacity(4 + frame.body_len());
        frame.encode(&mut out);
        self.send_bytes(conn, out.freeze());
    }

    /// A connection from `ip` was accepted, with the subject of its TLS
    /// client certificate if it presented one: its handshake is due within
    /// the bound.
    pub fn on_opened(&mut self, conn: ConnId, ip: Option<IpAddr>, x509: Option<String>) {
        let ids: Vec<acl::Identity> = x509
            .map(|subject| acl::Identity {
                scheme: "x509".into(),
                id: subject,
            })
            .into_iter()
            .collect();
        let superuser = ids.iter().any(|id| self.superusers.contains(id));
        self.conns.insert(
            conn,
            Conn {
                phase: Phase::Handshaking,
                session: None,
                queue: VecDeque::new(),
                connecting: None,
                heard_us: self.clock.mono_us,
                frame_bytes_max: self.limits.frame_bytes_max,
                caller: Caller { ip, ids, superuser },
            },
        );
    }

    /// The client closed the connection.
    pub fn on_closed(&mut self, conn: ConnId) {
        self.forget(conn);
    }

    /// Drops a connection's state and closes it. The session lives on until
    /// it expires.
    pub(super) fn forget(&mut self, conn: ConnId) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        self.out.push_back(ClientOutput::Close { conn });
        if let Some(s) = c.session {
            if self.by_session.get(&s) == Some(&conn) {
                self.by_session.remove(&s);
                self.watches.forget(s);
            }
        }
        for item in &c.queue {
            if let Item::Write { id, .. } | Item::Sync { id, .. } = item {
                self.requests.remove(id);
                self.submitted.remove(id);
            }
        }
        if let Some((_, id)) = &c.connecting {
            self.requests.remove(id);
        }
    }

    /// The replica's state was replaced by a snapshot from the leader: the
    /// changes it skipped fired no watches, and sessions may have ended in
    /// it. Every connection is closed, so each client reconnects (here or
    /// elsewhere) and re-arms its watches against the new state: one-shot
    /// watches fire for what changed, persistent ones get ContinuityLost,
    /// and a session that ended is told so. ZooKeeper's followers likewise
    /// drop their clients when they resynchronize.
    pub fn on_state_replaced(&mut self, applied: Zxid) {
        // The changes the snapshot skipped were never seen here.
        self.watches.recent.restart(applied.0);
        let all: Vec<ConnId> = self.conns.keys().copied().collect();
        self.close_all_of(all, "state replaced by a snapshot");
    }

    /// Closes `conns` (their clients reconnect), saying why once.
    pub(super) fn close_all_of(&mut self, conns: Vec<ConnId>, why: &str) {
        if !conns.is_empty() {
            info!(connections = conns.len(), why, "closing client connections");
        }
        for conn in conns {
            self.forget(conn);
        }
    }

    /// The server left the broadcast phase it was in: it is no longer part
    /// of a working quorum. Every connection is closed, as ZooKeeper's
    /// followers do when they lose the leader:
    /// - writes it submitted may or may not commit under the next leader,
    ///   and the core will not report on them (a follower's forwarded write
    ///   can be lost with its leader); a client must not wait forever, nor
    ///   be told a definite failure, so it sees ConnectionLoss;
    /// - the traffic it hears can no longer reach the leader, so a session
    ///   kept here would expire while its client is talking; its client
    ///   moves to a server in the quorum instead.
    ///
    /// Handshakes are refused until it is back in broadcast.
    pub fn on_role_changed(&mut self, role: Role) {
        self.broadcasting = matches!(
            role,
            Role::Leading {
                phase: zab_core::Phase::Broadcast,
                ..
            } | Role::Following {
                phase: zab_core::Phase::Broadcast,
                ..
            }
        );
        if self.broadcasting {
            return;
        }
        let all: Vec<ConnId> = self.conns.keys().copied().collect();
        self.close_all_of(all, "left broadcast");
    }

    /// Refuses a handshake and closes the connection.
    pub(super) fn refuse(&mut self, conn: ConnId, code: ErrorCode, message: String) {
        let mut out = BytesMut::new();
        ConnectReply::Refused(ConnectRefused { code, message }).encode(&mut out);
        self.send_bytes(conn, out.freeze());
        self.forget(conn);
    }

    /// The handshake arrived. `entropy` seeds a new session's id and password.
    pub fn on_hello(
        &mut self,
        conn: ConnId,
        hello: ConnectRequest,
        entropy: Entropy,
        replica: &Replica,
        applied: Zxid,
    ) -> Vec<Input> {
        match self.conns.get(&conn) {
            Some(c) if c.session.is_none() && c.connecting.is_none() => {}
            // Unknown (already closed), or a second hello: not ours to serve.
            _ => return Vec::new(),
        }
        if !self.broadcasting {
            let message = "this server is not in a working quorum right now; try another".into();
            self.refuse(conn, ErrorCode::NotLeaderNoQuorum, message);
            return Vec::new();
        }
        if hello.last_zxid_seen > applied.0 {
            // A client never goes back in time (REFERENCE §4).
            let msg = format!(
                "this server has applied {applied}, behind the client's {:#x}",
                hello.last_zxid_seen
            );
            self.refuse(conn, ErrorCode::ServerBehind, msg);
            return Vec::new();
        }
        if hello.session_id != 0 {
            return self.on_resume(conn, hello, replica, applied);
        }
        // A new session: created through the log so every server knows it.
        let session = self.new_session_id(&entropy, replica);
        let password = entropy.password();
        let timeout_ms = self.limits.negotiate(hello.timeout_ms);
        let hello = ConnectRequest {
            timeout_ms,
            password,
            session_id: session,
            ..hello
        };
        let body = CommandBody::CreateSession {
            timeout_ms,
            password,
        };
        self.submit_handshake(conn, hello, body)
    }

    /// A client resumes its session here.
    fn on_resume(
        &mut self,
        conn: ConnId,
        hello: ConnectRequest,
        replica: &Replica,
        applied: Zxid,
    ) -> Vec<Input> {
        let session = hello.session_id;
        let known = replica.tree.session_timeout_ms(session);
        let password = replica.password(session);
        let timeout_ms = match (known, password) {
            // Compared in constant time: how long a refusal takes tells a
            // guesser nothing about how much of a password was right.
            (Some(timeout_ms), Some(p)) if bool::from(p.ct_eq(&hello.password)) => timeout_ms,
            (Some(_), _) => {
                self.refuse(conn, ErrorCode::AuthFailed, "wrong session password".into());
                return Vec::new();
            }
            (None, _) => {
                let msg = "the session has expired".into();
                self.refuse(conn, ErrorCode::SessionExpired, msg);
                return Vec::new();
            }
        };
        self.touched.insert(session);
        let moving = replica.owner(session).is_some_and(|o| o != self.me);
        if moving && !self.defects.no_session_moved {
            // Owned by another server: the move goes through the log, so
            // every server (the old one included) learns that the session's
            // earlier connections are stale before this one serves.
            let hello = ConnectRequest {
                timeout_ms,
                ..hello
            };
            return self.submit_handshake(conn, hello, CommandBody::MoveSession);
        }
        self.attach(conn, &hello, session, timeout_ms, applied);
        Vec::new()
    }

    /// Sends a handshake's session creation or move to the log; the
    /// connection is answered when it is applied.
    fn submit_handshake(
        &mut self,
        conn: ConnId,
        hello: ConnectRequest,
        body: CommandBody,
    ) -> Vec<Input> {
        let session = hello.session_id;
        let id = self.next_id();
        let cmd = self.command(session, 0, id, body);
        let Some(c) = self.conns.get_mut(&conn) else {
            return Vec::new();
        };
        c.connecting = Some((hello, id));
        self.requests.insert(id, (conn, 0));
        vec![Input::Propose {
            id,
            payload: cmd.encode(),
        }]
    }

    /// Attaches `session` to `conn` and answers the handshake. An earlier
    /// connection of the session here is done.
    pub(super) fn attach(
        &mut self,
        conn: ConnId,
        hello: &ConnectRequest,
        session: u64,
        timeout_ms: u32,
        applied: Zxid,
    ) {
        if let Some(old) = self.by_session.insert(session, conn) {
            if old != conn {
                self.mark_moved(old);
            }
        }
        // Watches left armed here by an earlier connection of this session
        // stay silent until the client re-arms them (SetWatches): events the
        // old connection never passed on must be declared (ContinuityLost,
        // or a one-shot's catch-up) before any later event reaches the new one.
        self.watches.forget(session);
        self.touched.insert(session);
        if self.leading {
            self.last_heard.insert(session, self.liveness_now());
        }
        let server_max = self.limits.frame_bytes_max;
        let limit = zab_proto::negotiate_frame_bytes(hello.max_frame_bytes, server_max)
            .unwrap_or(server_max);
        let mut out = BytesMut::new();
        ConnectReply::Accepted(ConnectResponse {
            protocol_version: PROTOCOL_VERSION,
            timeout_ms,
            session_id: session,
            password: hello.password,
            max_frame_bytes: limit,
            server_id: self.me,
            last_zxid: applied.0,
        })
        .encode(&mut out);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.session = Some(session);
            c.phase = Phase::Open { timeout_ms };
            c.heard_us = self.clock.mono_us;
            c.frame_bytes_max = limit;
        }
        self.send_bytes(conn, out.freeze());
    }

    /// `conn`'s session is attached elsewhere now: it answers what it has
    /// queued, then each further request gets SessionMoved and closes it.
    pub(super) fn mark_moved(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if let Some(s) = c.session {
            if self.by_session.get(&s) == Some(&conn) {
                self.by_session.remove(&s);
                self.watches.forget(s);
            }
        }
        c.phase = Phase::Moved;
    }

    fn new_session_id(&self, entropy: &Entropy, replica: &Replica) -> u64 {
        // ZooKeeper's layout keeps the creating server's id in the top byte;
        // the rest is random, so ids cannot be guessed from each other.
        let mut low = entropy.session_bits();
        loop {
            let id = (self.me << 56) | (low & ((1 << 56) - 1));
            if low & ((1 << 56) - 1) != 0 && replica.tree.session_timeout_ms(id).is_none() {
                return id;
            }
            low = low.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(1);
        }
    }

    /// One request frame from an open connection.
    pub fn on_frame(
        &mut self,
        conn: ConnId,
        frame: RequestFrame,
        replica: &Replica,
        applied: Zxid,
    ) -> Vec<Input> {
        let now = self.clock.mono_us;
        let heard = self.liveness_now();
        let Some(c) = self.conns.get_mut(&conn) else {
            return Vec::new();
        };
        let session = match (c.phase, c.session) {
            (Phase::Open { .. }, Some(session)) => session,
            (Phase::Moved, _) => {
                self.answer_moved(conn, frame, replica);
                return Vec::new();
            }
            // A request before the handshake's answer: not ours to serve.
            _ => {
                warn!(conn, "request before the handshake completed; closing");
                self.forget(conn);
                return Vec::new();
            }
        };
        c.heard_us = now;
        self.touched.insert(session);
        if self.leading {
            self.last_heard.insert(session, heard);
        }
        if c.queue.len() >= OUTSTANDING_MAX {
            warn!(
                conn,
                session = format_args!("{session:#x}"),
                "too many outstanding requests; closing"
            );
            c.queue.push_back(Item::Close);
            self.flush(conn, replica);
            return Vec::new();
        }
        let limit = c.frame_bytes_max;
        let mut inputs = Vec::new();
        let item = match frame {
            RequestFrame::Ping => Item::Ready(ServerFrame::Ping { zxid: applied.0 }),
            RequestFrame::Op { xid, request } => match request {
                r if is_write(&r) => {
                    if let Some(code) =
                        super::limits::refusal(xid, &r, limit, &self.limits, &replica.tree)
                    {
                        // Refused before the log: nothing of it is applied.
                        debug!(conn, ?code, "refusing a write before proposing it");
                        let multi = matches!(r, Request::Multi(_));
                        self.push(
                            conn,
                            Item::Ready(ServerFrame::Reply(Reply {
                                xid,
                                zxid: applied.0,
                                outcome: super::limits::refused(multi, code),
                            })),
                        );
                        self.flush(conn, replica);
                        return inputs;
                    }
                    let id = self.next_id();
                    let multi = matches!(r, Request::Multi(_));
                    let caller = self.conns.get(&conn).map(|c| c.caller.clone());
                    let body = CommandBody::OpAs(caller.unwrap_or_default(), r);
                    let cmd = self.command(session, xid.get(), id, body);
                    self.requests.insert(id, (conn, xid.get()));
                    self.submitted.insert(id, now);
                    inputs.push(Input::Propose {
                        id,
                        payload: cmd.encode(),
                    });
                    Item::Write { id, multi }
                }
                Request::CloseSession => {
                    let id = self.next_id();
                    let cmd = self.command(session, xid.get(), id, CommandBody::CloseSession);
                    self.requests.insert(id, (conn, xid.get()));
                    inputs.push(Input::Propose {
                        id,
                        payload: cmd.encode(),
                    });
                    let multi = false;
                    self.push(conn, Item::Write { id, multi });
                    Item::Close
                }
                r @ (Request::AddWatch { .. }
                | Request::RemoveWatches { .. }
                | Request::SetWatches(_))
                    if self.defects.watch_requests_ahead_of_replies =>
                {
                    let caller = self.conns.get(&conn).map(|c| c.caller.clone());
                    let who = (session, &caller.unwrap_or_default());
                    let outcome = super::reads::read(&r, replica, &mut self.watches, who, limit);
                    let reply = Reply {
                        xid,
                        zxid: applied.0,
                        outcome,
                    };
                    Item::Ready(ServerFrame::Reply(reply))
                }
                Request::Sync { .. } if self.defects.sync_answered_locally => {
                    let reply = Reply {
                        xid,
                        zxid: applied.0,
                        outcome: Outcome::Ok(zab_proto::Response::Sync { zxid: applied.0 }),
                    };
                    Item::Ready(ServerFrame::Reply(reply))
                }
                Request::AddAuth { scheme, auth } => {
                    let outcome = self.add_auth(conn, &scheme, &auth);
                    Item::Ready(ServerFrame::Reply(Reply {
                        xid,
                        zxid: applied.0,
                        outcome,
                    }))
                }
                Request::Sync { .. } => {
                    let id = self.next_id();
                    self.requests.insert(id, (conn, xid.get()));
                    self.submitted.insert(id, self.clock.mono_us);
                    inputs.push(Input::Sync { id });
                    Item::Sync { id }
                }
                // Reads and watch requests run in request order, once the
                // writes before them are applied: a watch armed at that
                // point reports exactly the changes after its reply's zxid.
                local => Item::Read {
                    xid,
                    request: local,
                    arrived_us: self.clock.mono_us,
                },
            },
        };
        self.push(conn, item);
        self.flush(conn, replica);
        inputs
    }

    fn push(&mut self, conn: ConnId, item: Item) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.queue.push_back(item);
        }
    }

    /// A request on a connection whose session moved: SessionMoved, after
    /// what was queued before it, and the connection closes (wire-spec §4,
    /// rule 7).
    fn answer_moved(&mut self, conn: ConnId, frame: RequestFrame, replica: &Replica) {
        if let RequestFrame::Op { xid, request } = frame {
            // Its header zxid is stamped when it leaves (see `flush`).
            let multi = matches!(request, Request::Multi(_));
            let moved = Reply {
                xid,
                zxid: 0,
                outcome: super::limits::refused(multi, ErrorCode::SessionMoved),
            };
            self.push(conn, Item::Ready(ServerFrame::Reply(moved)));
        }
        self.push(conn, Item::Close);
        self.flush(conn, replica);
    }

    /// The next request token; never 0 (the token of commands no client awaits).
    pub(super) fn next_id(&mut self) -> RequestId {
        if self.next_request == 0 {
            self.next_request = 1;
        }
        let id = RequestId(self.next_request);
        self.next_request = self.next_request.wrapping_add(1);
        id
    }

    /// A request `id` of `session` as the command this server logs, stamped
    /// with the wall clock (ctime and mtime).
    pub(super) fn command(
        &self,
        session: u64,
        xid: i32,
        id: RequestId,
        body: CommandBody,
    ) -> Command {
        Command {
            origin: self.me,
            session,
            xid,
            request: id.0,
            time_ms: self.clock.wall_ms,
            body,
        }
    }
}

impl Entropy {
    fn session_bits(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[..8]);
        u64::from_be_bytes(b)
    }

    fn password(&self) -> [u8; PASSWORD_BYTES] {
        let mut p = [0u8; PASSWORD_BYTES];
        p.copy_from_slice(&self.0[8..8 + PASSWORD_BYTES]);
        p
    }
}
