//! Clients: the TCP listener, one task per connection (framing and the
//! handshake, nothing else), and the [`Frontend`], the driver-side state that
//! turns requests into log commands, syncs and local reads, and replies.
//!
//! Ordering: each connection's replies leave in request order. Writes go
//! through the log; a read queued behind a write of the same connection waits
//! until that write is applied here (read-your-writes); a sync is answered
//! once this server has applied everything the leader confirmed. Watch events
//! are sent as changes are applied, so an event always precedes any reply
//! that reflects its change.
//!
//! Sessions are replicated (created and closed through the log). The leader
//! expires them: every server relays which sessions it heard from each tick,
//! and a session silent for its timeout is closed by one command, removing its
//! ephemerals at one zxid. A new leader restarts every session's clock.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};
use zab_core::{Input, RequestId, Role, Zxid};
use zab_proto::{
    negotiate_frame_bytes, negotiate_timeout_ms, ConnectRefused, ConnectReply, ConnectRequest,
    ConnectResponse, CreateReply, ErrorCode, MultiResult, Outcome as WireOutcome, Reply, Request,
    RequestFrame, Response, ServerFrame, WatchEvent, Xid, HANDSHAKE_FRAME_BYTES_MAX,
    PASSWORD_BYTES, PROTOCOL_VERSION,
};

use crate::replica::{is_write, Command, CommandBody, Completion, Replica};
use crate::tree::Outcome;
use crate::tree::Stat as TreeStat;
use crate::watches::{OneShot, Watches};

/// Requests a connection may have outstanding before it is closed.
pub const OUTSTANDING_MAX: usize = 10_000;
/// Watches a session may hold.
pub const WATCHES_MAX: usize = 100_000;

pub type ConnId = u64;

/// From connection tasks to the driver.
#[derive(Debug)]
pub enum ClientEvent {
    Connected {
        conn: ConnId,
        hello: ConnectRequest,
        tx: mpsc::UnboundedSender<Bytes>,
    },
    Frame {
        conn: ConnId,
        frame: RequestFrame,
    },
    Closed {
        conn: ConnId,
    },
}

/// Accepts clients forever, one task each.
/// Connections one client address may hold open (ZooKeeper's maxClientCnxns).
pub const CONNECTIONS_PER_ADDRESS_MAX: usize = 60;

type PerAddress = std::sync::Arc<std::sync::Mutex<HashMap<std::net::IpAddr, usize>>>;

pub async fn listen(
    listener: TcpListener,
    events: mpsc::Sender<ClientEvent>,
    frame_bytes_max: u32,
) {
    let mut next: ConnId = 1;
    let per_address = PerAddress::default();
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                {
                    let mut counts = per_address.lock().unwrap_or_else(|e| e.into_inner());
                    let n = counts.entry(addr.ip()).or_insert(0);
                    if *n >= CONNECTIONS_PER_ADDRESS_MAX {
                        warn!(%addr, "too many connections from this address; refusing");
                        continue; // dropping the stream closes it
                    }
                    *n += 1;
                }
                let conn = next;
                next += 1;
                let events = events.clone();
                let per_address = per_address.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection(conn, stream, events.clone(), frame_bytes_max).await
                    {
                        debug!(%addr, conn, error = %e, "client connection ended");
                    }
                    let _ = events.send(ClientEvent::Closed { conn }).await;
                    let mut counts = per_address.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(n) = counts.get_mut(&addr.ip()) {
                        *n -= 1;
                        if *n == 0 {
                            counts.remove(&addr.ip());
                        }
                    }
                });
            }
            Err(e) => {
                warn!(error = %e, "accepting a client failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn connection(
    conn: ConnId,
    stream: TcpStream,
    events: mpsc::Sender<ClientEvent>,
    frame_bytes_max: u32,
) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let hello = loop {
        match zab_proto::decode_frame(&mut buf, HANDSHAKE_FRAME_BYTES_MAX) {
            Ok(Some(body)) => break ConnectRequest::decode(body).map_err(std::io::Error::other)?,
            Ok(None) => {}
            Err(e) => return Err(std::io::Error::other(e)),
        }
        if reader.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    };
    let limit =
        negotiate_frame_bytes(hello.max_frame_bytes, frame_bytes_max).unwrap_or(frame_bytes_max);
    let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
    if events
        .send(ClientEvent::Connected { conn, hello, tx })
        .await
        .is_err()
    {
        return Ok(());
    }
    let write = async move {
        while let Some(first) = rx.recv().await {
            let mut out = BytesMut::from(&first[..]);
            while let Ok(more) = rx.try_recv() {
                out.extend_from_slice(&more);
            }
            if writer.write_all(&out).await.is_err() {
                return;
            }
        }
        // The driver dropped us (close or refusal): flush and end.
        let _ = writer.shutdown().await;
    };
    let read = async move {
        loop {
            match zab_proto::decode_frame(&mut buf, limit) {
                Ok(Some(body)) => match RequestFrame::decode(body) {
                    Ok(frame) => {
                        if events
                            .send(ClientEvent::Frame { conn, frame })
                            .await
                            .is_err()
                        {
                            return Ok(());
                        }
                        continue;
                    }
                    Err(e) => {
                        // A malformed frame closes this connection only.
                        warn!(conn, error = %e, "malformed request; closing the connection");
                        return Err(std::io::Error::other(e));
                    }
                },
                Ok(None) => {}
                Err(e) => {
                    warn!(conn, error = %e, "bad frame; closing the connection");
                    return Err(std::io::Error::other(e));
                }
            }
            if reader.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        }
    };
    tokio::select! {
        () = write => Ok(()),
        r = read => r,
    }
}

