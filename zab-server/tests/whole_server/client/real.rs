//! A real client: zab-client's session machine (`zab_client::machine`),
//! driven by the simulator the way the async client's task drives it over
//! TCP, with a small application on top: a session's ephemeral, a recursive
//! watch on the root, persistent writes. It checks what it can see itself:
//! every create is answered with its own path, no event of the root
//! reaches the session's stream (unclaimed) before its watch's reply, and
//! a moved session's old connection never applies a write. It also records
//! register operations and its watch streams for the history checkers
//! (`history.rs`), which the simulation runs at the end over every client.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use zab_client::machine::{CallId, Defects, ExpiredBy, Machine, Output, SessionState};
use zab_client::Delivery;
use zab_proto::{
    AddWatchMode, CreateMode, CreateRequest, ErrorCode, OpCode, Outcome, Request, RequestFrame,
    Response, ServerFrame, Xid,
};
use zab_server::core::ConnId;
use zab_tests::sim::rng::Rng;

use zab_tests::checkers::SequentialCreate;

use super::history::{RegisterLog, StreamLog};
use super::{Action, Received, Session, ROOT};

/// The parent of the real clients' sequential creates.
pub const SEQ_PARENT: &str = "/q";

/// What a call was for.
#[derive(Debug)]
enum Call {
    Create {
        path: String,
        mode: CreateMode,
    },
    /// A sequential create under [`SEQ_PARENT`], invoked at this time (µs).
    Sequential {
        invoke: u64,
    },
    Watch,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Watch {
    None,
    /// AddWatch sent; its reply has not come.
    Requested,
    Registered,
}

/// A moved session's old connection, kept open: a write on it must not
/// apply.
#[derive(Debug)]
struct Stale {
    id: ConnId,
    buf: BytesMut,
    next_xid: i32,
    /// Replies still due to requests sent before the move: those may
    /// apply.
    due: usize,
}

#[derive(Debug)]
pub struct RealClient {
    pub index: usize,
    pub requested_timeout_ms: u32,
    pub violation: Option<String>,
    pub sessions_started: u64,
    pub acked_writes: u64,
    /// Persistent nodes whose creation was acknowledged.
    pub acked_paths: Vec<String>,
    /// Acknowledged creates under the root, with their zxids: what the
    /// watch streams must report.
    pub acked_under_root: Vec<(String, u64)>,
    pub registers: RegisterLog,
    pub streams: Vec<StreamLog>,
    /// Sequential creates answered (or definitely refused), and how many
    /// ended with their outcome unknown.
    pub sequential: Vec<SequentialCreate>,
    pub sequential_unknown: u64,
    /// Acknowledged ephemeral creates, by session.
    pub acked_ephemerals: Vec<(u64, String)>,
    pub trace: bool,
    defects: Defects,
    /// None between sessions: the next wake starts one.
    machine: Option<Machine>,
    /// The machine's server `i` is the simulation's `order[i]`: each
    /// client rotates the list, as `Client::connect` does.
    order: Vec<usize>,
    conn: Option<ConnId>,
    stale: Option<Stale>,
    calls: HashMap<CallId, Call>,
    watch: Watch,
    /// An AddWatch of this session had an unknown outcome: the server may
    /// have armed it, so its events may come before a later one's reply.
    watch_unknown: bool,
    writes: u64,
    move_to: Option<usize>,
    /// Drop the connection right after this session's first accept (a
    /// blip), reconnecting elsewhere.
    blip: bool,
}

impl RealClient {
    pub fn new(
        index: usize,
        requested_timeout_ms: u32,
        servers: usize,
        defects: Defects,
        seed: u64,
    ) -> RealClient {
        RealClient {
            index,
            requested_timeout_ms,
            violation: None,
            sessions_started: 0,
            acked_writes: 0,
            acked_paths: Vec::new(),
            acked_under_root: Vec::new(),
            registers: RegisterLog::new(index, seed),
            streams: Vec::new(),
            sequential: Vec::new(),
            sequential_unknown: 0,
            acked_ephemerals: Vec::new(),
            trace: false,
            defects,
            machine: None,
            order: (0..servers).map(|i| (i + index) % servers).collect(),
            conn: None,
            stale: None,
            calls: HashMap::new(),
            watch: Watch::None,
            watch_unknown: false,
            writes: 0,
            move_to: None,
            blip: false,
        }
    }

