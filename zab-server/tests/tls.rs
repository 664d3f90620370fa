//! The client and admin ports over TLS on a real ensemble: the client
//! library and zabctl connect with the test CA, a plain-TCP client is
//! refused, a client certificate is the connection's `x509` identity for
//! ACLs, a client that stalls in the TLS handshake is cut off, and the admin
//! port answers only certificate holders. Certificates are made fresh by
//! each run (rcgen).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{retry, Ensemble};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use tokio::io::AsyncWriteExt;
use zab_client::{Acl, Client, Consistency, CreateMode, Error, ErrorCode, Perms, Tls};

struct Pki {
    dir: PathBuf,
    ca: String,
    /// The client certificate's subject, as the server names it.
    alice: String,
}

impl Pki {
    /// A CA, a server certificate for 127.0.0.1, and a client certificate
    /// for "alice", as PEM files in `dir`.
    fn make(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).expect("pki dir");
        let ca_key = KeyPair::generate().expect("key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "zab test CA");
        let ca_cert = ca.self_signed(&ca_key).expect("CA");

        let server_key = KeyPair::generate().expect("key");
        let mut server = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        server
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().expect("ip")));
        let server_cert = server
            .signed_by(&server_key, &ca_cert, &ca_key)
            .expect("server cert");

        let alice_key = KeyPair::generate().expect("key");
        let mut alice = CertificateParams::new(Vec::<String>::new()).expect("params");
        alice.distinguished_name.push(DnType::CommonName, "alice");
        alice
            .distinguished_name
            .push(DnType::OrganizationName, "zab");
        let alice_cert = alice
            .signed_by(&alice_key, &ca_cert, &ca_key)
            .expect("client cert");

        let write = |name: &str, pem: String| {
            std::fs::write(dir.join(name), pem).expect("pem file");
        };
        write("ca.pem", ca_cert.pem());
        write("server.pem", server_cert.pem());
        write("server.key", server_key.serialize_pem());
        write("alice.pem", alice_cert.pem());
        write("alice.key", alice_key.serialize_pem());
        Pki {
            dir: dir.to_path_buf(),
            ca: ca_cert.pem(),
            alice: zab_server::tls::subject(alice_cert.der()).expect("a subject"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn config(&self) -> String {
        format!(
            "[client_tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\nclient_ca_file = \"{}\"\n",
            self.path("server.pem").display(),
            self.path("server.key").display(),
            self.path("ca.pem").display(),
        )
    }

    fn anonymous(&self) -> Tls {
        Tls::from_pem(self.ca.as_bytes(), None).expect("tls")
    }

    fn alice(&self) -> Tls {
        Tls::from_files(
            &self.path("ca.pem"),
            Some((&self.path("alice.pem"), &self.path("alice.key"))),
        )
        .expect("tls with a client certificate")
    }
}

/// zabctl run in-process (its binary is a thin `main` around this):
/// exit code and standard output.
async fn zabctl(args: Vec<String>) -> (u8, String) {
    let mut argv = vec!["zabctl".to_string()];
    argv.extend(args);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let input = zabctl::shell::Input::Lines(Box::new(std::io::empty()));
    let code = zabctl::run(argv, input, &mut out, &mut err).await;
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&err)
    );
    (code, shown)
}