/// One item of a connection's reply queue, in request order.
#[derive(Debug)]
enum Item {
    /// A write in the log; filled in when applied here.
    Write {
        id: RequestId,
    },
    /// A read or watch request (AddWatch, RemoveWatches, SetWatches)
    /// that must wait for the writes before it.
    Read {
        xid: Xid,
        request: Request,
    },
    /// A sync waiting for the leader's confirmation.
    Sync {
        id: RequestId,
    },
    Ready(ServerFrame),
    /// Close the connection once everything before it is sent.
    Close,
}

#[derive(Debug)]
struct Conn {
    tx: mpsc::UnboundedSender<Bytes>,
    session: Option<u64>,
    queue: VecDeque<Item>,
    /// The handshake, while a new session is being created through the log.
    connecting: Option<(ConnectRequest, RequestId)>,
}

/// The driver-side state of every client connected to this server.
#[derive(Debug)]
pub struct Frontend {
    me: u64,
    tick_ms: u64,
    conns: HashMap<ConnId, Conn>,
    by_session: HashMap<u64, ConnId>,
    /// Writes, syncs and session creations submitted to the core.
    requests: HashMap<RequestId, (ConnId, i32)>,
    /// When each write was submitted, for the commit latency histogram.
    submitted: HashMap<RequestId, std::time::Instant>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    next_request: u64,
    watches: Watches,
    /// Sessions heard from since the last tick (relayed to the leader).
    touched: BTreeSet<u64>,
    /// Leader only: when each session was last heard from, in ms.
    last_heard: HashMap<u64, u64>,
    /// Leader only: sessions whose expiry is in the log already.
    expiring: BTreeSet<u64>,
    /// Leader only: expired nodes already proposed for removal, as swept.
    sweeping: BTreeSet<(String, Zxid, Zxid)>,
    leading: bool,
    session_counter: u64,
    random: RandomState,
}

/// What the frontend asks of the core.
pub type Inputs = Vec<Input>;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Frontend {
    pub fn new(
        me: u64,
        tick_ms: u64,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
    ) -> Frontend {
        Frontend {
            submitted: HashMap::new(),
            metrics,
            me,
            tick_ms,
            conns: HashMap::new(),
            by_session: HashMap::new(),
            requests: HashMap::new(),
            // Tokens are logged with each command (`Command::request`) and
            // must not match a request of an earlier run of this server,
            // whose writes may still commit: a random start makes that
            // practically impossible.
            next_request: RandomState::new().hash_one(now_ms()) | 1,
            watches: Watches::default(),
            touched: BTreeSet::new(),
            last_heard: HashMap::new(),
            expiring: BTreeSet::new(),
            sweeping: BTreeSet::new(),
            leading: false,
            session_counter: 0,
            random: RandomState::new(),
        }
    }

    /// Handles one event from a connection task.
    pub fn on_event(&mut self, event: ClientEvent, replica: &Replica, applied: Zxid) -> Inputs {
        match event {
            ClientEvent::Connected { conn, hello, tx } => {
                self.on_connect(conn, hello, tx, replica, applied)
            }
            ClientEvent::Frame { conn, frame } => self.on_frame(conn, frame, replica, applied),
            ClientEvent::Closed { conn } => {
                self.forget(conn);
                Vec::new()
            }
        }
    }

    /// Drops a connection's state; dropping its sender ends its task, which
    /// closes the socket. The session lives on until it expires.
    fn forget(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn) {
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
    }

    /// The replica's state was replaced by a snapshot from the leader: the
    /// changes it skipped fired no watches, and sessions may have ended in
    /// it. Every connection is closed, so each client reconnects (here or
    /// elsewhere) and re-arms its watches against the new state: one-shot
    /// watches fire for what changed, persistent ones get ContinuityLost,
    /// and a session that ended is told so. ZooKeeper's followers likewise
    /// drop their clients when they resynchronize.
    pub fn on_state_replaced(&mut self) {
        let all: Vec<ConnId> = self.conns.keys().copied().collect();
        self.close_all_of(all, "state replaced by a snapshot");
    }

    /// Closes `conns` (their clients reconnect), saying why once.
    fn close_all_of(&mut self, conns: Vec<ConnId>, why: &str) {
        if !conns.is_empty() {
            info!(connections = conns.len(), why, "closing client connections");
        }
        for conn in conns {
            self.forget(conn);
        }
    }

    /// The server left the broadcast phase it was in: writes it submitted
    /// may or may not commit under the next leader, and the core will not
    /// report on them (a follower's forwarded write can be lost with its
    /// leader). A client must not wait forever, nor be told a definite
    /// failure: its connection is closed, so it sees ConnectionLoss and
    /// reconnects, as ZooKeeper's followers do when they lose the leader.
    pub fn on_role_changed(&mut self, role: Role) {
        let broadcasting = matches!(
            role,
            Role::Leading {
                phase: zab_core::Phase::Broadcast,
                ..
            } | Role::Following {
                phase: zab_core::Phase::Broadcast,
                ..
            }
        );
        if broadcasting {
            return;
        }
        let doubtful: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.queue.iter().any(|i| matches!(i, Item::Write { .. })))
            .map(|(conn, _)| *conn)
            .collect();
        self.close_all_of(doubtful, "left broadcast with writes in flight");
    }

    fn on_connect(
        &mut self,
        conn: ConnId,
        hello: ConnectRequest,
        tx: mpsc::UnboundedSender<Bytes>,
        replica: &Replica,
        applied: Zxid,
    ) -> Inputs {
        let refuse = |tx: &mpsc::UnboundedSender<Bytes>, code: ErrorCode, message: String| {
            let mut out = BytesMut::new();
            ConnectReply::Refused(ConnectRefused { code, message }).encode(&mut out);
            let _ = tx.send(out.freeze());
        };
        if hello.last_zxid_seen > applied.0 {
            // A client never goes back in time (REFERENCE §4).
            let msg = format!(
                "this server has applied {applied}, behind the client's {:#x}",
                hello.last_zxid_seen
            );
            refuse(&tx, ErrorCode::ServerBehind, msg);
            return Vec::new();
        }
        let mut c = Conn {
            tx,
            session: None,
            queue: VecDeque::new(),
            connecting: None,
        };
        if hello.session_id != 0 {
            let known = replica.tree.session_timeout_ms(hello.session_id);
            let password = replica.password(hello.session_id);
            match (known, password) {
                (Some(timeout_ms), Some(p)) if p == hello.password => {
                    if let Some(old) = self.by_session.insert(hello.session_id, conn) {
                        // The session moved here; the old connection is done.
                        if let Some(o) = self.conns.get_mut(&old) {
                            o.session = None;
                            o.queue.push_back(Item::Close);
                        }
                        self.flush(old, replica);
                    }
                    // Watches left armed here by an earlier connection of
                    // this session stay silent until the client re-arms them
                    // (SetWatches): events the old connection never passed
                    // on must be declared (ContinuityLost, or a one-shot's
                    // catch-up) before any later event reaches the new one.
                    self.watches.forget(hello.session_id);
                    accept(
                        self.me,
                        &mut c,
                        &hello,
                        hello.session_id,
                        timeout_ms,
                        applied,
                    );
                    self.touched.insert(hello.session_id);
                    self.last_heard.insert(hello.session_id, now_ms());
                    self.conns.insert(conn, c);
                }
                (Some(_), _) => refuse(
                    &c.tx,
                    ErrorCode::AuthFailed,
                    "wrong session password".into(),
                ),
                (None, _) => refuse(
                    &c.tx,
                    ErrorCode::SessionExpired,
                    "the session has expired".into(),
                ),
            }
            return Vec::new();
        }
        // A new session: create it through the log so every server knows it.
        let session = self.new_session_id();
        let password = self.new_password(session);
        let timeout_ms = negotiate_timeout_ms(hello.timeout_ms, self.tick_ms as u32);
        let id = next_id(&mut self.next_request);
        let cmd = command(
            self.me,
            session,
            0,
            id,
            CommandBody::CreateSession {
                timeout_ms,
                password,
            },
        );
        c.session = Some(session);
        c.connecting = Some((
            ConnectRequest {
                timeout_ms,
                password,
                session_id: session,
                ..hello
            },
            id,
        ));
        self.by_session.insert(session, conn);
        self.requests.insert(id, (conn, 0));
        self.conns.insert(conn, c);
        vec![Input::Propose {
            id,
            payload: cmd.encode(),
        }]
    }
}

