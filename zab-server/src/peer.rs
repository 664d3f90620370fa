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
//!
//! Liveness: on a link whose ends both speak revision 4 or later, each end
//! writes a heartbeat frame whenever it has written nothing for a
//! heartbeat interval (even while it encodes a snapshot), and a link that
//! has carried nothing for the silence timeout is dropped and dialled
//! again. Without this a partitioned link stayed "connected" on both ends
//! and, once the network healed, recovery waited on TCP's retransmission
//! backoff (51 s after a 60 s partition). Dials time out too, and peer
//! addresses are host names resolved afresh on every dial.

mod handshake;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tracing::{debug, info, warn};
use zab_core::{codec, Epoch, Input, Message, PeerId, Zxid};

use crate::replica::FrozenState;

pub use handshake::{Agreed, HandshakeError, PeerSecret, REVISION, SECRET_BYTES_MIN, VERSION};
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
/// The longest wait between dials: a healed link is back within it.
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// How a link tells a quiet peer from a gone one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Liveness {
    /// A link written nothing for this long gets a heartbeat (in practice
    /// no gap between writes exceeds about this).
    pub heartbeat: Duration,
    /// A link that carried nothing for this long is dropped (only on links
    /// whose ends both heartbeat).
    pub silence: Duration,
    /// A dial that has not connected within this is abandoned and retried.
    pub connect: Duration,
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness {
            heartbeat: Duration::from_millis(100),
            silence: Duration::from_secs(2),
            connect: Duration::from_secs(1),
        }
    }
}

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
    heartbeat: Option<Duration>,
) -> std::io::Result<()> {
    // What is batched goes first: encoding a large tree takes a while.
    writer.write_all(buf).await?;
    buf.clear();
    // Encoding and checksumming (`codec::frames`) a large tree take
    // seconds: both run off the runtime, whose one worker the links share.
    let mut encoding = tokio::task::spawn_blocking(move || {
        let msg = Message::Snapshot {
            epoch,
            join,
            zxid,
            data: state.encode().into(),
        };
        codec::frames(&msg, codec::CHUNK_BYTES)
    });
    // The link stays observably alive while a large tree is encoded.
    let frames = loop {
        let beat = async {
            match heartbeat {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            frames = &mut encoding => break frames.map_err(std::io::Error::other)?,
            () = beat => writer.write_all(&codec::heartbeat()).await?,
        }
    };
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
    /// Every other member and its peer address (`host:port`; the host is
    /// resolved on every dial, so a moved server is found again).
    pub members: Vec<(PeerId, String)>,
    pub peers: Peers,
    /// Where received messages and disconnects go (the driver).
    pub inputs: mpsc::Sender<Input>,
    /// The ensemble's shared secret; without one, ids are taken as said
    /// (only where the configuration explicitly allows it).
    pub secret: Option<PeerSecret>,
    pub liveness: Liveness,
}

impl Transport {
    /// Accepts connections from higher ids and dials lower ones, forever.
    pub async fn run(self, listener: TcpListener) {
        for (peer, addr) in &self.members {
            if *peer > self.me {
                continue; // they dial us
            }
            let t = self.clone();
            let (peer, addr) = (*peer, addr.clone());
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

    async fn dial_forever(self, peer: PeerId, addr: String) {
        let mut backoff = BACKOFF_MIN;
        loop {
            // Resolved afresh on every dial (tokio asks the system resolver).
            let dial = tokio::time::timeout(self.liveness.connect, TcpStream::connect(&*addr));
            match dial.await {
                Ok(Ok(mut stream)) => {
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
                        Ok(agreed) => {
                            backoff = BACKOFF_MIN;
                            self.serve(agreed, stream).await;
                        }
                        Err(e @ HandshakeError::BadProof { .. }) => {
                            warn!(peer = %peer, %addr, error = %e, "peer authentication failed")
                        }
                        Err(e) => debug!(peer = %peer, error = %e, "handshake failed"),
                    }
                }
                Ok(Err(e)) => debug!(peer = %peer, %addr, error = %e, "cannot reach peer"),
                Err(_) => debug!(peer = %peer, %addr, "dialling the peer timed out"),
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
        let agreed =
            handshake::handshake(&mut stream, &self.hello(), Side::Acceptor, admit).await?;
        drop(permit);
        self.serve(agreed, stream).await;
        Ok(())
    }

    fn hello(&self) -> Hello {
        Hello {
            cluster_id: self.cluster_id,
            me: self.me,
            secret: self.secret.clone(),
        }
    }

    /// Runs one established connection until either direction fails or,
    /// on a heartbeating link, it falls silent.
    async fn serve(&self, agreed: Agreed, stream: TcpStream) {
        let peer = agreed.peer;
        info!(peer = %peer, revision = agreed.revision, "peer connected");
        let heartbeat = agreed.heartbeats().then_some(self.liveness.heartbeat);
        let silence = agreed.heartbeats().then_some(self.liveness.silence);
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
            // Checked twice per interval, a heartbeat goes out whenever
            // nothing was written for half of it: no gap exceeds about one.
            let mut beats = heartbeat.map(|h| {
                let mut i = tokio::time::interval(h / 2);
                i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                i
            });
            let mut wrote = Instant::now();
            loop {
                let beat = async {
                    match beats.as_mut() {
                        Some(b) => {
                            b.tick().await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                let item = tokio::select! {
                    item = rx.recv() => match item {
                        Some(item) => item,
                        None => return,
                    },
                    () = beat => {
                        if heartbeat.is_some_and(|h| wrote.elapsed() >= h / 2) {
                            if writer.write_all(&codec::heartbeat()).await.is_err() {
                                return;
                            }
                            wrote = Instant::now();
                        }
                        continue;
                    }
                };
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
                            if write_snapshot(&mut writer, &mut buf, header, state, heartbeat)
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
                wrote = Instant::now();
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
                let read = reader.read_buf(&mut buf);
                let got = match silence {
                    Some(silence) => match tokio::time::timeout(silence, read).await {
                        Ok(got) => got,
                        Err(_) => {
                            warn!(peer = %peer, silent_ms = silence.as_millis() as u64, "peer link silent; dropping it");
                            return;
                        }
                    },
                    None => read.await,
                };
                match got {
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
