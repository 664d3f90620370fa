//! The tokio task that drives a [`Machine`]: it owns the socket and the
//! timer, feeds the machine bytes and monotonic time, and carries out its
//! outputs (dials, writes, replies to callers, events to streams). No
//! protocol decision is made here.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use zab_proto::{Request, Response, WatchEvent};

use crate::machine::{CallId, Machine, Output, Session, SessionState};
use crate::watch::Delivery;
use crate::Error;

pub(crate) type ReplyTx = oneshot::Sender<Result<Response, Error>>;
pub(crate) type EventTx = mpsc::UnboundedSender<WatchEvent>;

/// A request on its way to the driver.
pub(crate) struct Call {
    pub request: Request,
    pub reply: ReplyTx,
    /// Where this request's watch delivers, if it arms one and succeeds.
    pub stream: Option<EventTx>,
}

/// A connection to a server: plain TCP or TLS over it.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

type Dialing = Pin<Box<dyn Future<Output = Result<Box<dyn Stream>, String>> + Send>>;

enum Socket {
    None,
    Dialing(Dialing),
    Open(Box<dyn Stream>),
}

pub(crate) struct Driver {
    machine: Machine,
    /// `host:port` names, resolved at each dial.
    servers: Vec<String>,
    tls: Option<crate::Tls>,
    /// The instant the machine's time counts from.
    epoch: Instant,
    socket: Socket,
    replies: HashMap<CallId, ReplyTx>,
    streams: HashMap<CallId, EventTx>,
    events: Option<EventTx>,
    states: watch::Sender<SessionState>,
    last_zxid: Arc<AtomicU64>,
    /// Answered once: the first session accepted, or why none was.
    ready: Option<oneshot::Sender<Result<Session, Error>>>,
    done: bool,
}

