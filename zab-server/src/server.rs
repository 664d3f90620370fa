//! The driver loop: the one task that owns the server core
//! ([`crate::core::ServerCore`]). It hands the core ticks, peer messages,
//! durability reports and client events, each with the clock it read, and
//! carries out the core's outputs: messages to peers, writes to the
//! group-commit writer, bytes to client connections, snapshots to disk.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use zab_core::{Input, Zxid};

use crate::core::{
    ClientOutput, Clock, ConnId, Entropy, Report, ReportKind, ServerCore, ServerInput, ServerOutput,
};
use crate::listener::{ClientEvent, ConnTx};
use crate::peer::Peers;
use crate::storage::group_commit::GroupCommit;

/// The replicated state machine the driver delivers committed transactions to.
pub trait Application: Send {
    /// Applies one committed transaction, in zxid order.
    fn apply(&mut self, zxid: Zxid, payload: &Bytes) -> Result<(), String>;
    /// The whole state, for a snapshot (to disk or to a lagging follower).
    fn snapshot(&self) -> Vec<u8>;
    /// Replaces the state with a snapshot's.
    fn restore(&mut self, data: &[u8]) -> Result<(), String>;
}

pub use crate::core::Status;

/// The tokio shell around the [`ServerCore`]: it reads the clocks, draws
/// entropy, and moves bytes between the core and the peer transport, the
/// group-commit writer and the client connections. It decides nothing.
#[derive(Debug)]
pub struct Driver {
    core: ServerCore,
    gc: Arc<GroupCommit>,
    peers: Peers,
    /// Each open client connection's writer; dropping one closes it.
    conns: HashMap<ConnId, ConnTx>,
    clock: ShellClock,
    status: watch::Sender<Status>,
    /// Requests for a frozen copy of the applied state (backups).
    freezes: mpsc::Receiver<crate::backup::FreezeRequest>,
    freezes_tx: mpsc::Sender<crate::backup::FreezeRequest>,
    /// Requests for an inspection report (the admin port's cons, wchs, dump).
    reports: mpsc::Receiver<ReportRequest>,
    reports_tx: mpsc::Sender<ReportRequest>,
    metrics: Arc<crate::metrics::Metrics>,
    /// Writes the core's snapshots, one at a time, off the driver.
    snapshotter: crate::snapshotter::Snapshotter,
    /// Since when this server has not been serving (None while it serves).
    unserving_since: Option<Instant>,
}

/// A report to build and where to answer it.
pub type ReportRequest = (ReportKind, oneshot::Sender<Report>);

impl Driver {
    /// Snapshots written at most `mib_per_sec` (0: unpaced).
    pub fn with_snapshot_pace(mut self, mib_per_sec: u64) -> Driver {
        self.snapshotter = self
            .snapshotter
            .with_pace(Some(mib_per_sec.saturating_mul(1 << 20)));
        self
    }

