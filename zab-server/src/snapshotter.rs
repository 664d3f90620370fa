//! Writes the periodic snapshots the core asks for, off the driver, one at a
//! time, at a lower CPU priority than the threads that serve.
//!
//! Why one at a time: each snapshot holds a frozen view of the tree, and
//! every change made while a view is alive copies what it touches, so
//! snapshots that overlap (a large tree under a write load takes longer to
//! write than the interval between two) would multiply memory and CPU. A
//! request that comes while one is being written waits; a newer one
//! replaces it (the older is superseded: its frozen view is dropped
//! unwritten). Skipping one loses nothing: the log on disk is only trimmed
//! once a snapshot is adopted.
//!
//! Why a lower priority: encoding a large tree is seconds of CPU. On a
//! small machine running several servers it competed with the write path
//! and raised write latency while it ran (measured at 200,000 znodes, 3
//! servers on 2 cores: p99 5× that of the seconds without a snapshot).
//! [`SNAPSHOT_NICE`] lets the scheduler serve requests first; the snapshot
//! still progresses (a niced thread keeps a share of the CPU, unlike an idle
//! class one), and the bound above keeps its lag from piling up.
//!
//! The encoding streams to the file through a buffer of [`CHUNK_BYTES`],
//! so a snapshot never holds the whole encoded state in memory.
//!
//! Why in small synced steps: a write waits for its quorum's log syncs,
//! and a sync queues behind whatever else the disk was given. Synced every
//! 16 MiB, a ~210 MB snapshot at 1M znodes went to disk in bursts, and
//! writes in the seconds it took had 2.3–2.6× the p99 of the others,
//! whether the leader or a follower wrote it (3 servers on 2 cores, one
//! disk); synced every 1 MiB, 1.27×, and capped at 64 MiB/s as well,
//! 1.28×. So the cap (`snapshot_write_mib_per_sec`) is off by default: it
//! is there for a disk that small steps alone do not spare, and it makes a
//! 2 GB snapshot (10M znodes) take 30 s at 64 MiB/s.
//!
//! The thread is not joined at shutdown: a stop while a snapshot is being
//! written leaves its temp file, which the next start removes (the
//! snapshot is simply not there; the log it would have covered is).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tracing::{debug, warn};
use zab_core::Zxid;

use crate::metrics::Metrics;
use crate::replica::FrozenState;
use crate::storage::group_commit::GroupCommit;
use crate::storage::SnapshotWriter;

/// The nice value of the snapshot thread (Linux; elsewhere not set): ten
/// steps below normal, about a tenth of a normal thread's CPU when both
/// want it all.
pub const SNAPSHOT_NICE: i32 = 10;

/// The default of `snapshot_write_mib_per_sec`: no cap (see the module
/// docs).
pub const SNAPSHOT_WRITE_MIB_PER_SEC_DEFAULT: u64 = 0;

/// Bytes encoded before each write to the file.
pub const CHUNK_BYTES: usize = 4 << 20;

/// A snapshot to write: its zxid, its state, and the writer taken when it
/// was asked for (so it carries the log generation of that moment).
type Job = (Zxid, FrozenState, SnapshotWriter);

/// What waits for the snapshot thread.
#[derive(Default)]
struct Queue {
    /// A thread is writing (and will take `next` when done).
    busy: bool,
    next: Option<Job>,
    /// Superseded states, dropped by the snapshot thread: the last
    /// reference to a frozen view may own many copied shards, and freeing
    /// them is not the driver's work.
    discard: Vec<FrozenState>,
}

/// Hands snapshots to a background thread (see the module docs).
#[derive(Clone)]
pub struct Snapshotter {
    queue: Arc<Mutex<Queue>>,
    gc: Arc<GroupCommit>,
    metrics: Arc<Metrics>,
    /// Bytes per second a snapshot is written at, at most (None: unpaced).
    pace: Option<u64>,
}

impl std::fmt::Debug for Snapshotter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshotter").finish_non_exhaustive()
    }
}

impl Snapshotter {
    pub fn new(gc: Arc<GroupCommit>, metrics: Arc<Metrics>) -> Snapshotter {
        Snapshotter {
            queue: Arc::default(),
            gc,
            metrics,
            pace: None,
        }
    }

    /// Writes snapshots at most `bytes_per_sec` (None or 0: unpaced), so
    /// the disk stays free for the log's syncs (see
    /// [`crate::storage::snapshot_file::SnapshotStream::paced`]).
    pub fn with_pace(mut self, bytes_per_sec: Option<u64>) -> Snapshotter {
        self.pace = bytes_per_sec.filter(|&b| b > 0);
        self
    }

    /// Writes the snapshot of `state` (at `zxid`) when the thread is free.
    pub fn submit(&self, zxid: Zxid, state: FrozenState) {
        let job = (zxid, state, self.gc.snapshot_writer().paced(self.pace));
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((older, state, _)) = q.next.replace(job) {
            debug!(superseded = %older, by = %zxid, "snapshot superseded before it was written");
            self.metrics.snapshots_superseded.inc();
            q.discard.push(state);
        }
        if q.busy {
            return;
        }
        q.busy = true;
        drop(q);
        let this = self.clone();
        let spawned = std::thread::Builder::new()
            .name("zab-snapshot".into())
            .spawn(move || this.run());
        if let Err(e) = spawned {
            warn!(error = %e, "cannot start the snapshot thread; the log is kept");
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            q.busy = false;
            q.next = None;
        }
    }

    /// The thread: writes what is queued until nothing is.
    fn run(&self) {
        lower_priority();
        // Should this thread panic, the next request must start a new one.
        let mut on_panic = IdleOnPanic {
            queue: &self.queue,
            armed: true,
        };
        loop {
            let (next, discard) = {
                let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                let discard = std::mem::take(&mut q.discard);
                match q.next.take() {
                    Some(next) => (next, discard),
                    None => {
                        // Under the lock that `submit` checks it with.
                        q.busy = false;
                        on_panic.armed = false;
                        return;
                    }
                }
            };
            drop(discard);
            self.write(next);
        }
    }

    fn write(&self, (zxid, state, writer): Job) {
        let began = Instant::now();
        match state.write_snapshot(&writer, zxid, CHUNK_BYTES) {
            Ok((meta, bytes)) => {
                self.metrics.snapshot.observe(began.elapsed().as_secs_f64());
                self.metrics
                    .snapshot_bytes
                    .set(i64::try_from(bytes).unwrap_or(i64::MAX));
                self.gc.adopt_snapshot(meta);
            }
            Err(e) => {
                self.metrics.snapshot_failures.inc();
                warn!(zxid = %zxid, error = %e, "snapshot failed; the log is kept");
            }
        }
    }
}

/// Marks the queue idle if the snapshot thread unwinds (a normal end does
/// so itself, under the lock): what it left is written by the next one.
struct IdleOnPanic<'a> {
    queue: &'a Mutex<Queue>,
    armed: bool,
}

impl Drop for IdleOnPanic<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.queue.lock().unwrap_or_else(|e| e.into_inner()).busy = false;
        }
    }
}

/// Lowers this thread's CPU priority to [`SNAPSHOT_NICE`] (best effort).
fn lower_priority() {
    // On Linux a thread id given to setpriority sets that thread's nice
    // value alone.
    #[cfg(target_os = "linux")]
    if let Err(e) =
        rustix::process::setpriority_process(Some(rustix::thread::gettid()), SNAPSHOT_NICE)
    {
        debug!(error = %e, "could not lower the snapshot thread's priority");
    }
}
