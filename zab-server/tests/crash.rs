//! Crash-consistency and fault-injection tests for durable storage
//! (`zab_server::storage`), over the in-memory, fault-injecting [`SimFs`]
//! (and, in two tests, the real file system).
//!
//! # What is checked
//!
//! **A. Crash at every I/O point** (`crash_points_*`). A workload (W1..W6) is
//! a list of [`Step`]s: a [`PersistOp`] given to `Store::apply`, a
//! `Store::sync`, or a `Store::write_snapshot`. A model ([`State`]) gives
//! the logical durable state after each prefix of the steps: epochs, the
//! snapshots recovery may start from, and the logged transactions. The
//! workload runs once to count its file-system operations `N`; then for
//! every `k` in `0..=N` it reruns on a fresh `SimFs` that crashes after `k`
//! operations, and the disk a power loss could leave (every [`CrashMode`],
//! several seeds) is recovered with `Store::open`. Recovery must succeed and
//! return exactly the state after some prefix of the steps, no shorter than
//! the last step whose durability was *reported* (a `sync`, an epoch write,
//! a TRUNC, a snapshot that returned `Ok`) and no longer than the step that
//! was running when the power went (REFERENCE §1.1, §1.3, §1.4, §1.8):
//! nothing acknowledged is lost, nothing never written appears, no damaged
//! record is returned as data, and epochs never go backwards. One
//! relaxation, argued at [`candidates`]: a crash inside a TRUNC may leave
//! the old history cut anywhere between the truncation point and its old
//! end. Then each recovered store must take the next append, sync it, and
//! recover again with it ([`check_stays_writable`]; not yet for W5, see
//! its test).
//!
//! **B. Directed tests**: torn tail cut (real file system), mid-log damage
//! refused with file and offset, a missing segment refused, a damaged
//! snapshot skipped, TRUNC across segments and below a snapshot, injected
//! ENOSPC/EIO (never retried, also through `GroupCommit`), missing or damaged
//! epoch files refused, snapshot-install atomicity.
//!
//! **Bugs these tests found** (all fixed, the tests kept as regressions): an
//! empty newest segment after a crash made TRUNC a silent no-op and later
//! appends a gap (`TxnLog::open` now removes it); TRUNC cut the log before
//! removing newer snapshots (`Store::truncate` now removes them first); a
//! snapshot ahead of the durable log left the log non-contiguous
//! (`Store::open` restarts the log after it); recovered payloads were views of
//! mapped segments that TRUNC rewrites in place (they are copied now).
//!
//! # Reading a failure
//!
//! Crash-point failures are collected and reported together; each line names
//! the workload, the crash point `k` (operations before the crash), the
//! [`CrashMode`] and seed, what was recovered and, when it matches no model
//! state, the acceptable states (`#i` = after the first `i` steps):
//!
//! ```text
//! W6 k=39 KeepSubset seed=1: recovered epochs 2/2 snap - log 1.1..=1.12 (12)
//!   acceptable (durable #16, executed #23): [#16 epochs 2/1 snaps [] log 1.1..=1.10 (10), ...]
//! ```
//!
//! Everything is deterministic: the same `k`, mode and seed reproduce a case.
//! Run `cargo test -p zab-server --release --test crash -- <test> --nocapture`
//! to see the per-workload counts.

use std::collections::BTreeSet;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use zab_core::{Epoch, History, PersistOp, PersistSeq, Txn, Zxid};
use zab_server::storage::group_commit::GroupCommit;
use zab_server::storage::sim_fs::{CrashMode, Fault, FaultOn, SimFs};
use zab_server::storage::txn_log::{self, LogConfig};
use zab_server::storage::{epoch_file, record, snapshot_file};
use zab_server::storage::{Fs, RealFs, Recovery, StorageError, Store, StoreConfig};

// ---------------------------------------------------------------------------
// Configuration and small helpers
// ---------------------------------------------------------------------------

const DIR: &str = "/data";

/// Seeds tried per random crash mode; `DropUnsynced` is deterministic.
const SEEDS_PER_MODE: u64 = 32;

const MODES: [CrashMode; 3] = [
    CrashMode::DropUnsynced,
    CrashMode::KeepSubset,
    CrashMode::TearAndFlip,
];

fn dir() -> &'static Path {
    Path::new(DIR)
}

/// Tiny segments so that every workload rolls, seals and removes several.
/// With the fixed-width payloads of [`payload`] (27-byte records) a segment
/// holds exactly 12 records.
fn cfg() -> StoreConfig {
    StoreConfig {
        log: LogConfig {
            segment_bytes_max: 300,
            prealloc_bytes: 512,
        },
        snapshots_kept: 2,
        ..StoreConfig::default()
    }
}

const RECORDS_PER_SEGMENT: u32 = 12;

fn z(e: u32, c: u32) -> Zxid {
    Zxid::new(Epoch(e), c)
}

/// Unique, fixed-width payload for zxid `e.c` (11 bytes).
fn payload(e: u32, c: u32) -> Bytes {
    Bytes::from(format!("tx-{e:02}-{c:04}"))
}

fn txn(e: u32, c: u32) -> Txn {
    Txn {
        zxid: z(e, c),
        payload: payload(e, c),
    }
}

fn append(e: u32, c: u32) -> PersistOp {
    PersistOp::Append(txn(e, c))
}

fn snap_content(zxid: Zxid) -> Bytes {
    Bytes::from(format!("state through {zxid}"))
}

/// `e.c` for messages (the hex `Display` of a zxid is hard to read).
fn zs(zxid: Zxid) -> String {
    format!("{}.{}", zxid.epoch().0, zxid.counter())
}

fn open(fs: &SimFs) -> Result<(Store, Recovery), StorageError> {
    Store::open(fs.shared(), dir(), cfg())
}

/// A fresh file system with its data directory, and a store on it.
fn fresh() -> (SimFs, Store) {
    let fs = SimFs::new();
    fs.create_dir_all(dir())
        .expect("creating the data directory");
    let (store, recovery) = open(&fs).expect("opening an empty directory");
    assert!(
        recovery.replay.is_empty(),
        "a fresh directory holds nothing"
    );
    (fs, store)
}

fn apply_all(store: &mut Store, ops: impl IntoIterator<Item = PersistOp>) {
    for op in ops {
        store
            .apply(&op)
            .expect("applying a write on a healthy store");
    }
}

/// Writes both epoch files for `e`, then appends `e.from..=e.to` and syncs.
fn epochs_and_synced_appends(store: &mut Store, e: u32, from: u32, to: u32) {
    apply_all(
        store,
        [
            PersistOp::AcceptedEpoch(Epoch(e)),
            PersistOp::CurrentEpoch(Epoch(e)),
        ],
    );
    apply_all(store, (from..=to).map(|c| append(e, c)));
    store.sync().expect("syncing on a healthy store");
}

/// The log segment files in the data directory, oldest first.
fn segment_files(fs: &SimFs) -> Vec<PathBuf> {
    let mut found: Vec<_> = fs
        .list(dir())
        .expect("listing the data directory")
        .into_iter()
        .filter_map(|n| txn_log::parse_segment_name(&n).map(|(g, first)| (g, first, n)))
        .collect();
    found.sort();
    found.into_iter().map(|(_, _, n)| dir().join(n)).collect()
}

/// The snapshot files in the data directory, oldest first.
fn snapshot_files(fs: &SimFs) -> Vec<PathBuf> {
    snapshot_file::list(fs, dir())
        .expect("listing snapshots")
        .into_iter()
        .map(|m| m.path)
        .collect()
}

/// Byte offset at which each record of a segment starts.
fn record_offsets(data: &Bytes) -> Vec<(Zxid, u64)> {
    let (records, bad) = txn_log::inspect_segment(data);
    assert!(
        bad.is_none(),
        "segment damaged before the test touched it: {bad:?}"
    );
    let mut offset = 0u64;
    records
        .iter()
        .map(|t| {
            let at = offset;
            offset += record::encoded_len(t) as u64;
            (t.zxid, at)
        })
        .collect()
}

