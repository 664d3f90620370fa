//! ACLs on a real ensemble: every operation and every scheme, from clients
//! on different servers than the writer (so reads are checked where they
//! are served and writes where they are applied), watches that respect
//! ACLs, and identities sent again before watches are re-registered after a
//! reconnect.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{connect_retry, retry, Ensemble};
use zab_client::{
    digest_id, Acl, Client, Consistency, CreateMode, CreateRequest, Error, ErrorCode, MultiOp,
    Perms, SetDataRequest, WatchEventKind,
};

const SUPER: &str = "super_digest = \"super:D/InIHSb7yEEbrWz8b9l71RjZJU=\"";
const L: Consistency = Consistency::Linearizable;
const NO_AUTH: Error = Error::Server(ErrorCode::NoAuth);

fn no_auth<T: std::fmt::Debug>(what: &str, result: Result<T, Error>) {
    match result {
        Err(e) if e == NO_AUTH => {}
        other => panic!("{what}: expected NoAuth, got {other:?}"),
    }
}

async fn authed(e: &Ensemble, i: usize, credentials: &str) -> Client {
    let c = e.client(i, 10_000).await;
    c.add_auth("digest", credentials.as_bytes())
        .await
        .expect("digest auth");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_and_scheme_is_checked_on_every_server() {
    let e = Ensemble::start_with(3, "acl-ops", SUPER);
    e.wait_for_leader(None).await;
    let bob = authed(&e, 0, "bob:secret").await;
    retry(|| bob.create_with_acl("/app", b"cfg", CreateMode::Persistent, Acl::creator_all()))
        .await
        .expect("bob's node");
    bob.create("/app/open", b"", CreateMode::Persistent)
        .await
        .expect("an open child of a closed node");
    let (acl, _) = bob.get_acl("/app").await.expect("bob reads his ACL");
    assert_eq!(
        acl,
        vec![Acl::new(Perms::ALL, "digest", digest_id("bob", "secret"))]
    );

    // Anyone, on another server: every read, write and watch is refused.
    let eve = e.client(1, 10_000).await;
    no_auth("get", eve.get("/app", L).await);
    no_auth("exists", eve.exists("/app", L, false).await);
    no_auth("children", eve.children("/app", L, false).await);
    no_auth("get_acl", eve.get_acl("/app").await);
    no_auth("get_watch", eve.get_watch("/app", L, true).await);
    no_auth("add_watch", eve.add_watch("/app", true).await);
    no_auth("set", eve.set("/app", b"x", -1).await);
    no_auth(
        "create under",
        eve.create("/app/x", b"", CreateMode::Persistent).await,
    );
    no_auth("delete under", eve.delete("/app/open", -1).await);
    no_auth("set_acl", eve.set_acl("/app", Acl::open_unsafe(), -1).await);
    // A multi is all or nothing: the allowed op before the refused one is
    // not applied.
    let ops = vec![
        MultiOp::Create(CreateRequest {
            path: "/eve".into(),
            data: Bytes::new(),
            mode: CreateMode::Persistent,
            ttl_ms: 0,
            acl: None,
        }),
        MultiOp::SetData(SetDataRequest {
            path: "/app".into(),
            data: Bytes::from_static(b"x"),
            version: -1,
        }),
    ];
    match eve.multi(ops).await {
        Err(Error::MultiFailed { err, errors }) => {
            assert_eq!(err, ErrorCode::NoAuth);
            assert_eq!(errors, vec![ErrorCode::Ok, ErrorCode::NoAuth]);
        }
        other => panic!("multi: {other:?}"),
    }
    assert_eq!(eve.exists("/eve", L, false).await.expect("exists"), None);
    // The open child is open, whatever its parent's ACL.
    eve.set("/app/open", b"y", -1).await.expect("open child");

    // A wrong password proves nothing; the right one is bob.
    eve.add_auth("digest", b"bob:guess")
        .await
        .expect("any digest is an identity");
    no_auth("wrong password", eve.get("/app", L).await);
    eve.add_auth("digest", b"bob:secret").await.expect("auth");
    assert_eq!(
        eve.get("/app", L).await.expect("now bob").0,
        Bytes::from_static(b"cfg")
    );
    match eve.add_auth("ip", b"127.0.0.1").await {
        Err(Error::Server(ErrorCode::AuthFailed)) => {}
        other => panic!("claiming an address: {other:?}"),
    }

    // ip: this test's connections come from 127.0.0.1.
    let anyone = e.client(2, 10_000).await;
    bob.create_with_acl(
        "/lan",
        b"",
        CreateMode::Persistent,
        vec![Acl::new(Perms::READ, "ip", "127.0.0.0/8")],
    )
    .await
    .expect("lan node");
    bob.create_with_acl(
        "/far",
        b"",
        CreateMode::Persistent,
        vec![Acl::new(Perms::READ, "ip", "10.9.9.9")],
    )
    .await
    .expect("far node");
    anyone.get("/lan", L).await.expect("from loopback");
    no_auth("ip elsewhere", anyone.get("/far", L).await);
    no_auth("not even bob", bob.get("/far", L).await);
    no_auth("READ is not WRITE", anyone.set("/lan", b"x", -1).await);

    // The super user passes every check.
    let root = authed(&e, 2, "super:test").await;
    root.get("/far", L).await.expect("super reads");
    root.set("/app", b"by super", -1)
        .await
        .expect("super writes");

    // getAcl: digests only for ADMIN.
    let mixed = vec![
        Acl::new(Perms::READ, "world", "anyone"),
        Acl::new(Perms::ALL, "digest", digest_id("bob", "secret")),
    ];
    bob.create_with_acl("/mixed", b"", CreateMode::Persistent, mixed.clone())
        .await
        .expect("mixed");
    anyone.sync("/").await.expect("sync");
    let (seen, _) = anyone.get_acl("/mixed").await.expect("READ suffices");
    assert_eq!(seen[1], Acl::new(Perms::ALL, "digest", "bob:x"));
    assert_eq!(bob.get_acl("/mixed").await.expect("admin").0, mixed);

    // setAcl with its aversion; the new ACL holds everywhere at once.
    match bob.set_acl("/app", Acl::open_unsafe(), 3).await {
        Err(Error::Server(ErrorCode::BadVersion)) => {}
        other => panic!("stale aversion: {other:?}"),
    }
    let stat = bob
        .set_acl("/app", Acl::open_unsafe(), 0)
        .await
        .expect("bob opens it");
    assert_eq!(stat.aversion, 1);
    anyone.set("/app", b"open now", -1).await.expect("open");
    // Every server holds the same ACLs.
    for i in 0..3 {
        let c = authed(&e, i, "super:test").await;
        c.sync("/").await.expect("sync");
        assert_eq!(
            c.get_acl("/mixed").await.expect("acl").0,
            mixed,
            "server {i}"
        );
        assert_eq!(c.get_acl("/app").await.expect("acl").1.aversion, 1);
    }
}

/// A watcher's identities are sent again before its watches are re-armed:
/// its one-shot watch on a closed node reports the change it missed while
/// it moved servers (without them the re-registration would be refused and
/// the watch lost). A recursive watcher without the identity never hears
/// of the closed node at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_respect_acls_across_a_reconnect() {
    let mut e = Ensemble::start(3, "acl-watch");
    e.wait_for_leader(None).await;
    let writer = authed(&e, 2, "bob:secret").await;
    retry(|| writer.create_with_acl("/w", b"0", CreateMode::Persistent, Acl::creator_all()))
        .await
        .expect("closed node");
    let _probe = e.client(0, 10_000).await;
    let order = [e.clients[0], e.clients[1]];
    let watcher = connect_retry(&order, 20_000).await.expect("watcher");
    watcher
        .add_auth("digest", b"bob:secret")
        .await
        .expect("auth");
    watcher.get_watch("/w", L, true).await.expect("data watch");
    let outsider = e.client(2, 10_000).await;
    let mut everything = outsider.add_watch("/", true).await.expect("recursive");

    e.kill(0);
    retry(|| writer.set("/w", b"1", -1))
        .await
        .expect("write while the watcher moves");
    let wait = Duration::from_secs(20);
    let missed = tokio::time::timeout(wait, watcher.next_event())
        .await
        .expect("the watch's event within 20 s")
        .expect("an event");
    assert_eq!(
        (missed.kind, missed.path.as_str()),
        (WatchEventKind::NodeDataChanged, "/w"),
        "re-armed with the watcher's identity, not lost"
    );
    let (data, _) = watcher
        .get("/w", L)
        .await
        .expect("still bob after the move");
    assert_eq!(data, Bytes::from_static(b"1"));

    // The outsider's recursive watch: nothing about /w reaches it before
    // the open node's creation does. (If the election after the kill
    // dropped its connection too, it also says ContinuityLost for "/".)
    writer
        .create("/open", b"", CreateMode::Persistent)
        .await
        .expect("open node");
    loop {
        let event = tokio::time::timeout(wait, everything.next())
            .await
            .expect("an event within 20 s")
            .expect("an event");
        match (event.kind, event.path.as_str()) {
            (WatchEventKind::NodeCreated, "/open") => break,
            (WatchEventKind::ContinuityLost, "/") => continue,
            other => panic!("the outsider heard {other:?}"),
        }
    }
}
