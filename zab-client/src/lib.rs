//! # zab-client
//!
//! An async client for the zab coordination service (protocol: `wire-spec.md`).
//!
//! A [`Client`] holds one session. Requests are ordered when they are *called*
//! (they are queued to the connection task before the future is returned),
//! replies are matched in order, and watch events arrive on a stream. When
//! the server goes away the client reconnects to another server with the same
//! session, and never to one that is behind what it has already seen.
//!
//! Reads take a [`Consistency`]: `Local` reads this server's view (sequentially
//! consistent, cheapest); `Linearizable` first issues `sync` on the same
//! server, so the read reflects every write acknowledged before it began.
//!
//! Watches come as streams of their own ([`WatchStream`]); watches armed by
//! a plain read (`watch: true`) report on the session-wide
//! [`Client::next_event`]:
//!
//! ```no_run
//! # async fn demo(client: zab_client::Client) -> Result<(), zab_client::Error> {
//! use zab_client::{Consistency, WatchEventKind};
//! // Every change under /services, for as long as the session lives.
//! let mut changes = client.add_watch("/services", true).await?;
//! while let Some(event) = changes.next().await {
//!     if event.kind == WatchEventKind::ContinuityLost {
//!         // Reconnected: changes before event.zxid may have been missed; re-read.
//!         let (_names, _) = client.children("/services", Consistency::Linearizable, false).await?;
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! ```no_run
//! # async fn demo() -> Result<(), zab_client::Error> {
//! use zab_client::{Client, Consistency, CreateMode};
//! let client = Client::connect(&["127.0.0.1:2181"], 10_000).await?;
//! client.create("/app", b"v1", CreateMode::Persistent).await?;
//! let (data, _stat) = client.get("/app", Consistency::Linearizable).await?;
//! assert_eq!(&data[..], b"v1");
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Mutex};
pub use zab_proto::{
    CheckRequest, CreateMode, CreateRequest, DeleteRequest, ErrorCode, MultiOp, MultiResult,
    SetDataRequest, Stat, WatchEvent, WatchEventKind,
};
use zab_proto::{
    ConnectReply, ConnectRequest, OpCode, Outcome, Request, RequestFrame, Response, ServerFrame,
    Xid, FRAME_BYTES_DEFAULT, PASSWORD_BYTES, PROTOCOL_VERSION,
};
pub mod recipes;

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The connection broke before the reply: the request may or may not have
    /// taken effect. Distinct from every definite failure below.
    ConnectionLoss,
    /// The session is gone (expired or closed); its ephemerals are deleted.
    SessionExpired,
    /// The server answered with this error: the request had no effect.
    Server(ErrorCode),
    /// No server in the list accepted the connection.
    NoServer(String),
    /// A multi failed as a whole: `err` for the failing op, and one code per
    /// op (Ok before it, RuntimeInconsistency after it). Nothing was applied.
    MultiFailed {
        err: ErrorCode,
        errors: Vec<ErrorCode>,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ConnectionLoss => write!(f, "connection lost; the request's outcome is unknown"),
            Error::SessionExpired => write!(f, "session expired"),
            Error::Server(code) => write!(f, "{code}"),
            Error::NoServer(why) => write!(f, "no server accepted the connection: {why}"),
            Error::MultiFailed { err, errors } => {
                write!(f, "multi failed with {err}; per op: {errors:?}")
            }
        }
    }
}

impl std::error::Error for Error {}

/// The session's connection state, as a stream of changes
/// ([`Client::session_states`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionState {
    /// Connected to a server; requests flow.
    Connected,
    /// The server was lost; requests in flight failed with ConnectionLoss and
    /// new ones wait. The session lives on for its timeout.
    Disconnected,
    /// Connected again, to a server not behind what this client has seen;
    /// watches were re-registered.
    Reconnected,
    /// The session is gone: its ephemerals are deleted; every request fails.
    Expired,
}

/// How fresh a read must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consistency {
    /// This server's view: sequentially consistent (this session's own
    /// writes and everything it has seen are there, and it never goes back
    /// in time), but it may lag writes other sessions had acknowledged. One
    /// round trip to this server; no leader involved. The cheapest read.
    Local,
    /// Sync, then read on the same server: reflects every write acknowledged
    /// (to anyone) before the read began. The sync and the read are sent
    /// together (one client round trip); the server holds the read until the
    /// leader has confirmed, with a quorum round, that it still leads and
    /// this server has applied everything committed before the sync. Costs
    /// that round (follower → leader → quorum → back) on top of a local read.
    Linearizable,
}

type ReplyTx = oneshot::Sender<Result<Response, Error>>;
type EventTx = mpsc::UnboundedSender<WatchEvent>;

/// A request on its way to the connection task.
struct Call {
    request: Request,
    reply: ReplyTx,
    /// Where this request's watch delivers, if it arms one and succeeds.
    stream: Option<EventTx>,
}

struct Pending {
    opcode: OpCode,
    tx: ReplyTx,
    /// The watch this request arms if it succeeds.
    arms: Option<(Armed, String)>,
    stream: Option<EventTx>,
}

/// A per-watch event stream's registration in the connection task.
struct Subscription {
    kind: Armed,
    path: String,
    tx: EventTx,
}

/// Whether a watch of `kind` on `path` reports `event`. The server sends a
/// session one event per change however many of its watches fire, so the
/// client routes it to every watch that reports it.
fn reports(kind: Armed, path: &str, event: &WatchEvent) -> bool {
    use WatchEventKind as K;
    let here = event.path == path;
    match kind {
        Armed::Data => here && matches!(event.kind, K::NodeDeleted | K::NodeDataChanged),
        Armed::Exists => {
            here && matches!(
                event.kind,
                K::NodeCreated | K::NodeDeleted | K::NodeDataChanged
            )
        }
        Armed::Child => here && matches!(event.kind, K::NodeDeleted | K::NodeChildrenChanged),
        Armed::Persistent => here,
        // As in ZooKeeper, a recursive watch reports a child's creation
        // as NodeCreated, never its parent's NodeChildrenChanged (which
        // reaches this session only for another watch of it).
        Armed::Recursive if event.kind == K::NodeChildrenChanged => false,
        Armed::Recursive => {
            here || path == "/"
                || event
                    .path
                    .strip_prefix(path)
                    .is_some_and(|rest| rest.starts_with('/'))
        }
    }
}

/// The events of one watch, in the order the server sent them.
///
/// A one-shot watch (from [`Client::get_and_watch`],
/// [`Client::exists_and_watch`], [`Client::children_and_watch`]) yields one
/// event and then ends; a persistent one ([`Client::add_watch`]) goes on
/// until the session ends. Across a reconnect the watch is re-armed: a
/// one-shot watch fires at once if its node changed meanwhile, and a
/// persistent one yields [`WatchEventKind::ContinuityLost`] (events after
/// its zxid are complete again) instead of silently skipping changes. The
/// stream ends (`None`) when the session expires or is closed.
///
/// An event delivered to a watch's own stream is not repeated on
/// [`Client::next_event`], which carries the events of watches armed
/// without a stream (`watch: true` reads).
#[derive(Debug)]
pub struct WatchStream {
    events: mpsc::UnboundedReceiver<WatchEvent>,
}

impl WatchStream {
    /// The next event; `None` once the watch can fire no more. Cancel safe.
    pub async fn next(&mut self) -> Option<WatchEvent> {
        self.events.recv().await
    }
}

/// Which watch a request armed, to re-register it after a reconnect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Armed {
    Data,
    Exists,
    Child,
    Persistent,
    Recursive,
}

impl Armed {
    /// Fires once, then is gone.
    fn is_one_shot(self) -> bool {
        matches!(self, Armed::Data | Armed::Exists | Armed::Child)
    }
}

fn arms(request: &Request) -> Option<(Armed, String)> {
    match request {
        Request::GetData { path, watch: true } => Some((Armed::Data, path.clone())),
        Request::Exists { path, watch: true } => Some((Armed::Exists, path.clone())),
        Request::GetChildren { path, watch: true } => Some((Armed::Child, path.clone())),
        Request::AddWatch { path, mode } => Some((
            match mode {
                zab_proto::AddWatchMode::Persistent => Armed::Persistent,
                zab_proto::AddWatchMode::PersistentRecursive => Armed::Recursive,
            },
            path.clone(),
        )),
        _ => None,
    }
}

struct Session {
    id: u64,
    password: [u8; PASSWORD_BYTES],
    timeout_ms: u32,
    /// The negotiated frame limit: larger requests fail here, typed.
    max_frame_bytes: u32,
}

/// A session with the ensemble.
pub struct Client {
    requests: mpsc::UnboundedSender<Call>,
    events: Mutex<mpsc::UnboundedReceiver<WatchEvent>>,
    last_zxid: Arc<AtomicU64>,
    session_id: u64,
    states: tokio::sync::watch::Receiver<SessionState>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("session", &format_args!("{:#x}", self.session_id))
            .finish()
    }
}

impl Client {
    /// Opens a session on one of `servers` (tried in turn from a varying
    /// start, so clients spread over the ensemble).
    ///
    /// Servers are `host:port` names or socket addresses; names are resolved
    /// again at every reconnect, so a server that moved is found where it is
    /// now.
    pub async fn connect<A: ToString>(servers: &[A], timeout_ms: u32) -> Result<Client, Error> {
        let start = (std::process::id() as usize + timestamp() as usize) % servers.len().max(1);
        let order: Vec<String> = servers
            .iter()
            .cycle()
            .skip(start)
            .take(servers.len())
            .map(ToString::to_string)
            .collect();
        Client::connect_in_order(&order, timeout_ms).await
    }

    /// Like [`Client::connect`], but tries `servers` in the order given, at
    /// the first connection and at every reconnect (locality, tests).
    pub async fn connect_in_order<A: ToString>(
        servers: &[A],
        timeout_ms: u32,
    ) -> Result<Client, Error> {
        let order: Vec<String> = servers.iter().map(ToString::to_string).collect();
        let (stream, session, accepted_at) = open(&order, None, timeout_ms, 0).await?;
        // The session exists from this zxid on: a server that has not
        // applied it would call the session expired, so it must refuse us
        // as behind instead, as it does for any zxid we have seen.
        let last_zxid = Arc::new(AtomicU64::new(accepted_at));
        let (requests, rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let session_id = session.id;
        let (states_tx, states) = tokio::sync::watch::channel(SessionState::Connected);
        let conn = Connection {
            servers: order,
            session,
            armed: std::collections::BTreeSet::new(),
            last_zxid: last_zxid.clone(),
            events: events_tx,
            subscriptions: Vec::new(),
            plain: std::collections::BTreeSet::new(),
            states: states_tx,
            next_xid: Xid::FIRST,
            rearm_outstanding: false,
        };
        tokio::spawn(conn.run(stream, rx));
        Ok(Client {
            requests,
            events: Mutex::new(events_rx),
            last_zxid,
            session_id,
            states,
        })
    }

    pub fn session_id(&self) -> u64 {
        self.session_id
    }

    /// The newest zxid this client has seen.
    pub fn last_zxid(&self) -> u64 {
        self.last_zxid.load(Ordering::SeqCst)
    }

    /// Queues `request` now; the returned future waits for its reply.
    fn call(&self, request: Request) -> impl std::future::Future<Output = Result<Response, Error>> {
        self.call_streaming(request, None)
    }

    /// Like `call`, delivering the watch the request arms to `stream`.
    fn call_streaming(
        &self,
        request: Request,
        stream: Option<EventTx>,
    ) -> impl std::future::Future<Output = Result<Response, Error>> {
        let (reply, rx) = oneshot::channel();
        let sent = self
            .requests
            .send(Call {
                request,
                reply,
                stream,
            })
            .is_ok();
        async move {
            if !sent {
                return Err(Error::ConnectionLoss);
            }
            rx.await.unwrap_or(Err(Error::ConnectionLoss))
        }
    }

    /// Creates a node; returns its actual path (with a sequence suffix for
    /// sequential modes).
    pub async fn create(&self, path: &str, data: &[u8], mode: CreateMode) -> Result<String, Error> {
        self.create_ttl(path, data, mode, 0).await
    }

    /// Creates a TTL node (`PersistentWithTtl` or
    /// `PersistentSequentialWithTtl`; `ttl_ms` is ignored for other modes).
    pub async fn create_ttl(
        &self,
        path: &str,
        data: &[u8],
        mode: CreateMode,
        ttl_ms: u64,
    ) -> Result<String, Error> {
        self.create_full(path, data, mode, ttl_ms)
            .await
            .map(|(path, _)| path)
    }

    /// Like [`Client::create`], also returning the new node's stat (its
    /// `czxid` is the create's zxid).
    pub async fn create_with_stat(
        &self,
        path: &str,
        data: &[u8],
        mode: CreateMode,
    ) -> Result<(String, Stat), Error> {
        self.create_full(path, data, mode, 0).await
    }

    async fn create_full(
        &self,
        path: &str,
        data: &[u8],
        mode: CreateMode,
        ttl_ms: u64,
    ) -> Result<(String, Stat), Error> {
        let request = Request::Create(CreateRequest {
            path: path.into(),
            data: Bytes::copy_from_slice(data),
            mode,
            ttl_ms,
        });
        match self.call(request).await? {
            Response::Create(r) => Ok((r.path, r.stat)),
            other => Err(unexpected(other)),
        }
    }

    pub async fn delete(&self, path: &str, version: i32) -> Result<(), Error> {
        let request = Request::Delete(DeleteRequest {
            path: path.into(),
            version,
        });
        self.call(request).await.map(drop)
    }

    pub async fn set(&self, path: &str, data: &[u8], version: i32) -> Result<Stat, Error> {
        let request = Request::SetData(SetDataRequest {
            path: path.into(),
            data: Bytes::copy_from_slice(data),
            version,
        });
        match self.call(request).await? {
            Response::SetData(stat) => Ok(stat),
            other => Err(unexpected(other)),
        }
    }

    /// Waits until this client's server has applied every write the leader
    /// committed before the sync; returns the zxid it reached.
    pub async fn sync(&self, path: &str) -> Result<u64, Error> {
        match self.call(Request::Sync { path: path.into() }).await? {
            Response::Sync { zxid } => Ok(zxid),
            other => Err(unexpected(other)),
        }
    }

    /// Sends a read, preceded by a sync for `Linearizable`. Both are queued
    /// at once: the server answers a session's requests in order and
    /// evaluates the read only once the sync before it is done, so the read
    /// needs no round trip of its own. If the sync fails, its error is the
    /// answer and the read's reply is dropped.
    async fn read_call(
        &self,
        consistency: Consistency,
        path: &str,
        request: Request,
        stream: Option<EventTx>,
    ) -> Result<Response, Error> {
        let sync = (consistency == Consistency::Linearizable)
            .then(|| self.call(Request::Sync { path: path.into() }));
        let read = self.call_streaming(request, stream);
        if let Some(sync) = sync {
            match sync.await? {
                Response::Sync { .. } => {}
                other => return Err(unexpected(other)),
            }
        }
        read.await
    }

    pub async fn get(&self, path: &str, consistency: Consistency) -> Result<(Bytes, Stat), Error> {
        self.get_watch(path, consistency, false).await
    }

    /// Reads `path`; with `watch`, arms a one-shot data watch whose event
    /// arrives on [`Client::next_event`] (see also [`Client::get_and_watch`]).
    pub async fn get_watch(
        &self,
        path: &str,
        consistency: Consistency,
        watch: bool,
    ) -> Result<(Bytes, Stat), Error> {
        self.get_inner(path, consistency, watch, None).await
    }

    /// Reads `path` and arms a one-shot watch on its data, returned as its
    /// own stream: it fires once, when the node's data changes or the node
    /// is deleted.
    pub async fn get_and_watch(
        &self,
        path: &str,
        consistency: Consistency,
    ) -> Result<(Bytes, Stat, WatchStream), Error> {
        let (tx, events) = mpsc::unbounded_channel();
        let (data, stat) = self.get_inner(path, consistency, true, Some(tx)).await?;
        Ok((data, stat, WatchStream { events }))
    }

    async fn get_inner(
        &self,
        path: &str,
        consistency: Consistency,
        watch: bool,
        stream: Option<EventTx>,
    ) -> Result<(Bytes, Stat), Error> {
        let request = Request::GetData {
            path: path.into(),
            watch,
        };
        match self.read_call(consistency, path, request, stream).await? {
            Response::GetData { data, stat } => Ok((data, stat)),
            other => Err(unexpected(other)),
        }
    }

    /// The node's stat, `None` if absent; with `watch`, arms a one-shot
    /// watch (created, changed or deleted) whose event arrives on
    /// [`Client::next_event`] (see also [`Client::exists_and_watch`]).
    pub async fn exists(
        &self,
        path: &str,
        consistency: Consistency,
        watch: bool,
    ) -> Result<Option<Stat>, Error> {
        self.exists_inner(path, consistency, watch, None).await
    }

    /// Like [`Client::exists`] with a one-shot watch returned as its own
    /// stream: it fires once, when the node is created, changed or deleted.
    pub async fn exists_and_watch(
        &self,
        path: &str,
        consistency: Consistency,
    ) -> Result<(Option<Stat>, WatchStream), Error> {
        let (tx, events) = mpsc::unbounded_channel();
        let stat = self.exists_inner(path, consistency, true, Some(tx)).await?;
        Ok((stat, WatchStream { events }))
    }

    async fn exists_inner(
        &self,
        path: &str,
        consistency: Consistency,
        watch: bool,
        stream: Option<EventTx>,
    ) -> Result<Option<Stat>, Error> {
        let request = Request::Exists {
            path: path.into(),
            watch,
        };
        match self.read_call(consistency, path, request, stream).await? {
            Response::Exists(stat) => Ok(stat),
            other => Err(unexpected(other)),
        }
    }

    /// The node's children (names, unordered) and stat; with `watch`, arms a
    /// one-shot child watch whose event arrives on [`Client::next_event`]
    /// (see also [`Client::children_and_watch`]).
    pub async fn children(
        &self,
        path: &str,
        consistency: Consistency,
        watch: bool,
    ) -> Result<(Vec<String>, Stat), Error> {
        self.children_inner(path, consistency, watch, None).await
    }

    /// Like [`Client::children`] with a one-shot watch returned as its own
    /// stream: it fires once, when a child is added or removed or the node
    /// is deleted.
    pub async fn children_and_watch(
        &self,
        path: &str,
        consistency: Consistency,
    ) -> Result<(Vec<String>, Stat, WatchStream), Error> {
        let (tx, events) = mpsc::unbounded_channel();
        let (children, stat) = self
            .children_inner(path, consistency, true, Some(tx))
            .await?;
        Ok((children, stat, WatchStream { events }))
    }

    async fn children_inner(
        &self,
        path: &str,
        consistency: Consistency,
        watch: bool,
        stream: Option<EventTx>,
    ) -> Result<(Vec<String>, Stat), Error> {
        let request = Request::GetChildren {
            path: path.into(),
            watch,
        };
        match self.read_call(consistency, path, request, stream).await? {
            Response::GetChildren { children, stat } => Ok((children, stat)),
            other => Err(unexpected(other)),
        }
    }

    /// All of `ops` or none, at one zxid; later ops see earlier ones' effects.
    pub async fn multi(&self, ops: Vec<MultiOp>) -> Result<Vec<MultiResult>, Error> {
        match self.call(Request::Multi(ops)).await? {
            Response::Multi(results) => Ok(results),
            other => Err(unexpected(other)),
        }
    }

    /// Arms a persistent watch on `path` (and its whole subtree if
    /// `recursive`); its events arrive on the returned stream. Dropping the
    /// stream discards its later events (the watch stays armed on the
    /// server for the session; the protocol has no way to remove it).
    pub async fn add_watch(&self, path: &str, recursive: bool) -> Result<WatchStream, Error> {
        let mode = if recursive {
            zab_proto::AddWatchMode::PersistentRecursive
        } else {
            zab_proto::AddWatchMode::Persistent
        };
        let (tx, events) = mpsc::unbounded_channel();
        let request = Request::AddWatch {
            path: path.into(),
            mode,
        };
        self.call_streaming(request, Some(tx)).await?;
        Ok(WatchStream { events })
    }

    /// The current session state.
    pub fn session_state(&self) -> SessionState {
        *self.states.borrow()
    }

    /// A stream of session state changes (connected, disconnected,
    /// reconnected, expired): `changed().await`, then `borrow()`.
    pub fn session_states(&self) -> tokio::sync::watch::Receiver<SessionState> {
        self.states.clone()
    }

    /// The next watch event (one-shot or persistent) for this session.
    pub async fn next_event(&self) -> Option<WatchEvent> {
        self.events.lock().await.recv().await
    }

    /// Ends the session: its ephemeral nodes are deleted at once.
    pub async fn close(self) -> Result<(), Error> {
        self.call(Request::CloseSession).await.map(drop)
    }
}

fn unexpected(r: Response) -> Error {
    let _ = r;
    Error::Server(ErrorCode::MarshallingError)
}

fn timestamp() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Reads one length-prefixed frame, consuming no byte beyond it.
async fn read_one_frame(stream: &mut TcpStream) -> Result<Bytes, Error> {
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => Error::NoServer("closed during the handshake".into()),
        _ => Error::NoServer(e.to_string()),
    };
    let mut frame = BytesMut::new();
    frame.resize(4, 0);
    stream.read_exact(&mut frame[..4]).await.map_err(io)?;
    let len = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
    if len > FRAME_BYTES_DEFAULT {
        return Err(Error::NoServer(format!(
            "handshake reply of {len} bytes exceeds {FRAME_BYTES_DEFAULT}"
        )));
    }
    frame.resize(4 + len as usize, 0);
    stream.read_exact(&mut frame[4..]).await.map_err(io)?;
    zab_proto::decode_frame(&mut frame, FRAME_BYTES_DEFAULT)
        .map_err(|e| Error::NoServer(e.to_string()))?
        .ok_or_else(|| Error::NoServer("incomplete handshake frame".into()))
}

/// Connects to the first server that accepts: a new session (`session`
/// None) or the existing one.
async fn open(
    servers: &[String],
    session: Option<&Session>,
    timeout_ms: u32,
    last_zxid: u64,
) -> Result<Opened, Error> {
    let mut last_error = String::from("no servers given");
    for name in servers {
        // Resolved now, not once at start: names may move between attempts.
        let addrs: Vec<SocketAddr> = match tokio::net::lookup_host(name.as_str()).await {
            Ok(addrs) => addrs.collect(),
            Err(e) => {
                last_error = format!("{name}: cannot resolve: {e}");
                continue;
            }
        };
        for addr in addrs {
            match handshake(addr, session, timeout_ms, last_zxid).await {
                Ok(ok) => return Ok(ok),
                Err(Error::SessionExpired) => return Err(Error::SessionExpired),
                Err(e) => last_error = format!("{name} ({addr}): {e}"),
            }
        }
    }
    Err(Error::NoServer(last_error))
}

/// A connection whose handshake succeeded, with the zxid the server had
/// applied when it accepted.
type Opened = (TcpStream, Session, u64);

async fn handshake(
    addr: SocketAddr,
    session: Option<&Session>,
    timeout_ms: u32,
    last_zxid: u64,
) -> Result<Opened, Error> {
    let io = |e: std::io::Error| Error::NoServer(e.to_string());
    let mut stream = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr))
        .await
        .map_err(|_| Error::NoServer("connect timed out".into()))?
        .map_err(io)?;
    let _ = stream.set_nodelay(true);
    let hello = ConnectRequest {
        protocol_version: PROTOCOL_VERSION,
        last_zxid_seen: last_zxid,
        timeout_ms: session.map_or(timeout_ms, |s| s.timeout_ms),
        session_id: session.map_or(0, |s| s.id),
        password: session.map_or([0; PASSWORD_BYTES], |s| s.password),
        max_frame_bytes: FRAME_BYTES_DEFAULT,
    };
    let mut out = BytesMut::new();
    hello.encode(&mut out);
    stream.write_all(&out).await.map_err(io)?;
    // Read exactly the reply frame and nothing after it: a server may send
    // watch events for a re-attached session right behind its reply, and
    // those belong to the connection task, not to a buffer dropped here.
    let body = tokio::time::timeout(Duration::from_secs(5), read_one_frame(&mut stream))
        .await
        .map_err(|_| Error::NoServer("handshake timed out".into()))??;
    match ConnectReply::decode(body).map_err(|e| Error::NoServer(e.to_string()))? {
        ConnectReply::Accepted(r) => Ok((
            stream,
            Session {
                id: r.session_id,
                password: r.password,
                timeout_ms: r.timeout_ms,
                max_frame_bytes: r.max_frame_bytes,
            },
            r.last_zxid,
        )),
        ConnectReply::Refused(r) if r.code == ErrorCode::SessionExpired => {
            Err(Error::SessionExpired)
        }
        ConnectReply::Refused(r) => Err(Error::NoServer(format!("{}: {}", r.code, r.message))),
    }
}

/// The task that owns the socket: sends requests in call order, matches
/// replies in order, pings when idle, reconnects on loss.
struct Connection {
    /// `host:port` names, resolved at each attempt.
    servers: Vec<String>,
    session: Session,
    /// Watches armed on the server, re-registered after a reconnect.
    armed: std::collections::BTreeSet<(Armed, String)>,
    last_zxid: Arc<AtomicU64>,
    events: mpsc::UnboundedSender<WatchEvent>,
    /// Per-watch streams ([`WatchStream`]).
    subscriptions: Vec<Subscription>,
    /// Watches armed without a stream: they report on `events`.
    plain: std::collections::BTreeSet<(Armed, String)>,
    states: tokio::sync::watch::Sender<SessionState>,
    /// Xids run on across reconnects, as ZooKeeper's do: a reply meant for
    /// a request sent on an earlier connection can never pass for the reply
    /// to a newer one.
    next_xid: Xid,
    /// A SetWatches was sent and its reply has not come: its catch-up may
    /// have been cut short, so the next one starts from the same zxid.
    rearm_outstanding: bool,
}

impl Connection {
    async fn run(mut self, mut stream: TcpStream, mut requests: mpsc::UnboundedReceiver<Call>) {
        // Watches are re-armed relative to the last zxid seen before the
        // connection that is being (re)established, or before the last
        // one whose re-registration completed.
        let mut rearm_from = self.last_zxid.load(Ordering::SeqCst);
        loop {
            let lost = self.serve(&mut stream, &mut requests, rearm_from).await;
            if !lost {
                return;
            }
            let _ = self.states.send(SessionState::Disconnected);
            // Reconnect with the same session, before it expires.
            let deadline = tokio::time::Instant::now()
                + Duration::from_millis(u64::from(self.session.timeout_ms));
            let mut reconnected = None;
            while tokio::time::Instant::now() < deadline {
                let last = self.last_zxid.load(Ordering::SeqCst);
                match open(
                    &self.servers,
                    Some(&self.session),
                    self.session.timeout_ms,
                    last,
                )
                .await
                {
                    Ok((s, _, accepted_at)) => {
                        if !self.rearm_outstanding {
                            rearm_from = last;
                        }
                        self.last_zxid.fetch_max(accepted_at, Ordering::SeqCst);
                        reconnected = Some(s);
                        break;
                    }
                    Err(Error::SessionExpired) => break,
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
            match reconnected {
                Some(s) => {
                    stream = s;
                    let _ = self.states.send(SessionState::Reconnected);
                }
                None => {
                    let _ = self.states.send(SessionState::Expired);
                    // End the event streams: no watch can fire any more.
                    self.events = mpsc::unbounded_channel().0;
                    self.subscriptions.clear();
                    self.plain.clear();
                    // Expired: fail everything from now on.
                    while let Some(call) = requests.recv().await {
                        let _ = call.reply.send(Err(Error::SessionExpired));
                    }
                    return;
                }
            }
        }
    }

    /// Serves one connection; returns true if it was lost (reconnect), false
    /// if the client is done.
    async fn serve(
        &mut self,
        stream: &mut TcpStream,
        requests: &mut mpsc::UnboundedReceiver<Call>,
        rearm_from: u64,
    ) -> bool {
        let (mut reader, mut writer) = stream.split();
        let mut pending: VecDeque<Pending> = VecDeque::new();
        let mut buf = BytesMut::with_capacity(16 * 1024);
        let ping_every = Duration::from_millis(u64::from(self.session.timeout_ms / 3).max(100));
        let mut ping = tokio::time::interval(ping_every);
        // A server that stops answering (paused, partitioned, hung) is left
        // after two thirds of the session timeout, as ZooKeeper's clients do:
        // early enough to reconnect elsewhere before the session expires.
        let read_timeout =
            Duration::from_millis(u64::from(self.session.timeout_ms) * 2 / 3).max(2 * ping_every);
        let mut last_heard = tokio::time::Instant::now();
        let mut closing = false;
        if !self.armed.is_empty() {
            // Re-arm on the new server; it reports what changed meanwhile
            // (or ContinuityLost for persistent watches).
            let mut set = zab_proto::SetWatches {
                relative_zxid: rearm_from,
                ..Default::default()
            };
            for (kind, path) in &self.armed {
                let list = match kind {
                    Armed::Data => &mut set.data,
                    Armed::Exists => &mut set.exists,
                    Armed::Child => &mut set.children,
                    Armed::Persistent => &mut set.persistent,
                    Armed::Recursive => &mut set.persistent_recursive,
                };
                list.push(path.clone());
            }
            // One-shot watches stay listed until their event arrives (from
            // the catch-up or later), so a further reconnect re-arms them.
            let request = Request::SetWatches(set);
            let mut out = BytesMut::new();
            let opcode = request.opcode();
            let xid = self.next_xid;
            self.next_xid = xid.next();
            RequestFrame::Op { xid, request }.encode(&mut out);
            self.rearm_outstanding = true;
            let (tx, _) = oneshot::channel();
            pending.push_back(Pending {
                opcode,
                tx,
                arms: None,
                stream: None,
            });
            if writer.write_all(&out).await.is_err() {
                return true;
            }
        }
        let lost = loop {
            tokio::select! {
                request = requests.recv(), if !closing => match request {
                    Some(Call { request, reply: tx, stream }) => {
                        let xid = self.next_xid;
                        let frame = RequestFrame::Op { xid, request };
                        if frame.body_len() > self.session.max_frame_bytes as usize {
                            // Refused here, typed, rather than by a dropped connection.
                            let _ = tx.send(Err(Error::Server(ErrorCode::FrameTooLarge)));
                            continue;
                        }
                        let RequestFrame::Op { request, .. } = frame else { continue };
                        closing = matches!(request, Request::CloseSession);
                        let mut out = BytesMut::new();
                        let opcode = request.opcode();
                        let armed = arms(&request);
                        RequestFrame::Op { xid, request }.encode(&mut out);
                        self.next_xid = xid.next();
                        pending.push_back(Pending { opcode, tx, arms: armed, stream });
                        if writer.write_all(&out).await.is_err() {
                            break true;
                        }
                    }
                    None => break false,
                },
                _ = ping.tick() => {
                    if last_heard.elapsed() > read_timeout {
                        break true;
                    }
                    let mut out = BytesMut::new();
                    RequestFrame::Ping.encode(&mut out);
                    if writer.write_all(&out).await.is_err() {
                        break true;
                    }
                }
                read = reader.read_buf(&mut buf) => {
                    match read {
                        Ok(0) | Err(_) => break !closing,
                        Ok(_) => last_heard = tokio::time::Instant::now(),
                    }
                    let mut broken = false;
                    loop {
                        let body = match zab_proto::decode_frame(&mut buf, FRAME_BYTES_DEFAULT) {
                            Ok(Some(body)) => body,
                            Ok(None) => break,
                            Err(_) => { broken = true; break; }
                        };
                        let front = pending.front().map(|p| p.opcode);
                        let frame = match ServerFrame::decode(body, |_| front) {
                            Ok(f) => f,
                            Err(_) => { broken = true; break; }
                        };
                        match frame {
                            ServerFrame::Reply(reply) => {
                                self.last_zxid.fetch_max(reply.zxid, Ordering::SeqCst);
                                if let Some(p) = pending.pop_front() {
                                    self.on_reply(p, reply.outcome);
                                }
                            }
                            ServerFrame::Ping { zxid } => { self.last_zxid.fetch_max(zxid, Ordering::SeqCst); }
                            ServerFrame::Watch { zxid, event } => {
                                self.last_zxid.fetch_max(zxid, Ordering::SeqCst);
                                self.on_event(event);
                            }
                        }
                    }
                    if broken {
                        break true;
                    }
                    if closing && pending.is_empty() {
                        break false;
                    }
                }
            }
        };
        // Whatever was in flight has an unknown outcome.
        for p in pending {
            let _ = p.tx.send(Err(Error::ConnectionLoss));
        }
        lost
    }

    /// The reply to `p`: registers the watch it armed, then answers the caller.
    fn on_reply(&mut self, p: Pending, outcome: Outcome) {
        if p.opcode == OpCode::SetWatches && matches!(outcome, Outcome::Ok(_)) {
            self.rearm_outstanding = false;
        }
        if let (Some((kind, path)), Outcome::Ok(r)) = (p.arms, &outcome) {
            // An exists watch on a node that exists is re-armed as a data
            // watch, so a reconnect reports its deletion (wire-spec.md,
            // SetWatches).
            let existed = matches!(r, Response::Exists(Some(_)));
            let rearm_as = if kind == Armed::Exists && existed {
                Armed::Data
            } else {
                kind
            };
            self.armed.insert((rearm_as, path.clone()));
            match p.stream {
                Some(tx) => self.subscriptions.push(Subscription { kind, path, tx }),
                None => {
                    self.plain.insert((kind, path));
                }
            }
        }
        let result = match outcome {
            Outcome::Ok(r) => Ok(r),
            Outcome::Err(ErrorCode::SessionExpired) => Err(Error::SessionExpired),
            Outcome::Err(code) => Err(Error::Server(code)),
            Outcome::MultiErr { err, errors } => Err(Error::MultiFailed { err, errors }),
        };
        let _ = p.tx.send(result);
    }

    /// A watch event: one-shot watches it fires are consumed; it goes to
    /// every stream whose watch reports it, and to `events` if a watch
    /// armed without a stream reports it (or none claims it), so an
    /// application that reads only watch streams accumulates nothing. A
    /// dropped stream still takes (and discards) its watch's events.
    fn on_event(&mut self, event: WatchEvent) {
        let fires_one_shot = |(k, p): &(Armed, String)| k.is_one_shot() && reports(*k, p, &event);
        self.armed.retain(|w| !fires_one_shot(w));
        let plain = self.plain.iter().any(|(k, p)| reports(*k, p, &event));
        self.plain.retain(|w| !fires_one_shot(w));
        let mut streamed = false;
        self.subscriptions.retain(|sub| {
            if !reports(sub.kind, &sub.path, &event) {
                return true;
            }
            let _ = sub.tx.send(event.clone());
            streamed = true;
            !sub.kind.is_one_shot()
        });
        if plain || !streamed {
            let _ = self.events.send(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server may send a re-attached session's watch events right behind
    /// its connect reply, in the same TCP segment. The handshake must not
    /// swallow them.
    #[tokio::test]
    async fn frames_right_behind_the_connect_reply_are_not_lost() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut buf = BytesMut::new();
            frame(&mut s, &mut buf).await.expect("hello");
            let mut out = accepted(5);
            ServerFrame::Watch {
                zxid: 6,
                event: WatchEvent {
                    kind: WatchEventKind::NodeDataChanged,
                    path: "/a".into(),
                    zxid: 6,
                },
            }
            .encode(&mut out);
            s.write_all(&out)
                .await
                .expect("reply and event in one write");
            // Keep the connection open while the client reads.
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let client = Client::connect(&[addr], 4000).await.expect("connect");
        let ev = tokio::time::timeout(Duration::from_secs(2), client.next_event())
            .await
            .expect("the event behind the reply was lost")
            .expect("session alive");
        assert_eq!(
            (ev.kind, ev.path.as_str(), ev.zxid),
            (WatchEventKind::NodeDataChanged, "/a", 6)
        );
        server.abort();
    }

    /// Reads one frame from a fake server's socket.
    async fn frame(s: &mut TcpStream, buf: &mut BytesMut) -> Option<Bytes> {
        loop {
            if let Some(body) = zab_proto::decode_frame(buf, FRAME_BYTES_DEFAULT).expect("frame") {
                return Some(body);
            }
            if s.read_buf(buf).await.ok()? == 0 {
                return None;
            }
        }
    }

    fn accepted(last_zxid: u64) -> BytesMut {
        let mut out = BytesMut::new();
        ConnectReply::Accepted(zab_proto::ConnectResponse {
            protocol_version: PROTOCOL_VERSION,
            timeout_ms: 4000,
            session_id: 7,
            password: [1; PASSWORD_BYTES],
            max_frame_bytes: FRAME_BYTES_DEFAULT,
            server_id: 1,
            last_zxid,
        })
        .encode(&mut out);
        out
    }

    /// A reconnect whose re-registration was cut short (no SetWatches reply)
    /// must not move the next re-registration's base past changes whose
    /// catch-up never arrived: the next SetWatches starts from the same zxid
    /// even though the interrupted server had applied more.
    #[tokio::test]
    async fn an_interrupted_reregistration_is_repeated_from_the_same_zxid() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (seen_tx, mut seen) = mpsc::unbounded_channel::<u64>();
        let server = tokio::spawn(async move {
            // 1: a new session; the client arms a data watch at zxid 5.
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut buf = BytesMut::new();
            frame(&mut s, &mut buf).await.expect("hello");
            s.write_all(&accepted(5)).await.expect("accept");
            let body = frame(&mut s, &mut buf).await.expect("GetData");
            let Ok(RequestFrame::Op { xid, .. }) = RequestFrame::decode(body) else {
                panic!("expected GetData");
            };
            let mut out = BytesMut::new();
            ServerFrame::Reply(zab_proto::Reply {
                xid,
                zxid: 5,
                outcome: Outcome::Ok(Response::GetData {
                    data: Bytes::new(),
                    stat: Stat::default(),
                }),
            })
            .encode(&mut out);
            s.write_all(&out).await.expect("reply");
            drop(s);
            // 2 and 3: a server that has applied up to 20 accepts, takes
            // the SetWatches and drops the connection before answering.
            for _ in 0..2 {
                let (mut s, _) = listener.accept().await.expect("accept");
                let mut buf = BytesMut::new();
                frame(&mut s, &mut buf).await.expect("hello");
                s.write_all(&accepted(20)).await.expect("accept");
                let body = frame(&mut s, &mut buf).await.expect("SetWatches");
                match RequestFrame::decode(body) {
                    Ok(RequestFrame::Op {
                        request: Request::SetWatches(set),
                        ..
                    }) => {
                        assert_eq!(set.data, ["/c"]);
                        let _ = seen_tx.send(set.relative_zxid);
                    }
                    other => panic!("expected SetWatches, got {other:?}"),
                }
            }
        });
        let client = Client::connect(&[addr], 4000).await.expect("connect");
        client
            .get_watch("/c", Consistency::Local, true)
            .await
            .expect("GetData");
        let mut bases = Vec::new();
        for _ in 0..2 {
            let base = tokio::time::timeout(Duration::from_secs(5), seen.recv())
                .await
                .expect("a SetWatches within 5 s")
                .expect("fake server alive");
            bases.push(base);
        }
        assert_eq!(bases, [5, 5], "re-registration bases");
        drop(client);
        server.abort();
    }
}