/// Overwrites bytes of an existing file in place (not synced: the tests that
/// use it reopen the same, uncrashed file system, which reads current data).
fn overwrite(fs: &dyn Fs, path: &Path, offset: u64, bytes: &[u8]) {
    let mut file = fs.open(path).expect("opening a file to damage it");
    file.write_at(offset, bytes).expect("damaging a file");
}

fn flip_byte(fs: &dyn Fs, path: &Path, offset: u64) {
    let data = fs.read(path).expect("reading a file to damage it");
    let at = usize::try_from(offset).expect("small offsets");
    overwrite(fs, path, offset, &[data[at] ^ 0xA5]);
}

fn zxids(txns: &[Txn]) -> Vec<Zxid> {
    txns.iter().map(|t| t.zxid).collect()
}

fn assert_replay(recovery: &Recovery, expected: &[Txn], what: &str) {
    assert_eq!(
        recovery
            .replay
            .iter()
            .map(|t| zs(t.zxid))
            .collect::<Vec<_>>(),
        expected.iter().map(|t| zs(t.zxid)).collect::<Vec<_>>(),
        "{what}: replayed zxids"
    );
    assert_eq!(recovery.replay, expected, "{what}: replayed payloads");
}

// ---------------------------------------------------------------------------
// Workloads and the model
// ---------------------------------------------------------------------------

/// One thing a workload does to the store.
#[derive(Clone, Debug)]
enum Step {
    Op(PersistOp),
    Sync,
    Snapshot(Zxid, Bytes),
}

#[derive(Debug)]
struct Workload {
    name: &'static str,
    steps: Vec<Step>,
}

/// Builds a workload step by step.
#[derive(Debug, Default)]
struct Builder {
    steps: Vec<Step>,
}

impl Builder {
    fn op(mut self, op: PersistOp) -> Self {
        self.steps.push(Step::Op(op));
        self
    }

    fn epochs(self, e: u32) -> Self {
        self.op(PersistOp::AcceptedEpoch(Epoch(e)))
            .op(PersistOp::CurrentEpoch(Epoch(e)))
    }

    /// Appends `e.from..=e.to`, syncing after every `sync_every` appends and
    /// at the end.
    fn appends(mut self, e: u32, from: u32, to: u32, sync_every: u32) -> Self {
        for c in from..=to {
            self.steps.push(Step::Op(append(e, c)));
            if (c - from + 1) % sync_every == 0 {
                self.steps.push(Step::Sync);
            }
        }
        if !matches!(self.steps.last(), Some(Step::Sync)) {
            self.steps.push(Step::Sync);
        }
        self
    }

    /// Appends `e.from..=e.to` without syncing them.
    fn unsynced_appends(mut self, e: u32, from: u32, to: u32) -> Self {
        self.steps
            .extend((from..=to).map(|c| Step::Op(append(e, c))));
        self
    }

    /// A snapshot of the state through `zxid`, taken after a sync (so every
    /// earlier write is durable when it returns; see [`run_steps`]).
    fn snapshot(mut self, zxid: Zxid) -> Self {
        assert!(
            matches!(self.steps.last(), Some(Step::Sync)),
            "workloads take snapshots only right after a sync"
        );
        self.steps.push(Step::Snapshot(zxid, snap_content(zxid)));
        self
    }

    fn build(self, name: &'static str) -> Workload {
        Workload {
            name,
            steps: self.steps,
        }
    }
}

/// W1: one epoch, 40 appends, a sync every 3.
fn w1() -> Workload {
    Builder::default()
        .epochs(1)
        .appends(1, 1, 40, 3)
        .build("W1")
}

/// W2: 30 appends (three segments), TRUNC back to 1.17 (removes the third
/// segment, cuts the second), a new epoch and 20 appends in it.
fn w2() -> Workload {
    Builder::default()
        .epochs(1)
        .appends(1, 1, 30, 3)
        .op(PersistOp::Truncate { to: z(1, 17) })
        .epochs(2)
        .appends(2, 1, 20, 3)
        .build("W2")
}

/// W3: a follower receiving SNAP. 20 appends in epoch 1; then, as in Zab's
/// synchronization, acceptedEpoch 3 (NEWEPOCH), the snapshot at 3.5, which
/// the store writes in a new generation, currentEpoch 3 (NEWLEADER) and 15
/// appends 3.6..=3.20.
fn w3() -> Workload {
    Builder::default()
        .epochs(1)
        .appends(1, 1, 20, 3)
        .op(PersistOp::AcceptedEpoch(Epoch(3)))
        .op(PersistOp::InstallSnapshot {
            zxid: z(3, 5),
            data: snap_content(z(3, 5)),
        })
        .op(PersistOp::CurrentEpoch(Epoch(3)))
        .appends(3, 6, 20, 3)
        .build("W3")
}

/// W4: 60 appends with a snapshot every 12 (at a synced zxid that is not a
/// segment boundary); retention keeps 2 snapshots and purges old segments.
fn w4() -> Workload {
    let mut b = Builder::default().epochs(1);
    for round in 0..5u32 {
        let first = round * 12 + 1;
        b = b.appends(1, first, first + 11, 3);
        b = b.snapshot(z(1, first + 7));
    }
    b.build("W4")
}

/// W5: TRUNC with a snapshot newer than the truncation point (REFERENCE §1.4:
/// TRUNC removes it too). 36 appends, snapshots at 1.12 and 1.30, TRUNC to
/// 1.20, a new epoch and 10 appends in it.
fn w5() -> Workload {
    Builder::default()
        .epochs(1)
        .appends(1, 1, 12, 3)
        .snapshot(z(1, 12))
        .appends(1, 13, 30, 3)
        .snapshot(z(1, 30))
        .appends(1, 31, 36, 3)
        .op(PersistOp::Truncate { to: z(1, 20) })
        .epochs(2)
        .appends(2, 1, 10, 3)
        .build("W5")
}

/// W6: a follower synchronizing by DIFF. Broadcast in epoch 1 ends with two
/// appends not yet synced; acceptedEpoch 2 (NEWEPOCH) must not reach the disk
/// ahead of them. Then six transactions of epoch 1 from the leader, appended
/// but not synced, and currentEpoch 2 (NEWLEADER), which must make them
/// durable first (REFERENCE §1.1: append and fsync, then write
/// currentEpoch); then broadcast in epoch 2.
fn w6() -> Workload {
    Builder::default()
        .epochs(1)
        .appends(1, 1, 8, 3)
        .unsynced_appends(1, 9, 10)
        .op(PersistOp::AcceptedEpoch(Epoch(2)))
        .unsynced_appends(1, 11, 16)
        .op(PersistOp::CurrentEpoch(Epoch(2)))
        .appends(2, 1, 10, 3)
        .build("W6")
}

/// The logical durable state after a prefix of a workload.
#[derive(Clone, Debug, Default, PartialEq)]
struct State {
    accepted: Epoch,
    current: Epoch,
    /// Snapshots recovery may start from: written, in the current generation,
    /// and not removed by a TRUNC below them.
    snapshots: Vec<(Zxid, Bytes)>,
    /// The logged transactions of the current generation, in order.
    records: Vec<Txn>,
}

impl State {
    fn apply(&mut self, step: &Step) {
        match step {
            Step::Sync => {}
            Step::Snapshot(zxid, content) => self.snapshots.push((*zxid, content.clone())),
            Step::Op(PersistOp::AcceptedEpoch(e)) => self.accepted = *e,
            Step::Op(PersistOp::CurrentEpoch(e)) => self.current = *e,
            Step::Op(PersistOp::Append(t)) => self.records.push(t.clone()),
            Step::Op(PersistOp::Truncate { to }) => *self = self.cut_at(*to),
            Step::Op(PersistOp::InstallSnapshot { zxid, data }) => {
                self.snapshots = vec![(*zxid, data.clone())];
                self.records.clear();
            }
            Step::Op(PersistOp::Intact { .. }) => {}
        }
    }

