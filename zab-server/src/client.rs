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
        xid: i32,
        id: RequestId,
    },
    /// A read that must wait for the writes before it.
    Read {
        xid: Xid,
        request: Request,
    },
    /// A sync waiting for the leader's confirmation.
    Sync {
        xid: i32,
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
            next_request: 1,
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
                    let cmd = command(self.me, session, xid.get(), CommandBody::Op(r));
                    c.queue.push_back(Item::Write { xid: xid.get(), id });
                    self.requests.insert(id, (conn, xid.get()));
                    self.submitted.insert(id, std::time::Instant::now());
                    inputs.push(Input::Propose {
                        id,
                        payload: cmd.encode(),
                    });
                }
                Request::CloseSession => {
                    let id = next_id(&mut self.next_request);
                    let cmd = command(self.me, session, xid.get(), CommandBody::CloseSession);
                    c.queue.push_back(Item::Write { xid: xid.get(), id });
                    c.queue.push_back(Item::Close);
                    self.requests.insert(id, (conn, xid.get()));
                    inputs.push(Input::Propose {
                        id,
                        payload: cmd.encode(),
                    });
                }
                Request::Sync { .. } => {
                    let id = next_id(&mut self.next_request);
                    c.queue.push_back(Item::Sync { xid: xid.get(), id });
                    self.requests.insert(id, (conn, xid.get()));
                    inputs.push(Input::Sync { id });
                }
                Request::AddWatch { path, mode } => {
                    let outcome = if self.watches.count(session) >= WATCHES_MAX {
                        WireOutcome::Err(ErrorCode::TooManyWatches)
                    } else if crate::tree::path::validate(&path).is_err() {
                        WireOutcome::Err(ErrorCode::BadArguments)
                    } else {
                        self.watches.add(mode, &path, session);
                        WireOutcome::Ok(Response::AddWatch)
                    };
                    c.queue.push_back(reply(xid.get(), applied, outcome));
                }
                Request::RemoveWatches { path, kind } => {
                    let outcome = if self.watches.remove(kind, &path, session) {
                        WireOutcome::Ok(Response::RemoveWatches)
                    } else {
                        WireOutcome::Err(ErrorCode::NoWatcher)
                    };
                    c.queue.push_back(reply(xid.get(), applied, outcome));
                }
                Request::SetWatches(set) => {
                    let events = rearm(&mut self.watches, session, &set, replica);
                    for (kind, path) in events {
                        c.queue.push_back(Item::Ready(ServerFrame::Watch {
                            zxid: applied.0,
                            event: WatchEvent {
                                kind,
                                path,
                                zxid: applied.0,
                            },
                        }));
                    }
                    c.queue.push_back(reply(
                        xid.get(),
                        applied,
                        WireOutcome::Ok(Response::SetWatches),
                    ));
                }
                read => c.queue.push_back(Item::Read { xid, request: read }),
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
            xid,
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
        fill(c, xid, reply(xid, applied, outcome));
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
            if let Some(&conn) = self.by_session.get(&done.session) {
                if let Some(c) = self.conns.get_mut(&conn) {
                    if let Some((hello, id)) = c.connecting.take() {
                        self.requests.remove(&id);
                        if matches!(done.outcome, Outcome::SessionCreated) {
                            let (session, timeout) = (hello.session_id, hello.timeout_ms);
                            accept(self.me, c, &hello, session, timeout, done.zxid);
                            self.last_heard.insert(session, now_ms());
                        }
                    } else if let Some(id) = fill(
                        c,
                        done.xid,
                        reply(done.xid, done.zxid, wire_outcome(&done.outcome)),
                    ) {
                        self.requests.remove(&id);
                        if let Some(at) = self.submitted.remove(&id) {
                            self.metrics.commit.observe(at.elapsed());
                        }
                        dirty.insert(conn);
                    }
                }
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
                        send(c, &frame);
                    }
                }
                Some(Item::Read { .. }) => {
                    if let Some(Item::Read { xid, request }) = c.queue.pop_front() {
                        let outcome = read(&request, replica, &mut self.watches, session);
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
                    // Dropping the sender ends the connection's writer.
                    self.conns.remove(&conn);
                    if self.by_session.get(&session) == Some(&conn) {
                        self.by_session.remove(&session);
                    }
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

/// A client's request as the command this server logs, stamped now.
fn command(origin: u64, session: u64, xid: i32, body: CommandBody) -> Command {
    Command {
        origin,
        session,
        xid,
        time_ms: now_ms() as i64,
        body,
    }
}

fn next_id(counter: &mut u64) -> RequestId {
    let id = RequestId(*counter);
    *counter += 1;
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

/// Replaces the queued write or sync `xid` with its reply; returns its id.
fn fill(c: &mut Conn, xid: i32, item: Item) -> Option<RequestId> {
    let pos = c.queue.iter().position(
        |i| matches!(i, Item::Write { xid: x, .. } | Item::Sync { xid: x, .. } if *x == xid),
    )?;
    let id = match c.queue[pos] {
        Item::Write { id, .. } | Item::Sync { id, .. } => id,
        _ => return None,
    };
    c.queue[pos] = item;
    Some(id)
}

fn send(c: &Conn, frame: &ServerFrame) {
    let mut out = BytesMut::new();
    frame.encode(&mut out);
    let _ = c.tx.send(out.freeze());
}

fn read(request: &Request, replica: &Replica, watches: &mut Watches, session: u64) -> WireOutcome {
    let tree = &replica.tree;
    let valid = |path: &str| crate::tree::path::validate(path).is_ok();
    let path = match request {
        Request::Exists { path, .. }
        | Request::GetData { path, .. }
        | Request::GetChildren { path, .. } => path,
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