    fn fail(&mut self, why: String) {
        if self.violation.is_none() {
            self.violation = Some(format!("client {} (real): {why}", self.index));
        }
    }

    /// Sequential creates still waiting for their replies (at the end of
    /// a run: their outcome is unknown).
    pub fn sequential_in_flight(&self) -> u64 {
        let waiting = self.calls.values();
        waiting
            .filter(|c| matches!(c, Call::Sequential { .. }))
            .count() as u64
    }

    pub fn session_id(&self) -> Option<u64> {
        self.machine.as_ref()?.session().map(|s| s.id)
    }

    pub fn stale_conn(&self) -> Option<ConnId> {
        self.stale.as_ref().map(|s| s.id)
    }

    pub fn wake(
        &mut self,
        now: u64,
        rng: &mut Rng,
        servers: usize,
        next_conn: &mut ConnId,
    ) -> Vec<Action> {
        let ms = now / 1000;
        let Some(m) = self.machine.as_mut() else {
            self.machine = Some(Machine::with_defects(
                servers,
                self.requested_timeout_ms,
                ms,
                self.defects,
            ));
            self.blip = rng.chance(0.2);
            return self.pump(now, next_conn).actions;
        };
        m.tick(ms);
        let mut out = self.pump(now, next_conn).actions;
        let Some(m) = self.machine.as_mut().filter(|m| m.is_open()) else {
            return out;
        };
        if let Some(server) = self.move_to.take() {
            let at = m.server().map(|i| self.order[i]);
            if at.is_some_and(|at| at != server) && self.stale.is_none() {
                // The client moves its session while its old connection
                // still works (a flaky network, say): that one stays open.
                let due = m.in_flight();
                self.stale = self.conn.take().map(|id| Stale {
                    id,
                    buf: BytesMut::new(),
                    next_xid: 1_000_000,
                    due,
                });
                self.order.retain(|&s| s != server);
                self.order.insert(0, server);
                m.connection_lost(ms);
                out.extend(self.pump(now, next_conn).actions);
                return out;
            }
        }
        if self.watch == Watch::None {
            let request = Request::AddWatch {
                path: ROOT.into(),
                mode: AddWatchMode::PersistentRecursive,
            };
            let call = m.call(request, true);
            self.calls.insert(call, Call::Watch);
            self.watch = Watch::Requested;
        }
        if rng.chance(0.25) {
            self.create_next();
        }
        if rng.chance(0.1) {
            self.create_sequential(now);
        }
        if rng.chance(0.3) {
            if let Some(m) = self.machine.as_mut() {
                self.registers.start_burst(m, now);
            }
        }
        out.extend(self.pump(now, next_conn).actions);
        out
    }

    fn create_next(&mut self) {
        self.writes += 1;
        let path = format!("{ROOT}/r{}-{}", self.index, self.writes);
        self.create(path, CreateMode::Persistent);
    }

    fn create(&mut self, path: String, mode: CreateMode) {
        let Some(m) = self.machine.as_mut() else {
            return;
        };
        let call = m.call(create_request(&path, mode), false);
        self.calls.insert(call, Call::Create { path, mode });
    }

    fn create_sequential(&mut self, now: u64) {
        let Some(m) = self.machine.as_mut() else {
            return;
        };
        let prefix = format!("{SEQ_PARENT}/n-");
        let request = create_request(&prefix, CreateMode::PersistentSequential);
        let call = m.call(request, false);
        self.calls.insert(call, Call::Sequential { invoke: now });
    }

