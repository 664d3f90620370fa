//! Real processes under faults, with histories checked for linearizability.
//!
//! A 3-server ensemble runs on loopback while clients do reads (sync, then
//! read), blind writes and compare-and-set on a few keys, recording every
//! operation's invocation, completion and outcome. A nemesis kills servers
//! with SIGKILL, pauses them with SIGSTOP/SIGCONT and restarts them. At the
//! end the history goes through the WGL checker (`zab_tests::linearizability`)
//! and every acknowledged write is checked to be present in the final state's
//! history of values.
//!
//! The CI-sized run (`a_short_nemesis_run_is_linearizable`) takes about 20 s.
//! `scripts/nemesis.sh --runs N --secs S` runs a campaign through the ignored
//! `campaign` test and ends with one line `runs=… ops=… acked_writes_lost=… anomalies=…`.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{connect_retry, Ensemble};
use zab_client::{Client, Consistency, CreateMode, Error, ErrorCode};
use zab_tests::linearizability::{check, Budget, History, Op, Outcome, Reply, Verdict};

const KEYS: usize = 5;
/// Pause between a client's operations, so each key's history stays small
/// enough for an exhaustive check (the search is exponential in overlap).
const THINK_MS: u64 = 4;

/// A tiny deterministic generator for the workload's choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Default)]
struct Tally {
    ops: u64,
    acked_writes: Vec<(String, u64)>,
}

fn value_of(data: &[u8]) -> Option<u64> {
    std::str::from_utf8(data).ok()?.parse().ok()
}

/// Whether an error means the operation certainly did not happen (`Some`),
/// or might have (`None`: the connection broke with it in flight).
fn definite<T>(r: &Result<T, Error>) -> Option<String> {
    match r {
        Ok(_) | Err(Error::ConnectionLoss) => None,
        // Never sent, or refused by the server: not applied.
        Err(e) => Some(e.to_string()),
    }
}

/// What every worker shares: the clock origin, the end, the records.
#[derive(Clone)]
struct Shared {
    started: Instant,
    deadline: Instant,
    history: Arc<Mutex<History>>,
    tally: Arc<Mutex<Tally>>,
}

async fn worker(
    mut client: Client,
    servers: Vec<std::net::SocketAddr>,
    mut id: u64,
    seed: u64,
    shared: Shared,
) {
    let Shared {
        started,
        deadline,
        history,
        tally,
    } = shared;
    let mut rng = Rng(seed);
    let mut next_value = id << 32;
    let now = |s: Instant| s.elapsed().as_nanos() as u64;
    while Instant::now() < deadline {
        let key = format!("/r/k{}", rng.below(KEYS as u64));
        let choice = rng.below(10);
        next_value += 1;
        let value = next_value;
        let op = match choice {
            0..=3 => Op::Read,
            4..=7 => Op::Write(value),
            _ => {
                // CAS against the version a fresh read saw.
                match client.exists(&key, Consistency::Local, false).await {
                    Ok(Some(st)) => Op::Cas {
                        expected_version: st.version,
                        new: value,
                    },
                    _ => Op::Write(value),
                }
            }
        };
        let idx = history
            .lock()
            .expect("history")
            .push_invoke(id, &key, op, now(started));
        let outcome = match op {
            Op::Read => {
                let r = client.get(&key, Consistency::Linearizable).await;
                match (&r, definite(&r)) {
                    (Ok((data, _)), _) => Outcome::Ok(Reply::Read(value_of(data))),
                    (Err(Error::Server(ErrorCode::NoNode)), _) => Outcome::Ok(Reply::Read(None)),
                    (_, Some(why)) => Outcome::Fail(why),
                    (_, None) => Outcome::Unknown,
                }
            }
            Op::Write(v) => {
                let r = client.set(&key, v.to_string().as_bytes(), -1).await;
                match (&r, definite(&r)) {
                    (Ok(_), _) => {
                        tally
                            .lock()
                            .expect("tally")
                            .acked_writes
                            .push((key.clone(), v));
                        Outcome::Ok(Reply::Ok)
                    }
                    (_, Some(why)) => Outcome::Fail(why),
                    (_, None) => Outcome::Unknown,
                }
            }
            Op::Cas {
                expected_version,
                new,
            } => {
                let r = client
                    .set(&key, new.to_string().as_bytes(), expected_version)
                    .await;
                match (&r, definite(&r)) {
                    (Ok(_), _) => {
                        tally
                            .lock()
                            .expect("tally")
                            .acked_writes
                            .push((key.clone(), new));
                        Outcome::Ok(Reply::Ok)
                    }
                    (Err(Error::Server(ErrorCode::BadVersion)), _) => {
                        Outcome::Ok(Reply::BadVersion)
                    }
                    (_, Some(why)) => Outcome::Fail(why),
                    (_, None) => Outcome::Unknown,
                }
            }
            Op::Create(_) | Op::Delete => Outcome::Unknown,
        };
        history
            .lock()
            .expect("history")
            .complete(idx, now(started), outcome);
        tally.lock().expect("tally").ops += 1;
        tokio::time::sleep(Duration::from_millis(1 + rng.below(THINK_MS))).await;
        if matches!(client.session_state(), zab_client::SessionState::Expired) {
            // A new session is a new client in the history.
            match connect_retry(&servers, 4000).await {
                Ok(c) => client = c,
                Err(_) => return,
            }
            id += 1000;
        }
    }
}

