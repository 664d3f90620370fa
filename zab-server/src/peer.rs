//! Quorum transport: one TCP connection per pair of servers, carrying the
//! core's messages in its own frames. A snapshot larger than a chunk is
//! streamed as bounded frames (`zab_core::codec::frames`) and reassembled,
//! checked and handed to the core whole ([`codec::StreamDecoder`]), so no
//! tree is too large to send to a follower.
//!
//! The server with the higher id dials; the lower one accepts, so each pair
//! has exactly one connection. A connection opens with a handshake
//! (`handshake.rs`: magic, protocol version, cluster id, server id, and with
//! a shared secret a mutual challenge-response) so a stray client, another
//! ensemble, or a process that lacks the secret is turned away before
//! anything it sends reaches the core. Inbound handshakes in progress are
//! capped, so a flood of connections cannot exhaust the server. Each peer
//! has a bounded send queue: when it fills, the connection is dropped and
//! rebuilt (the core resynchronizes the peer), rather than letting one slow
//! peer stall everyone. A peer that sends a frame the codec rejects is
//! disconnected and logged.

mod handshake;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tracing::{debug, info, warn};
use zab_core::{codec, Epoch, Input, Message, PeerId, Zxid};

use crate::replica::FrozenState;

pub use handshake::{HandshakeError, PeerSecret, SECRET_BYTES_MIN, VERSION};
use handshake::{Hello, Side};

/// Messages queued for one peer before the connection is declared stuck.
/// Room for several seconds of proposals and commits at full write rate
/// (tens of MB at most): a follower receiving a snapshot of a large tree
/// takes that long to drain its queue, and a smaller bound would drop it
/// mid-transfer, again and again.
pub const SEND_QUEUE_MAX: usize = 262_144;
/// Inbound connections allowed to be in their handshake at once; more are
/// closed at once (each costs a task and a timer until it times out).
pub const HANDSHAKES_MAX: usize = 64;
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Refused connections are logged at most once a second, with how many were
/// refused since the last line: a flood must not become a flood of log.
#[derive(Debug, Default)]
struct RefusalLog {
    state: Mutex<(Option<std::time::Instant>, u64)>,
}

impl RefusalLog {
    /// Counts one refusal; returns the count to log, if a line is due.
    fn refused(&self) -> Option<u64> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.1 += 1;
        let now = std::time::Instant::now();
        if st
            .0
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return None;
        }
        st.0 = Some(now);
        Some(std::mem::take(&mut st.1))
    }
}

/// Handles to every peer's send queue, shared with connection tasks.
#[derive(Clone, Debug, Default)]
pub struct Peers {
    queues: Arc<Mutex<HashMap<PeerId, Link>>>,
}

/// One live connection's send queue and its kill switch.
#[derive(Clone, Debug)]
struct Link {
    tx: mpsc::Sender<Outgoing>,
    kill: Arc<tokio::sync::Notify>,
}

/// One item of a peer's send queue, sent in order.
#[derive(Debug)]
enum Outgoing {
    Message(Message),
    /// A snapshot the connection's writer encodes (on a blocking thread, so
    /// neither the driver nor the runtime waits) and then streams.
    Snapshot {
        epoch: Epoch,
        join: u64,
        zxid: Zxid,
        state: FrozenState,
    },
}

impl Peers {
    /// Queues `msg` for `to`. Dropped if there is no connection (the protocol
    /// treats it as lost); a full queue closes the connection.
    pub fn send(&self, to: PeerId, msg: Message) {
        self.enqueue(to, Outgoing::Message(msg));
    }

    /// Queues a snapshot of `state` for `to`, in order with its messages.
    pub fn send_snapshot(
        &self,
        to: PeerId,
        epoch: Epoch,
        join: u64,
        zxid: Zxid,
        state: FrozenState,
    ) {
        let item = Outgoing::Snapshot {
            epoch,
            join,
            zxid,
            state,
        };
        self.enqueue(to, item);
    }

