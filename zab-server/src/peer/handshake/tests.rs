use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;

fn hello(me: u64, secret: Option<&[u8]>) -> Hello {
    Hello {
        cluster_id: 7,
        me: PeerId(me),
        secret: secret.map(|s| PeerSecret::new(s).expect("long enough")),
    }
}

const SECRET: &[u8] = b"0123456789abcdef-the-ensemble";
const OTHER: &[u8] = b"fedcba9876543210-another-one";

/// Runs a dialer (`d`) and an acceptor (`a`) against each other.
async fn run(
    d: Hello,
    a: Hello,
) -> (
    Result<PeerId, HandshakeError>,
    Result<PeerId, HandshakeError>,
) {
    let (d, a) = run_revisions(d, Some(REVISION), a, Some(REVISION)).await;
    (d.map(|x| x.peer), a.map(|x| x.peer))
}

/// Runs a dialer and an acceptor announcing the given revisions (`None`:
/// a version-3 server, which announces none).
async fn run_revisions(
    d: Hello,
    d_revision: Option<u16>,
    a: Hello,
    a_revision: Option<u16>,
) -> (
    Result<Agreed, HandshakeError>,
    Result<Agreed, HandshakeError>,
) {
    let (mut x, mut y) = duplex(4096);
    tokio::join!(
        exchange(&mut x, &d, Side::Dialer, |_| Ok(()), d_revision),
        exchange(&mut y, &a, Side::Acceptor, |_| Ok(()), a_revision),
    )
}

#[tokio::test]
async fn a_link_speaks_the_lower_revision_and_an_older_server_is_understood() {
    for secret in [None, Some(SECRET)] {
        let (d, a) = run_revisions(hello(3, secret), Some(REVISION), hello(1, secret), None).await;
        let (d, a) = (d.expect("dialer"), a.expect("acceptor"));
        assert_eq!((d.peer, d.revision), (PeerId(1), REVISION_BASE));
        assert_eq!((a.peer, a.revision), (PeerId(3), REVISION));
        assert!(!d.heartbeats(), "a version-3 server sends none");
        let (d, a) =
            run_revisions(hello(3, secret), Some(9), hello(1, secret), Some(REVISION)).await;
        assert_eq!(d.expect("dialer").revision, REVISION);
        let a = a.expect("acceptor");
        assert_eq!(a.revision, REVISION, "the lower of the two");
        assert!(a.heartbeats());
    }
    let (_, a) = run_revisions(hello(3, None), Some(2), hello(1, None), Some(REVISION)).await;
    assert!(
        matches!(a, Err(HandshakeError::Revision { theirs: 2 })),
        "{a:?}"
    );
}

#[tokio::test]
async fn the_same_secret_authenticates_both_ends() {
    let (d, a) = run(hello(3, Some(SECRET)), hello(1, Some(SECRET))).await;
    assert_eq!(d.expect("dialer"), PeerId(1));
    assert_eq!(a.expect("acceptor"), PeerId(3));
}

#[tokio::test]
async fn without_secrets_on_both_ends_ids_are_taken_as_said() {
    let (d, a) = run(hello(3, None), hello(1, None)).await;
    assert_eq!((d.expect("d"), a.expect("a")), (PeerId(1), PeerId(3)));
}

#[tokio::test]
async fn a_wrong_secret_fails_on_both_ends() {
    let (d, a) = run(hello(3, Some(OTHER)), hello(1, Some(SECRET))).await;
    assert!(
        matches!(a, Err(HandshakeError::BadProof { claimed: PeerId(3) })),
        "{a:?}"
    );
    assert!(matches!(d, Err(HandshakeError::BadProof { .. })), "{d:?}");
}

#[tokio::test]
async fn a_secret_on_one_end_only_is_refused_by_both() {
    let (d, a) = run(hello(3, None), hello(1, Some(SECRET))).await;
    assert!(
        matches!(a, Err(HandshakeError::AuthMismatch { ours: true })),
        "{a:?}"
    );
    assert!(
        matches!(d, Err(HandshakeError::AuthMismatch { ours: false })),
        "{d:?}"
    );
}