/// One run: `secs` of load and faults; returns (ops, acked writes lost, anomalies).
async fn run_once(seed: u64, secs: u64) -> (u64, u64, Vec<String>) {
    let mut e = Ensemble::start(3, &format!("nemesis-{seed}"));
    let setup = e.client(0, 8000).await;
    common::retry(|| setup.create("/r", b"", CreateMode::Persistent))
        .await
        .expect("root");
    for k in 0..KEYS {
        let key = format!("/r/k{k}");
        common::retry(|| setup.create(&key, b"0", CreateMode::Persistent))
            .await
            .expect("key");
    }
    let history = Arc::new(Mutex::new(History::default()));
    // The initial values are a write of 0 that completed before anything else.
    for k in 0..KEYS {
        let mut h = history.lock().expect("history");
        let idx = h.push_invoke(0, format!("/r/k{k}"), Op::Write(0), 0);
        h.complete(idx, 0, Outcome::Ok(Reply::Ok));
    }
    let tally = Arc::new(Mutex::new(Tally::default()));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let mut workers = Vec::new();
    for w in 0..4u64 {
        let order: Vec<_> = (0..3).map(|i| e.clients[(i + w as usize) % 3]).collect();
        let client = connect_retry(&order, 4000).await.expect("worker session");
        let order = order.clone();
        let shared = Shared {
            started,
            deadline,
            history: history.clone(),
            tally: tally.clone(),
        };
        workers.push(tokio::spawn(worker(
            client,
            order,
            w + 1,
            seed * 100 + w,
            shared,
        )));
    }
    // The nemesis: one fault at a time, then heal.
    let mut rng = Rng(seed ^ 0xdead_beef);
    let faults = std::env::var("NEMESIS_FAULTS").map_or(true, |v| v != "0");
    while faults && Instant::now() + Duration::from_secs(3) < deadline {
        tokio::time::sleep(Duration::from_millis(500 + rng.below(1500))).await;
        let victim = rng.below(3) as usize;
        match rng.below(3) {
            0 => {
                e.kill(victim);
                tokio::time::sleep(Duration::from_millis(300 + rng.below(1500))).await;
                e.spawn(victim);
            }
            1 => {
                e.signal(victim, "STOP");
                tokio::time::sleep(Duration::from_millis(300 + rng.below(2000))).await;
                e.signal(victim, "CONT");
            }
            _ => {
                // The leader, if one can be told from the logs.
                if let Some(l) = e.leader() {
                    e.kill(l);
                    tokio::time::sleep(Duration::from_millis(200 + rng.below(1000))).await;
                    e.spawn(l);
                }
            }
        }
    }
    for w in workers {
        let _ = w.await;
    }
    // Every acknowledged write must be in the history of its key: the final
    // linearizable read sees the last one, and the checker covers the rest.
    let mut anomalies = Vec::new();
    let reader = e.client(0, 8000).await;
    let mut last_acked: BTreeMap<String, u64> = BTreeMap::new();
    let (ops, acked) = {
        let t = tally.lock().expect("tally");
        (t.ops, t.acked_writes.clone())
    };
    for (k, v) in acked {
        last_acked.insert(k, v);
    }
    let mut lost = 0;
    for k in 0..KEYS {
        let key = format!("/r/k{k}");
        let (data, _) = common::retry(|| reader.get(&key, Consistency::Linearizable))
            .await
            .expect("final read");
        let v = value_of(&data).unwrap_or(u64::MAX);
        if v == 0 && last_acked.contains_key(&key) {
            lost += 1;
            anomalies.push(format!(
                "{key}: final value is the initial one although writes were acknowledged"
            ));
        }
    }
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
    println!(
        "history: {} operations, {unknown} with unknown outcome, {failed} failed",
        h.len()
    );
    let budget = Budget {
        steps_max: 200_000_000,
        time_max: Some(Duration::from_secs(60)),
    };
    match check(&h, budget) {
        Verdict::Linearizable => {}
        Verdict::NotLinearizable { key, explanation } => {
            anomalies.push(format!("not linearizable on {key}: {}", explanation.text));
            let dump = std::env::temp_dir().join(format!("nemesis-history-{seed}.txt"));
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
    (ops, lost, anomalies)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_short_nemesis_run_is_linearizable() {
    let (ops, lost, anomalies) = run_once(1, 20).await;
    println!(
        "runs=1 ops={ops} acked_writes_lost={lost} anomalies={}",
        anomalies.len()
    );
    assert!(ops > 200, "too little load to mean anything: {ops} ops");
    assert_eq!(lost, 0);
    assert!(anomalies.is_empty(), "{anomalies:#?}");
}

/// `NEMESIS_RUNS` runs of `NEMESIS_SECS` seconds (see scripts/nemesis.sh).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a campaign: run through scripts/nemesis.sh"]
async fn campaign() {
    let runs: u64 = std::env::var("NEMESIS_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let secs: u64 = std::env::var("NEMESIS_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let (mut ops, mut lost, mut anomalies) = (0, 0, 0);
    for run in 0..runs {
        let (o, l, a) = run_once(1000 + run, secs).await;
        for line in &a {
            println!("run {run}: {line}");
        }
        ops += o;
        lost += l;
        anomalies += a.len();
    }
    println!("runs={runs} ops={ops} acked_writes_lost={lost} anomalies={anomalies}");
    assert_eq!((lost, anomalies), (0, 0));
}