    fn enqueue(&self, to: PeerId, item: Outgoing) {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(link) = queues.get(&to) {
            if let Err(mpsc::error::TrySendError::Full(_)) = link.tx.try_send(item) {
                warn!(peer = %to, "send queue full; dropping the connection");
                link.kill.notify_one();
                queues.remove(&to);
            }
        }
    }

    fn attach(&self, peer: PeerId, link: Link) {
        let old = self
            .queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(peer, link);
        if let Some(old) = old {
            // A newer connection replaces an older one to the same peer.
            old.kill.notify_one();
        }
    }

    fn detach(&self, peer: PeerId, tx: &mpsc::Sender<Outgoing>) {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        if queues.get(&peer).is_some_and(|l| l.tx.same_channel(tx)) {
            queues.remove(&peer);
        }
    }

    pub fn connected(&self) -> Vec<PeerId> {
        let mut v: Vec<_> = self
            .queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect();
        v.sort();
        v
    }
}

/// Writes what is batched in `buf`, then encodes `state` off the runtime
/// and writes its snapshot frame by frame (streamed in chunks if large):
/// the socket paces the transfer, and no frame copies the snapshot.
async fn write_snapshot(
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
    buf: &mut BytesMut,
    (epoch, join, zxid): (Epoch, u64, Zxid),
    state: FrozenState,
) -> std::io::Result<()> {
    // What is batched goes first: encoding a large tree takes a while.
    writer.write_all(buf).await?;
    buf.clear();
    let data = tokio::task::spawn_blocking(move || state.encode())
        .await
        .map_err(std::io::Error::other)?;
    let msg = Message::Snapshot {
        epoch,
        join,
        zxid,
        data: data.into(),
    };
    let frames = codec::frames(&msg, codec::CHUNK_BYTES);
    debug!(frames = frames.len(), "sending a snapshot");
    for frame in frames {
        writer.write_all(&frame).await?;
    }
    Ok(())
}

/// Static facts every connection needs.
#[derive(Clone, Debug)]
pub struct Transport {
    pub me: PeerId,
    pub cluster_id: u64,
    /// Every other member and its peer address.
    pub members: Vec<(PeerId, SocketAddr)>,
    pub peers: Peers,
    /// Where received messages and disconnects go (the driver).
    pub inputs: mpsc::Sender<Input>,
    /// The ensemble's shared secret; without one, ids are taken as said
    /// (only where the configuration explicitly allows it).
    pub secret: Option<PeerSecret>,
}

