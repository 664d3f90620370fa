//! The peer handshake and what a peer connection reads after it.
//!
//! The hello decoder (`zab_server::peer::handshake`) is private; the only
//! public way in is the transport itself. So this target runs two real
//! `peer::Transport`s (server 1 of cluster 7: one without a peer secret,
//! one with) on loopback listeners, in a single-threaded runtime, and
//! sends each input over a fresh TCP connection: the bytes meet the
//! handshake, and after an accepted hello the connection's
//! `StreamDecoder`. A panic in the transport's tasks aborts through the
//! panic hook (libFuzzer's, or the replay test's).

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use zab_core::PeerId;
use zab_server::peer::{Liveness, PeerSecret, Peers, Transport};

use crate::Input;

/// The cluster id the transports run with (seeds' hellos carry it).
pub const CLUSTER_ID: u64 = 7;
/// The transports' own server id; servers 2 and 3 may dial it.
pub const ME: u64 = 1;
/// The peer secret of the authenticating transport.
pub const SECRET: &[u8] = b"0123456789abcdef-fuzz-peer-secret";

#[derive(Debug)]
struct Harness {
    rt: Runtime,
    open: SocketAddr,
    authenticated: SocketAddr,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (open, authenticated) = rt.block_on(async {
            let open = start(None).await;
            let authenticated = start(PeerSecret::new(SECRET)).await;
            (open, authenticated)
        });
        Harness {
            rt,
            open,
            authenticated,
        }
    })
}

/// A transport accepting on a loopback port; what it receives is drained.
async fn start(secret: Option<PeerSecret>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local address");
    let (inputs, mut rx) = mpsc::channel(1024);
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let transport = Transport {
        me: PeerId(ME),
        cluster_id: CLUSTER_ID,
        // Higher ids dial us: no dialing from this side.
        members: vec![(PeerId(2), addr.to_string()), (PeerId(3), addr.to_string())],
        peers: Peers::default(),
        inputs,
        secret,
        liveness: Liveness::default(),
    };
    tokio::spawn(transport.run(listener));
    addr
}

/// First byte: bit 0 picks the authenticating transport. The rest is what
/// the connecting side sends (then it half-closes and reads to the end).
pub fn server_peer_handshake(data: &[u8]) {
    let h = harness();
    let mut input = Input::new(data);
    let addr = if input.u8() & 1 == 0 {
        h.open
    } else {
        h.authenticated
    };
    let bytes = input.rest();
    h.rt.block_on(async {
        let exchange = async {
            let mut s = TcpStream::connect(addr).await?;
            // Reset on close: no TIME_WAIT pile-up at thousands of runs a second.
            s.set_zero_linger()?;
            s.write_all(bytes).await?;
            s.shutdown().await?;
            let mut sink = Vec::new();
            s.read_to_end(&mut sink).await?;
            Ok::<_, std::io::Error>(())
        };
        let _ = tokio::time::timeout(Duration::from_secs(10), exchange).await;
        // Let the server side finish with the connection.
        tokio::task::yield_now().await;
    });
}