    /// This state with its history cut after `to`.
    fn cut_at(&self, to: Zxid) -> State {
        State {
            accepted: self.accepted,
            current: self.current,
            snapshots: self
                .snapshots
                .iter()
                .filter(|(z, _)| *z <= to)
                .cloned()
                .collect(),
            records: self
                .records
                .iter()
                .filter(|t| t.zxid <= to)
                .cloned()
                .collect(),
        }
    }

    fn last(&self) -> Zxid {
        let snap = self.snapshots.iter().map(|(z, _)| *z).max();
        let log = self.records.last().map(|t| t.zxid);
        snap.max(log).unwrap_or(Zxid::ZERO)
    }

    fn describe(&self) -> String {
        let snaps: Vec<_> = self.snapshots.iter().map(|(z, _)| zs(*z)).collect();
        format!(
            "epochs {}/{} snaps [{}] {}",
            self.accepted.0,
            self.current.0,
            snaps.join(","),
            describe_txns(&self.records)
        )
    }
}

fn describe_txns(txns: &[Txn]) -> String {
    match (txns.first(), txns.last()) {
        (Some(a), Some(b)) => format!("log {}..={} ({})", zs(a.zxid), zs(b.zxid), txns.len()),
        _ => "log empty".to_owned(),
    }
}

/// `states[i]` is the state after the first `i` steps.
fn model(w: &Workload) -> Vec<State> {
    let mut states = vec![State::default()];
    for step in &w.steps {
        let mut next = states.last().expect("starts non-empty").clone();
        next.apply(step);
        states.push(next);
    }
    states
}

// ---------------------------------------------------------------------------
// Running a workload up to a crash
// ---------------------------------------------------------------------------

/// How far a (possibly crashed) run got, as indices into [`model`]'s states.
#[derive(Debug)]
struct Progress {
    /// Everything through this state was reported durable.
    durable: usize,
    /// The state the last attempted step would have produced: the crash may
    /// have let that step take effect, wholly or in part.
    executed: usize,
    /// The step that failed, if one did.
    failed_step: Option<usize>,
}

fn run_step(store: &mut Store, step: &Step) -> Result<(), StorageError> {
    match step {
        Step::Op(op) => store.apply(op),
        Step::Sync => store.sync(),
        Step::Snapshot(zxid, content) => store.write_snapshot(*zxid, content),
    }
}

/// Runs `w` on `fs` until a step fails. What a successful step reports as
/// durable follows `Store`'s contract: `sync` makes every earlier write
/// durable; an epoch write syncs the log first and is itself durable; TRUNC
/// and a snapshot install are durable when they return; `write_snapshot` is
/// durable itself but does not sync the log, so it extends the durable prefix
/// only when everything before it already was (workloads take snapshots right
/// after a sync).
fn run_steps(fs: &SimFs, w: &Workload) -> Progress {
    let Ok((mut store, _)) = open(fs) else {
        return Progress {
            durable: 0,
            executed: 0,
            failed_step: None,
        };
    };
    let mut durable = 0;
    for (i, step) in w.steps.iter().enumerate() {
        if let Err(e) = run_step(&mut store, step) {
            assert!(
                fs.is_crashed(),
                "{}: step {i} ({step:?}) failed without a crash: {e}",
                w.name
            );
            return Progress {
                durable,
                executed: i + 1,
                failed_step: Some(i),
            };
        }
        let reports_durable = match step {
            Step::Op(PersistOp::Append(_)) => false,
            Step::Snapshot(..) => durable == i,
            Step::Sync | Step::Op(_) => true,
        };
        if reports_durable {
            durable = i + 1;
        }
    }
    Progress {
        durable,
        executed: w.steps.len(),
        failed_step: None,
    }
}

/// The states a recovery after a crash at `progress` may legitimately return,
/// with a label each.
///
/// Every state between the last reported-durable one and the one the running
/// step would have produced. Plus, when the crash hit a TRUNC: the state
/// before it with the history cut at any zxid between the truncation point and
/// the old end. TRUNC removes whole segments newest first, then cuts the one
/// holding the truncation point (then, today, removes newer snapshots); a
/// crash in between leaves a prefix of the old history that still contains
/// the truncation point, never a gap and never anything new. Those records
/// were going to be removed and were never committed (the leader's history
/// lacks them), so losing some of them early is safe; the node redoes the
/// synchronization after it restarts. (A cut state may also start from a
/// snapshot above the cut's log end when TRUNC crashed before removing that
/// snapshot; the model cannot tell that apart, the `Usage::Append` check
/// does, see `crash_points_w5_recovered_store_stays_writable`.)
fn candidates(w: &Workload, states: &[State], progress: &Progress) -> Vec<(String, State)> {
    let mut out: Vec<_> = (progress.durable..=progress.executed)
        .map(|i| (format!("#{i}"), states[i].clone()))
        .collect();
    if let Some(i) = progress.failed_step {
        if let Step::Op(PersistOp::Truncate { to }) = &w.steps[i] {
            let before = &states[i];
            let cuts: BTreeSet<Zxid> = before
                .records
                .iter()
                .map(|t| t.zxid)
                .filter(|z| z > to && *z < before.last())
                .collect();
            for cut in cuts {
                out.push((format!("#{i} cut at {}", zs(cut)), before.cut_at(cut)));
            }
        }
    }
    out
}

/// What a recovery returned, in the model's terms.
fn describe_recovery(r: &Recovery) -> String {
    let snap = r
        .snapshot
        .as_ref()
        .map_or("-".to_owned(), |s| zs(s.meta.zxid));
    format!(
        "epochs {}/{} snap {} {}",
        r.restored.accepted_epoch.0,
        r.restored.current_epoch.0,
        snap,
        describe_txns(&r.replay)
    )
}

/// Whether recovery `r` is exactly state `s`: same epochs, a snapshot `s`
/// allows (none only if `s` has none), and the replay equal to `s`'s records
/// after that snapshot, payloads included.
fn matches(r: &Recovery, s: &State) -> bool {
    let epochs = r.restored.accepted_epoch == s.accepted && r.restored.current_epoch == s.current;
    let base = match &r.snapshot {
        None if s.snapshots.is_empty() => Zxid::ZERO,
        None => return false,
        Some(snap) => {
            let known = s
                .snapshots
                .iter()
                .any(|(z, c)| *z == snap.meta.zxid && *c == snap.content);
            if !known {
                return false;
            }
            snap.meta.zxid
        }
    };
    let expected: Vec<&Txn> = s.records.iter().filter(|t| t.zxid > base).collect();
    epochs && r.replay.iter().eq(expected)
}

/// Checks that do not depend on the model: the core's restored state agrees
/// with the snapshot and replay it comes with, and nothing was damaged.
fn check_self_consistent(r: &Recovery, store: &Store) -> Result<(), String> {
    let base = r.snapshot.as_ref().map_or(Zxid::ZERO, |s| s.meta.zxid);
    let mut history = History::starting_after(base);
    for t in &r.replay {
        history
            .append(t.zxid)
            .map_err(|g| format!("replay is not gap-free: {g}"))?;
    }
    if history != r.restored.history {
        return Err(format!(
            "restored history {:?} does not match snapshot + replay {history:?}",
            r.restored.history
        ));
    }
    if store.epochs() != (r.restored.accepted_epoch, r.restored.current_epoch) {
        return Err(format!(
            "store epochs {:?} differ from the restored ones",
            store.epochs()
        ));
    }
    if !r.damaged_snapshots.is_empty() {
        return Err(format!(
            "snapshots are written atomically, yet recovery found damaged ones: {:?}",
            r.damaged_snapshots
        ));
    }
    Ok(())
}

