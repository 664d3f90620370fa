//! The client port, tokio side: accepts connections and runs one task per
//! connection that only frames bytes. Everything a connection means (its
//! handshake, session, replies, timeouts) is decided by the server core
//! ([`crate::core`]); a task reports what arrived as [`ClientEvent`]s and
//! writes what the core sends it until the core drops its sender.
//!
//! What the core sends waits in a per-connection queue whose size in bytes
//! is tracked ([`Backlog`]). A client that does not read its replies fills
//! it: past [`BACKLOG_SOFT_BYTES`] its connection is no longer read (no new
//! requests, so no new replies), and past the hard bound the shell closes
//! it. Server memory stays bounded whatever a client does.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Notify};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};
use zab_proto::{negotiate_frame_bytes, ConnectRequest, RequestFrame, HANDSHAKE_FRAME_BYTES_MAX};

use crate::core::ConnId;
use crate::metrics::REJECTION_REASONS;

pub mod four_letter;
mod zk;

/// Connections one client address may hold open (ZooKeeper's maxClientCnxns).
pub const CONNECTIONS_PER_ADDRESS_MAX: usize = 60;

/// Bytes queued for a connection above which it is no longer read.
pub const BACKLOG_SOFT_BYTES: usize = 2 << 20;
/// Bytes queued, beyond the connection's frame limit, at which it is closed.
pub const BACKLOG_HARD_EXTRA_BYTES: usize = 8 << 20;

/// What the core queued for one connection and its socket has not taken yet.
#[derive(Debug)]
pub struct Backlog {
    bytes: AtomicUsize,
    /// The writer drained below the soft bound: reading may resume.
    drained: Notify,
    /// The shell gave up on the connection: end it now, queue and all.
    kill: Notify,
    /// The core closed the connection: flush what is queued, within
    /// [`CLOSE_FLUSH`], then end it.
    closing: Notify,
}

/// How long a closed connection may take to take what was queued for it.
const CLOSE_FLUSH: Duration = Duration::from_secs(2);

/// How the client port treats its connections.
#[derive(Clone)]
pub struct ListenerConfig {
    /// The largest frame a client may send or be sent.
    pub frame_bytes_max: u32,
    /// How long a TLS handshake, or a frame the client has begun, may go
    /// without progress before the connection is closed: a client that
    /// stops half-way holds nothing for long. (A connection between frames
    /// is the core's to judge: its handshake bound, then its session's
    /// timeout.)
    pub stall: Duration,
    /// TLS on every connection, if configured (`[client_tls]`).
    pub tls: Option<TlsAcceptor>,
    /// Connections, bytes and frames counted here.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The ZooKeeper port's four-letter words (none on the main port).
    pub four_letter_words: Option<four_letter::FourLetterWords>,
}

impl std::fmt::Debug for ListenerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerConfig")
            .field("frame_bytes_max", &self.frame_bytes_max)
            .field("stall", &self.stall)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// The shell's end of a connection: its queue and its backlog.
#[derive(Debug)]
pub struct ConnTx {
    tx: mpsc::UnboundedSender<Bytes>,
    backlog: Arc<Backlog>,
    hard_bytes: usize,
}

impl ConnTx {
    /// Queues `bytes`. False if the client has let more pile up than the
    /// hard bound: the connection is then being killed, and the caller
    /// forgets it.
    pub fn send(&self, bytes: Bytes) -> bool {
        let queued = self.backlog.bytes.fetch_add(bytes.len(), Ordering::AcqRel) + bytes.len();
        if queued > self.hard_bytes {
            self.backlog.kill.notify_one();
            return false;
        }
        let _ = self.tx.send(bytes);
        true
    }
}

impl Drop for ConnTx {
    /// The core is done with the connection: a client that is not reading
    /// must not keep it (and its queue) open forever.
    fn drop(&mut self) {
        self.backlog.closing.notify_one();
    }
}

/// From connection tasks to the driver.
#[derive(Debug)]
pub enum ClientEvent {
    /// A connection from `ip` was accepted (over TLS with a verified
    /// client certificate: `x509` is its subject); `tx` carries what the
    /// core sends it, and dropping `tx` closes it.
    Opened {
        conn: ConnId,
        ip: IpAddr,
        x509: Option<String>,
        tx: ConnTx,
    },
    /// The connection's handshake arrived.
    Hello { conn: ConnId, hello: ConnectRequest },
    /// One request frame, decoded once, here.
    Frame { conn: ConnId, frame: RequestFrame },
    /// The client closed the connection, or sent something unreadable.
    Closed { conn: ConnId },
}

type PerAddress = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// Where clients connect.
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// What a client port speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// This project's protocol (wire-spec.md).
    Zab,
    /// ZooKeeper's (3.5 to 3.9), translated at the edge (`listener/zk.rs`).
    ZooKeeper,
}

