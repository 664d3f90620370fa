//! Group commit: one writer thread owns the [`Store`]. Writes submitted while
//! an fsync runs wait for the next one, so N concurrent writers cost one
//! fdatasync per batch instead of N. Durability is published as "everything
//! through seq S" only after the batch's sync returned; after a failure the
//! writer stops for good (a failed fsync is never retried as if it worked).

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use zab_core::{PersistOp, PersistSeq};

use super::snapshot_file::SnapshotMeta;
use super::store::{SnapshotWriter, Store};

/// Called on the writer thread after each durable batch.
pub type OnDurable = Box<dyn FnMut(PersistSeq) + Send>;

#[derive(Debug, Default)]
struct Queue {
    ops: Vec<(PersistSeq, PersistOp)>,
    last_submitted: PersistSeq,
    durable: PersistSeq,
    failed: Option<String>,
    stop: bool,
    /// Batches written so far (each one fdatasync).
    batches: u64,
    /// Snapshots written elsewhere, to register with the store.
    adopt: Vec<SnapshotMeta>,
    /// The writer is waiting for work: only then does a submit wake it (a
    /// wake-up is a system call, and under load the writer is nearly
    /// always busy syncing; it looks at the queue before it waits again).
    writer_idle: bool,
}

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when work arrives (writer) or durability advances (waiters).
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic on the writer thread is already a fatal storage failure;
        // the queue itself stays consistent, so keep using it.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Debug)]
pub struct GroupCommit {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<Store>>,
    /// Hands out snapshot writers for the store's current generation.
    snapshots: Arc<Mutex<SnapshotWriter>>,
}

impl GroupCommit {
    pub fn start(store: Store, on_durable: OnDurable) -> GroupCommit {
        GroupCommit::start_measured(store, on_durable, None)
    }

    /// Like [`GroupCommit::start`], recording each batch's duration.
    pub fn start_measured(
        store: Store,
        mut on_durable: OnDurable,
        metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
    ) -> GroupCommit {
        let shared = Arc::new(Shared::default());
        let worker = shared.clone();
        let snapshots = Arc::new(Mutex::new(store.snapshot_writer()));
        let writers = snapshots.clone();
        let writer = std::thread::Builder::new()
            .name("zab-log-writer".into())
            .spawn(move || {
                let mut store = store;
                while let Some((batch, last, adopt)) = next_batch(&worker) {
                    let began = std::time::Instant::now();
                    let result = batch
                        .iter()
                        .try_for_each(|(_, op)| store.apply(op))
                        .and_then(|()| store.sync())
                        .and_then(|()| {
                            adopt
                                .into_iter()
                                .try_for_each(|m| store.adopt_snapshot(m).map(drop))
                        });
                    *writers.lock().unwrap_or_else(|e| e.into_inner()) = store.snapshot_writer();
                    if let (Some(m), false) = (&metrics, batch.is_empty()) {
                        m.fsync.observe(began.elapsed().as_secs_f64());
                    }
                    let mut q = worker.lock();
                    match result {
                        Ok(()) => {
                            q.durable = last;
                            q.batches += 1;
                        }
                        Err(e) => q.failed = Some(e.to_string()),
                    }
                    let failed = q.failed.is_some();
                    drop(q);
                    worker.changed.notify_all();
                    if failed {
                        break;
                    }
                    on_durable(last);
                }
                store
            })
            .expect("spawning the log writer thread");
        GroupCommit {
            shared,
            writer: Some(writer),
            snapshots,
        }
    }

    /// A writer for snapshot files in the store's current generation, to use
    /// on another thread; hand the result to [`GroupCommit::adopt_snapshot`].
    pub fn snapshot_writer(&self) -> SnapshotWriter {
        self.snapshots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Registers a written snapshot (with retention) on the writer thread.
    pub fn adopt_snapshot(&self, meta: SnapshotMeta) {
        self.shared.lock().adopt.push(meta);
        self.shared.changed.notify_all();
    }

    /// Queues a write; `seq` must follow the previous one.
    pub fn submit(&self, seq: PersistSeq, op: PersistOp) {
        let mut q = self.shared.lock();
        assert!(
            seq > q.last_submitted,
            "persist ops must be submitted in order"
        );
        q.last_submitted = seq;
        q.ops.push((seq, op));
        let wake = q.writer_idle;
        drop(q);
        if wake {
            self.shared.changed.notify_all();
        }
    }

    /// Queues a write built from the next sequence number, atomically (for
    /// concurrent producers, such as benchmarks).
    pub fn submit_next(&self, make: impl FnOnce(PersistSeq) -> PersistOp) -> PersistSeq {
        let mut q = self.shared.lock();
        let seq = PersistSeq(q.last_submitted.0 + 1);
        q.last_submitted = seq;
        let op = make(seq);
        q.ops.push((seq, op));
        drop(q);
        self.shared.changed.notify_all();
        seq
    }

    /// Blocks until everything through `seq` is durable, or storage failed.
    pub fn wait_durable(&self, seq: PersistSeq) -> Result<(), String> {
        let mut q = self.shared.lock();
        loop {
            if let Some(cause) = &q.failed {
                return Err(cause.clone());
            }
            if q.durable >= seq {
                return Ok(());
            }
            q = self
                .shared
                .changed
                .wait(q)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Why the writer stopped, if a write or fsync failed.
    pub fn failure(&self) -> Option<String> {
        self.shared.lock().failed.clone()
    }

    /// fdatasync batches so far.
    pub fn batches(&self) -> u64 {
        self.shared.lock().batches
    }

    /// Stops the writer after the queued writes and hands the store back.
    pub fn shutdown(mut self) -> Option<Store> {
        self.shared.lock().stop = true;
        self.shared.changed.notify_all();
        self.writer.take().and_then(|w| w.join().ok())
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.changed.notify_all();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

/// Waits for work; returns everything queued and the last seq in it, or None
/// when stopping with nothing left.
type Batch = (Vec<(PersistSeq, PersistOp)>, PersistSeq, Vec<SnapshotMeta>);

fn next_batch(shared: &Shared) -> Option<Batch> {
    let mut q = shared.lock();
    loop {
        if !q.ops.is_empty() || !q.adopt.is_empty() {
            let batch = std::mem::take(&mut q.ops);
            let adopt = std::mem::take(&mut q.adopt);
            let last = batch.last().map_or(q.durable, |(s, _)| *s);
            return Some((batch, last, adopt));
        }
        if q.stop || q.failed.is_some() {
            return None;
        }
        q.writer_idle = true;
        q = shared.changed.wait(q).unwrap_or_else(|e| e.into_inner());
        q.writer_idle = false;
    }
}
