//! The client recipes (`zab_client::recipes`) on a real 3-server ensemble:
//! lock with fencing tokens, leader election, service discovery and the
//! configuration watcher. Every wait is bounded.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{retry, Ensemble};
use tokio::sync::{mpsc, oneshot};
use zab_client::recipes::{register, ConfigError, ConfigWatcher, Discovery, Election, Lock};
use zab_client::{Client, Consistency, CreateMode, Error, ErrorCode};

/// Awaits `fut` for at most `secs`, or fails the test saying what hung.
async fn within<T>(secs: u64, what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {secs} s"))
}

/// Whether `fut` is still pending after `ms` (it is then dropped).
async fn stays_pending<T>(ms: u64, fut: impl std::future::Future<Output = T>) -> bool {
    tokio::time::timeout(Duration::from_millis(ms), fut)
        .await
        .is_err()
}

/// The counter the lock protects: `count:last_token`, where `last_token` is
/// the fencing token of the last writer, as a fenced resource would keep it.
fn parse_counter(data: &[u8]) -> (u64, u64) {
    let text = std::str::from_utf8(data).expect("utf-8 counter");
    let (count, token) = text.split_once(':').expect("count:token");
    (count.parse().expect("count"), token.parse().expect("token"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock_excludes_holders_and_fencing_tokens_increase() {
    const WORKERS: usize = 4;
    const ROUNDS: usize = 5;
    let e = Ensemble::start(3, "recipe-lock");
    let setup = e.client(0, 4000).await;
    retry(|| setup.create("/lock", b"", CreateMode::Persistent))
        .await
        .expect("lock dir");
    // A node that is not a lock node, in the lock's directory: ignored.
    setup
        .create("/lock/counter", b"0:0", CreateMode::Persistent)
        .await
        .expect("counter");

    let held = Arc::new(AtomicBool::new(false));
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        // Sessions on different servers.
        let client = e.client(w % 3, 4000).await;
        let (held, tokens) = (held.clone(), tokens.clone());
        workers.push(tokio::spawn(async move {
            for round in 0..ROUNDS {
                let guard = within(60, "acquire", Lock::acquire(&client, "/lock"))
                    .await
                    .expect("acquire");
                assert!(!held.swap(true, Ordering::SeqCst), "two holders at once");
                let token = guard.fencing_token();
                tokens.lock().expect("not poisoned").push(token);
                // A local read suffices: this server applied the deletion
                // that let us in, so also every write of earlier holders.
                let (data, stat) = client
                    .get("/lock/counter", Consistency::Local)
                    .await
                    .expect("read counter");
                let (count, last_token) = parse_counter(&data);
                assert!(token > last_token, "fencing token {token} <= {last_token}");
                // Widen the window in which a second holder would interleave.
                tokio::time::sleep(Duration::from_millis(((w + round) % 3) as u64 * 5)).await;
                client
                    .set(
                        "/lock/counter",
                        format!("{}:{token}", count + 1).as_bytes(),
                        stat.version,
                    )
                    .await
                    .expect("nobody wrote between our read and write");
                held.store(false, Ordering::SeqCst);
                guard.release().await.expect("release");
            }
        }));
    }
    for worker in workers {
        within(120, "worker", worker).await.expect("worker ok");
    }

    let (data, _) = setup
        .get("/lock/counter", Consistency::Linearizable)
        .await
        .expect("read");
    let (count, _) = parse_counter(&data);
    assert_eq!(count as usize, WORKERS * ROUNDS, "lost updates");
    let tokens = tokens.lock().expect("not poisoned").clone();
    assert_eq!(tokens.len(), WORKERS * ROUNDS);
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "tokens not increasing in acquisition order: {tokens:?}"
    );
    // Every holder released: only the counter is left.
    let (kids, _) = setup
        .children("/lock", Consistency::Linearizable, false)
        .await
        .expect("children");
    assert_eq!(kids, vec!["counter".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_passes_on_when_the_holders_session_expires() {
    let e = Ensemble::start(3, "recipe-lock-expiry");
    let a = e.client(0, 1000).await;
    let b = e.client(1, 4000).await;
    let guard_a = within(30, "A acquires", Lock::acquire(&a, "/lk"))
        .await
        .expect("A acquires");
    let token_a = guard_a.fencing_token();
    assert_eq!(guard_a.check().await, Ok(true));

    let (b_got, mut b_got_rx) = oneshot::channel();
    let waiter = tokio::spawn(async move {
        let guard = Lock::acquire(&b, "/lk").await.expect("B acquires");
        let token = guard.fencing_token();
        let _ = b_got.send(());
        assert_eq!(guard.check().await, Ok(true));
        guard.release().await.expect("B releases");
        token
    });
    // B waits while A's session lives.
    assert!(
        stays_pending(2000, &mut b_got_rx).await,
        "B got a held lock"
    );
    // C gives up waiting, and leaves nothing behind: A's node and B's remain.
    let c = e.client(2, 4000).await;
    let gave_up = within(
        10,
        "C gives up",
        Lock::acquire_timeout(&c, "/lk", Duration::from_millis(500)),
    )
    .await
    .expect("C's attempt");
    assert!(gave_up.is_none(), "C got a held lock");
    let (waiting, _) = c
        .children("/lk", Consistency::Linearizable, false)
        .await
        .expect("children");
    assert_eq!(waiting.len(), 2, "{waiting:?}");

    // A's process goes away without releasing: nobody pings for its session.
    drop(guard_a);
    a.abandon();
    let dropped = Instant::now();
    within(20, "B acquires after A's session expires", b_got_rx)
        .await
        .expect("B acquired");
    let token_b = within(10, "B finishes", waiter).await.expect("B ok");
    eprintln!("B acquired {:?} after A went", dropped.elapsed());
    assert!(token_b > token_a, "token {token_b} after {token_a}");
}

/// A candidate on its own session: reports when it leads, then leads until
/// told to close its session or until it loses leadership.
fn candidate(
    client: Client,
    id: String,
    elected: mpsc::UnboundedSender<(String, u64)>,
    lost: mpsc::UnboundedSender<(String, Result<(), Error>)>,
) -> oneshot::Sender<()> {
    let (stop, mut stop_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut leadership = Election::campaign(&client, "/election", &id)
            .await
            .expect("campaign");
        assert_eq!(leadership.id(), id);
        let _ = elected.send((id.clone(), leadership.term()));
        let outcome = tokio::select! {
            _ = &mut stop_rx => None,
            r = leadership.lost() => Some(r),
        };
        match outcome {
            Some(r) => {
                let _ = lost.send((id, r));
            }
            None => {
                drop(leadership);
                client.close().await.expect("close");
            }
        }
    });
    stop
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn election_has_one_leader_and_a_successor_when_it_goes() {
    let e = Ensemble::start(3, "recipe-election");
    let observer = e.client(0, 4000).await;
    let (elected_tx, mut elected) = mpsc::unbounded_channel();
    let (lost_tx, mut lost) = mpsc::unbounded_channel();
    let mut stops = std::collections::BTreeMap::new();
    for i in 0..3 {
        let client = e.client(i, 4000).await;
        let id = format!("cand-{i}");
        let stop = candidate(client, id.clone(), elected_tx.clone(), lost_tx.clone());
        stops.insert(id, stop);
    }

    // Exactly one leader, and everyone agrees who.
    let (first, term1) = within(30, "first leader", elected.recv())
        .await
        .expect("elected");
    assert!(stays_pending(1500, elected.recv()).await, "a second leader");
    assert_eq!(
        Election::leader(&observer, "/election").await,
        Ok(Some(first.clone()))
    );

    // The leader's session ends: one of the others leads.
    let _ = stops.remove(&first).expect("leader's stop").send(());
    let (second, term2) = within(20, "second leader", elected.recv())
        .await
        .expect("elected");
    assert_ne!(second, first);
    assert!(term2 > term1, "term {term2} after {term1}");
    assert!(stays_pending(1500, elected.recv()).await, "two leaders");
    assert_eq!(
        Election::leader(&observer, "/election").await,
        Ok(Some(second.clone()))
    );

    // Someone deletes the leader's node: it learns it lost, the last leads.
    let (kids, _) = observer
        .children("/election", Consistency::Linearizable, false)
        .await
        .expect("candidates");
    assert_eq!(kids.len(), 2, "{kids:?}");
    let mut kids = kids;
    kids.sort_by_key(|k| k[k.len() - 10..].to_string());
    observer
        .delete(&format!("/election/{}", kids[0]), -1)
        .await
        .expect("delete the leader's node");
    let (who, why) = within(10, "leader notices", lost.recv())
        .await
        .expect("lost");
    assert_eq!((who.as_str(), why), (second.as_str(), Ok(())));
    let (third, term3) = within(20, "third leader", elected.recv())
        .await
        .expect("elected");
    assert!(third != first && third != second);
    assert!(term3 > term2);
    assert_eq!(
        Election::leader(&observer, "/election").await,
        Ok(Some(third.clone()))
    );

    // The last one resigns by closing: nobody leads.
    let _ = stops.remove(&third).expect("third's stop").send(());
    let deadline = Instant::now() + Duration::from_secs(10);
    while Election::leader(&observer, "/election").await != Ok(None) {
        assert!(Instant::now() < deadline, "a leader after everyone left");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_follows_registrations_and_departures() {
    let e = Ensemble::start(3, "recipe-discovery");
    let mut instances = Vec::new();
    for i in 0..3 {
        let client = e.client(i, 4000).await;
        let payload = format!("10.0.0.{i}:8080");
        let path = within(
            30,
            "register",
            register(
                &client,
                "/services/api",
                &format!("inst-{i}"),
                payload.as_bytes(),
            ),
        )
        .await
        .expect("register");
        assert_eq!(path, format!("/services/api/inst-{i}"));
        instances.push(client);
    }
    // Again from the same session: replaces the payload. From another: taken.
    register(&instances[0], "/services/api", "inst-0", b"10.0.0.0:9090")
        .await
        .expect("re-register");
    assert_eq!(
        register(&instances[1], "/services/api", "inst-0", b"x").await,
        Err(Error::Server(ErrorCode::NodeExists))
    );

    let mut discovery = Discovery::new(e.client(1, 4000).await, "/services/api");
    let live = within(10, "live", discovery.live()).await.expect("live");
    let expect = |i: usize, p: &str| (format!("inst-{i}"), bytes::Bytes::from(p.to_string()));
    assert_eq!(
        live.into_iter().collect::<Vec<_>>(),
        vec![
            expect(0, "10.0.0.0:9090"),
            expect(1, "10.0.0.1:8080"),
            expect(2, "10.0.0.2:8080")
        ]
    );
    // Nothing changes: nothing fires (across more than one re-check).
    assert!(
        stays_pending(2500, discovery.changed()).await,
        "changed() without a change"
    );

    // An instance's session ends: its registration goes, and discovery sees it.
    let gone = instances.remove(1);
    gone.close().await.expect("close");
    within(10, "changed", discovery.changed())
        .await
        .expect("changed");
    let live = within(10, "live", discovery.live()).await.expect("live");
    assert_eq!(
        live.keys().cloned().collect::<Vec<_>>(),
        vec!["inst-0".to_string(), "inst-2".to_string()]
    );

    // A new instance arrives.
    register(&instances[0], "/services/api", "inst-3", b"10.0.0.3:8080")
        .await
        .expect("register");
    within(10, "changed", discovery.changed())
        .await
        .expect("changed");
    let live = within(10, "live", discovery.live()).await.expect("live");
    assert_eq!(live.len(), 3);
    assert_eq!(&live["inst-3"][..], b"10.0.0.3:8080");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_watcher_follows_typed_values() {
    let e = Ensemble::start(3, "recipe-config");
    let writer = e.client(0, 4000).await;
    for p in ["/app", "/app/config"] {
        retry(|| writer.create(p, b"", CreateMode::Persistent))
            .await
            .expect("parent");
    }
    let path = "/app/config/pool_size";
    writer
        .create(path, b"8", CreateMode::Persistent)
        .await
        .expect("value");

    let parse = |b: &[u8]| String::from_utf8_lossy(b).trim().parse::<u32>();
    let mut pool = within(
        10,
        "watcher",
        ConfigWatcher::new(e.client(2, 4000).await, path, parse),
    )
    .await
    .expect("watcher");
    assert_eq!((*pool.current(), pool.version()), (8, 0));

    writer.set(path, b"16", -1).await.expect("set");
    assert_eq!(within(10, "next", pool.next()).await, Ok(16));
    assert_eq!((*pool.current(), pool.version()), (16, 1));

    // A bad value is reported once; the good one stays current.
    writer.set(path, b"sixteen", -1).await.expect("set");
    assert!(matches!(
        within(10, "next", pool.next()).await,
        Err(ConfigError::Parse(_))
    ));
    assert_eq!(*pool.current(), 16);
    assert!(
        stays_pending(2500, pool.next()).await,
        "next() without a change"
    );

    writer.set(path, b"32", -1).await.expect("set");
    assert_eq!(within(10, "next", pool.next()).await, Ok(32));

    // Deleted: reported once; created again: followed again.
    writer.delete(path, -1).await.expect("delete");
    assert_eq!(
        within(10, "next", pool.next()).await,
        Err(ConfigError::Client(Error::Server(ErrorCode::NoNode)))
    );
    assert_eq!(*pool.current(), 32);
    writer
        .create(path, b"64", CreateMode::Persistent)
        .await
        .expect("recreate");
    assert_eq!(within(10, "next", pool.next()).await, Ok(64));
    assert_eq!((*pool.current(), pool.version()), (64, 0));
}