/// Answers the handshake: the session is open on this connection.
fn accept(
    me: u64,
    c: &mut Conn,
    hello: &ConnectRequest,
    session: u64,
    timeout_ms: u32,
    applied: Zxid,
) {
    let limit = negotiate_frame_bytes(hello.max_frame_bytes, zab_proto::FRAME_BYTES_DEFAULT)
        .unwrap_or(zab_proto::FRAME_BYTES_DEFAULT);
    let mut out = BytesMut::new();
    ConnectReply::Accepted(ConnectResponse {
        protocol_version: PROTOCOL_VERSION,
        timeout_ms,
        session_id: session,
        password: hello.password,
        max_frame_bytes: limit,
        server_id: me,
        last_zxid: applied.0,
    })
    .encode(&mut out);
    c.session = Some(session);
    let _ = c.tx.send(out.freeze());
}

impl Frontend {
    fn new_session_id(&mut self) -> u64 {
        // ZooKeeper's layout: server id in the top byte, then time and a counter.
        self.session_counter += 1;
        (self.me << 56) | (((now_ms() << 24) >> 8) + self.session_counter) & ((1 << 56) - 1)
    }

    fn new_password(&self, session: u64) -> [u8; PASSWORD_BYTES] {
        let a = self.random.hash_one((session, 1u8)).to_be_bytes();
        let b = self.random.hash_one((session, 2u8, now_ms())).to_be_bytes();
        let mut p = [0u8; PASSWORD_BYTES];
        p[..8].copy_from_slice(&a);
        p[8..].copy_from_slice(&b);
        p
    }

