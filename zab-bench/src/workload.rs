//! The workloads, written once against [`Store`]: open the sessions, make
//! their keys, run every session's closed loop (one request in flight) for
//! warm-up plus measurement, and merge the latency histograms.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::report::RunResult;
use crate::store::{Connect, Read, Store, StoreError};
use crate::windows::{self, Seconds};

/// Bytes written by every write.
pub const VALUE_BYTES: usize = 128;
/// Every request gives up after this long; the run's loops stay bounded even
/// if a server hangs.
const OP_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);
/// After a failed request a session pauses this long, so a dead server is not
/// hammered in a hot loop.
const ERROR_PAUSE: Duration = Duration::from_millis(10);
/// Longest latency the histograms hold (microseconds).
const LATENCY_US_MAX: u64 = 60_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// set of 128 bytes, one pre-created key per session.
    Write,
    /// One session, sequential sets.
    WriteLatency,
    /// Reads from the server's own copy, on followers.
    ReadLocal,
    /// Linearizable reads on followers.
    ReadLinearizable,
    /// 90% local reads, 10% writes, on followers.
    Mixed,
    /// Create then delete an ephemeral key (etcd: put with a lease, delete);
    /// each of the two requests counts as one op.
    Ephemeral,
    /// Create persistent keys of 128 bytes, each new, until the plan's
    /// `keys` exist (or the time is up): the scale mode's load phase. Not
    /// part of `all`.
    Load,
}

impl Workload {
    pub const ALL: [Workload; 6] = [
        Workload::Write,
        Workload::WriteLatency,
        Workload::ReadLocal,
        Workload::ReadLinearizable,
        Workload::Mixed,
        Workload::Ephemeral,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Write => "write",
            Workload::WriteLatency => "write-latency",
            Workload::ReadLocal => "read-local",
            Workload::ReadLinearizable => "read-linearizable",
            Workload::Mixed => "mixed",
            Workload::Ephemeral => "ephemeral",
            Workload::Load => "load",
        }
    }

    pub fn parse(s: &str) -> Option<Workload> {
        Workload::ALL
            .into_iter()
            .chain([Workload::Load])
            .find(|w| w.name() == s)
    }

    /// Whether sessions go to the read servers (followers) rather than being
    /// spread over the whole ensemble.
    fn on_read_servers(self) -> bool {
        matches!(
            self,
            Workload::ReadLocal | Workload::ReadLinearizable | Workload::Mixed
        )
    }

    /// The session count actually used (write-latency is one session).
    pub fn sessions(self, asked: usize) -> usize {
        if self == Workload::WriteLatency {
            1
        } else {
            asked
        }
    }
}

/// One run's parameters.
#[derive(Clone, Debug)]
pub struct Plan {
    pub workload: Workload,
    pub sessions: usize,
    pub servers: Vec<String>,
    pub read_servers: Vec<String>,
    pub warmup: Duration,
    pub duration: Duration,
    pub session_timeout: Duration,
    pub op_timeout: Option<Duration>,
    /// Give each session the whole list (rotated) rather than one server.
    pub all_servers_per_session: bool,
    /// Load: keys to create in all (split over the sessions).
    pub keys: u64,
    /// Where the caller logs the snapshots written during the run: the
    /// latencies are then also reported split by them (see `windows`).
    pub snapshot_log: Option<PathBuf>,
    /// The servers' process ids: their CPU time over the measured part is
    /// reported with the run.
    pub server_pids: Vec<u32>,
}

/// The servers session `i` is given: its own first, the rest after it when
/// the plan asks for failover candidates.
fn servers_for(list: &[String], i: usize, all: bool) -> Vec<String> {
    let n = list.len().max(1);
    let rotated: Vec<String> = list.iter().cycle().skip(i % n).take(n).cloned().collect();
    if all {
        rotated
    } else {
        rotated.into_iter().take(1).collect()
    }
}

