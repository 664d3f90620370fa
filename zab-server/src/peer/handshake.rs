//! The peer handshake: who is at the other end of a quorum connection, and
//! proof that it is who it says.
//!
//! Both ends send a hello at once (magic, protocol version, cluster id,
//! server id, whether it authenticates, a fresh random nonce). With a shared
//! secret configured, each end then proves it holds the secret by sending an
//! HMAC-SHA256 over both nonces, both ids, the cluster id and its role
//! (dialer or acceptor), and checks the other's proof in constant time.
//! Nothing from a connection reaches the core before both proofs check, so
//! a process that can reach the peer port but lacks the secret can neither
//! replace an established link nor inject a message.
//!
//! Why this shape: each proof covers the verifier's own fresh nonce, so an
//! old proof cannot be replayed; it covers the prover's role and both ids,
//! so a proof cannot be reflected back at its sender or passed off for
//! another server. What it does not do: it authenticates the start of a TCP
//! connection, not each frame, so an attacker on the network path who can
//! inject into an established connection is outside it (keep the peer
//! network private; see docs/security.md).

use std::fmt;
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use zab_core::PeerId;

pub const MAGIC: &[u8; 4] = b"ZABP";
/// The hello's layout version.
/// 2: standings in NOTIFICATION and FOLLOWERINFO, the ensemble in LEADERINFO.
/// 3: the hello carries an auth flag and a nonce; proofs follow it.
///
/// Servers of version 3 refuse any other value here, so later protocol
/// changes are announced as a [`REVISION`] instead: the version field stays
/// 3 while the hello's layout does.
pub const VERSION: u16 = 3;
/// What this server speaks on a peer link, beyond [`VERSION`]'s hello.
/// 3: the protocol of version 3 (and what a server that announces no
///    revision speaks).
/// 4: link heartbeats (`zab_core::codec::heartbeat`), and a link silent for
///    the silence timeout is dropped.
///
/// A link speaks the lower of its two ends' revisions, so adjacent releases
/// interoperate during a rolling upgrade.
pub const REVISION: u16 = 4;
/// The revision of a server that announces none.
pub const REVISION_BASE: u16 = 3;
/// The oldest revision this server still speaks.
pub const REVISION_MIN: u16 = 3;
/// The first revision with link heartbeats.
pub const REVISION_HEARTBEATS: u16 = 4;
const NONCE_BYTES: usize = 32;
/// The revision rides in the nonce's last bytes: a version-3 server takes
/// the nonce as opaque (it only feeds the proofs), so it accepts the hello,
/// and the first 24 bytes are still fresh randomness (192 bits).
const NONCE_RANDOM_BYTES: usize = 24;
const REVISION_MARK: &[u8; 4] = b"zrev";
const HELLO_BYTES: usize = 4 + 2 + 8 + 8 + 1 + NONCE_BYTES;
const PROOF_BYTES: usize = 32;
/// A peer that has not finished the handshake within this is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// The shortest shared secret accepted (bytes).
pub const SECRET_BYTES_MIN: usize = 16;
/// Domain separation: this MAC is for nothing else.
const PROOF_LABEL: &[u8] = b"zab peer proof v1";

/// The ensemble's shared peer secret.
#[derive(Clone)]
pub struct PeerSecret(std::sync::Arc<[u8]>);

impl PeerSecret {
    /// A secret from its bytes; `None` if it is shorter than
    /// [`SECRET_BYTES_MIN`].
    pub fn new(bytes: &[u8]) -> Option<PeerSecret> {
        (bytes.len() >= SECRET_BYTES_MIN).then(|| PeerSecret(bytes.into()))
    }
}

impl fmt::Debug for PeerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret itself.
        write!(f, "PeerSecret({} bytes)", self.0.len())
    }
}

/// Which end of the connection a proof is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Dialer,
    Acceptor,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Dialer => Side::Acceptor,
            Side::Acceptor => Side::Dialer,
        }
    }

    fn tag(self) -> u8 {
        match self {
            Side::Dialer => 1,
            Side::Acceptor => 2,
        }
    }
}