/// Appends and syncs the transaction that naturally follows the recovered
/// state, then recovers again (after a power loss that keeps only synced
/// data) and expects the same state plus that transaction.
fn check_stays_writable(fs: &SimFs, store: Store, r: &Recovery) -> Result<(), String> {
    let last = r.restored.history.last();
    let epoch = r.restored.current_epoch.max(last.epoch()).max(Epoch(1));
    let counter = if epoch == last.epoch() {
        last.counter() + 1
    } else {
        1
    };
    let next = Txn {
        zxid: Zxid::new(epoch, counter),
        payload: Bytes::from_static(b"written after recovery"),
    };
    // A node that never accepted an epoch writes one before its first append.
    let mut ops = Vec::new();
    if r.restored.accepted_epoch == Epoch(0) {
        ops.push(PersistOp::AcceptedEpoch(epoch));
    }
    if r.restored.current_epoch == Epoch(0) {
        ops.push(PersistOp::CurrentEpoch(epoch));
    }
    ops.push(PersistOp::Append(next.clone()));
    let mut store = store;
    let written = panic::catch_unwind(AssertUnwindSafe(|| {
        ops.iter()
            .try_for_each(|op| store.apply(op))
            .and_then(|()| store.sync())
    }));
    drop(store);
    match written {
        Err(_) => {
            return Err(format!(
                "appending {} after recovery panicked",
                zs(next.zxid)
            ))
        }
        Ok(Err(e)) => {
            return Err(format!(
                "appending {} after recovery failed: {e}",
                zs(next.zxid)
            ))
        }
        Ok(Ok(())) => {}
    }
    let after = fs.power_loss(CrashMode::DropUnsynced, 0);
    let (_, again) = open(&after).map_err(|e| format!("reopening after the append failed: {e}"))?;
    let same_snapshot =
        again.snapshot.as_ref().map(|s| s.meta.zxid) == r.snapshot.as_ref().map(|s| s.meta.zxid);
    let mut expected = r.replay.clone();
    expected.push(next);
    if !same_snapshot || again.replay != expected {
        return Err(format!(
            "after appending {} and reopening: {} (expected the previous recovery plus it)",
            zs(expected.last().map_or(Zxid::ZERO, |t| t.zxid)),
            describe_recovery(&again)
        ));
    }
    Ok(())
}

/// TRUNC to the middle of the recovered log, a new epoch and an append in it
/// (what a restarted follower on a dead branch does next), then recover
/// again: expects the recovered log cut at the truncation point plus the new
/// transaction. Skipped when the recovered log holds fewer than two records.
fn check_truncate_after_recovery(fs: &SimFs, r: &Recovery) -> Result<(), String> {
    if r.replay.len() < 2 {
        return Ok(());
    }
    let keep = (r.replay.len() - 1) / 2;
    let to = r.replay[keep].zxid;
    let last = r.restored.history.last();
    let epoch = Epoch(r.restored.accepted_epoch.max(last.epoch()).0 + 1);
    let next = Txn {
        zxid: Zxid::new(epoch, 1),
        payload: Bytes::from_static(b"after TRUNC"),
    };
    let ops = [
        PersistOp::Truncate { to },
        PersistOp::AcceptedEpoch(epoch),
        PersistOp::CurrentEpoch(epoch),
        PersistOp::Append(next.clone()),
    ];
    let (mut store, _) =
        open(fs).map_err(|e| format!("reopening a recovered store failed: {e}"))?;
    let written = panic::catch_unwind(AssertUnwindSafe(|| {
        ops.iter()
            .try_for_each(|op| store.apply(op))
            .and_then(|()| store.sync())
    }));
    drop(store);
    match written {
        Err(_) => return Err(format!("TRUNC to {} after recovery panicked", zs(to))),
        Ok(Err(e)) => return Err(format!("TRUNC to {} after recovery failed: {e}", zs(to))),
        Ok(Ok(())) => {}
    }
    let (_, again) = open(&fs.power_loss(CrashMode::DropUnsynced, 0))
        .map_err(|e| format!("reopening after TRUNC to {} failed: {e}", zs(to)))?;
    let mut expected = r.replay[..=keep].to_vec();
    expected.push(next);
    let same_snapshot =
        again.snapshot.as_ref().map(|s| s.meta.zxid) == r.snapshot.as_ref().map(|s| s.meta.zxid);
    if !same_snapshot || again.replay != expected || again.restored.current_epoch != epoch {
        return Err(format!(
            "after TRUNC to {}, epoch {} and one append: recovered {} (expected {} log {}..={})",
            zs(to),
            epoch.0,
            describe_recovery(&again),
            describe_txns(&expected[..=keep]),
            zs(r.replay[0].zxid),
            zs(to),
        ));
    }
    Ok(())
}

/// What to do with each recovered store besides comparing it with the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Usage {
    /// Nothing more.
    Inspect,
    /// Append and sync the next transaction, then recover again.
    Append,
    /// Also, on a copy of the recovered disk: TRUNC, a new epoch and an append.
    AppendAndTruncate,
}

#[derive(Debug, Default)]
struct Tally {
    crash_points: u64,
    cases: u64,
    recoveries: u64,
    partial_truncations: u64,
    failures: Vec<String>,
}

/// Part A for one workload: every crash point, mode and seed. Returns the
/// counts and the failing cases; [`assert_no_failures`] turns them into a
/// verdict.
fn crash_at_every_point(w: &Workload, usage: Usage) -> Tally {
    let started = Instant::now();
    let states = model(w);
    let reference = SimFs::new();
    reference
        .create_dir_all(dir())
        .expect("creating the data directory");
    let full = run_steps(&reference, w);
    assert_eq!(
        full.failed_step, None,
        "{}: the workload must run without a crash",
        w.name
    );
    assert_eq!(
        full.durable,
        w.steps.len(),
        "{}: a workload ends with a sync",
        w.name
    );
    let total_ops = reference.ops();
    assert!(total_ops > 50, "{}: only {total_ops} operations", w.name);

    let mut tally = Tally::default();
    for k in 0..=total_ops {
        let fs = SimFs::new();
        fs.create_dir_all(dir())
            .expect("creating the data directory");
        fs.crash_after(k);
        let progress = run_steps(&fs, w);
        let allowed = candidates(w, &states, &progress);
        tally.crash_points += 1;
        for mode in MODES {
            tally.cases += 1;
            let seeds = if mode == CrashMode::DropUnsynced {
                1
            } else {
                SEEDS_PER_MODE
            };
            for seed in 0..seeds {
                tally.recoveries += 1;
                let ctx = format!("{} k={k} {mode:?} seed={seed}", w.name);
                let disk = fs.power_loss(mode, seed);
                if let Err(e) = check_one(&disk, &states, &progress, &allowed, usage, &mut tally) {
                    tally.failures.push(format!("{ctx}: {e}"));
                }
            }
        }
    }
    println!(
        "{}: {} steps, {total_ops} I/O ops; {} crash points x {} modes = {} cases, \
         {} recoveries checked ({} partial-TRUNC states){} in {:.2?}",
        w.name,
        w.steps.len(),
        tally.crash_points,
        MODES.len(),
        tally.cases,
        tally.recoveries,
        tally.partial_truncations,
        match usage {
            Usage::Inspect => "",
            Usage::Append => ", each appended to and reopened",
            Usage::AppendAndTruncate => ", each appended to, truncated and reopened",
        },
        started.elapsed()
    );
    tally
}

fn check_one(
    disk: &SimFs,
    states: &[State],
    progress: &Progress,
    allowed: &[(String, State)],
    usage: Usage,
    tally: &mut Tally,
) -> Result<(), String> {
    let (store, r) = open(disk).map_err(|e| format!("recovery failed: {e}"))?;
    check_self_consistent(&r, &store)?;
    let reported = &states[progress.durable];
    if r.restored.accepted_epoch < reported.accepted || r.restored.current_epoch < reported.current
    {
        return Err(format!(
            "epochs went backwards: recovered {}/{}, reported durable {}/{}",
            r.restored.accepted_epoch.0,
            r.restored.current_epoch.0,
            reported.accepted.0,
            reported.current.0
        ));
    }
    let Some((label, _)) = allowed.iter().find(|(_, s)| matches(&r, s)) else {
        let list: Vec<_> = allowed
            .iter()
            .map(|(l, s)| format!("{l} {}", s.describe()))
            .collect();
        return Err(format!(
            "recovered {}\n    acceptable (durable #{}, executed #{}): [{}]",
            describe_recovery(&r),
            progress.durable,
            progress.executed,
            list.join(", ")
        ));
    };
    if label.contains("cut at") {
        tally.partial_truncations += 1;
    }
    if usage == Usage::AppendAndTruncate {
        check_truncate_after_recovery(&disk.power_loss(CrashMode::DropUnsynced, 0), &r)?;
    }
    if usage != Usage::Inspect {
        check_stays_writable(disk, store, &r)?;
    }
    Ok(())
}