struct Tally {
    latency_us: Histogram<u64>,
    ops: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            latency_us: Histogram::new_with_max(LATENCY_US_MAX, 3)
                .expect("3 significant figures up to 60 s is a valid histogram"),
            ops: 0,
            errors: 0,
            first_error: None,
        }
    }
}

/// A small seeded generator for the mixed workload's coin (xorshift64*).
struct Coin(u64);

impl Coin {
    fn percent(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % 100
    }
}

pub fn value() -> Vec<u8> {
    (0..VALUE_BYTES).map(|i| b'a' + (i % 26) as u8).collect()
}

/// Opens the sessions, prepares their keys and runs the plan.
pub async fn run<S: Store>(plan: &Plan) -> Result<RunResult, StoreError> {
    let sessions = plan.workload.sessions(plan.sessions);
    let list = if plan.workload.on_read_servers() && !plan.read_servers.is_empty() {
        &plan.read_servers
    } else {
        &plan.servers
    };
    let lifetime = plan.warmup + plan.duration + Duration::from_secs(30);
    let mut opening = Vec::with_capacity(sessions);
    for i in 0..sessions {
        let to = Connect {
            servers: servers_for(list, i, plan.all_servers_per_session),
            session_timeout: plan.session_timeout,
            lifetime,
        };
        opening.push(tokio::spawn(async move {
            let store = S::connect(to).await?;
            store.ensure(&format!("/bench/w{i}"), &value()).await?;
            Ok::<S, StoreError>(store)
        }));
    }
    let mut stores = Vec::with_capacity(sessions);
    for handle in opening {
        let opened = handle
            .await
            .map_err(|e| StoreError(format!("session task failed: {e}")))?;
        stores.push(opened?);
    }

    let seconds = plan.snapshot_log.as_ref().map(|_| Arc::new(Seconds::new()));
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let stop = measure_from + plan.duration;
    let cpu = crate::cpu::Window::start(&plan.server_pids, measure_from, stop);
    let mut loops = Vec::with_capacity(sessions);
    for (i, store) in stores.into_iter().enumerate() {
        let workload = plan.workload;
        let op_timeout = plan.op_timeout.unwrap_or(OP_TIMEOUT_DEFAULT);
        let quota = plan.keys.div_ceil(sessions as u64);
        let seconds = seconds.clone();
        loops.push(tokio::spawn(async move {
            let limits = (stop, op_timeout, quota);
            let tally = session_loop(&store, workload, i, measure_from, limits, seconds).await;
            store.close().await;
            tally
        }));
    }
    let mut total = Tally::new();
    for handle in loops {
        let tally = handle
            .await
            .map_err(|e| StoreError(format!("session task failed: {e}")))?;
        total
            .latency_us
            .add(&tally.latency_us)
            .map_err(|e| StoreError(format!("merging histograms: {e}")))?;
        total.ops += tally.ops;
        total.errors += tally.errors;
        if total.first_error.is_none() {
            total.first_error = tally.first_error;
        }
    }
    let server_cpu_s = match cpu {
        Some(window) => window.finish().await,
        None => None,
    };
    // A load ends when its keys exist: its rate is over the time it took.
    let secs = plan
        .duration
        .as_secs_f64()
        .min(measure_from.elapsed().as_secs_f64());
    let windows = match (&plan.snapshot_log, &seconds) {
        (Some(path), Some(seconds)) => {
            tokio::time::sleep(windows::SETTLE).await;
            seconds.write_series(&path.with_extension("seconds"))?;
            Some(seconds.split(&windows::read_busy(path)?))
        }
        _ => None,
    };
    let h = &total.latency_us;
    Ok(RunResult {
        system: S::NAME,
        workload: plan.workload.name(),
        sessions,
        duration_s: secs,
        ops: total.ops,
        ops_per_sec: total.ops as f64 / secs,
        p50_us: h.value_at_quantile(0.50),
        p99_us: h.value_at_quantile(0.99),
        p999_us: h.value_at_quantile(0.999),
        max_us: h.max(),
        errors: total.errors,
        first_error: total.first_error,
        server_cpu_ms_per_op: server_cpu_s.map(|s| s * 1000.0 / total.ops.max(1) as f64),
        windows,
    })
}