    /// The machine is dropped: a register operation in flight stays
    /// unknown, the watch streams end.
    fn end_session(&mut self) {
        self.machine = None;
        self.registers.abandon();
        for (_, call) in self.calls.drain() {
            if matches!(call, Call::Sequential { .. }) {
                if self.trace {
                    println!("client {}: a sequential create left unknown", self.index);
                }
                self.sequential_unknown += 1;
            }
        }
        for s in &mut self.streams {
            s.open = false;
        }
    }

    pub fn forget_session(&mut self) {
        self.end_session();
        self.calls.clear();
        self.watch = Watch::None;
    }

    pub fn move_session(&mut self, server: usize) {
        self.move_to = Some(server);
    }

    /// A write, then the connection drops at once; the machine reconnects
    /// (most often to the same server, first in its order).
    pub fn bounce(&mut self, now: u64, next_conn: &mut ConnId) -> Vec<Action> {
        if !self.machine.as_ref().is_some_and(Machine::is_open) {
            return Vec::new();
        }
        self.create_next();
        let mut out = self.pump(now, next_conn).actions;
        out.extend(self.drop_current(now, next_conn));
        out
    }

    /// Closes the current connection as the client's network would.
    fn drop_current(&mut self, now: u64, next_conn: &mut ConnId) -> Vec<Action> {
        let mut out = Vec::new();
        if let Some(conn) = self.conn.take() {
            out.push(Action::Close { conn });
            if let Some(m) = self.machine.as_mut() {
                m.connection_lost(now / 1000);
            }
            out.extend(self.pump(now, next_conn).actions);
        }
        out
    }

    pub fn closed(&mut self, now: u64, conn: ConnId, next_conn: &mut ConnId) -> Vec<Action> {
        if self.stale.as_ref().is_some_and(|s| s.id == conn) {
            self.stale = None;
        }
        if self.conn != Some(conn) {
            return Vec::new();
        }
        self.conn = None;
        if let Some(m) = self.machine.as_mut() {
            m.connection_lost(now / 1000);
        }
        self.pump(now, next_conn).actions
    }

    pub fn drop_connections(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        let stale = self.stale.take().map(|s| s.id);
        for conn in [self.conn.take(), stale].into_iter().flatten() {
            out.push(Action::Close { conn });
        }
        self.end_session();
        out
    }

    pub fn received(
        &mut self,
        now: u64,
        conn: ConnId,
        bytes: &[u8],
        next_conn: &mut ConnId,
    ) -> Received {
        if self.stale.as_ref().is_some_and(|s| s.id == conn) {
            self.on_stale(bytes);
            return Received::default();
        }
        if self.conn != Some(conn) {
            return Received::default();
        }
        if let Some(m) = self.machine.as_mut() {
            m.received(now / 1000, bytes);
        }
        let mut received = self.pump(now, next_conn);
        if std::mem::take(&mut self.blip) && received.accepted.is_some() {
            // Reconnect elsewhere: the next server in the order.
            self.order.rotate_left(1);
            received.actions.extend(self.drop_current(now, next_conn));
        }
        received
    }

    /// Carries out the machine's outputs, as the async client's driver does.
    fn pump(&mut self, now: u64, next_conn: &mut ConnId) -> Received {
        let mut r = Received::default();
        loop {
            let Some(m) = self.machine.as_mut() else {
                return r;
            };
            let outputs = m.take_outputs();
            if outputs.is_empty() {
                return r;
            }
            for output in outputs {
                self.carry_out(now, output, next_conn, &mut r);
            }
        }
    }