fn assert_no_failures(w: &Workload, tally: &Tally) {
    assert!(
        tally.cases >= 150,
        "{}: only {} cases: the crash test is not exercising the workload",
        w.name,
        tally.cases
    );
    if !tally.failures.is_empty() {
        let shown: Vec<_> = tally.failures.iter().take(12).cloned().collect();
        panic!(
            "{}: {} of {} recoveries wrong (first {} shown):\n  {}",
            w.name,
            tally.failures.len(),
            tally.recoveries,
            shown.len(),
            shown.join("\n  ")
        );
    }
}

// ---------------------------------------------------------------------------
// A. Crash at every I/O point
// ---------------------------------------------------------------------------

#[test]
fn crash_points_w1_appends_and_syncs() {
    let w = w1();
    assert_no_failures(&w, &crash_at_every_point(&w, Usage::Append));
}

#[test]
fn crash_points_w2_truncate_across_segments_then_new_epoch() {
    let w = w2();
    let tally = crash_at_every_point(&w, Usage::Append);
    assert!(
        tally.partial_truncations > 0,
        "W2 must crash inside its TRUNC"
    );
    assert_no_failures(&w, &tally);
}

#[test]
fn crash_points_w3_snapshot_install() {
    let w = w3();
    assert_no_failures(&w, &crash_at_every_point(&w, Usage::Append));
}

#[test]
fn crash_points_w4_snapshots_and_retention() {
    let w = w4();
    assert_no_failures(&w, &crash_at_every_point(&w, Usage::Append));
}

/// W5's recovered states all match the model, but a crash inside its TRUNC
/// can leave a store that the next append breaks, so the stores are not
/// written to here: see the ignored
/// `crash_points_w5_recovered_store_stays_writable`.
#[test]
fn crash_points_w5_truncate_below_a_snapshot() {
    let w = w5();
    let tally = crash_at_every_point(&w, Usage::Inspect);
    assert!(
        tally.partial_truncations > 0,
        "W5 must crash inside its TRUNC"
    );
    assert_no_failures(&w, &tally);
}

#[test]
fn crash_points_w6_diff_then_newleader() {
    let w = w6();
    assert_no_failures(&w, &crash_at_every_point(&w, Usage::Append));
}

#[test]
fn crash_points_w5_recovered_store_stays_writable() {
    let w = w5();
    assert_no_failures(&w, &crash_at_every_point(&w, Usage::Append));
}