/// One session's closed loop: one request in flight, until `stop`. Requests
/// that start before `measure_from` are warm-up and are not counted.
async fn session_loop<S: Store>(
    store: &S,
    workload: Workload,
    index: usize,
    measure_from: Instant,
    (stop, op_timeout, quota): (Instant, Duration, u64),
    seconds: Option<Arc<Seconds>>,
) -> Tally {
    let mut tally = Tally::new();
    let value = value();
    let key = format!("/bench/w{index}");
    let mut coin = Coin(0x9e37_79b9_7f4a_7c15 ^ (index as u64 + 1));
    let mut serial: u64 = 0;
    loop {
        let began = Instant::now();
        if began >= stop || (workload == Workload::Load && serial >= quota) {
            break;
        }
        // Ephemeral is two requests per round: each one is timed and counted.
        let outcomes: [Option<(Result<(), StoreError>, Instant)>; 2] = match workload {
            Workload::Write | Workload::WriteLatency => [
                Some(timed(op_timeout, store.write(&key, &value)).await),
                None,
            ],
            Workload::ReadLocal => [
                Some(timed(op_timeout, store.read(&key, Read::Local)).await),
                None,
            ],
            Workload::ReadLinearizable => [
                Some(timed(op_timeout, store.read(&key, Read::Linearizable)).await),
                None,
            ],
            Workload::Mixed => {
                if coin.percent() < 10 {
                    [
                        Some(timed(op_timeout, store.write(&key, &value)).await),
                        None,
                    ]
                } else {
                    [
                        Some(timed(op_timeout, store.read(&key, Read::Local)).await),
                        None,
                    ]
                }
            }
            Workload::Load => {
                let k = format!("/bench/l{index}-{serial}");
                let created = timed(op_timeout, store.create(&k, &value)).await;
                if created.0.is_ok() {
                    serial += 1;
                }
                [Some(created), None]
            }
            Workload::Ephemeral => {
                serial += 1;
                let e = format!("/bench/e{index}-{serial}");
                let created = timed(op_timeout, store.create_ephemeral(&e, &value)).await;
                let deleted = if created.0.is_ok() {
                    Some(timed(op_timeout, store.delete(&e)).await)
                } else {
                    None
                };
                [Some(created), deleted]
            }
        };
        let mut from = began;
        let mut failed = false;
        for (result, done) in outcomes.into_iter().flatten() {
            if from >= measure_from {
                match result {
                    Ok(()) => {
                        let us = u64::try_from(done.duration_since(from).as_micros())
                            .unwrap_or(u64::MAX)
                            .clamp(1, LATENCY_US_MAX);
                        tally.latency_us.saturating_record(us);
                        tally.ops += 1;
                        if let Some(seconds) = &seconds {
                            seconds.record(done, us);
                        }
                    }
                    Err(e) => {
                        tally.errors += 1;
                        failed = true;
                        if tally.first_error.is_none() {
                            tally.first_error = Some(e.0);
                        }
                    }
                }
            } else if result.is_err() {
                failed = true;
            }
            from = done;
        }
        if failed {
            tokio::time::sleep(ERROR_PAUSE).await;
        }
    }
    tally
}

/// Runs one request with a deadline; returns its outcome and when it ended.
async fn timed(
    limit: Duration,
    request: impl std::future::Future<Output = Result<(), StoreError>>,
) -> (Result<(), StoreError>, Instant) {
    let result = match tokio::time::timeout(limit, request).await {
        Ok(r) => r,
        Err(_) => Err(StoreError(format!("timed out after {limit:?}"))),
    };
    (result, Instant::now())
}