    fn on_frame(
        &mut self,
        conn: ConnId,
        frame: RequestFrame,
        replica: &Replica,
        applied: Zxid,
    ) -> Inputs {
        let Some(c) = self.conns.get_mut(&conn) else {
            return Vec::new();
        };
        let Some(session) = c.session else {
            return Vec::new();
        };
        self.touched.insert(session);
        if self.leading {
            self.last_heard.insert(session, now_ms());
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
        let mut inputs = Vec::new();
        match frame {
            RequestFrame::Ping => c
                .queue
                .push_back(Item::Ready(ServerFrame::Ping { zxid: applied.0 })),
            RequestFrame::Op { xid, request } => match request {
                r if is_write(&r) => {
                    let id = next_id(&mut self.next_request);
                    let cmd = command(self.me, session, xid.get(), id, CommandBody::Op(r));
                    c.queue.push_back(Item::Write { id });
                    self.requests.insert(id, (conn, xid.get()));
                    self.submitted.insert(id, std::time::Instant::now());
                    inputs.push(Input::Propose {
                        id,
                        payload: cmd.encode(),
                    });
                }
                Request::CloseSession => {
                    let id = next_id(&mut self.next_request);
                    let cmd = command(self.me, session, xid.get(), id, CommandBody::CloseSession);
                    c.queue.push_back(Item::Write { id });
                    c.queue.push_back(Item::Close);
                    self.requests.insert(id, (conn, xid.get()));
                    inputs.push(Input::Propose {
                        id,
                        payload: cmd.encode(),
                    });
                }
                Request::Sync { .. } => {
                    let id = next_id(&mut self.next_request);
                    c.queue.push_back(Item::Sync { id });
                    self.requests.insert(id, (conn, xid.get()));
                    inputs.push(Input::Sync { id });
                }
                // Reads and watch requests run in request order, once the
                // writes before them are applied: a watch armed at that
                // point reports exactly the changes after its reply's zxid.
                local => c.queue.push_back(Item::Read {
                    xid,
                    request: local,
                }),
            },
        }
        self.flush(conn, replica);
        inputs
    }
}

/// Re-arms watches after a reconnect and reports what changed since the
/// client's last zxid, as ZooKeeper does: by comparing the zxids in each
/// node's stat with the client's. Persistent watches cannot be caught up this
/// way (the changes under them are not recorded), so they get an explicit
/// `ContinuityLost` instead of a silent gap.
fn rearm(
    watches: &mut Watches,
    session: u64,
    set: &zab_proto::SetWatches,
    replica: &Replica,
) -> Vec<(zab_proto::WatchEventKind, String)> {
    use zab_proto::WatchEventKind as K;
    let rel = set.relative_zxid;
    let mut events = Vec::new();
    for path in &set.data {
        match replica.tree.exists(path) {
            None => events.push((K::NodeDeleted, path.clone())),
            Some(st) if st.mzxid.0 > rel => events.push((K::NodeDataChanged, path.clone())),
            Some(_) => watches.arm(OneShot::Data, path, session),
        }
    }
    for path in &set.exists {
        match replica.tree.exists(path) {
            Some(st) if st.czxid.0 > rel => events.push((K::NodeCreated, path.clone())),
            Some(st) if st.mzxid.0 > rel => events.push((K::NodeDataChanged, path.clone())),
            _ => watches.arm(OneShot::Exists, path, session),
        }
    }
    for path in &set.children {
        match replica.tree.exists(path) {
            None => events.push((K::NodeDeleted, path.clone())),
            Some(st) if st.pzxid.0 > rel => events.push((K::NodeChildrenChanged, path.clone())),
            Some(_) => watches.arm(OneShot::Child, path, session),
        }
    }
    for (paths, mode) in [
        (&set.persistent, zab_proto::AddWatchMode::Persistent),
        (
            &set.persistent_recursive,
            zab_proto::AddWatchMode::PersistentRecursive,
        ),
    ] {
        for path in paths {
            watches.add(mode, path, session);
            events.push((K::ContinuityLost, path.clone()));
        }
    }
    events
}

impl Frontend {
    /// The core rejected a write or sync: it did not and will not happen.
    pub fn on_reject(&mut self, id: RequestId, replica: &Replica, applied: Zxid) {
        self.submitted.remove(&id);
        let Some((conn, xid)) = self.requests.remove(&id) else {
            return;
        };
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if let Some((hello, _)) = c.connecting.take() {
            let mut out = BytesMut::new();
            ConnectReply::Refused(ConnectRefused {
                code: ErrorCode::NotLeaderNoQuorum,
                message: "no leader with a quorum right now; try again or another server".into(),
            })
            .encode(&mut out);
            let _ = c.tx.send(out.freeze());
            self.by_session.remove(&hello.session_id);
            self.conns.remove(&conn);
            return;
        }
        fill(
            c,
            id,
            reply(xid, applied, WireOutcome::Err(ErrorCode::NotLeaderNoQuorum)),
        );
        self.flush(conn, replica);
    }

    pub fn on_sync_done(&mut self, id: RequestId, zxid: Zxid, replica: &Replica, applied: Zxid) {
        let Some((conn, xid)) = self.requests.remove(&id) else {
            return;
        };
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let outcome = WireOutcome::Ok(Response::Sync { zxid: zxid.0 });
        fill(c, id, reply(xid, applied, outcome));
        self.flush(conn, replica);
    }