async fn tls_client(e: &Ensemble, i: usize, tls: Tls) -> Client {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match Client::builder(&[e.clients[i]])
            .tls(tls.clone())
            .connect()
            .await
        {
            Ok(c) => return c,
            Err(err) if Instant::now() < deadline => {
                let _ = err;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => panic!("no TLS session on server {}: {err}", i + 1),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_and_zabctl_speak_tls_and_certificates_are_identities() {
    let dir = std::env::temp_dir().join(format!("zab-tls-{}", std::process::id()));
    let pki = Pki::make(&dir);
    // Alice is also the super user, by her certificate.
    let extra = format!("super_x509 = \"{}\"\n{}", pki.alice, pki.config());
    let e = Ensemble::start_with(3, "tls", &extra);
    e.wait_for_leader(None).await;

    let alice = tls_client(&e, 0, pki.alice()).await;
    let mine = vec![Acl::new(Perms::ALL, "x509", pki.alice.clone())];
    retry(|| alice.create_with_acl("/alice", b"hers", CreateMode::Persistent, mine.clone()))
        .await
        .expect("alice's node");
    // Another server, over TLS but without a certificate: not alice.
    let other = tls_client(&e, 1, pki.anonymous()).await;
    match other.get("/alice", Consistency::Linearizable).await {
        Err(Error::Server(ErrorCode::NoAuth)) => {}
        got => panic!("expected NoAuth, got {got:?}"),
    }
    let alice_there = tls_client(&e, 1, pki.alice()).await;
    let (data, _) = alice_there
        .get("/alice", Consistency::Linearizable)
        .await
        .expect("alice on another server");
    assert_eq!(&data[..], b"hers");
    // A node no identity may touch: only the super user (alice, by
    // certificate) still can.
    let nobody = vec![Acl::new(
        Perms::ALL,
        "digest",
        zab_client::digest_id("nobody", "lost"),
    )];
    alice
        .create_with_acl("/locked", b"", CreateMode::Persistent, nobody)
        .await
        .expect("create");
    alice_there
        .set("/locked", b"super", -1)
        .await
        .expect("the super user writes");
    match other.set("/locked", b"x", -1).await {
        Err(Error::Server(ErrorCode::NoAuth)) => {}
        got => panic!("expected NoAuth, got {got:?}"),
    }

    // A plain-TCP client gets no session from a TLS port.
    let plain = tokio::time::timeout(
        Duration::from_secs(15),
        Client::connect(&[e.clients[2]], 4_000),
    )
    .await;
    assert!(
        matches!(plain, Ok(Err(_)) | Err(_)),
        "a plain client got a session on a TLS port"
    );

    // zabctl over TLS, with and without the client certificate.
    let args = |cert: bool| {
        let path = |f: &str| pki.path(f).to_str().expect("utf-8").to_string();
        let mut a = vec![
            "--servers".to_string(),
            e.clients[2].to_string(),
            "--tls-ca".into(),
            path("ca.pem"),
        ];
        if cert {
            a.extend(["--tls-cert".into(), path("alice.pem")]);
            a.extend(["--tls-key".into(), path("alice.key")]);
        }
        a.extend(["get".into(), "/alice".into()]);
        a
    };
    let (code, shown) = zabctl(args(true)).await;
    assert_eq!((code, shown.trim()), (0, "hers"));
    let (code, shown) = zabctl(args(false)).await;
    assert_eq!(code, 1, "NoAuth is the server saying no: {shown}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Connections that stall in their TLS handshake are cut off within the
/// bound, and the address's connection slots come back: they cannot lock
/// out the clients that share the address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_tls_handshakes_are_cut_off_and_free_their_slots() {
    let dir = std::env::temp_dir().join(format!("zab-tls-stall-{}", std::process::id()));
    let pki = Pki::make(&dir);
    let extra = format!("handshake_timeout_ms = 1000\n{}", pki.config());
    let e = Ensemble::start_with(1, "tls-stall", &extra);
    e.wait_for_leader(None).await;
    let addr = e.clients[0];
    // Every slot of this address taken by connections that never finish
    // their TLS handshake ...
    let mut stalled = Vec::new();
    for _ in 0..zab_server::listener::CONNECTIONS_PER_ADDRESS_MAX {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"\x16\x03\x01")
            .await
            .expect("half a record header");
        stalled.push(s);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    // Within the bound they are gone and a real client gets in.
    let client = tls_client(&e, 0, pki.anonymous()).await;
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(10),
        "locked out for {waited:?} behind stalled handshakes"
    );
    common::assert_all_closed(stalled, "a stalled TLS handshake").await;
    retry(|| client.create("/ok", b"", CreateMode::Persistent))
        .await
        .expect("the ensemble serves");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The admin port over TLS with client certificates required: a plain
/// HTTP request and a TLS client without a certificate get nothing; a
/// holder of a certificate from the CA gets its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_port_answers_only_certificate_holders_over_tls() {
    use tokio::io::AsyncReadExt;
    let dir = std::env::temp_dir().join(format!("zab-admin-tls-{}", std::process::id()));
    let pki = Pki::make(&dir);
    let tls = zab_server::tls::PortTls {
        cert_file: pki.path("server.pem"),
        key_file: pki.path("server.key"),
        client_ca_file: Some(pki.path("ca.pem")),
        require_client_cert: true,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("bound");
    let status = zab_server::server::Status {
        znodes: 1,
        ..Default::default()
    };
    let (_keep, status) = tokio::sync::watch::channel(status);
    let acceptor = tls.acceptor().expect("admin TLS");
    // Nobody answers freeze or report requests: this test asks for none.
    let (freezes, _unanswered) = tokio::sync::mpsc::channel(1);
    let (reports, _unasked) = tokio::sync::mpsc::channel(1);
    let sources = zab_server::admin::Sources {
        status,
        id: 1,
        metrics: Default::default(),
        freezes,
        reports,
        backups: false,
        conf: Default::default(),
    };
    tokio::spawn(zab_server::admin::serve(
        (listener, Some(acceptor)),
        sources,
    ));
    let request = b"GET /health HTTP/1.0\r\n\r\n";
    // Plain HTTP: the bytes are not a TLS hello; nothing comes back.
    let mut plain = tokio::net::TcpStream::connect(addr).await.expect("connect");
    plain.write_all(request).await.expect("write");
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut got)).await;
    assert!(
        !got.starts_with(b"HTTP/"),
        "plain HTTP answered over a TLS port"
    );
    // TLS without a client certificate: the handshake is refused.
    let ask = |tls: Tls| async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
        let name = addr.to_string();
        let mut s = tls.connect(&name, tcp).await.ok()?;
        s.write_all(request).await.ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.ok()?;
        Some(out)
    };
    // (Under TLS 1.3 the refusal may come after the client's handshake
    // ended: then its read fails or ends empty.)
    let anonymous = tokio::time::timeout(Duration::from_secs(5), ask(pki.anonymous())).await;
    let answered = matches!(&anonymous, Ok(Some(out)) if out.starts_with(b"HTTP/"));
    assert!(!answered, "answered a client without a certificate");
    let alice = tokio::time::timeout(Duration::from_secs(5), ask(pki.alice()))
        .await
        .expect("an answer within 5 s")
        .expect("an HTTP answer");
    let text = String::from_utf8_lossy(&alice);
    let line = text.lines().next().unwrap_or_default();
    assert!(
        line.starts_with("HTTP/1.") && line.contains(" 503 "),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