impl Driver {
    pub(crate) fn new(
        (servers, tls): (Vec<String>, Option<crate::Tls>),
        timeout_ms: u32,
        events: EventTx,
        states: watch::Sender<SessionState>,
        last_zxid: Arc<AtomicU64>,
        ready: oneshot::Sender<Result<Session, Error>>,
    ) -> Driver {
        let mut machine = Machine::new(servers.len(), timeout_ms, 0);
        // Jitter only: the process id and the clock's nanoseconds differ
        // between clients that lost their server together.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        machine.seed_jitter(nanos ^ (u64::from(std::process::id()) << 32));
        Driver {
            machine,
            servers,
            tls,
            epoch: Instant::now(),
            socket: Socket::None,
            replies: HashMap::new(),
            streams: HashMap::new(),
            events: Some(events),
            states,
            last_zxid,
            ready: Some(ready),
            done: false,
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Runs the session until it ends. When `calls` closes (the last
    /// handle is gone) the session is closed, or abandoned if `abandoned`
    /// was set.
    pub(crate) async fn run(
        mut self,
        mut calls: mpsc::UnboundedReceiver<Call>,
        abandoned: Arc<std::sync::atomic::AtomicBool>,
    ) {
        let mut buf = BytesMut::with_capacity(16 * 1024);
        let mut calls_open = true;
        while !self.done {
            self.carry_out().await;
            if self.done {
                break;
            }
            let deadline = self
                .machine
                .next_deadline()
                .map(|ms| self.epoch + Duration::from_millis(ms));
            enum Woke {
                Call(Option<Call>),
                Dialed(Result<Box<dyn Stream>, String>),
                Read(std::io::Result<usize>),
                Timer,
            }
            let woke = tokio::select! {
                call = calls.recv(), if calls_open => Woke::Call(call),
                woke = async {
                    match &mut self.socket {
                        Socket::Dialing(dial) => Woke::Dialed(dial.await),
                        Socket::Open(stream) => Woke::Read(stream.read_buf(&mut buf).await),
                        Socket::None => std::future::pending().await,
                    }
                } => woke,
                _ = async {
                    match deadline {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => Woke::Timer,
            };
            let now = self.now();
            match woke {
                Woke::Call(Some(call)) => {
                    let id = self.machine.call(call.request, call.stream.is_some());
                    self.replies.insert(id, call.reply);
                    if let Some(stream) = call.stream {
                        self.streams.insert(id, stream);
                    }
                }
                Woke::Call(None) => {
                    calls_open = false;
                    if abandoned.load(Ordering::SeqCst) {
                        self.machine.abandon();
                    } else {
                        self.machine.shutdown();
                    }
                }
                Woke::Dialed(Ok(stream)) => {
                    self.socket = Socket::Open(stream);
                    self.machine.dialed(now);
                }
                Woke::Dialed(Err(why)) => {
                    self.socket = Socket::None;
                    self.machine.dial_failed(now, &why);
                }
                Woke::Read(Ok(0)) | Woke::Read(Err(_)) => {
                    self.socket = Socket::None;
                    self.machine.connection_lost(now);
                }
                Woke::Read(Ok(_)) => {
                    self.machine.received(now, &buf);
                    buf.clear();
                }
                Woke::Timer => self.machine.tick(now),
            }
        }
    }

    /// Carries out the machine's outputs, in order.
    async fn carry_out(&mut self) {
        loop {
            self.last_zxid
                .fetch_max(self.machine.last_zxid(), Ordering::SeqCst);
            let outputs = self.machine.take_outputs();
            if outputs.is_empty() {
                return;
            }
            for output in outputs {
                self.carry_out_one(output).await;
            }
        }
    }

    async fn carry_out_one(&mut self, output: Output) {
        match output {
            Output::Dial { server } => {
                let name = self.servers[server].clone();
                tracing::debug!(server = %name, "dialing");
                self.socket = Socket::Dialing(Box::pin(dial(name, self.tls.clone())));
            }
            Output::Send(bytes) => {
                if let Socket::Open(stream) = &mut self.socket {
                    if stream.write_all(&bytes).await.is_err() {
                        self.socket = Socket::None;
                        let now = self.now();
                        self.machine.connection_lost(now);
                    }
                }
            }
            Output::Hangup => self.socket = Socket::None,
            Output::Reply { call, result } => {
                if let Some(tx) = self.replies.remove(&call) {
                    let _ = tx.send(result);
                }
            }
            Output::Event { to, event } => {
                let tx = match to {
                    Delivery::Session => self.events.as_ref(),
                    Delivery::Stream(call) => self.streams.get(&call),
                };
                if let Some(tx) = tx {
                    let _ = tx.send(event);
                }
            }
            Output::EndStream(call) => {
                self.streams.remove(&call);
            }
            Output::EndEvents => self.events = None,
            Output::ProtocolViolation { server, why } => {
                let server = &self.servers[server];
                tracing::warn!(%server, %why, "the server broke the protocol; reconnecting");
            }
            Output::State(state) => {
                if state == SessionState::Connected {
                    if let (Some(ready), Some(session)) =
                        (self.ready.take(), self.machine.session())
                    {
                        tracing::Span::current()
                            .record("session", format_args!("{:#x}", session.id));
                        let _ = ready.send(Ok(session));
                    }
                }
                match state {
                    SessionState::Expired => tracing::warn!("session expired"),
                    SessionState::Disconnected => {
                        tracing::info!("disconnected; looking for a server")
                    }
                    other => {
                        tracing::info!(state = ?other, zxid = format_args!("{:#x}", self.machine.last_zxid()), "connected")
                    }
                }
                let _ = self.states.send(state);
            }
            Output::Finished(error) => {
                if let Some(e) = &error {
                    tracing::warn!(error = %e, "session task ends");
                }
                if let Some(ready) = self.ready.take() {
                    let _ = ready.send(Err(error.unwrap_or(Error::ConnectionLoss)));
                }
                self.done = true;
            }
        }
    }
}

/// Resolves `name` (now, not once at start: names may move between
/// attempts), connects to the first of its addresses that accepts, and runs
/// the TLS handshake over it if `tls` is set.
async fn dial(name: String, tls: Option<crate::Tls>) -> Result<Box<dyn Stream>, String> {
    let tcp = dial_tcp(&name).await?;
    let _ = tcp.set_nodelay(true);
    match tls {
        None => Ok(Box::new(tcp)),
        Some(tls) => Ok(Box::new(tls.connect(&name, tcp).await?)),
    }
}

async fn dial_tcp(name: &str) -> Result<TcpStream, String> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(name)
        .await
        .map_err(|e| format!("{name}: cannot resolve: {e}"))?
        .collect();
    let mut last = format!("{name}: resolves to no address");
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = format!("{name} ({addr}): {e}"),
        }
    }
    Err(last)
}