    /// Everything applied since the last call: fire watches first, then fill
    /// in the replies of this server's clients.
    pub fn on_applied(&mut self, completions: Vec<Completion>, replica: &Replica) -> Inputs {
        let mut dirty = BTreeSet::new();
        for done in completions {
            for change in &done.changes {
                for (session, kind, path) in self.watches.fire(change) {
                    if let Some(&conn) = self.by_session.get(&session) {
                        if let Some(c) = self.conns.get_mut(&conn) {
                            let event = WatchEvent {
                                kind,
                                path,
                                zxid: done.zxid.0,
                            };
                            send(
                                c,
                                &ServerFrame::Watch {
                                    zxid: done.zxid.0,
                                    event,
                                },
                            );
                        }
                    }
                }
            }
            if matches!(done.outcome, Outcome::SessionClosed) {
                self.watches.forget(done.session);
                self.last_heard.remove(&done.session);
                self.expiring.remove(&done.session);
                // A session closed by expiry (or elsewhere) ends its
                // connection here too, after what is already queued; the
                // client then learns SessionExpired when it reconnects.
                if let Some(&conn) = self.by_session.get(&done.session) {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.queue.push_back(Item::Close);
                        dirty.insert(conn);
                    }
                }
            }
            if done.origin != self.me {
                continue;
            }
            // The connection that asked, if it is still here: a request
            // whose connection was closed is no longer in `requests`, and
            // its reply goes nowhere (the client saw ConnectionLoss).
            let id = RequestId(done.request);
            let Some((conn, _)) = self.requests.remove(&id) else {
                continue;
            };
            let submitted = self.submitted.remove(&id);
            let Some(c) = self.conns.get_mut(&conn) else {
                continue;
            };
            if let Some((hello, _)) = c.connecting.take_if(|(_, cid)| *cid == id) {
                if matches!(done.outcome, Outcome::SessionCreated) {
                    let (session, timeout) = (hello.session_id, hello.timeout_ms);
                    accept(self.me, c, &hello, session, timeout, done.zxid);
                    self.last_heard.insert(session, now_ms());
                }
            } else if fill(
                c,
                id,
                reply(done.xid, done.zxid, wire_outcome(&done.outcome)),
            ) {
                if let Some(at) = submitted {
                    self.metrics.commit.observe(at.elapsed());
                }
                dirty.insert(conn);
            }
        }
        for conn in dirty {
            self.flush(conn, replica);
        }
        Vec::new()
    }

    /// Sends whatever is ready at the head of `conn`'s queue, running reads
    /// whose earlier writes have been applied.
    fn flush(&mut self, conn: ConnId, replica: &Replica) {
        let applied = replica.tree.last_applied_zxid();
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let session = c.session.unwrap_or(0);
        loop {
            match c.queue.front() {
                Some(Item::Ready(_)) => {
                    if let Some(Item::Ready(frame)) = c.queue.pop_front() {
                        send(c, &restamped(frame, applied));
                    }
                }
                Some(Item::Read { .. }) => {
                    if let Some(Item::Read { xid, request }) = c.queue.pop_front() {
                        let outcome = match &request {
                            Request::SetWatches(set) => {
                                catch_up(c, set, replica, &mut self.watches, session, applied)
                            }
                            request => read(request, replica, &mut self.watches, session),
                        };
                        send(
                            c,
                            &ServerFrame::Reply(Reply {
                                xid,
                                zxid: applied.0,
                                outcome,
                            }),
                        );
                    }
                }
                Some(Item::Close) => {
                    // Dropping the sender ends the connection's writer; what
                    // was queued behind the close is dropped with it.
                    self.forget(conn);
                    return;
                }
                Some(Item::Write { .. } | Item::Sync { .. }) | None => return,
            }
        }
    }

    /// Per tick: followers relay which sessions they heard from; the leader
    /// expires sessions silent for their timeout.
    pub fn on_tick(&mut self, role: Role, replica: &Replica) -> Inputs {
        let leading = matches!(
            role,
            Role::Leading {
                phase: zab_core::Phase::Broadcast,
                ..
            }
        );
        let now = now_ms();
        if leading && !self.leading {
            // A new leader restarts every session's clock (REFERENCE §4).
            self.last_heard = replica
                .tree
                .sessions()
                .into_iter()
                .map(|(s, _)| (s, now))
                .collect();
            self.expiring.clear();
            info!("leading: session clocks restarted");
        }
        self.leading = leading;
        let mut inputs = Vec::new();
        let touched = std::mem::take(&mut self.touched);
        // Sessions connected here are alive even when idle between pings.
        let connected: BTreeSet<u64> = self.by_session.keys().copied().collect();
        if leading {
            for s in touched.iter().chain(connected.iter()) {
                self.last_heard.insert(*s, now);
            }
            // Empty containers and expired TTL nodes, a few per tick.
            for path in replica
                .tree
                .expired_candidates(now as i64)
                .into_iter()
                .take(16)
            {
                if let Some(st) = replica.tree.exists(&path) {
                    if self.sweeping.insert((path.clone(), st.mzxid, st.pzxid)) {
                        let cmd = Command {
                            origin: self.me,
                            session: 0,
                            xid: 0,
                            request: 0,
                            time_ms: now as i64,
                            body: CommandBody::DeleteExpired {
                                path,
                                mzxid: st.mzxid,
                                pzxid: st.pzxid,
                            },
                        };
                        let id = next_id(&mut self.next_request);
                        inputs.push(Input::Propose {
                            id,
                            payload: cmd.encode(),
                        });
                    }
                }
            }
            if self.sweeping.len() > 10_000 {
                self.sweeping.clear();
            }
            for (session, timeout_ms) in replica.tree.sessions() {
                let heard = *self.last_heard.entry(session).or_insert(now);
                if now.saturating_sub(heard) > u64::from(timeout_ms)
                    && self.expiring.insert(session)
                {
                    info!(session = format_args!("{session:#x}"), "session expired");
                    let cmd = Command {
                        origin: self.me,
                        session,
                        xid: 0,
                        request: 0,
                        time_ms: now as i64,
                        body: CommandBody::ExpireSession,
                    };
                    let id = next_id(&mut self.next_request);
                    inputs.push(Input::Propose {
                        id,
                        payload: cmd.encode(),
                    });
                }
            }
        } else {
            let alive: BTreeSet<u64> = touched.union(&connected).copied().collect();
            if !alive.is_empty() {
                let mut payload = BytesMut::with_capacity(alive.len() * 8);
                for s in alive {
                    payload.put_u64(s);
                }
                inputs.push(Input::Relay {
                    payload: payload.freeze(),
                });
            }
        }
        inputs
    }