/// Reads the acceptor's hello and sends our own, as a forger would.
async fn forge_hello(s: &mut DuplexStream, claim: u64) -> [u8; HELLO_BYTES] {
    let mut theirs = [0u8; HELLO_BYTES];
    s.read_exact(&mut theirs).await.expect("their hello");
    let forged = encode_hello(&hello(claim, Some(OTHER)), &[0x42; NONCE_BYTES]);
    s.write_all(&forged).await.expect("send");
    theirs
}

#[tokio::test]
async fn a_forged_or_reflected_proof_is_refused() {
    // Garbage for a proof.
    let (mut x, mut y) = duplex(4096);
    let acceptor = hello(1, Some(SECRET));
    let forger = async {
        forge_hello(&mut x, 3).await;
        x.write_all(&[0u8; PROOF_BYTES]).await.expect("send");
    };
    let (_, a) = tokio::join!(
        forger,
        handshake(&mut y, &acceptor, Side::Acceptor, |_| Ok(()))
    );
    assert!(matches!(a, Err(HandshakeError::BadProof { .. })), "{a:?}");

    // The acceptor's own proof sent back to it: it names the acceptor's
    // side and id, not the dialer's, so it does not check.
    let (mut x, mut y) = duplex(4096);
    let reflector = async {
        forge_hello(&mut x, 3).await;
        let mut theirs = [0u8; PROOF_BYTES];
        x.read_exact(&mut theirs).await.expect("their proof");
        x.write_all(&theirs).await.expect("reflect");
    };
    let (_, a) = tokio::join!(
        reflector,
        handshake(&mut y, &acceptor, Side::Acceptor, |_| Ok(()))
    );
    assert!(matches!(a, Err(HandshakeError::BadProof { .. })), "{a:?}");
}

#[tokio::test]
async fn an_id_refused_by_admit_gets_no_proof() {
    let (mut x, mut y) = duplex(4096);
    let acceptor = hello(1, Some(SECRET));
    let forger = async {
        forge_hello(&mut x, 9).await;
        // Nothing more comes: the acceptor stops before proving itself.
        let mut rest = Vec::new();
        let _ = x.read_to_end(&mut rest).await;
        rest
    };
    let refuse = |id: PeerId| Err(HandshakeError::BadProof { claimed: id });
    let (rest, a) = tokio::join!(forger, async {
        let r = handshake(&mut y, &acceptor, Side::Acceptor, refuse).await;
        drop(y);
        r
    });
    assert!(a.is_err());
    assert!(rest.is_empty(), "no proof was sent: {rest:?}");
}

#[tokio::test]
async fn wrong_magic_version_or_cluster_is_refused() {
    let (d, a) = run(
        hello(3, None),
        Hello {
            cluster_id: 8,
            ..hello(1, None)
        },
    )
    .await;
    assert!(
        matches!(d, Err(HandshakeError::Cluster { theirs: 8 })),
        "{d:?}"
    );
    assert!(
        matches!(a, Err(HandshakeError::Cluster { theirs: 7 })),
        "{a:?}"
    );
    let (mut x, mut y) = duplex(4096);
    let acceptor = hello(1, None);
    let bad = async {
        let mut b = encode_hello(&hello(3, None), &[0; NONCE_BYTES]);
        b[4..6].copy_from_slice(&2u16.to_be_bytes());
        x.write_all(&b).await.expect("send");
        b[0] = b'X';
        b
    };
    let (_, a) = tokio::join!(
        bad,
        handshake(&mut y, &acceptor, Side::Acceptor, |_| Ok(()))
    );
    assert!(
        matches!(a, Err(HandshakeError::Version { theirs: 2 })),
        "{a:?}"
    );
}

#[test]
fn short_secrets_are_refused_and_never_printed() {
    assert!(PeerSecret::new(b"short").is_none());
    let s = PeerSecret::new(SECRET).expect("long enough");
    assert_eq!(
        format!("{s:?}"),
        format!("PeerSecret({} bytes)", SECRET.len())
    );
}