    pub fn new(
        core: ServerCore,
        gc: Arc<GroupCommit>,
        peers: Peers,
        clock: ShellClock,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> (Driver, watch::Receiver<Status>) {
        let (tx, rx) = watch::channel(core.status());
        let (freezes_tx, freezes) = mpsc::channel(4);
        // One report at a time (the admin port sends with try_send).
        let (reports_tx, reports) = mpsc::channel(1);
        let snapshotter = crate::snapshotter::Snapshotter::new(gc.clone(), metrics.clone());
        let driver = Driver {
            core,
            gc,
            peers,
            conns: HashMap::new(),
            clock,
            status: tx,
            freezes,
            freezes_tx,
            reports,
            reports_tx,
            metrics,
            snapshotter,
            unserving_since: Some(Instant::now()),
        };
        (driver, rx)
    }

    /// Where to ask for a frozen copy of the applied state: answered
    /// between two inputs, in O(shards), so a backup never stalls the
    /// server (the copy is encoded elsewhere).
    pub fn freezes(&self) -> mpsc::Sender<crate::backup::FreezeRequest> {
        self.freezes_tx.clone()
    }

    /// Where to ask for an inspection report: built between two inputs,
    /// bounded in size ([`crate::core::REPORT_ENTRIES_MAX`]).
    pub fn reports(&self) -> mpsc::Sender<ReportRequest> {
        self.reports_tx.clone()
    }

    /// Runs until the inputs channel closes or the core stops.
    pub async fn run(
        mut self,
        mut inputs: mpsc::Receiver<Input>,
        mut clients: mpsc::Receiver<ClientEvent>,
        tick: Duration,
    ) -> Result<(), String> {
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.core.start(self.clock.read()).map_err(|e| e.0)?;
        self.execute();
        loop {
            let input = tokio::select! {
                _ = ticker.tick() => {
                    if let Some(cause) = self.gc.failure() {
                        // Fail-stop: a server that cannot persist must not
                        // lead or follow (nothing it acknowledges would be
                        // durable), and must not look healthy. Exiting drops
                        // every link at once, so the others elect a leader
                        // that can write within the election timeout.
                        return Err(format!("storage failed: {cause}"));
                    }
                    self.publish();
                    ServerInput::Tick
                }
                input = inputs.recv() => match input {
                    Some(input) => ServerInput::Protocol(input),
                    None => return Ok(()),
                },
                event = clients.recv() => match event {
                    Some(event) => self.client_input(event),
                    None => return Ok(()),
                },
                Some(reply) = self.freezes.recv() => {
                    let applied = self.core.status().applied;
                    let _ = reply.send((applied, self.core.replica().freeze()));
                    continue;
                }
                Some((kind, reply)) = self.reports.recv() => {
                    let _ = reply.send(self.core.report(kind, self.clock.read()));
                    continue;
                }
            };
            let now = self.clock.read();
            if is_snapshot(&input) || self.core.backlog_at_least(LONG_APPLY_TXNS) {
                // Installing a large tree, or applying a restart's log or a
                // long DIFF, takes seconds: the worker's other tasks (client
                // and peer links, heartbeats) move to another thread
                // meanwhile, so the links stay alive.
                run_long(|| self.core.handle(now, input)).map_err(|e| e.0)?;
            } else {
                self.core.handle(now, input).map_err(|e| e.0)?;
            }
            self.execute();
        }
    }

    fn client_input(&mut self, event: ClientEvent) -> ServerInput {
        match event {
            ClientEvent::Opened { conn, ip, x509, tx } => {
                self.conns.insert(conn, tx);
                ServerInput::ClientOpened {
                    conn,
                    ip: Some(ip),
                    x509,
                }
            }
            ClientEvent::Hello { conn, hello } => ServerInput::ClientHello {
                conn,
                hello,
                entropy: entropy(),
            },
            ClientEvent::Frame { conn, frame } => ServerInput::ClientFrame { conn, frame },
            ClientEvent::Closed { conn } => {
                self.conns.remove(&conn);
                ServerInput::ClientClosed { conn }
            }
        }
    }

    /// Carries out every output of the core, in order.
    fn execute(&mut self) {
        while let Some(output) = self.core.poll() {
            match output {
                ServerOutput::Peer { to, msg } => self.peers.send(to, msg),
                ServerOutput::Persist { seq, op } => self.gc.submit(seq, op),
                ServerOutput::Client(ClientOutput::Send { conn, bytes }) => {
                    if let Some(tx) = self.conns.get(&conn) {
                        if !tx.send(bytes) {
                            // Killed for not reading; the task reports it closed.
                            self.conns.remove(&conn);
                        }
                    }
                }
                ServerOutput::Client(ClientOutput::Close { conn }) => {
                    // Its writer flushes what was sent before, then closes.
                    self.conns.remove(&conn);
                }
                ServerOutput::PeerSnapshot {
                    to,
                    epoch,
                    join,
                    zxid,
                    state,
                } => self.peers.send_snapshot(to, epoch, join, zxid, state),
                ServerOutput::WriteSnapshot { zxid, state } => {
                    self.snapshotter.submit(zxid, state);
                }
            }
        }
    }

    /// Publishes the status for the admin endpoint (once per tick), and
    /// times each spell without a working quorum.
    fn publish(&mut self) {
        let status = self.core.status();
        match (crate::admin::serving(&status.role), self.unserving_since) {
            (true, Some(since)) => {
                self.metrics.election.observe(since.elapsed().as_secs_f64());
                self.unserving_since = None;
            }
            (false, None) => self.unserving_since = Some(Instant::now()),
            _ => {}
        }
        self.status.send_if_modified(|s| {
            let changed = *s != status;
            *s = status;
            changed
        });
    }
}

/// Unapplied transactions from which the next input's handling counts as
/// long work (applying 10,000 takes some tens of milliseconds).
const LONG_APPLY_TXNS: u64 = 10_000;

/// Whether `input` carries a snapshot to install: the one input whose
/// handling can take seconds (decoding a large tree).
fn is_snapshot(input: &ServerInput) -> bool {
    matches!(
        input,
        ServerInput::Protocol(Input::Received {
            msg: zab_core::Message::Snapshot { .. },
            ..
        })
    )
}

/// Runs `work`, which may take long, without starving the runtime: on a
/// multi-threaded runtime the worker's other tasks move to another thread
/// meanwhile; on a current-thread one (tests) it just runs.
fn run_long<T>(work: impl FnOnce() -> T) -> T {
    let flavor = tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor());
    if matches!(flavor, Ok(tokio::runtime::RuntimeFlavor::MultiThread)) {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}

/// Fresh entropy for a handshake, from the operating system's CSPRNG.
fn entropy() -> Entropy {
    let mut bytes = [0u8; 24];
    // Without the OS's randomness no session can be made safe; it does not
    // fail on the platforms we run on.
    getrandom::getrandom(&mut bytes).expect("the operating system's random source");
    Entropy(bytes)
}

/// The clocks the shell reads for each input: the monotonic one for every
/// timeout, the wall clock only for stamps. In test builds a file can step
/// the wall clock (`ZAB_TEST_WALL_CLOCK_OFFSET_FILE`: signed ms to add).
#[derive(Debug)]
pub struct ShellClock {
    origin: Instant,
    #[cfg(feature = "test-hooks")]
    offset_file: Option<std::path::PathBuf>,
}

impl Default for ShellClock {
    fn default() -> ShellClock {
        ShellClock {
            origin: Instant::now(),
            #[cfg(feature = "test-hooks")]
            offset_file: std::env::var_os("ZAB_TEST_WALL_CLOCK_OFFSET_FILE").map(Into::into),
        }
    }
}

impl ShellClock {
    pub fn read(&self) -> Clock {
        let wall_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        Clock {
            mono_us: self.origin.elapsed().as_micros() as u64,
            wall_ms: wall_ms + self.wall_offset_ms(),
        }
    }