    /// Leader: a follower heard from these sessions.
    pub fn on_relayed(&mut self, mut payload: Bytes) {
        let now = now_ms();
        while payload.remaining() >= 8 {
            self.last_heard.insert(payload.get_u64(), now);
        }
    }

    pub fn connections(&self) -> usize {
        self.conns.len()
    }
}

/// A client's request `id` as the command this server logs, stamped now.
fn command(origin: u64, session: u64, xid: i32, id: RequestId, body: CommandBody) -> Command {
    Command {
        origin,
        session,
        xid,
        request: id.0,
        time_ms: now_ms() as i64,
        body,
    }
}

/// The next request id; never 0 (the token of commands no client awaits).
fn next_id(counter: &mut u64) -> RequestId {
    if *counter == 0 {
        *counter = 1;
    }
    let id = RequestId(*counter);
    *counter = counter.wrapping_add(1);
    id
}

fn reply(xid: i32, zxid: Zxid, outcome: WireOutcome) -> Item {
    match Xid::new(xid) {
        Some(xid) => Item::Ready(ServerFrame::Reply(Reply {
            xid,
            zxid: zxid.0,
            outcome,
        })),
        None => Item::Ready(ServerFrame::Ping { zxid: zxid.0 }),
    }
}

/// Replaces the queued write or sync `id` with its reply. Matched by id,
/// not xid: xids repeat across a session's connections.
fn fill(c: &mut Conn, id: RequestId, item: Item) -> bool {
    let Some(pos) = c.queue.iter().position(
        |i| matches!(i, Item::Write { id: x, .. } | Item::Sync { id: x, .. } if *x == id),
    ) else {
        return false;
    };
    c.queue[pos] = item;
    true
}

/// A queued frame leaves stamped with what this server has applied now:
/// header zxids never decrease on a connection (wire-spec lifecycle rule 5),
/// and every event up to `applied` has already been sent. (A write's reply
/// filled at its zxid can wait behind an earlier request while events for
/// later changes go out.)
fn restamped(frame: ServerFrame, applied: Zxid) -> ServerFrame {
    match frame {
        ServerFrame::Reply(mut r) => {
            r.zxid = r.zxid.max(applied.0);
            ServerFrame::Reply(r)
        }
        ServerFrame::Ping { zxid } => ServerFrame::Ping {
            zxid: zxid.max(applied.0),
        },
        other => other,
    }
}

fn send(c: &Conn, frame: &ServerFrame) {
    let mut out = BytesMut::new();
    frame.encode(&mut out);
    let _ = c.tx.send(out.freeze());
}

/// Re-arms a reconnected session's watches (SetWatches) and sends what
/// changed while the client was away; the reply follows, and later changes
/// fire as they are applied.
fn catch_up(
    c: &Conn,
    set: &zab_proto::SetWatches,
    replica: &Replica,
    watches: &mut Watches,
    session: u64,
    applied: Zxid,
) -> WireOutcome {
    for (kind, path) in rearm(watches, session, set, replica) {
        let event = WatchEvent {
            kind,
            path,
            zxid: applied.0,
        };
        send(
            c,
            &ServerFrame::Watch {
                zxid: applied.0,
                event,
            },
        );
    }
    WireOutcome::Ok(Response::SetWatches)
}

/// Runs a read, AddWatch or RemoveWatches against the applied tree.
fn read(request: &Request, replica: &Replica, watches: &mut Watches, session: u64) -> WireOutcome {
    let tree = &replica.tree;
    let valid = |path: &str| crate::tree::path::validate(path).is_ok();
    let path = match request {
        Request::Exists { path, .. }
        | Request::GetData { path, .. }
        | Request::GetChildren { path, .. }
        | Request::AddWatch { path, .. } => path,
        Request::RemoveWatches { path, kind } => {
            return if watches.remove(*kind, path, session) {
                WireOutcome::Ok(Response::RemoveWatches)
            } else {
                WireOutcome::Err(ErrorCode::NoWatcher)
            };
        }
        _ => return WireOutcome::Err(ErrorCode::Unimplemented),
    };
    if !valid(path) {
        return WireOutcome::Err(ErrorCode::BadArguments);
    }
    match request {
        Request::Exists { path, watch } => {
            if *watch {
                watches.arm(OneShot::Exists, path, session);
            }
            WireOutcome::Ok(Response::Exists(tree.exists(path).map(wire_stat)))
        }
        Request::GetData { path, watch } => match tree.get(path) {
            Some((data, stat)) => {
                if *watch {
                    watches.arm(OneShot::Data, path, session);
                }
                WireOutcome::Ok(Response::GetData {
                    data: data.clone(),
                    stat: wire_stat(stat),
                })
            }
            None => WireOutcome::Err(ErrorCode::NoNode),
        },
        Request::AddWatch { path, mode } => {
            if watches.count(session) >= WATCHES_MAX {
                WireOutcome::Err(ErrorCode::TooManyWatches)
            } else {
                watches.add(*mode, path, session);
                WireOutcome::Ok(Response::AddWatch)
            }
        }
        Request::GetChildren { path, watch } => match tree.children(path) {
            Some((children, stat)) => {
                if *watch {
                    watches.arm(OneShot::Child, path, session);
                }
                WireOutcome::Ok(Response::GetChildren {
                    children,
                    stat: wire_stat(stat),
                })
            }
            None => WireOutcome::Err(ErrorCode::NoNode),
        },
        _ => WireOutcome::Err(ErrorCode::Unimplemented),
    }
}

