//! Real processes under faults, with full histories checked afterwards.
//!
//! An ensemble of 3 or 5 `zab-server` processes runs on loopback with every
//! peer link through an in-process proxy (`zab_tests::proxy`), while four
//! workloads record what they see:
//!
//! - **registers**: sessions read (sync, then read), write and compare-and-set
//!   unique values on a few keys; every invocation, completion, outcome and
//!   zxid goes into a `History` for the WGL checker
//!   (`zab_tests::linearizability`). On loopback every server also serves
//!   ZooKeeper's client protocol and half of these sessions speak it,
//!   through the `zookeeper-client` crate (`registers.rs`): a read there is
//!   ZooKeeper's `sync` then `getData`, and one pair of sessions writes on
//!   one protocol and reads on the other;
//! - **sequential creates**: names must be unique, ordered as the creates were
//!   in real time, and every acknowledged one present at the end;
//! - **ephemerals**: sessions create an ephemeral node, then close, abandon (so
//!   the session expires) or keep their session; at the end a node must exist
//!   exactly when its session lives;
//! - **watches**: a session holds a persistent recursive watch on the
//!   registers; its events must come in zxid order, and every acknowledged
//!   write must produce one unless a `ContinuityLost` event covered it.
//!
//! Meanwhile a nemesis injects one fault at a time and heals it: kill -9 and
//! restart (a random server, the leader, or a minority at once), SIGSTOP /
//! SIGCONT, isolating a server or the leader, a majority/minority partition,
//! one-way partitions around the leader, delayed links, and on the client
//! path (every workload connects through a proxy per server) the clients of
//! a server cut off with their connections open or paused (`faults.rs`).
//!
//! The CI-sized runs (`runs.rs`) take about a minute each: on loopback,
//! and with every server on its own host (a network namespace) at 2 and
//! 20 ms round trips with 1% loss, where partitions are silent.
//! `scripts/nemesis.sh --runs N --secs S` runs a campaign through the ignored
//! `campaign` test and ends with one line
//! `runs=… ops=… acked_writes_lost=… anomalies=…`.
//!
//! With a deliberately broken server (`--features defects` and, for example,
//! `ZAB_DEFECT=sync_without_quorum`) these runs must fail: see
//! docs/testing.md.

#[path = "../common/mod.rs"]
mod common;
mod ephemerals;
mod faults;
mod registers;
mod runs;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{connect_retry, Ensemble};
use ephemerals::{check_ephemerals, ephemeral_worker};
use registers::{definite, protocol_of, Protocol, Session};
use zab_client::{Client, Consistency, CreateMode, Error, WatchEventKind};
use zab_tests::checkers::{
    check_sequential, check_watch_log, SequentialCreate, WatchLog, WatchRecord,
};
use zab_tests::linearizability::{check, Budget, History, Op, Outcome, Reply, Verdict};
use zab_tests::netns::Net;
use zab_tests::proxy::Proxy;
use zab_tests::sim::rng::Rng;

const KEYS: usize = 5;
/// Workers move to fresh keys every this many seconds. An operation with an
/// unknown outcome stays open until the end of its key's history, and the
/// search is exponential in open operations: short per-key histories keep
/// the check exact (as Jepsen's independent keys do).
const GENERATION_SECS: u64 = 5;
/// Pause between a client's operations, so each key's history stays small
/// enough for an exhaustive check (the search is exponential in overlap).
const THINK_MS: u64 = 4;
/// Session timeout asked for by the workloads (the server clamps it).
const SESSION_MS: u32 = 4000;
/// Session timeout of the ephemeral workload's sessions: short, so abandoned
/// ones expire within the run.
const EPHEMERAL_SESSION_MS: u32 = 1000;

fn register_key(generation: u64, k: u64) -> String {
    format!("/r/g{generation}/k{k}")
}

/// Every register key a run of `secs` seconds can use.
fn register_keys(secs: u64) -> Vec<String> {
    (0..=secs / GENERATION_SECS)
        .flat_map(|g| (0..KEYS as u64).map(move |k| register_key(g, k)))
        .collect()
}