impl Transport {
    /// Accepts connections from higher ids and dials lower ones, forever.
    pub async fn run(self, listener: TcpListener) {
        for &(peer, addr) in &self.members {
            if peer > self.me {
                continue; // they dial us
            }
            let t = self.clone();
            tokio::spawn(async move { t.dial_forever(peer, addr).await });
        }
        let handshakes = Arc::new(Semaphore::new(HANDSHAKES_MAX));
        let refusals = Arc::new([RefusalLog::default(), RefusalLog::default()]);
        loop {
            match listener.accept().await {
                Ok((stream, from)) => {
                    let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                        debug!(%from, "too many peer handshakes in progress; closing");
                        continue;
                    };
                    let t = self.clone();
                    let refusals = refusals.clone();
                    tokio::spawn(async move {
                        match t.accepted(stream, permit).await {
                            Ok(()) => {}
                            Err(e @ HandshakeError::BadProof { .. }) => {
                                if let Some(n) = refusals[0].refused() {
                                    warn!(%from, error = %e, refused = n, "peer authentication failed");
                                }
                            }
                            Err(e) => {
                                if let Some(n) = refusals[1].refused() {
                                    warn!(%from, error = %e, refused = n, "peer connection refused");
                                }
                            }
                        }
                    });
                }
                Err(e) => {
                    warn!(error = %e, "accepting a peer connection failed");
                    tokio::time::sleep(BACKOFF_MIN).await;
                }
            }
        }
    }

    async fn dial_forever(self, peer: PeerId, addr: SocketAddr) {
        let mut backoff = BACKOFF_MIN;
        loop {
            match TcpStream::connect(addr).await {
                Ok(mut stream) => {
                    let _ = stream.set_nodelay(true);
                    let admit = |id: PeerId| {
                        if id == peer {
                            Ok(())
                        } else {
                            warn!(peer = %peer, %addr, answered = %id, "wrong server at peer address");
                            Err(HandshakeError::Io(std::io::Error::other("wrong server")))
                        }
                    };
                    match handshake::handshake(&mut stream, &self.hello(), Side::Dialer, admit)
                        .await
                    {
                        Ok(_) => {
                            backoff = BACKOFF_MIN;
                            self.serve(peer, stream).await;
                        }
                        Err(e @ HandshakeError::BadProof { .. }) => {
                            warn!(peer = %peer, %addr, error = %e, "peer authentication failed")
                        }
                        Err(e) => debug!(peer = %peer, error = %e, "handshake failed"),
                    }
                }
                Err(e) => debug!(peer = %peer, %addr, error = %e, "cannot reach peer"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    async fn accepted(
        self,
        mut stream: TcpStream,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> Result<(), HandshakeError> {
        let _ = stream.set_nodelay(true);
        let me = self.me;
        let members = &self.members;
        let admit = |peer: PeerId| {
            if peer <= me || !members.iter().any(|(p, _)| *p == peer) {
                Err(HandshakeError::Io(std::io::Error::other(format!(
                    "server {peer} may not dial us"
                ))))
            } else {
                Ok(())
            }
        };
        let peer = handshake::handshake(&mut stream, &self.hello(), Side::Acceptor, admit).await?;
        drop(permit);
        self.serve(peer, stream).await;
        Ok(())
    }

    fn hello(&self) -> Hello {
        Hello {
            cluster_id: self.cluster_id,
            me: self.me,
            secret: self.secret.clone(),
        }
    }

    /// Runs one established connection until either direction fails.
    async fn serve(&self, peer: PeerId, stream: TcpStream) {
        info!(peer = %peer, "peer connected");
        let (tx, mut rx) = mpsc::channel::<Outgoing>(SEND_QUEUE_MAX);
        let kill = Arc::new(tokio::sync::Notify::new());
        self.peers.attach(
            peer,
            Link {
                tx: tx.clone(),
                kill: kill.clone(),
            },
        );
        let (mut reader, mut writer) = stream.into_split();
        let write = async move {
            let mut buf = BytesMut::new();
            while let Some(item) = rx.recv().await {
                let mut next = Some(item);
                // Batch whatever else is already queued into the same write;
                // a large snapshot goes out as its own stream of chunks.
                while let Some(item) = next.take() {
                    match item {
                        Outgoing::Message(msg) => codec::encode(&msg, &mut buf),
                        Outgoing::Snapshot {
                            epoch,
                            join,
                            zxid,
                            state,
                        } => {
                            let header = (epoch, join, zxid);
                            if write_snapshot(&mut writer, &mut buf, header, state)
                                .await
                                .is_err()
                            {
                                return;
                            }
                        }
                    }
                    if buf.len() < 1 << 20 {
                        next = rx.try_recv().ok();
                    }
                }
                if writer.write_all(&buf).await.is_err() {
                    return;
                }
                buf.clear();
            }
        };
        let inputs = self.inputs.clone();
        let read = async move {
            let mut buf = BytesMut::with_capacity(64 * 1024);
            let mut decoder =
                codec::StreamDecoder::new(codec::FRAME_BYTES_MAX, codec::SNAPSHOT_BYTES_MAX);
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(msg)) => {
                        if inputs
                            .send(Input::Received { from: peer, msg })
                            .await
                            .is_err()
                        {
                            return;
                        }
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        warn!(peer = %peer, error = %e, "peer sent a bad frame; disconnecting");
                        return;
                    }
                }
                match reader.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        };
        tokio::select! {
            () = write => {}
            () = read => {}
            () = kill.notified() => {}
        }
        self.peers.detach(peer, &tx);
        info!(peer = %peer, "peer disconnected");
        let _ = self.inputs.send(Input::PeerDown { peer }).await;
    }
}