/// Every recovered store must also survive what a restarted follower on a
/// dead branch does next: TRUNC, a new epoch, an append.
#[test]
fn crash_points_recovered_store_accepts_truncation() {
    let mut failed = Vec::new();
    for w in [w1(), w2(), w3(), w4(), w6()] {
        let tally = crash_at_every_point(&w, Usage::AppendAndTruncate);
        if !tally.failures.is_empty() {
            failed.push(format!(
                "{}: {} of {} recoveries; first: {}",
                w.name,
                tally.failures.len(),
                tally.recoveries,
                tally.failures[0]
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "recovered stores that mishandle TRUNC:\n  {}",
        failed.join("\n  ")
    );
}

/// The model's own sanity: each workload reaches the states it is meant to
/// test, so the crash tests cannot pass by testing nothing.
#[test]
fn workloads_reach_their_intended_states() {
    let last = |w: &Workload| model(w).pop().expect("non-empty");
    let s1 = last(&w1());
    assert_eq!(
        zxids(&s1.records),
        (1..=40).map(|c| z(1, c)).collect::<Vec<_>>()
    );
    let s2 = last(&w2());
    let expected: Vec<_> = (1..=17)
        .map(|c| z(1, c))
        .chain((1..=20).map(|c| z(2, c)))
        .collect();
    assert_eq!(zxids(&s2.records), expected);
    assert_eq!((s2.accepted, s2.current), (Epoch(2), Epoch(2)));
    let s3 = last(&w3());
    assert_eq!(s3.snapshots.len(), 1);
    assert_eq!(
        zxids(&s3.records),
        (6..=20).map(|c| z(3, c)).collect::<Vec<_>>()
    );
    let s4 = last(&w4());
    assert_eq!(
        s4.snapshots.len(),
        5,
        "the model keeps every snapshot as a valid base"
    );
    let s5 = last(&w5());
    assert_eq!(
        s5.snapshots.iter().map(|(z, _)| *z).collect::<Vec<_>>(),
        vec![z(1, 12)],
        "TRUNC to 1.20 invalidates the snapshot at 1.30"
    );
    let s6 = last(&w6());
    assert_eq!(s6.records.len(), 26);
}

/// Each workload, run without a crash, exercises the file-level mechanics it
/// is meant to: rolls, TRUNC across segments, a new generation, retention.
#[test]
fn workloads_exercise_their_file_layouts() {
    let run = |w: &Workload| {
        let fs = SimFs::new();
        fs.create_dir_all(dir()).expect("mkdir");
        let progress = run_steps(&fs, w);
        assert_eq!(progress.failed_step, None, "{}", w.name);
        let names = fs.list(dir()).expect("listing");
        let (_, r) = open(&fs).expect("reopening after a clean run");
        let states = model(w);
        let end = states.last().expect("non-empty");
        assert!(
            matches(&r, end),
            "{}: a clean run recovers its final state",
            w.name
        );
        (fs, names)
    };
    // A segment of generation 0 whose first record is (e, c), by its name.
    let seg = |e, c| {
        let first = z(e, c);
        move |names: &Vec<String>| {
            names
                .iter()
                .any(|n| txn_log::parse_segment_name(n).is_some_and(|(g, f)| g == 0 && f == first))
        }
    };
    let snap = |e, c| snapshot_file::file_name(0, z(e, c));

    let (fs, _) = run(&w1());
    assert_eq!(segment_files(&fs).len(), 4, "W1: 40 records in 4 segments");
    let (_, names) = run(&w2());
    assert!(seg(1, 13)(&names), "W2: {names:?}");
    assert!(
        !seg(1, 25)(&names),
        "W2: TRUNC removed the third segment: {names:?}"
    );
    let (fs, names) = run(&w3());
    assert!(
        names.contains(&snapshot_file::file_name(1, z(3, 5))),
        "W3: {names:?}"
    );
    assert!(
        segment_files(&fs)
            .iter()
            .all(|p| p.to_string_lossy().contains("log.00000001.")),
        "W3: only generation-1 segments remain: {names:?}"
    );
    let (_, names) = run(&w4());
    assert_eq!(
        snapshot_files_in(&names).len(),
        2,
        "W4: retention: {names:?}"
    );
    assert!(
        !seg(1, 1)(&names),
        "W4: purged the oldest segment: {names:?}"
    );
    let (_, names) = run(&w5());
    assert!(
        names.contains(&snap(1, 12)) && !names.contains(&snap(1, 30)),
        "W5: {names:?}"
    );
}

fn snapshot_files_in(names: &[String]) -> Vec<&String> {
    names
        .iter()
        .filter(|n| snapshot_file::parse_name(n).is_some())
        .collect()
}

// ---------------------------------------------------------------------------
// B. Directed tests
// ---------------------------------------------------------------------------

/// A unique directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path =
            std::env::temp_dir().join(format!("zab-crash-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).expect("creating a temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// B1, on the real file system: garbage after the last synced record (half of
/// a record whose fsync never completed) is cut off and reported, once.
#[test]
fn torn_tail_is_cut_and_reported_once() {
    let tmp = TempDir::new("torn-tail");
    let fs = RealFs::shared();
    let (mut store, _) =
        Store::open(fs.clone(), &tmp.0, cfg()).expect("opening an empty directory");
    epochs_and_synced_appends(&mut store, 1, 1, 5);
    store.apply(&append(1, 6)).expect("buffered, never synced");
    drop(store);

    let segments = {
        let mut names: Vec<_> = fs
            .list(&tmp.0)
            .expect("listing")
            .into_iter()
            .filter(|n| txn_log::parse_segment_name(n).is_some())
            .collect();
        names.sort();
        names
    };
    assert_eq!(segments.len(), 1, "five records fit in one segment");
    let seg = tmp.0.join(&segments[0]);
    let data = fs.read(&seg).expect("reading the segment");
    let end: u64 = txn_log::inspect_segment(&data)
        .0
        .iter()
        .map(|t| record::encoded_len(t) as u64)
        .sum();
    drop(data);
    let mut torn = Vec::new();
    record::encode(&txn(1, 6), &mut torn);
    torn.truncate(torn.len() / 2 + 3);
    overwrite(fs.as_ref(), &seg, end, &torn);

    let (store, first) = Store::open(fs.clone(), &tmp.0, cfg()).expect("recovering a torn tail");
    let expected: Vec<_> = (1..=5).map(|c| txn(1, c)).collect();
    assert_replay(&first, &expected, "after the torn write");
    assert!(
        first.truncated_bytes >= torn.len() as u64,
        "the torn bytes are cut: truncated_bytes {}",
        first.truncated_bytes
    );
    drop(store);
    let len = std::fs::metadata(&seg).expect("segment still there").len();
    assert_eq!(
        len, end,
        "the segment is cut right after the last good record"
    );
    drop(first);

    let (_, second) = Store::open(fs, &tmp.0, cfg()).expect("reopening");
    assert_eq!(
        second.truncated_bytes, 0,
        "nothing left to cut the second time"
    );
    assert_replay(&second, &expected, "second reopen");
}

/// B4: a damaged newest snapshot is skipped and reported; recovery starts from
/// the older one and replays the log after it.
#[test]
fn damaged_newest_snapshot_falls_back_to_older() {
    let (fs, mut store) = fresh();
    epochs_and_synced_appends(&mut store, 1, 1, 30);
    store
        .write_snapshot(z(1, 10), &snap_content(z(1, 10)))
        .expect("snapshot 1.10");
    store
        .write_snapshot(z(1, 20), &snap_content(z(1, 20)))
        .expect("snapshot 1.20");
    drop(store);
    let snaps = snapshot_files(&fs);
    assert_eq!(snaps.len(), 2, "{snaps:?}");
    let newest = &snaps[1];
    let len = fs.read(newest).expect("reading the snapshot").len() as u64;
    flip_byte(&fs, newest, len - 2);

    let (_, r) = open(&fs).expect("recovery falls back to the older snapshot");
    let snap = r.snapshot.as_ref().expect("the older snapshot is used");
    assert_eq!(snap.meta.zxid, z(1, 10));
    assert_eq!(snap.content, snap_content(z(1, 10)));
    assert_eq!(r.damaged_snapshots, vec![newest.clone()]);
    let expected: Vec<_> = (11..=30).map(|c| txn(1, c)).collect();
    assert_replay(&r, &expected, "replay after the older snapshot");
}

/// B5a: TRUNC across segment boundaries, above a snapshot: only records
/// through the truncation point survive, durably, and segments wholly after it
/// are gone.
#[test]
fn truncate_across_segments_above_a_snapshot() {
    let (fs, mut store) = fresh();
    epochs_and_synced_appends(&mut store, 1, 1, 10);
    store
        .write_snapshot(z(1, 10), &snap_content(z(1, 10)))
        .expect("snapshot 1.10");
    apply_all(&mut store, (11..=45).map(|c| append(1, c)));
    store.sync().expect("sync");
    let before = segment_files(&fs);
    assert_eq!(before.len(), 4, "45 records, 12 per segment: {before:?}");
    let to = z(1, 15);
    store
        .apply(&PersistOp::Truncate { to })
        .expect("truncating");
    let after = segment_files(&fs);
    assert_eq!(
        after,
        before[..2].to_vec(),
        "segments starting after {} removed",
        zs(to)
    );
    drop(store);

    for (mode, seed) in [
        (CrashMode::DropUnsynced, 0),
        (CrashMode::TearAndFlip, 1),
        (CrashMode::KeepSubset, 2),
    ] {
        let (_, r) = open(&fs.power_loss(mode, seed)).expect("recovering after TRUNC");
        assert_eq!(r.snapshot.as_ref().map(|s| s.meta.zxid), Some(z(1, 10)));
        let expected: Vec<_> = (11..=15).map(|c| txn(1, c)).collect();
        assert_replay(&r, &expected, &format!("after TRUNC to 1.15, {mode:?}"));
    }
}

/// B5b: TRUNC below a snapshot removes the snapshot durably (REFERENCE §1.4);
/// recovery does not bring it back.
#[test]
fn truncate_below_a_snapshot_removes_it() {
    let (fs, mut store) = fresh();
    epochs_and_synced_appends(&mut store, 1, 1, 30);
    store
        .write_snapshot(z(1, 8), &snap_content(z(1, 8)))
        .expect("snapshot 1.8");
    store
        .write_snapshot(z(1, 25), &snap_content(z(1, 25)))
        .expect("snapshot 1.25");
    let to = z(1, 20);
    store
        .apply(&PersistOp::Truncate { to })
        .expect("truncating");
    let names = fs.list(dir()).expect("listing");
    let newer = snapshot_file::file_name(0, z(1, 25));
    assert!(
        !names.contains(&newer),
        "{newer} must be gone after TRUNC: {names:?}"
    );
    assert!(
        names.contains(&snapshot_file::file_name(0, z(1, 8))),
        "the older snapshot stays"
    );
    drop(store);

    for (mode, seed) in [
        (CrashMode::DropUnsynced, 0),
        (CrashMode::KeepSubset, 1),
        (CrashMode::TearAndFlip, 2),
    ] {
        let disk = fs.power_loss(mode, seed);
        assert!(
            !disk.list(dir()).expect("listing").contains(&newer),
            "{mode:?}: snapshot came back"
        );
        let (_, r) = open(&disk).expect("recovering after TRUNC");
        assert_eq!(
            r.snapshot.as_ref().map(|s| s.meta.zxid),
            Some(z(1, 8)),
            "{mode:?}"
        );
        let expected: Vec<_> = (9..=20).map(|c| txn(1, c)).collect();
        assert_replay(&r, &expected, &format!("{mode:?}"));
    }
}

/// B6 (ENOSPC): the write of a sync fails; the store stops for good and
/// recovery holds exactly what was reported durable before.
#[test]
fn enospc_on_write_stops_the_store() {
    fault_stops_the_store(Fault::NoSpace, FaultOn::Write);
}

/// B6 (EIO): the fsync fails; it is never retried.
#[test]
fn eio_on_fsync_stops_the_store() {
    fault_stops_the_store(Fault::Io, FaultOn::Sync);
}

fn fault_stops_the_store(fault: Fault, on: FaultOn) {
    let (fs, mut store) = fresh();
    epochs_and_synced_appends(&mut store, 1, 1, 5);
    apply_all(&mut store, [append(1, 6), append(1, 7)]);
    fs.fail_next(fault, on);
    let err = store.sync().expect_err("the injected fault surfaces");
    assert!(matches!(err, StorageError::Io { .. }), "{err:?}");
    assert!(
        store.failure().is_some(),
        "the store records why it stopped"
    );

    let ops = fs.ops();
    let later: [(&str, Result<(), StorageError>); 5] = [
        ("sync", store.sync()),
        ("append", store.apply(&append(1, 8))),
        (
            "acceptedEpoch",
            store.apply(&PersistOp::AcceptedEpoch(Epoch(2))),
        ),
        (
            "truncate",
            store.apply(&PersistOp::Truncate { to: z(1, 3) }),
        ),
        ("snapshot", store.write_snapshot(z(1, 5), b"state")),
    ];
    for (what, result) in later {
        assert!(
            matches!(result, Err(StorageError::Failed { .. })),
            "{what} after a failed {on:?}: {result:?}"
        );
    }
    assert_eq!(
        fs.ops(),
        ops,
        "nothing is written or synced after a failure (no retry)"
    );
    drop(store);

    let reported: Vec<_> = (1..=5).map(|c| txn(1, c)).collect();
    let (_, r) = open(&fs.power_loss(CrashMode::DropUnsynced, 0)).expect("recovering");
    assert_replay(&r, &reported, "exactly what was reported durable");
    assert_eq!(
        (r.restored.accepted_epoch, r.restored.current_epoch),
        (Epoch(1), Epoch(1))
    );
    for seed in 0..8 {
        for mode in [CrashMode::KeepSubset, CrashMode::TearAndFlip] {
            let (_, r) = open(&fs.power_loss(mode, seed)).expect("recovering");
            let got = zxids(&r.replay);
            // The failed write may have reached the disk whole or in part,
            // but only as a continuation of the durable records.
            assert!(
                got.len() >= 5 && got.len() <= 7 && r.replay[..5] == reported[..],
                "{mode:?} seed {seed}: {}",
                describe_txns(&r.replay)
            );
            if on == FaultOn::Write {
                assert_eq!(got.len(), 5, "a failed write leaves nothing behind");
            }
        }
    }
}

/// B6 (group commit): an fsync failure fails the waiters and stops the
/// writer; nothing queued afterwards is written.
#[test]
fn group_commit_stops_after_fsync_failure() {
    let (fs, mut store) = fresh();
    epochs_and_synced_appends(&mut store, 1, 1, 3);
    let reported = Arc::new(Mutex::new(Vec::new()));
    let sink = reported.clone();
    let gc = GroupCommit::start(
        store,
        Box::new(move |seq| sink.lock().unwrap_or_else(|e| e.into_inner()).push(seq)),
    );
    gc.submit(PersistSeq(1), append(1, 4));
    gc.wait_durable(PersistSeq(1))
        .expect("the first batch is durable");

    fs.fail_next(Fault::Io, FaultOn::Sync);
    gc.submit(PersistSeq(2), append(1, 5));
    let cause = gc
        .wait_durable(PersistSeq(2))
        .expect_err("the fsync failed");
    assert!(
        cause.contains("fdatasync"),
        "the cause names the failed call: {cause}"
    );
    let ops = fs.ops();
    gc.submit(PersistSeq(3), append(1, 6));
    assert!(
        gc.wait_durable(PersistSeq(3)).is_err(),
        "later writes fail too"
    );
    let store = gc.shutdown().expect("the writer hands the store back");
    assert!(store.failure().is_some());
    assert_eq!(fs.ops(), ops, "the stopped writer wrote nothing more");
    assert_eq!(
        *reported.lock().unwrap_or_else(|e| e.into_inner()),
        vec![PersistSeq(1)],
        "only the batch whose fsync succeeded is reported durable"
    );
    drop(store);

    let (_, r) = open(&fs.power_loss(CrashMode::DropUnsynced, 0)).expect("recovering");
    let expected: Vec<_> = (1..=4).map(|c| txn(1, c)).collect();
    assert_replay(&r, &expected, "what the writer reported durable");
}

/// B8: a crash after the installed snapshot's rename is durable but before
/// the old generation's segments are gone must not replay the old history on
/// top of the snapshot (REFERENCE §1.3).
#[test]
fn snapshot_install_never_splices_the_old_log() {
    let install = z(3, 5);
    let steps = |store: &mut Store| -> Result<(), StorageError> {
        for op in [
            PersistOp::AcceptedEpoch(Epoch(1)),
            PersistOp::CurrentEpoch(Epoch(1)),
        ] {
            store.apply(&op)?;
        }
        for c in 1..=30 {
            store.apply(&append(1, c))?;
        }
        store.sync()?;
        store.apply(&PersistOp::InstallSnapshot {
            zxid: install,
            data: snap_content(install),
        })
    };
    let reference = SimFs::new();
    reference.create_dir_all(dir()).expect("mkdir");
    let (mut store, _) = open(&reference).expect("open");
    steps(&mut store).expect("the workload runs");
    let total = reference.ops();

    let new_snapshot = snapshot_file::file_name(1, install);
    let mut both_present = 0;
    for k in 0..=total {
        let fs = SimFs::new();
        fs.create_dir_all(dir()).expect("mkdir");
        fs.crash_after(k);
        if let Ok((mut store, _)) = open(&fs) {
            let _ = steps(&mut store);
        }
        for (mode, seed) in [
            (CrashMode::DropUnsynced, 0),
            (CrashMode::KeepSubset, 0),
            (CrashMode::KeepSubset, 1),
        ] {
            let disk = fs.power_loss(mode, seed);
            let names = disk.list(dir()).expect("listing");
            let old_segments = names
                .iter()
                .filter(|n| txn_log::parse_segment_name(n).is_some_and(|(g, _)| g == 0))
                .count();
            if !names.contains(&new_snapshot) {
                continue;
            }
            let ctx = format!("k={k} {mode:?} seed={seed}");
            if old_segments > 0 {
                both_present += 1;
            }
            let (_, r) = open(&disk).unwrap_or_else(|e| panic!("{ctx}: recovery failed: {e}"));
            let snap = r
                .snapshot
                .as_ref()
                .unwrap_or_else(|| panic!("{ctx}: installed snapshot ignored"));
            assert_eq!(snap.meta.zxid, install, "{ctx}");
            assert_eq!(snap.content, snap_content(install), "{ctx}");
            assert!(
                r.replay.is_empty(),
                "{ctx}: old records replayed: {}",
                describe_txns(&r.replay)
            );
            assert_eq!(r.restored.history.last(), install, "{ctx}");
            let left = segment_files(&disk);
            assert!(
                left.is_empty(),
                "{ctx}: old-generation segments left after recovery: {left:?}"
            );
        }
    }
    assert!(
        both_present > 0,
        "no crash point left the new snapshot next to old segments; the test exercised nothing"
    );
}

// ---------------------------------------------------------------------------
// Directed reproductions of open storage bugs (ignored until fixed)
// ---------------------------------------------------------------------------

/// A store whose newest segment was created (durably) by a roll but holds no
/// synced record yet: 1.1..=1.12 fill the first segment exactly, appending
/// 1.13 rolls to a new, empty segment `log.….<1.13>`, and the power goes
/// before the sync. This is the state after any crash between a roll and the
/// next sync.
fn restart_with_empty_newest_segment() -> SimFs {
    let (fs, mut store) = fresh();
    epochs_and_synced_appends(&mut store, 1, 1, RECORDS_PER_SEGMENT);
    assert_eq!(segment_files(&fs).len(), 1);
    store.apply(&append(1, 13)).expect("rolls to a new segment");
    assert_eq!(
        segment_files(&fs).len(),
        2,
        "the roll created the next segment"
    );
    drop(store);
    let disk = fs.power_loss(CrashMode::DropUnsynced, 0);
    assert_eq!(
        segment_files(&disk).len(),
        2,
        "the empty segment survives the power loss"
    );
    let (_, r) = open(&disk).expect("recovering");
    let expected: Vec<_> = (1..=12).map(|c| txn(1, c)).collect();
    assert_replay(&r, &expected, "only the synced records");
    disk
}

/// TRUNC after such a restart must cut the log (REFERENCE §1.4). Today
/// `TxnLog::open` sets `last` from the newest segment alone, so it is zero,
/// `truncate_after` returns early (`to >= self.last`) and the TRUNC is
/// silently skipped: it returns Ok, the core believes 1.7..=1.12 are gone,
/// and they come back at the next restart.
#[test]
fn truncate_after_restart_with_an_empty_newest_segment() {
    let disk = restart_with_empty_newest_segment();
    let (mut store, r) = open(&disk).expect("recovering");
    assert_eq!(
        zs(store.last_zxid()),
        zs(r.restored.history.last()),
        "the log's last zxid after recovery"
    );
    store
        .apply(&PersistOp::Truncate { to: z(1, 6) })
        .expect("truncating");
    drop(store);
    let (_, after) = open(&disk.power_loss(CrashMode::DropUnsynced, 0)).expect("recovering");
    let expected: Vec<_> = (1..=6).map(|c| txn(1, c)).collect();
    assert_replay(&after, &expected, "a durable TRUNC to 1.6");
}

/// After such a restart a new leader's first transaction (2.1) lands in the
/// empty segment named after 1.13, and the next restart refuses the log with
/// a gap: the name promises a first zxid the segment does not start with.
#[test]
fn new_epoch_after_restart_with_an_empty_newest_segment() {
    let disk = restart_with_empty_newest_segment();
    let (mut store, _) = open(&disk).expect("recovering");
    apply_all(
        &mut store,
        [
            PersistOp::AcceptedEpoch(Epoch(2)),
            PersistOp::CurrentEpoch(Epoch(2)),
            append(2, 1),
        ],
    );
    store.sync().expect("syncing");
    drop(store);
    let (_, after) = open(&disk.power_loss(CrashMode::DropUnsynced, 0))
        .expect("the log written after the restart must be readable");
    let expected: Vec<_> = (1..=12).map(|c| txn(1, c)).chain([txn(2, 1)]).collect();
    assert_replay(
        &after,
        &expected,
        "the old log and the new epoch's first transaction",
    );
}

/// `Store::truncate` cuts the log first and removes snapshots newer than the
/// truncation point afterwards. A crash in between leaves the snapshot at
/// 1.30, which TRUNC to 1.20 was removing, next to a log that now ends at 1.24
/// or 1.20: recovery starts from the removed snapshot (a dead-branch state,
/// REFERENCE §1.4) with an empty replay, the next append (1.31) is written
/// after 1.24, and the restart after that refuses the log with a gap. Removing
/// the newer snapshots (and fsyncing the directory) before cutting the log
/// makes every intermediate state a legal one.
#[test]
fn crash_inside_truncate_keeps_snapshot_and_log_consistent() {
    let prepare = |fs: &SimFs| -> Result<Store, StorageError> {
        let (mut store, _) = open(fs)?;
        for op in [
            PersistOp::AcceptedEpoch(Epoch(1)),
            PersistOp::CurrentEpoch(Epoch(1)),
        ] {
            store.apply(&op)?;
        }
        for c in 1..=36 {
            store.apply(&append(1, c))?;
        }
        store.sync()?;
        store.write_snapshot(z(1, 12), &snap_content(z(1, 12)))?;
        store.write_snapshot(z(1, 30), &snap_content(z(1, 30)))?;
        Ok(store)
    };
    let trunc = PersistOp::Truncate { to: z(1, 20) };
    let reference = SimFs::new();
    reference.create_dir_all(dir()).expect("mkdir");
    let mut store = prepare(&reference).expect("the workload runs");
    let before = reference.ops();
    store.apply(&trunc).expect("truncating");
    let after = reference.ops();

    let mut failures = Vec::new();
    for k in before..=after {
        let fs = SimFs::new();
        fs.create_dir_all(dir()).expect("mkdir");
        fs.crash_after(k);
        if let Ok(mut store) = prepare(&fs) {
            let _ = store.apply(&trunc);
        }
        let disk = fs.power_loss(CrashMode::DropUnsynced, 0);
        let (store, r) = open(&disk).expect("recovering");
        if r.snapshot.as_ref().map(|s| s.meta.zxid) == Some(z(1, 30)) {
            // Only legal while the log is still the whole pre-TRUNC log.
            let expected: Vec<_> = (31..=36).map(|c| txn(1, c)).collect();
            if r.replay != expected {
                failures.push(format!(
                    "k={k}: recovered from the snapshot at 1.30 that TRUNC removes, \
                     but the log was already cut ({}; log's last zxid {})",
                    describe_recovery(&r),
                    zs(store.last_zxid())
                ));
            }
        }
        if let Err(e) = check_stays_writable(&disk, store, &r) {
            failures.push(format!("k={k}: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "crashes inside TRUNC:\n  {}",
        failures.join("\n  ")
    );
}

/// A snapshot whose zxid is not yet durable in the log (the core delivers
/// logged transactions before their fsync completes, and `write_snapshot`
/// does not sync the log) survives a crash that loses the log's tail.
/// Recovery then starts from the snapshot at 1.12 above a log that ends at
/// 1.10; that is a fine state, but the next append (1.13) is written right
/// after 1.10 and the following restart refuses the log with a gap. Recovery
/// has to start a fresh segment when the log ends below the snapshot (or
/// `write_snapshot` must sync the log first, which does not cover snapshots
/// written by a `SnapshotWriter`).
#[test]
fn snapshot_ahead_of_the_durable_log_keeps_the_log_writable() {
    let (fs, mut store) = fresh();
    epochs_and_synced_appends(&mut store, 1, 1, 10);
    apply_all(&mut store, [append(1, 11), append(1, 12)]);
    store
        .write_snapshot(z(1, 12), &snap_content(z(1, 12)))
        .expect("snapshot 1.12");
    drop(store);
    let disk = fs.power_loss(CrashMode::DropUnsynced, 0);
    let (store, r) = open(&disk).expect("recovering");
    assert_eq!(r.snapshot.as_ref().map(|s| s.meta.zxid), Some(z(1, 12)));
    assert!(r.replay.is_empty(), "{}", describe_txns(&r.replay));
    if let Err(e) = check_stays_writable(&disk, store, &r) {
        panic!("{e}");
    }
}

/// On the real file system, `RealFs::read` maps segment files and recovery
/// returns payloads as zero-copy views of the mapping. TRUNC then cuts that
/// same file in place and new appends overwrite the bytes, so a recovered
/// payload (an immutable `Bytes`) changes under its holder; a view past the
/// new end of file would raise SIGBUS instead. The `SAFETY` comment in
/// `fs.rs` assumes no file is truncated while a mapping is held, which TRUNC
/// after a restart breaks. (Linux semantics: a private mapping shows later
/// writes to pages it has not copied.)
#[test]
fn recovered_payloads_stay_immutable_after_truncate_on_real_fs() {
    let tmp = TempDir::new("mmap");
    let fs = RealFs::shared();
    let big = |e: u32, c: u32, fill: u8| Txn {
        zxid: z(e, c),
        payload: Bytes::from(vec![fill; 100]),
    };
    let wide = StoreConfig {
        log: LogConfig {
            segment_bytes_max: 1 << 20,
            prealloc_bytes: 1 << 20,
        },
        snapshots_kept: 2,
        ..StoreConfig::default()
    };
    let (mut store, _) = Store::open(fs.clone(), &tmp.0, wide).expect("opening");
    apply_all(
        &mut store,
        [
            PersistOp::AcceptedEpoch(Epoch(1)),
            PersistOp::CurrentEpoch(Epoch(1)),
        ],
    );
    apply_all(
        &mut store,
        (1..=40).map(|c| PersistOp::Append(big(1, c, b'a'))),
    );
    store.sync().expect("syncing");
    drop(store);

    let (mut store, r) = Store::open(fs, &tmp.0, wide).expect("recovering");
    let held = r.replay[20].payload.clone();
    let original = held.to_vec();
    store
        .apply(&PersistOp::Truncate { to: z(1, 10) })
        .expect("truncating");
    apply_all(
        &mut store,
        [
            PersistOp::AcceptedEpoch(Epoch(2)),
            PersistOp::CurrentEpoch(Epoch(2)),
        ],
    );
    apply_all(
        &mut store,
        (1..=30).map(|c| PersistOp::Append(big(2, c, b'Z'))),
    );
    store.sync().expect("syncing");
    assert!(
        held[..] == original[..],
        "the recovered payload of 1.21 changed after TRUNC and new appends"
    );
}

#[path = "crash/damage.rs"]
mod damage;