fn value_of(data: &[u8]) -> Option<u64> {
    std::str::from_utf8(data).ok()?.parse().ok()
}

/// What every worker shares: the clock origin, the end, the records.
#[derive(Clone)]
struct Shared {
    started: Instant,
    deadline: Instant,
    servers: Vec<std::net::SocketAddr>,
    /// The same servers' ZooKeeper-protocol ports (through proxies); empty
    /// where they are not served.
    zookeeper_servers: Vec<std::net::SocketAddr>,
    history: Arc<Mutex<History>>,
    /// Acknowledged register writes: (key, value, zxid).
    acked: Arc<Mutex<Vec<(String, u64, u64)>>>,
    ops: Arc<std::sync::atomic::AtomicU64>,
    /// Of those, register operations on ZooKeeper's protocol.
    zookeeper_ops: Arc<std::sync::atomic::AtomicU64>,
    /// Operations that never finished (a liveness failure, reported).
    hung: Arc<Mutex<Vec<String>>>,
}

impl Shared {
    fn now(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    fn count(&self) {
        self.ops.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Register `k` of the current generation.
    fn key(&self, k: u64) -> String {
        register_key(self.started.elapsed().as_secs() / GENERATION_SECS, k)
    }

    /// `op`, given up on after 30 s: recorded as hung, outcome unknown.
    async fn bounded<T>(
        &self,
        what: String,
        op: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(Duration::from_secs(30), op).await {
            Ok(r) => r,
            Err(_) => {
                self.hung.lock().expect("hung").push(what);
                Err(Error::ConnectionLoss)
            }
        }
    }

    /// A session on the servers in an order that depends on `salt`.
    async fn session(&self, salt: usize, timeout_ms: u32) -> Option<Client> {
        let n = self.servers.len();
        let order: Vec<_> = (0..n).map(|i| self.servers[(i + salt) % n]).collect();
        connect_retry(&order, timeout_ms).await.ok()
    }
}

// ---------------------------------------------------------------- registers

async fn register_worker(mut id: u64, seed: u64, shared: Shared, protocol: Protocol) {
    let Some(mut session) = Session::open(protocol, &shared, id as usize).await else {
        return;
    };
    let mut rng = Rng::new(seed);
    let mut next_value = id << 32;
    while Instant::now() < shared.deadline {
        let key = shared.key(rng.below(KEYS as u64));
        next_value += 1;
        let value = next_value;
        let op = match rng.below(10) {
            0..=3 => Op::Read,
            4..=7 => Op::Write(value),
            _ => match session.version(&key).await {
                // CAS against the version a fresh read saw.
                Some(expected_version) => Op::Cas {
                    expected_version,
                    new: value,
                },
                None => Op::Write(value),
            },
        };
        register_op(&session, id, &key, op, &shared).await;
        tokio::time::sleep(Duration::from_millis(1 + rng.below(THINK_MS))).await;
        if session.expired() {
            // A new session is a new client in the history.
            match Session::open(protocol, &shared, id as usize).await {
                Some(s) => session = s,
                None => return,
            }
            id += 1000;
        }
    }
}

/// Carries out one register operation, recording it in the history as
/// client `id`; true if it was a write the server acknowledged.
async fn register_op(session: &Session, id: u64, key: &str, op: Op, shared: &Shared) -> bool {
    let idx = shared
        .history
        .lock()
        .expect("history")
        .push_invoke(id, key, op, shared.now());
    let (outcome, zxid) = session.run(key, op, shared).await;
    let acked = zxid.is_some() && matches!(outcome, Outcome::Ok(Reply::Ok));
    if let (true, Op::Write(new) | Op::Cas { new, .. }, Some(z)) = (acked, op, zxid) {
        shared
            .acked
            .lock()
            .expect("acked")
            .push((key.to_string(), new, z));
    }
    let mut h = shared.history.lock().expect("history");
    h.complete(idx, shared.now(), outcome);
    if let Some(z) = zxid {
        h.set_zxid(idx, z);
    }
    shared.count();
    if let Session::ZooKeeper(_) = session {
        shared
            .zookeeper_ops
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    acked
}

/// Writes through one session, then reads the same key through another
/// on a different server: the read begins after the write was acknowledged,
/// so it must see it (or something newer). This is the pattern that exposes
/// a server answering `sync` from a stale view: a read queued on a paused,
/// deposed leader while a new leader acknowledged the write.
async fn cross_worker(id: u64, seed: u64, shared: Shared, protocols: [Protocol; 2]) {
    let mut rng = Rng::new(seed);
    let mut sessions = Vec::new();
    for (k, protocol) in protocols.into_iter().enumerate() {
        // Different first servers; reconnects go round from there. (The
        // ZooKeeper client shuffles its list, so its pair may share one.)
        match Session::open(protocol, &shared, k + id as usize).await {
            Some(s) => sessions.push(s),
            None => return,
        }
    }
    let mut ids = [id, id + 1];
    let mut next_value = id << 32;
    let mut turn = 0usize;
    while Instant::now() < shared.deadline {
        let (w, r) = (turn % 2, (turn + 1) % 2);
        turn += 1;
        let key = shared.key(rng.below(KEYS as u64));
        next_value += 1;
        let acked = register_op(&sessions[w], ids[w], &key, Op::Write(next_value), &shared).await;
        if acked {
            register_op(&sessions[r], ids[r], &key, Op::Read, &shared).await;
        }
        tokio::time::sleep(Duration::from_millis(1 + rng.below(THINK_MS))).await;
        for (slot, session) in sessions.iter_mut().enumerate() {
            if session.expired() {
                match Session::open(protocols[slot], &shared, slot + id as usize).await {
                    Some(s) => *session = s,
                    None => return,
                }
                ids[slot] += 1000;
            }
        }
    }
}

// ---------------------------------------------------- sequential creates

#[derive(Default)]
struct SeqLog {
    creates: Vec<SequentialCreate>,
    unknown: u64,
}

async fn sequential_worker(shared: Shared, log: Arc<Mutex<SeqLog>>) {
    let Some(mut client) = shared.session(7, SESSION_MS).await else {
        return;
    };
    let mut rng = Rng::new(0x5e9);
    while Instant::now() < shared.deadline {
        let invoke = shared.now();
        let r = shared
            .bounded(
                format!("sequential create by session {:#x}", client.session_id()),
                client.create("/seq/c-", b"", CreateMode::PersistentSequential),
            )
            .await;
        let complete = shared.now();
        shared.count();
        match (&r, definite(&r)) {
            (Ok(name), _) => {
                let seq = name
                    .rsplit('-')
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("a sequential name ends in its number");
                log.lock().expect("seq log").creates.push(SequentialCreate {
                    invoke,
                    complete,
                    seq: Some(seq),
                });
            }
            (_, Some(_)) => log.lock().expect("seq log").creates.push(SequentialCreate {
                invoke,
                complete,
                seq: None,
            }),
            (_, None) => log.lock().expect("seq log").unknown += 1,
        }
        tokio::time::sleep(Duration::from_millis(5 + rng.below(20))).await;
        if client.session_state() == zab_client::SessionState::Expired {
            match shared.session(7, SESSION_MS).await {
                Some(c) => client = c,
                None => return,
            }
        }
    }
}

// ------------------------------------------------------------- watches

/// Holds a persistent recursive watch on `/r` until it sees `/r/end`
/// created (or `until` passes); a new session (and log) if one expires.
async fn watcher(shared: Shared, logs: Arc<Mutex<Vec<WatchLog>>>, until: Instant) {
    'sessions: while Instant::now() < until {
        let Some(client) = shared.session(3, SESSION_MS).await else {
            return;
        };
        let Ok(mut stream) = common::retry(|| client.add_watch("/r", true)).await else {
            continue;
        };
        let slot = {
            let mut logs = logs.lock().expect("watch logs");
            logs.push(WatchLog {
                registered_at: client.last_zxid(),
                events: Vec::new(),
            });
            logs.len() - 1
        };
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, stream.next()).await {
                Ok(Some(ev)) => {
                    let end = ev.path == "/r/end" && ev.kind == WatchEventKind::NodeCreated;
                    logs.lock().expect("watch logs")[slot]
                        .events
                        .push(WatchRecord {
                            continuity_lost: ev.kind == WatchEventKind::ContinuityLost,
                            path: ev.path,
                            zxid: ev.zxid,
                        });
                    if end {
                        return;
                    }
                }
                Ok(None) => continue 'sessions, // session over
                Err(_) => return,               // out of time
            }
            if client.session_state() == zab_client::SessionState::Expired {
                continue 'sessions;
            }
        }
    }
}