    fn carry_out(&mut self, now: u64, output: Output, next_conn: &mut ConnId, r: &mut Received) {
        let ms = now / 1000;
        match output {
            Output::Dial { server } => {
                let conn = *next_conn;
                *next_conn += 1;
                self.conn = Some(conn);
                r.actions.push(Action::Connect {
                    conn,
                    server: self.order[server],
                });
                // The simulated network's connect succeeds at once; a
                // refusal arrives as the connection closing.
                if let Some(m) = self.machine.as_mut() {
                    m.dialed(ms);
                }
            }
            Output::Send(bytes) => {
                if let Some(conn) = self.conn {
                    r.actions.push(Action::Send { conn, bytes });
                }
            }
            Output::Hangup => {
                if let Some(conn) = self.conn.take() {
                    r.actions.push(Action::Close { conn });
                }
            }
            Output::Reply { call, result } => {
                if !self
                    .registers
                    .on_reply(self.machine.as_mut(), call, &result, now)
                {
                    self.on_reply(now, call, result);
                }
            }
            Output::Event {
                to: Delivery::Stream(call),
                event,
            } => {
                if let Some(s) = self.streams.iter_mut().find(|s| s.call == call && s.open) {
                    s.record(&event);
                }
            }
            Output::Event { to, event } => {
                let unclaimed = to == Delivery::Session && event.path.starts_with(ROOT);
                if unclaimed && self.watch == Watch::Requested && !self.watch_unknown {
                    self.fail(format!(
                        "an event on {} at {:#x} before its watch's reply",
                        event.path, event.zxid
                    ));
                }
            }
            Output::EndStream(call) => {
                if let Some(s) = self.streams.iter_mut().find(|s| s.call == call) {
                    s.open = false;
                }
            }
            Output::EndEvents => {}
            Output::ProtocolViolation { server, why } => {
                let server = self.order[server];
                self.fail(format!("server {server} broke the protocol: {why}"));
            }
            Output::State(state) => self.on_state(state, r),
            Output::Finished(_) => {
                // No server accepted a new session: the next wake tries again.
                self.end_session();
                self.conn = None;
            }
        }
    }

    fn on_reply(&mut self, now: u64, id: CallId, result: Result<Response, zab_client::Error>) {
        let Some(call) = self.calls.remove(&id) else {
            return;
        };
        match (call, result) {
            (Call::Watch, Ok(_)) => {
                self.watch = Watch::Registered;
                let zxid = self.machine.as_ref().map_or(0, Machine::last_zxid);
                self.streams.push(StreamLog::armed(id, zxid));
            }
            (Call::Watch, Err(e)) => {
                self.watch = Watch::None;
                self.watch_unknown |= e == zab_client::Error::ConnectionLoss;
            }
            (Call::Sequential { invoke }, result) => self.on_sequential(invoke, now, result),
            (Call::Create { path, mode }, Ok(Response::Create(reply))) => {
                if reply.path != path {
                    return self.fail(format!(
                        "asked to create {path}, was answered {}",
                        reply.path
                    ));
                }
                self.acked_writes += 1;
                if mode == CreateMode::Ephemeral {
                    if let Some(s) = self.machine.as_ref().and_then(Machine::session) {
                        self.acked_ephemerals.push((s.id, path.clone()));
                    }
                }
                if mode == CreateMode::Persistent && path.starts_with(ROOT) && path != ROOT {
                    self.acked_under_root.push((path.clone(), reply.stat.czxid));
                    self.acked_paths.push(path);
                }
            }
            (Call::Create { path, .. }, Ok(other)) => {
                self.fail(format!("create {path} answered {other:?}"));
            }
            (Call::Create { .. }, Err(_)) => {}
        }
    }

    fn on_sequential(
        &mut self,
        invoke: u64,
        now: u64,
        result: Result<Response, zab_client::Error>,
    ) {
        if self.trace {
            println!(
                "{now:>9} µs client {}: sequential create invoked at {invoke}: {result:?}",
                self.index
            );
        }
        let seq = match result {
            Ok(Response::Create(reply)) => {
                let number = reply
                    .path
                    .strip_prefix(SEQ_PARENT)
                    .and_then(|name| name.strip_prefix("/n-"))
                    .and_then(|n| n.parse().ok());
                let Some(n) = number else {
                    return self.fail(format!("a sequential create answered {}", reply.path));
                };
                Some(n)
            }
            // Nothing was created: the parent was not there yet.
            Err(zab_client::Error::Server(ErrorCode::NoNode)) => None,
            Ok(other) => return self.fail(format!("a sequential create answered {other:?}")),
            Err(_) => {
                self.sequential_unknown += 1;
                return;
            }
        };
        self.sequential.push(SequentialCreate {
            invoke,
            complete: now,
            seq,
        });
    }