pub fn wire_stat(s: TreeStat) -> zab_proto::Stat {
    zab_proto::Stat {
        czxid: s.czxid.0,
        mzxid: s.mzxid.0,
        ctime: s.ctime_ms,
        mtime: s.mtime_ms,
        version: s.version,
        cversion: s.cversion,
        aversion: s.aversion,
        ephemeral_owner: s.ephemeral_owner,
        data_length: s.data_length,
        num_children: s.num_children,
        pzxid: s.pzxid.0,
    }
}

fn wire_code(code: crate::tree::ErrorCode) -> ErrorCode {
    ErrorCode::from_code(code.code())
}

/// The client-facing result of an applied write.
fn wire_outcome(outcome: &Outcome) -> WireOutcome {
    match outcome {
        Outcome::Created { path, stat } => WireOutcome::Ok(Response::Create(CreateReply {
            path: path.clone(),
            stat: wire_stat(*stat),
        })),
        Outcome::Deleted => WireOutcome::Ok(Response::Delete),
        Outcome::DataSet { stat } => WireOutcome::Ok(Response::SetData(wire_stat(*stat))),
        Outcome::Checked => WireOutcome::Ok(Response::Check),
        Outcome::SessionClosed => WireOutcome::Ok(Response::CloseSession),
        Outcome::Error(code) => WireOutcome::Err(wire_code(*code)),
        Outcome::Multi(ops) => {
            let failed = ops.iter().find_map(|o| match o {
                Outcome::Error(code) if code.code() != 0 && code.code() != -2 => Some(*code),
                _ => None,
            });
            match failed {
                Some(err) => WireOutcome::MultiErr {
                    err: wire_code(err),
                    errors: ops
                        .iter()
                        .map(|o| match o {
                            Outcome::Error(c) => wire_code(*c),
                            _ => ErrorCode::Ok,
                        })
                        .collect(),
                },
                None => WireOutcome::Ok(Response::Multi(
                    ops.iter()
                        .map(|o| match o {
                            Outcome::Created { path, stat } => MultiResult::Create(CreateReply {
                                path: path.clone(),
                                stat: wire_stat(*stat),
                            }),
                            Outcome::Deleted => MultiResult::Delete,
                            Outcome::DataSet { stat } => MultiResult::SetData(wire_stat(*stat)),
                            _ => MultiResult::Check,
                        })
                        .collect(),
                )),
            }
        }
        Outcome::SessionCreated | Outcome::Noop => WireOutcome::Err(ErrorCode::SystemError),
    }
}

