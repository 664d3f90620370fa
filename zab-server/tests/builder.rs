//! The client builder's options on a real ensemble: a chroot seen from both
//! sides, a request timeout against a paused server, a connect timeout
//! against a server that never answers a handshake.

mod common;

use std::time::{Duration, Instant};

use common::{retry, Ensemble};
use zab_client::{
    Client, Consistency, CreateMode, CreateRequest, Error, MultiOp, MultiResult, ReadOp,
    ReadResult, WatchEventKind,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chrooted_client_sees_its_subtree_as_the_whole_tree() {
    let e = Ensemble::start(3, "chroot");
    e.wait_for_leader(None).await;
    let plain = common::connect_retry(&e.clients, 10_000)
        .await
        .expect("a session");
    retry(|| plain.create("/app", b"", CreateMode::Persistent))
        .await
        .expect("/app");
    let app = Client::builder(&e.clients)
        .chroot("/app")
        .connect()
        .await
        .expect("a chrooted session");
    let mut events = app.add_watch("/", true).await.expect("a watch");

    assert_eq!(
        app.create("/x", b"1", CreateMode::Persistent).await,
        Ok("/x".to_string())
    );
    let seq = app
        .create("/q-", b"", CreateMode::EphemeralSequential)
        .await
        .expect("sequential");
    assert!(seq.starts_with("/q-"), "{seq}");
    // The plain client sees them under /app.
    let (data, _) = plain
        .get("/app/x", Consistency::Linearizable)
        .await
        .expect("/app/x");
    assert_eq!(&data[..], b"1");
    assert!(plain
        .exists(&format!("/app{seq}"), Consistency::Linearizable, false)
        .await
        .expect("exists")
        .is_some());
    // Reads, lists, multi, the new reads: all relative to /app.
    let (mut names, _) = app
        .children("/", Consistency::Linearizable, false)
        .await
        .expect("children");
    names.sort();
    assert_eq!(names, ["q-0000000001", "x"].map(String::from).to_vec());
    let results = app
        .multi(vec![
            MultiOp::Create(CreateRequest {
                path: "/y".into(),
                data: bytes::Bytes::new(),
                mode: CreateMode::Persistent,
                ttl_ms: 0,
                acl: None,
            }),
            MultiOp::Check(zab_client::CheckRequest {
                path: "/x".into(),
                version: 0,
            }),
        ])
        .await
        .expect("multi");
    assert!(matches!(&results[0], MultiResult::Create(c) if c.path == "/y"));
    assert_eq!(
        app.ephemerals("/", Consistency::Linearizable).await,
        Ok(vec![seq.clone()])
    );
    assert_eq!(
        app.descendant_count("/", Consistency::Linearizable).await,
        Ok(3)
    );
    let read = app
        .multi_read(
            vec![ReadOp::GetData { path: "/x".into() }],
            Consistency::Linearizable,
        )
        .await
        .expect("multi read");
    assert!(matches!(&read[0], ReadResult::GetData { data, .. } if &data[..] == b"1"));
    assert!(app.sync("/").await.is_ok());

    // Events name paths relative to the root too, the root itself as "/".
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let ev = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an event in time")
            .expect("the stream goes on");
        seen.push((ev.kind, ev.path));
    }
    assert_eq!(
        seen,
        [
            (WatchEventKind::NodeCreated, "/x".to_string()),
            (WatchEventKind::NodeCreated, seq.clone()),
            (WatchEventKind::NodeCreated, "/y".to_string()),
        ]
    );

    let bad = Client::builder(&e.clients).chroot("app/").connect().await;
    assert!(matches!(bad, Err(Error::BadConfig(_))), "{bad:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_timeout_bounds_a_call_and_the_session_goes_on() {
    let e = Ensemble::start(3, "request-timeout");
    e.wait_for_leader(None).await;
    let setup = e.client(0, 20_000).await;
    retry(|| setup.create("/t", b"", CreateMode::Persistent))
        .await
        .expect("/t");
    // Only server 1, so the pause below holds its replies.
    let c = Client::builder(&[e.clients[0]])
        .session_timeout_ms(20_000)
        .request_timeout(Duration::from_millis(500))
        .connect()
        .await
        .expect("a session");
    e.signal(0, "STOP");
    let started = Instant::now();
    let stalled = c.get("/t", Consistency::Local).await;
    let waited = started.elapsed();
    e.signal(0, "CONT");
    assert_eq!(stalled, Err(Error::Timeout));
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    // The session is fine once the server answers again.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match c.get("/t", Consistency::Linearizable).await {
            Ok(_) => break,
            Err(
                Error::Timeout
                | Error::ConnectionLoss
                | Error::Server(zab_client::ErrorCode::NotLeaderNoQuorum),
            ) if Instant::now() < deadline => {}
            Err(other) => panic!("after the pause: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_timeout_bounds_a_server_that_never_answers() {
    // Accepts connections and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let addr = silent.local_addr().expect("bound");
    let started = Instant::now();
    let got = Client::builder(&[addr])
        .connect_timeout(Duration::from_millis(300))
        .connect()
        .await;
    assert!(matches!(got, Err(Error::NoServer(_))), "{got:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(silent);
}