    fn on_state(&mut self, state: SessionState, r: &mut Received) {
        let Some(m) = self.machine.as_ref() else {
            return;
        };
        match state {
            SessionState::Connected => {
                let s = m.session().expect("accepted");
                r.accepted = Some(Session {
                    id: s.id,
                    password: s.password,
                    timeout_ms: s.timeout_ms,
                });
                self.sessions_started += 1;
                self.watch = Watch::None;
                self.watch_unknown = false;
                if let Some(old) = self.stale.take() {
                    r.actions.push(Action::Close { conn: old.id });
                }
                if self.sessions_started == 1 {
                    self.create(ROOT.into(), CreateMode::Persistent);
                    self.create(SEQ_PARENT.into(), CreateMode::Persistent);
                }
                let path = format!("/e{}-{}", self.index, self.sessions_started);
                self.create(path, CreateMode::Ephemeral);
            }
            SessionState::Reconnected => {
                let s = m.session().expect("accepted");
                r.accepted = Some(Session {
                    id: s.id,
                    password: s.password,
                    timeout_ms: s.timeout_ms,
                });
                if let Some(stale) = self.stale.as_mut() {
                    self.writes += 1;
                    let path = format!("{ROOT}/r{}-{}-stale", self.index, self.writes);
                    let mut bytes = BytesMut::new();
                    RequestFrame::Op {
                        xid: Xid::new(stale.next_xid).expect("positive"),
                        request: Request::Create(CreateRequest {
                            path,
                            data: Bytes::from_static(b"v"),
                            mode: CreateMode::Persistent,
                            ttl_ms: 0,
                            acl: None,
                        }),
                    }
                    .encode(&mut bytes);
                    stale.next_xid += 1;
                    r.actions.push(Action::Send {
                        conn: stale.id,
                        bytes: bytes.freeze(),
                    });
                }
            }
            SessionState::Disconnected => {}
            SessionState::Expired => {
                if m.expired_by() == Some(ExpiredBy::Server) {
                    r.told_expired = m.session().map(|s| s.id);
                }
                self.end_session();
                self.calls.clear();
                self.watch = Watch::None;
                if let Some(old) = self.stale.take() {
                    r.actions.push(Action::Close { conn: old.id });
                }
            }
        }
    }

    /// Bytes on a moved session's old connection: any create it applied is
    /// a violation.
    fn on_stale(&mut self, bytes: &[u8]) {
        let Some(stale) = self.stale.as_mut() else {
            return;
        };
        stale.buf.extend_from_slice(bytes);
        let mut applied = Vec::new();
        while let Ok(Some(body)) = zab_proto::decode_frame(&mut stale.buf, u32::MAX) {
            if let Ok(ServerFrame::Reply(reply)) =
                ServerFrame::decode(body, |_| Some(OpCode::Create))
            {
                if stale.due > 0 {
                    stale.due -= 1;
                } else if let Outcome::Ok(Response::Create(r)) = reply.outcome {
                    applied.push(r.path);
                }
            }
        }
        for path in applied {
            self.fail(format!(
                "a write on a moved session's old connection applied: {path}"
            ));
        }
    }
}

fn create_request(path: &str, mode: CreateMode) -> Request {
    Request::Create(CreateRequest {
        path: path.into(),
        data: Bytes::from_static(b"v"),
        mode,
        ttl_ms: 0,
        acl: None,
    })
}