/// Where clients connect.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::Application;
    use std::sync::Arc;
    use zab_core::Epoch;
    use zab_proto::{AddWatchMode, CreateMode, CreateRequest, OpCode};

    /// A frontend and its replica, with commits applied by hand.
    struct Harness {
        fe: Frontend,
        replica: Replica,
        counter: u32,
    }

    /// What one connection received: its connect reply, then frames.
    struct Received {
        rx: mpsc::UnboundedReceiver<Bytes>,
        buf: BytesMut,
    }

    impl Received {
        /// Moves what arrived into `buf`.
        fn drain(&mut self) {
            while let Ok(b) = self.rx.try_recv() {
                self.buf.extend_from_slice(&b);
            }
        }

        /// Every frame received so far; replies decode as `opcodes`, in order.
        fn frames(&mut self, opcodes: &[OpCode]) -> Vec<ServerFrame> {
            self.drain();
            let mut ops = opcodes.iter().copied();
            let mut out = Vec::new();
            while let Some(body) =
                zab_proto::decode_frame(&mut self.buf, u32::MAX).expect("well framed")
            {
                out.push(ServerFrame::decode(body, |_| ops.next()).expect("a server frame"));
            }
            out
        }
    }

    impl Harness {
        fn new() -> Harness {
            Harness {
                fe: Frontend::new(1, 100, Arc::new(crate::metrics::Metrics::default())),
                replica: Replica::new(),
                counter: 0,
            }
        }

        /// Commits `inputs`' proposals, in order, as the log would.
        fn commit(&mut self, inputs: Inputs) {
            for input in inputs {
                self.commit_together(vec![input]);
            }
        }

        /// Commits `inputs`' proposals as one batch of deliveries.
        fn commit_together(&mut self, inputs: Inputs) {
            for input in inputs {
                let Input::Propose { payload, .. } = input else {
                    panic!("expected a proposal, got {input:?}");
                };
                self.counter += 1;
                let zxid = Zxid::new(Epoch(1), self.counter);
                self.replica.apply(zxid, &payload).expect("applies");
            }
            let done = std::mem::take(&mut self.replica.completed);
            self.fe.on_applied(done, &self.replica);
        }

        fn event(&mut self, event: ClientEvent) -> Inputs {
            let applied = self.replica.tree.last_applied_zxid();
            self.fe.on_event(event, &self.replica, applied)
        }

        /// Connects `conn`: a new session (`session` None) or a re-attach.
        /// Returns the receiver and the session's (id, password).
        fn connect(
            &mut self,
            conn: ConnId,
            session: Option<(u64, [u8; PASSWORD_BYTES])>,
        ) -> (Received, (u64, [u8; PASSWORD_BYTES])) {
            let (tx, rx) = mpsc::unbounded_channel();
            let (session_id, password) = session.unwrap_or((0, [0; PASSWORD_BYTES]));
            let hello = ConnectRequest {
                protocol_version: PROTOCOL_VERSION,
                last_zxid_seen: 0,
                timeout_ms: 10_000,
                session_id,
                password,
                max_frame_bytes: zab_proto::FRAME_BYTES_DEFAULT,
            };
            let inputs = self.event(ClientEvent::Connected { conn, hello, tx });
            self.commit(inputs);
            let mut received = Received {
                rx,
                buf: BytesMut::new(),
            };
            received.drain();
            let body = zab_proto::decode_frame(&mut received.buf, u32::MAX)
                .expect("well framed")
                .expect("a connect reply");
            match ConnectReply::decode(body).expect("a connect reply") {
                ConnectReply::Accepted(r) => (received, (r.session_id, r.password)),
                ConnectReply::Refused(r) => panic!("refused: {r:?}"),
            }
        }

        fn send(&mut self, conn: ConnId, xid: i32, request: Request) -> Inputs {
            let xid = Xid::new(xid).expect("a request xid");
            self.event(ClientEvent::Frame {
                conn,
                frame: RequestFrame::Op { xid, request },
            })
        }
    }

    fn create(path: &str) -> Request {
        Request::Create(CreateRequest {
            path: path.into(),
            data: Bytes::new(),
            mode: CreateMode::Persistent,
            ttl_ms: 0,
        })
    }

    fn watch_recursive(path: &str) -> Request {
        Request::AddWatch {
            path: path.into(),
            mode: AddWatchMode::PersistentRecursive,
        }
    }

    /// A session's next connection reuses xids; a write its earlier
    /// connection left behind that commits later must not answer the new
    /// connection's request with the same xid (a sync answered that way
    /// would let a stale read through).
    #[test]
    fn a_write_left_by_a_closed_connection_answers_nobody() {
        let mut h = Harness::new();
        let (_old, session) = h.connect(1, None);
        let left_behind = h.send(1, 5, create("/x"));
        h.event(ClientEvent::Closed { conn: 1 });
        let (mut new, _) = h.connect(2, Some(session));
        let own = h.send(2, 5, create("/y"));
        h.commit(left_behind);
        assert!(
            new.frames(&[OpCode::Create]).is_empty(),
            "the new connection was answered by its predecessor's write"
        );
        h.commit(own);
        let frames = new.frames(&[OpCode::Create]);
        let [ServerFrame::Reply(reply)] = &frames[..] else {
            panic!("expected one reply, got {frames:?}");
        };
        assert_eq!(reply.xid.get(), 5);
        match &reply.outcome {
            WireOutcome::Ok(Response::Create(c)) => assert_eq!(c.path, "/y"),
            other => panic!("expected /y created, got {other:?}"),
        }
    }

    /// Header zxids never decrease on a connection, even when a write's
    /// reply and an event for a later change come out of one batch.
    #[test]
    fn header_zxids_never_decrease_on_a_connection() {
        let mut h = Harness::new();
        let (mut watcher, _) = h.connect(1, None);
        let (_other, _) = h.connect(2, None);
        let root = h.send(2, 1, create("/r"));
        h.commit(root);
        h.send(1, 1, watch_recursive("/r"));
        let mut batch = h.send(1, 2, create("/r/mine"));
        batch.extend(h.send(2, 2, create("/r/theirs")));
        h.commit_together(batch);
        let frames = watcher.frames(&[OpCode::AddWatch, OpCode::Create]);
        let headers: Vec<u64> = frames
            .iter()
            .map(|f| match f {
                ServerFrame::Reply(r) => r.zxid,
                ServerFrame::Ping { zxid } | ServerFrame::Watch { zxid, .. } => *zxid,
            })
            .collect();
        assert_eq!(frames.len(), 4, "{frames:?}");
        assert!(
            headers.windows(2).all(|w| w[0] <= w[1]),
            "header zxids went back: {headers:x?}"
        );
    }

    /// A watch request queued behind a write is armed in request order:
    /// its reply comes first, and every event it reports is after the
    /// reply's zxid (the client routes events to the watch's stream only
    /// once the reply has registered it).
    #[test]
    fn a_watch_queued_behind_a_write_reports_only_after_its_reply() {
        let mut h = Harness::new();
        let (mut watcher, _) = h.connect(1, None);
        let (_other, _) = h.connect(2, None);
        let root = h.send(2, 1, create("/r"));
        h.commit(root);
        let write = h.send(1, 1, create("/a"));
        h.send(1, 2, watch_recursive("/r"));
        let before = h.send(2, 2, create("/r/before"));
        h.commit(before);
        h.commit(write);
        let after = h.send(2, 3, create("/r/after"));
        h.commit(after);
        let frames = watcher.frames(&[OpCode::Create, OpCode::AddWatch]);
        let mut registered = None;
        let mut events = Vec::new();
        for f in &frames {
            match f {
                ServerFrame::Reply(r) if r.xid.get() == 2 => registered = Some(r.zxid),
                ServerFrame::Watch { event, .. } => {
                    let at = registered.unwrap_or_else(|| {
                        panic!("event on {} before the AddWatch reply", event.path)
                    });
                    assert!(event.zxid > at, "event at {:#x} <= {at:#x}", event.zxid);
                    events.push(event.path.clone());
                }
                _ => {}
            }
        }
        assert!(registered.is_some(), "no AddWatch reply in {frames:?}");
        assert_eq!(events, ["/r/after"]);
    }
}