/// Why a handshake failed.
#[derive(Debug)]
pub enum HandshakeError {
    Io(std::io::Error),
    TimedOut,
    BadMagic,
    Version {
        theirs: u16,
    },
    Cluster {
        theirs: u64,
    },
    /// They authenticate and we do not, or the other way round.
    AuthMismatch {
        ours: bool,
    },
    /// Their proof did not check: they do not hold our secret.
    BadProof {
        claimed: PeerId,
    },
    /// They speak only revisions this server no longer does.
    Revision {
        theirs: u16,
    },
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Io(e) => write!(f, "{e}"),
            HandshakeError::TimedOut => write!(f, "handshake timed out"),
            HandshakeError::BadMagic => write!(f, "not a zab peer (bad magic)"),
            HandshakeError::Version { theirs } => {
                write!(f, "peer protocol version {theirs}, ours {VERSION}")
            }
            HandshakeError::Cluster { theirs } => write!(f, "peer is in cluster {theirs}"),
            HandshakeError::Revision { theirs } => write!(
                f,
                "peer speaks protocol revision {theirs}; this server speaks \
                 {REVISION_MIN}..={REVISION}: upgrade one release at a time"
            ),
            HandshakeError::AuthMismatch { ours: true } => {
                write!(f, "peer does not authenticate, and we require it")
            }
            HandshakeError::AuthMismatch { ours: false } => write!(
                f,
                "peer authenticates and we have no peer secret configured"
            ),
            HandshakeError::BadProof { claimed } => write!(
                f,
                "peer claiming to be server {claimed} failed authentication (wrong or no secret)"
            ),
        }
    }
}

impl std::error::Error for HandshakeError {}

impl From<std::io::Error> for HandshakeError {
    fn from(e: std::io::Error) -> Self {
        HandshakeError::Io(e)
    }
}

/// What we say about ourselves.
#[derive(Clone, Debug)]
pub struct Hello {
    pub cluster_id: u64,
    pub me: PeerId,
    pub secret: Option<PeerSecret>,
}

struct Theirs {
    id: PeerId,
    nonce: [u8; NONCE_BYTES],
    revision: u16,
}

/// Who is at the other end, once the handshake succeeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Agreed {
    /// The other end's id (proven, with a secret).
    pub peer: PeerId,
    /// The revision the link speaks: the lower of the two ends'.
    pub revision: u16,
}

impl Agreed {
    /// Whether both ends send heartbeats, so silence means a dead link.
    pub fn heartbeats(&self) -> bool {
        self.revision >= REVISION_HEARTBEATS
    }
}

/// Runs the handshake on `stream` as `side`; returns the authenticated id
/// of the other end and the revision the link speaks. `admit` sees the id
/// the other end claims before any proof is computed, so a server that may
/// not connect here costs nothing.
pub async fn handshake<S>(
    stream: &mut S,
    hello: &Hello,
    side: Side,
    admit: impl FnOnce(PeerId) -> Result<(), HandshakeError>,
) -> Result<Agreed, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let exchange = exchange(stream, hello, side, admit, Some(REVISION));
    tokio::time::timeout(HANDSHAKE_TIMEOUT, exchange)
        .await
        .map_err(|_| HandshakeError::TimedOut)?
}

/// The handshake, announcing `revision` (`None`: none, as a version-3
/// server does; tests use it to play an older server).
async fn exchange<S>(
    stream: &mut S,
    hello: &Hello,
    side: Side,
    admit: impl FnOnce(PeerId) -> Result<(), HandshakeError>,
    revision: Option<u16>,
) -> Result<Agreed, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut nonce = [0u8; NONCE_BYTES];
    getrandom::getrandom(&mut nonce).map_err(|e| std::io::Error::other(e.to_string()))?;
    if let Some(revision) = revision {
        mark_revision(&mut nonce, revision);
    }
    stream.write_all(&encode_hello(hello, &nonce)).await?;
    let mut buf = [0u8; HELLO_BYTES];
    stream.read_exact(&mut buf).await?;
    let theirs = decode_hello(&buf, hello)?;
    admit(theirs.id)?;
    if theirs.revision < REVISION_MIN {
        return Err(HandshakeError::Revision {
            theirs: theirs.revision,
        });
    }
    let agreed = Agreed {
        peer: theirs.id,
        revision: theirs.revision.min(REVISION),
    };
    let Some(secret) = &hello.secret else {
        return Ok(agreed);
    };
    let ours = proof(
        secret,
        side,
        hello.cluster_id,
        hello.me,
        theirs.id,
        &nonce,
        &theirs.nonce,
    );
    stream.write_all(&ours.finalize().into_bytes()).await?;
    let mut got = [0u8; PROOF_BYTES];
    stream.read_exact(&mut got).await?;
    proof(
        secret,
        side.other(),
        hello.cluster_id,
        theirs.id,
        hello.me,
        &theirs.nonce,
        &nonce,
    )
    .verify_slice(&got)
    .map_err(|_| HandshakeError::BadProof { claimed: theirs.id })?;
    Ok(agreed)
}