    #[cfg(feature = "test-hooks")]
    fn wall_offset_ms(&self) -> i64 {
        self.offset_file
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    #[cfg(not(feature = "test-hooks"))]
    fn wall_offset_ms(&self) -> i64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// The point of `run_long`: while one task does seconds of work on the
    /// runtime's only worker (a snapshot install), the others (the links'
    /// heartbeats) keep running.
    #[test]
    fn long_work_on_the_only_worker_does_not_stop_the_other_tasks() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let ticks = Arc::new(AtomicU32::new(0));
        let counted = ticks.clone();
        let during = runtime.block_on(async move {
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    counted.fetch_add(1, Ordering::Relaxed);
                }
            });
            tokio::spawn(async move {
                // Let the ticker start on the worker first.
                tokio::time::sleep(Duration::from_millis(20)).await;
                let before = ticks.load(Ordering::Relaxed);
                run_long(|| std::thread::sleep(Duration::from_millis(300)));
                ticks.load(Ordering::Relaxed) - before
            })
            .await
            .expect("the long task")
        });
        // 300 ms at one tick per 5 ms is 60; inline, the ticker gets none.
        assert!(during >= 10, "only {during} ticks during the long work");
    }

    #[test]
    fn only_a_snapshot_is_long_work() {
        let snapshot = ServerInput::Protocol(Input::Received {
            from: zab_core::PeerId(2),
            msg: zab_core::Message::Snapshot {
                epoch: zab_core::Epoch(1),
                join: 1,
                zxid: Zxid(5),
                data: Bytes::new(),
            },
        });
        assert!(is_snapshot(&snapshot));
        assert!(!is_snapshot(&ServerInput::Tick));
        assert!(!is_snapshot(&ServerInput::Protocol(Input::PeerDown {
            peer: zab_core::PeerId(2)
        })));
    }
}