// -------------------------------------------------------------- nemesis

// ------------------------------------------------------------------ run

struct RunReport {
    ops: u64,
    /// Register operations on ZooKeeper's protocol.
    zookeeper_ops: u64,
    lost: u64,
    anomalies: Vec<String>,
}

/// One run: `secs` of load and faults on `nodes` servers.
/// One run on loopback through proxies, or across the hosts of `net`.
async fn run_once(nodes: usize, seed: u64, secs: u64, net: Option<Arc<Net>>) -> RunReport {
    let name = format!("nemesis-{nodes}-{seed}");
    // On loopback each server also serves ZooKeeper's protocol, and some
    // workers speak it.
    let (mut e, zookeeper) = match net {
        Some(net) => (Ensemble::start_multihost(net, &name, ""), Vec::new()),
        None => Ensemble::start_proxied_zookeeper(nodes, &name).await,
    };
    let setup = common::connect_retry(&e.clients, 8000)
        .await
        .expect("setup session");
    for path in ["/r", "/seq", "/eph"] {
        common::retry(|| setup.create(path, b"", CreateMode::Persistent))
            .await
            .expect("root");
    }
    let keys = register_keys(secs);
    for key in &keys {
        let parent = &key[..key.rfind('/').expect("a parent")];
        let _ = common::retry(|| setup.create(parent, b"", CreateMode::Persistent)).await;
        common::retry(|| setup.create(key, b"0", CreateMode::Persistent))
            .await
            .expect("key");
    }
    let history = Arc::new(Mutex::new(History::default()));
    // The initial values are a write of 0 that completed before anything else.
    for key in &keys {
        let mut h = history.lock().expect("history");
        let idx = h.push_invoke(0, key.clone(), Op::Write(0), 0);
        h.complete(idx, 0, Outcome::Ok(Reply::Ok));
    }
    // The workloads reach each server through a proxy on its client path.
    // (Per server: our protocol's proxy, then ZooKeeper's if served.)
    let mut client_proxies: Vec<Vec<Proxy>> = Vec::new();
    for (i, addr) in e.clients.iter().enumerate() {
        let mut here = vec![Proxy::start(*addr).await.expect("a client proxy")];
        if let Some(zk) = zookeeper.get(i) {
            here.push(Proxy::start(*zk).await.expect("a client proxy"));
        }
        client_proxies.push(here);
    }
    let started = Instant::now();
    let shared = Shared {
        started,
        deadline: started + Duration::from_secs(secs),
        servers: client_proxies.iter().map(|p| p[0].addr()).collect(),
        zookeeper_servers: client_proxies
            .iter()
            .filter_map(|p| p.get(1).map(Proxy::addr))
            .collect(),
        history: history.clone(),
        acked: Arc::new(Mutex::new(Vec::new())),
        ops: Arc::default(),
        zookeeper_ops: Arc::default(),
        hung: Arc::default(),
    };
    let watch_logs = Arc::new(Mutex::new(Vec::new()));
    let watch_until = shared.deadline + Duration::from_secs(60);
    let watcher_task = tokio::spawn(watcher(shared.clone(), watch_logs.clone(), watch_until));
    let mut workers = Vec::new();
    let served = !shared.zookeeper_servers.is_empty();
    for w in 1..=4u64 {
        workers.push(tokio::spawn(register_worker(
            w,
            seed * 100 + w - 1,
            shared.clone(),
            protocol_of(w, served),
        )));
    }
    for w in 0..2u64 {
        // Client ids 11.. (and +1 for the second session), distinct from the
        // above. The second pair writes on one protocol, reads on the other.
        workers.push(tokio::spawn(cross_worker(
            11 + 2 * w,
            seed * 100 + 50 + w,
            shared.clone(),
            [Protocol::Zab, protocol_of(w + 1, served)],
        )));
    }
    let seq_log = Arc::new(Mutex::new(SeqLog::default()));
    workers.push(tokio::spawn(sequential_worker(
        shared.clone(),
        seq_log.clone(),
    )));
    let eph_log = Arc::new(Mutex::new(Vec::new()));
    workers.push(tokio::spawn(ephemeral_worker(
        shared.clone(),
        eph_log.clone(),
    )));

    let faults = if std::env::var("NEMESIS_FAULTS").is_ok_and(|v| v == "0") {
        Vec::new()
    } else {
        faults::nemesis(&mut e, &client_proxies, seed, shared.deadline).await
    };
    println!(
        "nemesis done ({} faults); waiting for the workloads",
        faults.len()
    );
    for w in workers {
        let _ = w.await;
    }
    println!("workloads done; checking");

    let mut anomalies: Vec<String> = shared
        .hung
        .lock()
        .expect("hung")
        .iter()
        .map(|op| format!("hung for 30 s: {op}"))
        .collect();
    let checker = common::connect_retry(&e.clients, 8000)
        .await
        .expect("checker session");

    // The watcher ends when it sees this node created.
    let _ = common::retry(|| checker.create("/r/end", b"", CreateMode::Persistent)).await;
    if tokio::time::timeout(Duration::from_secs(30), watcher_task)
        .await
        .is_err()
    {
        anomalies.push("the watcher never saw /r/end created".into());
    }

    // Registers: the final value of a key with acknowledged writes cannot be
    // the initial one; the checker covers the rest.
    let acked = shared.acked.lock().expect("acked").clone();
    let written: BTreeSet<&str> = acked.iter().map(|(k, _, _)| k.as_str()).collect();
    let mut lost = 0;
    for key in &keys {
        let (data, _) = common::retry(|| checker.get(key, Consistency::Linearizable))
            .await
            .expect("final read");
        if value_of(&data) == Some(0) && written.contains(key.as_str()) {
            lost += 1;
            anomalies.push(format!(
                "{key}: final value is the initial one although writes were acknowledged"
            ));
        }
    }

    // Sequential creates.
    let (children, _) =
        common::retry(|| checker.children("/seq", Consistency::Linearizable, false))
            .await
            .expect("final children");
    let present: BTreeSet<u64> = children
        .iter()
        .filter_map(|c| c.rsplit('-').next()?.parse().ok())
        .collect();
    {
        let log = seq_log.lock().expect("seq log");
        let (seq_lost, seq_anomalies) = check_sequential(&log.creates, log.unknown, &present);
        lost += seq_lost;
        anomalies.extend(
            seq_anomalies
                .into_iter()
                .map(|a| format!("sequential create: {a}")),
        );
    }

    // Ephemerals.
    let eph = std::mem::take(&mut *eph_log.lock().expect("ephemeral log"));
    let ephemerals = check_ephemerals(&checker, eph, &mut anomalies).await;

    // Watches.
    let watch_logs = std::mem::take(&mut *watch_logs.lock().expect("watch logs"));
    let acked_zxids: Vec<(String, u64)> = acked.iter().map(|(k, _, z)| (k.clone(), *z)).collect();
    for (w, log) in watch_logs.iter().enumerate() {
        let found = check_watch_log(log, &acked_zxids);
        if !found.is_empty() {
            let dump = std::env::temp_dir().join(format!("nemesis-watch-{nodes}-{seed}-{w}.txt"));
            let mut lines = vec![format!("registered at {:#x}", log.registered_at)];
            lines.extend(log.events.iter().map(|e| {
                let kind = if e.continuity_lost { "LOST" } else { "event" };
                format!("{kind} {} {:#x}", e.path, e.zxid)
            }));
            let _ = std::fs::write(&dump, lines.join("\n"));
            anomalies.push(format!(
                "watcher {w}'s events written to {}",
                dump.display()
            ));
        }
        anomalies.extend(found.into_iter().map(|a| format!("watcher {w}: {a}")));
    }
    let watch_events: usize = watch_logs.iter().map(|l| l.events.len()).sum();
    // Gaps declared, not replayed (a restarted server holds no history).
    let watch_gaps: usize = watch_logs
        .iter()
        .map(|l| l.events.iter().filter(|e| e.continuity_lost).count())
        .sum();

    // Linearizability of the registers.
    let h = history.lock().expect("history");
    let unknown = h
        .events()
        .iter()
        .filter(|e| matches!(e.outcome, Outcome::Unknown))
        .count();
    let failed = h
        .events()
        .iter()
        .filter(|e| matches!(e.outcome, Outcome::Fail(_)))
        .count();
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &faults {
        *kinds.entry(f.as_str()).or_default() += 1;
    }
    println!(
        "run nodes={nodes} seed={seed}: {} register ops ({unknown} unknown, {failed} failed), \
         {} sequential creates, {ephemerals} ephemeral sessions, {} watchers with {watch_events} events ({watch_gaps} ContinuityLost); \
         faults {kinds:?}",
        h.len(),
        seq_log.lock().expect("seq log").creates.len(),
        watch_logs.len(),
    );
    let budget = Budget {
        steps_max: 200_000_000,
        time_max: Some(Duration::from_secs(300)),
    };
    match check(&h, budget) {
        Verdict::Linearizable => {}
        Verdict::NotLinearizable { key, explanation } => {
            anomalies.push(format!("not linearizable on {key}: {}", explanation.text));
            let dump = std::env::temp_dir().join(format!("nemesis-history-{nodes}-{seed}.txt"));
            let lines: Vec<String> = h
                .events()
                .iter()
                .enumerate()
                .filter(|(_, ev)| ev.key == key)
                .map(|(i, ev)| format!("#{i} {ev:?}"))
                .collect();
            let _ = std::fs::write(&dump, lines.join("\n"));
            anomalies.push(format!("history of {key} written to {}", dump.display()));
        }
        Verdict::Unknown { reason } => anomalies.push(format!("checker gave up: {reason}")),
    }
    if !anomalies.is_empty() {
        // Keep the servers' logs for diagnosis.
        e.keep_logs();
    }
    RunReport {
        ops: shared.ops.load(std::sync::atomic::Ordering::Relaxed),
        zookeeper_ops: shared
            .zookeeper_ops
            .load(std::sync::atomic::Ordering::Relaxed),
        lost,
        anomalies,
    }
}

/// `NEMESIS_RUNS` runs of `NEMESIS_SECS` seconds, alternating 3 and 5
/// servers, seeds from `NEMESIS_SEED` (see scripts/nemesis.sh).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a campaign: run through scripts/nemesis.sh"]
async fn campaign() {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let runs = env("NEMESIS_RUNS", 3);
    let secs = env("NEMESIS_SECS", 60);
    let first_seed = env("NEMESIS_SEED", 1000);
    let (mut ops, mut zookeeper_ops, mut lost, mut anomalies) = (0, 0, 0, 0);
    for run in 0..runs {
        let nodes = if run % 2 == 0 { 3 } else { 5 };
        let r = run_once(nodes, first_seed + run, secs, None).await;
        for line in &r.anomalies {
            println!("run {run}: {line}");
        }
        ops += r.ops;
        zookeeper_ops += r.zookeeper_ops;
        lost += r.lost;
        anomalies += r.anomalies.len();
    }
    println!(
        "runs={runs} ops={ops} zookeeper_ops={zookeeper_ops} acked_writes_lost={lost} anomalies={anomalies}"
    );
    assert_eq!((lost, anomalies), (0, 0));
}
