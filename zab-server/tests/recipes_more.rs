//! The counter, queue, read-write lock, semaphore, barriers, tree cache,
//! persistent node and leader selector recipes on a real 3-server
//! ensemble, each while the leader is killed (and brought back) under it.
//! Every wait is bounded.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{retry, Ensemble};
use zab_client::recipes::{
    Counter, DoubleBarrier, LeaderSelector, Leading, PersistentNode, Queue, RwLock, Semaphore,
    TreeCache,
};
use zab_client::{Client, Consistency, CreateMode};

/// Awaits `fut` for at most `secs`, or fails the test saying what hung.
async fn within<T>(secs: u64, what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {secs} s"))
}

/// A 3-server ensemble with its leader known, and one client per server
/// (long sessions: a leader kill must not expire them).
async fn ensemble(name: &str) -> (Ensemble, usize, Vec<Client>) {
    let e = Ensemble::start(3, name);
    let leader = e.wait_for_leader(None).await;
    let mut clients = Vec::new();
    for i in 0..3 {
        clients.push(e.client(i, 20_000).await);
    }
    (e, leader, clients)
}

/// Kills the leader after `ms`, waits for the next one, and starts the old
/// one again; returns the new leader.
async fn kill_leader_after(e: &mut Ensemble, leader: usize, ms: u64) -> usize {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    e.kill(leader);
    let next = e.wait_for_leader(Some(leader)).await;
    e.spawn(leader);
    next
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_counter_counts_every_add_once_across_a_leader_kill() {
    const ADDS: i64 = 60;
    let (mut e, leader, clients) = ensemble("recipe-counter").await;
    let mut workers = Vec::new();
    for c in &clients {
        let c = c.clone();
        workers.push(tokio::spawn(async move {
            let counter = Counter::new(&c, "/counters/hits");
            for _ in 0..ADDS {
                counter.add(1).await.expect("an add whose outcome is known");
            }
        }));
    }
    kill_leader_after(&mut e, leader, 200).await;
    for w in workers {
        within(120, "adders", w).await.expect("adder");
    }
    let counter = Counter::new(&clients[0], "/counters/hits");
    assert_eq!(counter.get().await, Ok(3 * ADDS), "lost or doubled adds");
    assert_eq!(counter.add(-3 * ADDS).await, Ok(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_queue_delivers_every_item_across_a_leader_kill() {
    const ITEMS: usize = 60;
    let (mut e, leader, clients) = ensemble("recipe-queue").await;
    let taken = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (p, client) in clients.iter().enumerate().take(2) {
        let q = Queue::new(client, "/jobs");
        tasks.push(tokio::spawn(async move {
            for i in 0..ITEMS {
                q.put(format!("{p}-{i}").as_bytes()).await.expect("put");
            }
        }));
    }
    let done = Arc::new(AtomicBool::new(false));
    let mut consumers = Vec::new();
    for client in &clients[1..] {
        let (q, taken, done) = (Queue::new(client, "/jobs"), taken.clone(), done.clone());
        consumers.push(tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                match q.try_take().await.expect("take") {
                    Some(item) => taken.lock().expect("not poisoned").push(item),
                    None => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        }));
    }
    kill_leader_after(&mut e, leader, 150).await;
    for t in tasks {
        within(120, "producers", t).await.expect("producer");
    }
    let q = Queue::new(&clients[0], "/jobs");
    within(60, "the queue drains", async {
        while !q.is_empty().await.expect("len") {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    done.store(true, Ordering::SeqCst);
    for c in consumers {
        within(60, "consumers", c).await.expect("consumer");
    }
    let taken = taken.lock().expect("not poisoned").clone();
    // No item node was taken twice.
    let nodes: std::collections::BTreeSet<&str> = taken.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(nodes.len(), taken.len(), "an item taken twice");
    let mut counts: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    for item in &taken {
        *counts.entry(item.data.to_vec()).or_default() += 1;
    }
    for p in 0..2 {
        for i in 0..ITEMS {
            let id = format!("{p}-{i}").into_bytes();
            // Once; twice only if a put's reply was lost and the put
            // retried (two item nodes with the same data).
            let n = counts.get(&id).copied().unwrap_or(0);
            assert!((1..=2).contains(&n), "item {p}-{i} taken {n} times");
        }
    }
    assert_eq!(counts.len(), 2 * ITEMS, "items nobody put were taken");
    assert_eq!(q.stale_claims().await, Ok(vec![]), "claims left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rwlock_shares_reads_and_excludes_writes_across_a_leader_kill() {
    let (mut e, leader, clients) = ensemble("recipe-rwlock").await;
    let readers = Arc::new(AtomicI64::new(0));
    let writing = Arc::new(AtomicBool::new(false));
    let most_readers = Arc::new(AtomicI64::new(0));
    let mut tasks = Vec::new();
    for (k, c) in clients.iter().cloned().enumerate() {
        for role in ["read", "write"] {
            let (c, readers, writing, most) = (
                c.clone(),
                readers.clone(),
                writing.clone(),
                most_readers.clone(),
            );
            tasks.push(tokio::spawn(async move {
                for round in 0..6u64 {
                    let pause = Duration::from_millis(5 + (k as u64 + round) % 3 * 10);
                    if role == "read" {
                        let g = RwLock::read(&c, "/rw").await.expect("read lock");
                        assert!(!writing.load(Ordering::SeqCst), "read while written");
                        let now = readers.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(pause * 4).await;
                        readers.fetch_sub(1, Ordering::SeqCst);
                        g.release().await.expect("release");
                    } else {
                        let g = RwLock::write(&c, "/rw").await.expect("write lock");
                        assert!(!writing.swap(true, Ordering::SeqCst), "two writers");
                        assert_eq!(readers.load(Ordering::SeqCst), 0, "written while read");
                        tokio::time::sleep(pause).await;
                        writing.store(false, Ordering::SeqCst);
                        g.release().await.expect("release");
                    }
                }
            }));
        }
    }
    kill_leader_after(&mut e, leader, 200).await;
    for t in tasks {
        within(120, "lock users", t).await.expect("lock user");
    }
    assert!(
        most_readers.load(Ordering::SeqCst) >= 2,
        "readers never shared the lock"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_semaphore_admits_at_most_its_permits_across_a_leader_kill() {
    const PERMITS: usize = 2;
    let (mut e, leader, clients) = ensemble("recipe-semaphore").await;
    let holders = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for w in 0..5 {
        let (c, holders, most) = (clients[w % 3].clone(), holders.clone(), most.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..4 {
                let lease = Semaphore::acquire(&c, "/sem", PERMITS)
                    .await
                    .expect("a lease");
                let now = holders.fetch_add(1, Ordering::SeqCst) + 1;
                assert!(now <= PERMITS, "{now} holders of {PERMITS} permits");
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(30)).await;
                holders.fetch_sub(1, Ordering::SeqCst);
                lease.release().await.expect("release");
            }
        }));
    }
    kill_leader_after(&mut e, leader, 150).await;
    for t in tasks {
        within(120, "semaphore users", t).await.expect("user");
    }
    assert_eq!(
        most.load(Ordering::SeqCst),
        PERMITS,
        "permits never all used"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_double_barrier_starts_and_ends_its_group_together_across_a_leader_kill() {
    let (mut e, leader, clients) = ensemble("recipe-barrier").await;
    let joined = Arc::new(AtomicUsize::new(0));
    let inside = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for (k, c) in clients.iter().cloned().enumerate() {
        let (joined, inside) = (joined.clone(), inside.clone());
        tasks.push(tokio::spawn(async move {
            // Arrivals spread out, so the last comes after the leader kill.
            tokio::time::sleep(Duration::from_millis(k as u64 * 400)).await;
            let b = DoubleBarrier::new(&c, "/group", 3, &format!("p{k}"));
            joined.fetch_add(1, Ordering::SeqCst);
            b.enter().await.expect("enter");
            assert_eq!(
                joined.load(Ordering::SeqCst),
                3,
                "entered before all joined"
            );
            inside.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(k as u64 * 200)).await;
            inside.fetch_sub(1, Ordering::SeqCst);
            b.leave().await.expect("leave");
            assert_eq!(
                inside.load(Ordering::SeqCst),
                0,
                "left before all were done"
            );
        }));
    }
    kill_leader_after(&mut e, leader, 300).await;
    for t in tasks {
        within(120, "participants", t).await.expect("participant");
    }
    let (kids, _) = clients[0]
        .children("/group", Consistency::Linearizable, false)
        .await
        .expect("children");
    assert!(kids.is_empty(), "left behind: {kids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tree_cache_converges_on_the_tree_across_a_leader_kill() {
    let (mut e, leader, clients) = ensemble("recipe-cache").await;
    // The cache on a follower, the writer on another server.
    let at = (leader + 1) % 3;
    let writer = clients[(leader + 2) % 3].clone();
    retry(|| writer.create("/tc", b"", CreateMode::Persistent))
        .await
        .expect("/tc");
    let mut cache = TreeCache::start(&clients[at], "/tc").await.expect("cache");
    let writes = tokio::spawn(async move {
        for i in 0..40u32 {
            let dir = format!("/tc/d{}", i % 4);
            let _ = retry(|| writer.create(&dir, b"", CreateMode::Persistent)).await;
            let leaf = format!("{dir}/n{i}");
            // A create retried after a lost reply may find itself done.
            match retry(|| writer.create(&leaf, b"v0", CreateMode::Persistent)).await {
                Ok(_) | Err(zab_client::Error::Server(zab_client::ErrorCode::NodeExists)) => {}
                Err(other) => panic!("create: {other:?}"),
            }
            let value = format!("v{i}");
            retry(|| writer.set(&leaf, value.as_bytes(), -1))
                .await
                .expect("set");
            if i % 3 == 0 {
                match retry(|| writer.delete(&leaf, -1)).await {
                    Ok(()) | Err(zab_client::Error::Server(zab_client::ErrorCode::NoNode)) => {}
                    Err(other) => panic!("delete: {other:?}"),
                }
            }
        }
    });
    kill_leader_after(&mut e, leader, 200).await;
    within(120, "writes", writes).await.expect("writer");
    // The tree as it is, read directly.
    let reader = &clients[(leader + 2) % 3];
    let mut want = BTreeMap::new();
    let mut stack = vec!["/tc".to_string()];
    while let Some(p) = stack.pop() {
        let (data, _) = reader
            .get(&p, Consistency::Linearizable)
            .await
            .expect("get");
        for k in reader
            .all_children(&p, Consistency::Local)
            .await
            .expect("ls")
        {
            stack.push(format!("{p}/{k}"));
        }
        want.insert(p, data.to_vec());
    }
    let have = |cache: &TreeCache| -> BTreeMap<String, Vec<u8>> {
        cache
            .paths()
            .map(|p| (p.to_string(), cache.get(p).expect("cached").0.to_vec()))
            .collect()
    };
    within(60, "the cache converges", async {
        while have(&cache) != want {
            cache.next_change().await.expect("a change");
        }
    })
    .await;
    assert_eq!(cache.children("/tc").len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_persistent_node_comes_back_after_deletion_session_loss_and_a_leader_kill() {
    let (mut e, leader, clients) = ensemble("recipe-persistent").await;
    let follower = (leader + 1) % 3;
    // The node's own session lives on one follower only, 2 s.
    let builder = Client::builder(&[e.clients[follower]]).session_timeout_ms(2_000);
    let mut node = within(30, "start", PersistentNode::start(builder, "/svc/a", b"up"))
        .await
        .expect("started");
    let first = node.owner().expect("an owner");
    let other = &clients[(leader + 2) % 3];
    let owner_now = |c: &Client| {
        let c = c.clone();
        async move {
            c.exists("/svc/a", Consistency::Linearizable, false)
                .await
                .expect("exists")
                .map(|s| s.ephemeral_owner)
        }
    };
    assert_eq!(owner_now(other).await, Some(first));

    // Deleted by someone else: made again, same session.
    retry(|| other.delete("/svc/a", -1)).await.expect("delete");
    within(20, "made again", async {
        while owner_now(other).await != Some(first) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;

    // Its session lost: its only server paused well past the point where
    // the client gives the session up (silent for 2/3 of the timeout, then
    // not resumed within the timeout): a new session, and the node in it.
    e.signal(follower, "STOP");
    tokio::time::sleep(Duration::from_millis(5_000)).await;
    e.signal(follower, "CONT");
    let second = within(60, "a new session", async {
        loop {
            match node.changed().await.expect("the task goes on") {
                Some(s) if s != first => return s,
                _ => {}
            }
        }
    })
    .await;
    within(30, "the node in the new session", async {
        while owner_now(other).await != Some(second) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;

    // The leader dies: the node is there again once the ensemble serves
    // (if its 2 s session did not survive the election, the task makes it
    // again in a new one).
    kill_leader_after(&mut e, leader, 0).await;
    let check = e.client((leader + 2) % 3, 20_000).await;
    within(60, "the node after the leader kill", async {
        while retry(|| check.exists("/svc/a", Consistency::Linearizable, false))
            .await
            .expect("exists")
            .is_none()
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    node.close().await;
    assert_eq!(
        retry(|| check.exists("/svc/a", Consistency::Linearizable, false))
            .await
            .expect("exists"),
        None,
        "close deletes it"
    );
}

/// Decrements a count of listeners leading when dropped: at the end of a
/// listener's future, or when the selector cancels it.
struct Leads(Arc<AtomicUsize>);

impl Drop for Leads {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Two selectors whose listeners lead a while and return: leadership
/// rotates between them, never two listeners at once, each term larger
/// than the last, across a leader kill; stopped, they leave no candidate
/// behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_selector_rotates_leadership_one_listener_at_a_time_across_a_leader_kill() {
    let (mut e, leader, clients) = ensemble("selector").await;
    let active = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let led: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let mut selectors = Vec::new();
    for (i, client) in clients.iter().take(2).enumerate() {
        let (active, most, led) = (active.clone(), most.clone(), led.clone());
        let listener = move |leading: Leading| {
            let (active, most, led) = (active.clone(), most.clone(), led.clone());
            async move {
                let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                let _leads = Leads(active);
                most.fetch_max(now, Ordering::SeqCst);
                led.lock()
                    .expect("not poisoned")
                    .push((leading.id.clone(), leading.term));
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        };
        let id = format!("c{i}");
        selectors.push(LeaderSelector::start(
            client.clone(),
            "/selector",
            &id,
            true,
            listener,
        ));
    }
    kill_leader_after(&mut e, leader, 300).await;
    within(60, "eight leaderships", async {
        while led.lock().expect("not poisoned").len() < 8 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    for s in selectors {
        within(30, "a selector's stop", s.stop())
            .await
            .expect("stopped cleanly");
    }
    let led = led.lock().expect("not poisoned").clone();
    assert_eq!(
        most.load(Ordering::SeqCst),
        1,
        "two listeners led at once: {led:?}"
    );
    assert!(
        led.windows(2).all(|w| w[0].1 < w[1].1),
        "terms did not grow: {led:?}"
    );
    for id in ["c0", "c1"] {
        assert!(
            led.iter().any(|(who, _)| who == id),
            "{id} never led: {led:?}"
        );
    }
    let (left, _) = retry(|| clients[2].children("/selector", Consistency::Linearizable, false))
        .await
        .expect("the election's directory");
    assert!(left.is_empty(), "candidates left behind: {left:?}");
}