/// Writes `revision` into the nonce's tail (after its random bytes); the
/// two bytes after it are reserved (zero).
fn mark_revision(nonce: &mut [u8; NONCE_BYTES], revision: u16) {
    let tail = &mut nonce[NONCE_RANDOM_BYTES..];
    tail[..4].copy_from_slice(REVISION_MARK);
    tail[4..6].copy_from_slice(&revision.to_be_bytes());
    tail[6..].fill(0);
}

/// The revision a nonce announces; [`REVISION_BASE`] if it announces none
/// (a version-3 server's nonce is random throughout).
fn announced_revision(nonce: &[u8; NONCE_BYTES]) -> u16 {
    let tail = &nonce[NONCE_RANDOM_BYTES..];
    // The last two bytes are reserved: a later release may announce more
    // there, so they are not checked.
    if &tail[..4] == REVISION_MARK {
        u16::from_be_bytes([tail[4], tail[5]])
    } else {
        REVISION_BASE
    }
}

fn encode_hello(hello: &Hello, nonce: &[u8; NONCE_BYTES]) -> BytesMut {
    let mut b = BytesMut::with_capacity(HELLO_BYTES);
    b.extend_from_slice(MAGIC);
    b.put_u16(VERSION);
    b.put_u64(hello.cluster_id);
    b.put_u64(hello.me.0);
    b.put_u8(u8::from(hello.secret.is_some()));
    b.extend_from_slice(nonce);
    b
}

fn decode_hello(buf: &[u8; HELLO_BYTES], ours: &Hello) -> Result<Theirs, HandshakeError> {
    let mut b = &buf[..];
    if &b[..4] != MAGIC {
        return Err(HandshakeError::BadMagic);
    }
    b.advance(4);
    let version = b.get_u16();
    if version != VERSION {
        return Err(HandshakeError::Version { theirs: version });
    }
    let cluster = b.get_u64();
    if cluster != ours.cluster_id {
        return Err(HandshakeError::Cluster { theirs: cluster });
    }
    let id = PeerId(b.get_u64());
    let authenticates = b.get_u8() != 0;
    if authenticates != ours.secret.is_some() {
        return Err(HandshakeError::AuthMismatch {
            ours: ours.secret.is_some(),
        });
    }
    let mut nonce = [0u8; NONCE_BYTES];
    b.copy_to_slice(&mut nonce);
    Ok(Theirs {
        id,
        nonce,
        revision: announced_revision(&nonce),
    })
}

/// The MAC `prover` sends `verifier` as `side`, over the prover's nonce and
/// then the verifier's.
fn proof(
    secret: &PeerSecret,
    side: Side,
    cluster_id: u64,
    prover: PeerId,
    verifier: PeerId,
    prover_nonce: &[u8; NONCE_BYTES],
    verifier_nonce: &[u8; NONCE_BYTES],
) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(&secret.0).expect("HMAC takes any key length");
    mac.update(PROOF_LABEL);
    mac.update(&[side.tag()]);
    mac.update(&cluster_id.to_be_bytes());
    mac.update(&prover.0.to_be_bytes());
    mac.update(&verifier.0.to_be_bytes());
    mac.update(prover_nonce);
    mac.update(verifier_nonce);
    mac
}

#[cfg(test)]
mod tests;