/// Connection ids, unique across every client port of the process.
static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// Accepts clients forever, one task each.
pub async fn listen(
    listener: TcpListener,
    events: mpsc::Sender<ClientEvent>,
    cfg: ListenerConfig,
    protocol: Protocol,
) {
    let per_address = PerAddress::default();
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                if !admit(&per_address, addr.ip()) {
                    warn!(%addr, "too many connections from this address; refusing");
                    rejected(&cfg, REJECTION_REASONS[0]);
                    continue; // dropping the stream closes it
                }
                let conn = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
                let events = events.clone();
                let per_address = per_address.clone();
                let cfg = cfg.clone();
                tokio::spawn(async move {
                    let _ = stream.set_nodelay(true);
                    let ip = addr.ip();
                    let ended = match &cfg.tls {
                        None => {
                            cfg.metrics.client_accepted.inc();
                            let (reader, writer) = stream.into_split();
                            let peer = (conn, ip, None);
                            serve(protocol, peer, (reader, writer), &events, &cfg).await
                        }
                        Some(acceptor) => {
                            match tokio::time::timeout(cfg.stall, acceptor.accept(stream)).await {
                                Ok(Ok(tls)) => {
                                    cfg.metrics.client_accepted.inc();
                                    let (_, session) = tls.get_ref();
                                    let x509 = session
                                        .peer_certificates()
                                        .and_then(|chain| chain.first())
                                        .and_then(crate::tls::subject);
                                    let (reader, writer) = tokio::io::split(tls);
                                    let peer = (conn, ip, x509);
                                    serve(protocol, peer, (reader, writer), &events, &cfg).await
                                }
                                Ok(Err(e)) => {
                                    rejected(&cfg, REJECTION_REASONS[1]);
                                    Err(e)
                                }
                                Err(_) => {
                                    rejected(&cfg, REJECTION_REASONS[1]);
                                    Err(std::io::Error::other("no TLS handshake in time"))
                                }
                            }
                        }
                    };
                    if let Err(e) = ended {
                        debug!(%addr, conn, error = %e, "client connection ended");
                    }
                    let _ = events.send(ClientEvent::Closed { conn }).await;
                    release(&per_address, addr.ip());
                });
            }
            Err(e) => {
                warn!(error = %e, "accepting a client failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

fn rejected(cfg: &ListenerConfig, reason: &str) {
    cfg.metrics
        .client_rejected
        .with_label_values(&[reason])
        .inc();
}

fn admit(per_address: &PerAddress, ip: IpAddr) -> bool {
    let mut counts = per_address.lock().unwrap_or_else(|e| e.into_inner());
    let n = counts.entry(ip).or_insert(0);
    if *n >= CONNECTIONS_PER_ADDRESS_MAX {
        return false;
    }
    *n += 1;
    true
}

fn release(per_address: &PerAddress, ip: IpAddr) {
    let mut counts = per_address.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(n) = counts.get_mut(&ip) {
        *n -= 1;
        if *n == 0 {
            counts.remove(&ip);
        }
    }
}

/// Runs one connection in `protocol`.
async fn serve<R, W>(
    protocol: Protocol,
    peer: (ConnId, IpAddr, Option<String>),
    io: (R, W),
    events: &mpsc::Sender<ClientEvent>,
    cfg: &ListenerConfig,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    match protocol {
        Protocol::Zab => connection(peer, io, events, cfg).await,
        Protocol::ZooKeeper => zk::connection(peer, io, events, cfg).await,
    }
}

/// Tells the core a connection opened: what it sends comes out of the
/// receiver, counted in the backlog. None if the core is gone.
async fn open(
    (conn, ip, x509): (ConnId, IpAddr, Option<String>),
    events: &mpsc::Sender<ClientEvent>,
    cfg: &ListenerConfig,
) -> Option<(mpsc::UnboundedReceiver<Bytes>, Arc<Backlog>)> {
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    let backlog = Arc::new(Backlog {
        bytes: AtomicUsize::new(0),
        drained: Notify::new(),
        kill: Notify::new(),
        closing: Notify::new(),
    });
    let tx = ConnTx {
        tx,
        backlog: backlog.clone(),
        hard_bytes: cfg.frame_bytes_max as usize + BACKLOG_HARD_EXTRA_BYTES,
    };
    let opened = ClientEvent::Opened { conn, ip, x509, tx };
    events.send(opened).await.ok()?;
    Some((rx, backlog))
}

impl Backlog {
    /// The writer took `n` bytes of the core's: reading may resume once
    /// below the soft bound.
    fn taken(&self, n: usize) {
        let before = self.bytes.fetch_sub(n, Ordering::AcqRel);
        if before - n <= BACKLOG_SOFT_BYTES {
            self.drained.notify_waiters();
        }
    }

    /// Waits while more than the soft bound is queued: a client that does
    /// not take its replies sends no more requests until it does.
    async fn room(&self) {
        while self.bytes.load(Ordering::Acquire) > BACKLOG_SOFT_BYTES {
            let drained = self.drained.notified();
            let _ = tokio::time::timeout(Duration::from_millis(100), drained).await;
        }
    }
}

/// Runs one connection until either side ends it: the client (EOF, a bad
/// frame) or the core (it dropped the sender: a refusal, a close, a silent
/// client, a handshake that never came).
async fn connection<R, W>(
    (conn, ip, x509): (ConnId, IpAddr, Option<String>),
    (mut reader, mut writer): (R, W),
    events: &mpsc::Sender<ClientEvent>,
    cfg: &ListenerConfig,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let frame_bytes_max = cfg.frame_bytes_max;
    let Some((mut rx, backlog)) = open((conn, ip, x509), events, cfg).await else {
        return Ok(());
    };
    let writer_backlog = backlog.clone();
    let metrics = cfg.metrics.clone();
    let write = async move {
        while let Some(first) = rx.recv().await {
            let mut out = BytesMut::from(&first[..]);
            while let Ok(more) = rx.try_recv() {
                out.extend_from_slice(&more);
            }
            if writer.write_all(&out).await.is_err() {
                return;
            }
            metrics.client_sent_bytes.inc_by(out.len() as u64);
            writer_backlog.taken(out.len());
        }
        // The core dropped us (close or refusal): flush and end.
        let _ = writer.shutdown().await;
    };
    let reader_backlog = backlog.clone();
    let read = async move {
        let mut buf = BytesMut::with_capacity(16 * 1024);
        let mut limit = None;
        loop {
            reader_backlog.room().await;
            let frame_limit = limit.unwrap_or(HANDSHAKE_FRAME_BYTES_MAX);
            match zab_proto::decode_frame(&mut buf, frame_limit) {
                Ok(Some(body)) => {
                    cfg.metrics.client_requests.inc();
                    let event = match limit {
                        None => {
                            let hello = ConnectRequest::decode(body).map_err(|e| {
                                warn!(conn, error = %e, "malformed handshake; closing the connection");
                                std::io::Error::other(e)
                            })?;
                            limit = Some(
                                negotiate_frame_bytes(hello.max_frame_bytes, frame_bytes_max)
                                    .unwrap_or(frame_bytes_max),
                            );
                            ClientEvent::Hello { conn, hello }
                        }
                        Some(_) => match RequestFrame::decode(body) {
                            Ok(frame) => ClientEvent::Frame { conn, frame },
                            Err(e) => {
                                // A malformed frame closes this connection only.
                                warn!(conn, error = %e, "malformed request; closing the connection");
                                return Err(std::io::Error::other(e));
                            }
                        },
                    };
                    if events.send(event).await.is_err() {
                        return Ok(());
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    warn!(conn, error = %e, "bad frame; closing the connection");
                    return Err(std::io::Error::other(e));
                }
            }
            // Between frames the core judges the connection (its
            // handshake bound, its session's timeout); inside one, the
            // client must keep sending.
            if !read_more(&mut reader, &mut buf, cfg, conn).await? {
                return Ok(());
            }
        }
    };
    run_until_done(conn, write, read, &backlog).await
}

/// Reads more of the client's bytes into `buf`; false at its end. Between
/// frames the core judges the connection (its handshake bound, its
/// session's timeout); inside one, the client must keep sending.
async fn read_more<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
    cfg: &ListenerConfig,
    conn: ConnId,
) -> std::io::Result<bool> {
    let read = if buf.is_empty() {
        reader.read_buf(buf).await?
    } else {
        match tokio::time::timeout(cfg.stall, reader.read_buf(buf)).await {
            Ok(read) => read?,
            Err(_) => {
                warn!(conn, "a frame stalled half-way; closing the connection");
                return Ok(false);
            }
        }
    };
    cfg.metrics.client_received_bytes.inc_by(read as u64);
    Ok(read > 0)
}

/// Runs a connection's writer and reader until one ends, the shell kills
/// it for not reading, or the core closes it (its last replies get
/// [`CLOSE_FLUSH`] to leave).
async fn run_until_done(
    conn: ConnId,
    write: impl std::future::Future<Output = ()>,
    read: impl std::future::Future<Output = std::io::Result<()>>,
    backlog: &Backlog,
) -> std::io::Result<()> {
    tokio::pin!(write);
    tokio::select! {
        () = &mut write => Ok(()),
        r = read => r,
        () = backlog.kill.notified() => {
            warn!(conn, "the client does not read its replies; closing the connection");
            Ok(())
        }
        () = backlog.closing.notified() => {
            if tokio::time::timeout(CLOSE_FLUSH, &mut write).await.is_err() {
                debug!(conn, "closed connection did not take its last replies in time");
            }
            Ok(())
        }
    }
}
