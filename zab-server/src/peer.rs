//! Quorum transport: one TCP connection per pair of servers, carrying the
//! core's messages in its own frames.
//!
//! The server with the higher id dials; the lower one accepts, so each pair
//! has exactly one connection. A connection opens with a handshake (magic,
//! protocol version, cluster id, server id) so a stray client or another
//! ensemble is turned away. Each peer has a bounded send queue: when it
//! fills, the connection is dropped and rebuilt (the core resynchronizes the
//! peer), rather than letting one slow peer stall everyone. A peer that sends
//! a frame the codec rejects is disconnected and logged.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};
use zab_core::{codec, Input, Message, PeerId};

const MAGIC: &[u8; 4] = b"ZABP";
/// 2: standings in NOTIFICATION and FOLLOWERINFO, the ensemble in LEADERINFO.
const VERSION: u16 = 2;
const HELLO_BYTES: usize = 4 + 2 + 8 + 8;
/// Messages queued for one peer before the connection is declared stuck.
pub const SEND_QUEUE_MAX: usize = 16_384;
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Handles to every peer's send queue, shared with connection tasks.
#[derive(Clone, Debug, Default)]
pub struct Peers {
    queues: Arc<Mutex<HashMap<PeerId, Link>>>,
}

/// One live connection's send queue and its kill switch.
#[derive(Clone, Debug)]
struct Link {
    tx: mpsc::Sender<Message>,
    kill: Arc<tokio::sync::Notify>,
}

impl Peers {
    /// Queues `msg` for `to`. Dropped if there is no connection (the protocol
    /// treats it as lost); a full queue closes the connection.
    pub fn send(&self, to: PeerId, msg: Message) {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(link) = queues.get(&to) {
            if let Err(mpsc::error::TrySendError::Full(_)) = link.tx.try_send(msg) {
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

    fn detach(&self, peer: PeerId, tx: &mpsc::Sender<Message>) {
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
        loop {
            match listener.accept().await {
                Ok((stream, from)) => {
                    let t = self.clone();
                    tokio::spawn(async move {
                        if let Err(e) = t.accepted(stream).await {
                            warn!(%from, error = %e, "peer connection refused");
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
                    match self.handshake(&mut stream).await {
                        Ok(id) if id == peer => {
                            backoff = BACKOFF_MIN;
                            self.serve(peer, stream).await;
                        }
                        Ok(id) => {
                            warn!(peer = %peer, %addr, answered = %id, "wrong server at peer address")
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

    async fn accepted(self, mut stream: TcpStream) -> std::io::Result<()> {
        let _ = stream.set_nodelay(true);
        let peer = self.handshake(&mut stream).await?;
        if peer <= self.me || !self.members.iter().any(|(p, _)| *p == peer) {
            return Err(std::io::Error::other(format!(
                "server {peer} may not dial us"
            )));
        }
        self.serve(peer, stream).await;
        Ok(())
    }

    /// Both sides send a hello and check the other's.
    async fn handshake(&self, stream: &mut TcpStream) -> std::io::Result<PeerId> {
        let mut hello = BytesMut::with_capacity(HELLO_BYTES);
        hello.extend_from_slice(MAGIC);
        hello.put_u16(VERSION);
        hello.put_u64(self.cluster_id);
        hello.put_u64(self.me.0);
        stream.write_all(&hello).await?;
        let mut theirs = [0u8; HELLO_BYTES];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut theirs))
            .await
            .map_err(|_| std::io::Error::other("handshake timed out"))??;
        let mut b = &theirs[..];
        if &b[..4] != MAGIC {
            return Err(std::io::Error::other("not a zab peer (bad magic)"));
        }
        b.advance(4);
        let version = b.get_u16();
        let cluster = b.get_u64();
        let id = PeerId(b.get_u64());
        if version != VERSION {
            return Err(std::io::Error::other(format!(
                "peer protocol version {version}, ours {VERSION}"
            )));
        }
        if cluster != self.cluster_id {
            return Err(std::io::Error::other(format!(
                "peer is in cluster {cluster}, ours is {}",
                self.cluster_id
            )));
        }
        Ok(id)
    }

    /// Runs one established connection until either direction fails.
    async fn serve(&self, peer: PeerId, stream: TcpStream) {
        info!(peer = %peer, "peer connected");
        let (tx, mut rx) = mpsc::channel::<Message>(SEND_QUEUE_MAX);
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
            while let Some(msg) = rx.recv().await {
                codec::encode(&msg, &mut buf);
                // Batch whatever else is already queued into the same write.
                while buf.len() < 1 << 20 {
                    match rx.try_recv() {
                        Ok(m) => codec::encode(&m, &mut buf),
                        Err(_) => break,
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
            loop {
                match codec::decode(&mut buf, codec::FRAME_BYTES_MAX) {
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
