//! One server's durable state: epochs, snapshots and the log, kept consistent
//! with one another across crashes.
//!
//! [`Store::apply`] executes the core's [`PersistOp`]s in order and
//! [`Store::sync`] makes them durable with one fdatasync; the caller reports
//! "durable through seq" only after `sync` returns. Epoch writes first sync the
//! log, so an epoch is never on disk ahead of the history it vouches for
//! (REFERENCE §1.1). Any failure is final: the store refuses further writes,
//! because after a failed write or fsync the disk's content is unknown.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use tracing::{error, info, warn};
use zab_core::{EnsembleId, Epoch, History, PersistOp, Restored, Txn, Zxid};

use super::epoch_file::{self, ACCEPTED, CURRENT};
use super::error::{Result, StorageError};
use super::fs::Fs;
use super::snapshot_file::{self, Snapshot, SnapshotMeta, SnapshotStream};
use super::standing_file::{self, Standing, StandingFile};
use super::txn_log::{self, LogConfig, TxnLog};
use super::TEMP_SUFFIX;

#[derive(Clone, Copy, Debug)]
pub struct StoreConfig {
    pub log: LogConfig,
    /// Snapshots kept by retention (at least 1); the log they need is kept too.
    pub snapshots_kept: usize,
    /// Test-only: ignore the durable mark, so damage in what was reported
    /// durable is cut as if it were a torn tail (the rule this storage keeps).
    #[cfg(feature = "defects")]
    pub cut_corruption_as_torn_tail: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            log: LogConfig::default(),
            snapshots_kept: 3,
            #[cfg(feature = "defects")]
            cut_corruption_as_torn_tail: false,
        }
    }
}

/// What a restarted server starts from.
#[derive(Debug)]
pub struct Recovery {
    /// The core's durable state.
    pub restored: Restored,
    /// The newest valid snapshot, if any.
    pub snapshot: Option<Snapshot>,
    /// Logged transactions after the snapshot, in order. They are *not* known
    /// to be committed: the core delivers them once a leader confirms.
    pub replay: Vec<Txn>,
    /// Bytes of a torn tail cut from the log.
    pub truncated_bytes: u64,
    /// Snapshots skipped because they were damaged (newest first).
    pub damaged_snapshots: Vec<PathBuf>,
    /// Why this server restarts as recovering (lost or damaged durable state,
    /// found now or on an earlier start), if it does.
    pub damage: Option<String>,
}

#[derive(Debug)]
pub struct Store {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    cfg: StoreConfig,
    log: TxnLog,
    accepted: Epoch,
    current: Epoch,
    snapshots: Vec<SnapshotMeta>,
    standing: StandingFile,
    failed: Option<String>,
}

impl Store {
    /// Opens (or initializes) the data directory and recovers its state.
    pub fn open(fs: Arc<dyn Fs>, dir: &Path, cfg: StoreConfig) -> Result<(Store, Recovery)> {
        fs.create_dir_all(dir)
            .map_err(|e| StorageError::io("create directory", dir, e))?;
        remove_temp_files(fs.as_ref(), dir)?;
        probe_space(fs.as_ref(), dir)?;
        let snapshots = snapshot_file::list(fs.as_ref(), dir)?;
        let mut damaged = Vec::new();
        let mut chosen = None;
        for meta in snapshots.iter().rev() {
            match snapshot_file::read(fs.as_ref(), meta) {
                Ok(s) => {
                    chosen = Some(s);
                    break;
                }
                Err(StorageError::Corrupt { file, reason, .. }) => {
                    warn!(file = %file.display(), reason, "skipping damaged snapshot");
                    damaged.push(file);
                }
                Err(e) => return Err(e),
            }
        }
        let mut generation = chosen.as_ref().map_or(0, |s| s.meta.generation);
        let mut base = chosen.as_ref().map_or(Zxid::ZERO, |s| s.meta.zxid);
        let names = fs.list(dir).map_err(|e| StorageError::io("list", dir, e))?;
        let log_generations: Vec<u32> = names
            .iter()
            .filter_map(|n| txn_log::parse_segment_name(n).map(|(g, _)| g))
            .collect();
        let has_state = !log_generations.is_empty() || !snapshots.is_empty();
        let on_disk = standing_file::read(fs.as_ref(), dir)?;
        let mut damage: Option<String> = None;
        let mut ensemble = EnsembleId::NONE;
        let mut mark = None;
        // Set when no snapshot continues the history the disk vouches for.
        let mut history_lost = false;
        let mut newest_generation = log_generations.iter().copied().max().unwrap_or(0);
        match on_disk {
            standing_file::Read::Missing if has_state => {
                warn!(dir = %dir.display(), "no standing file (a data directory from an older version): a bad log tail will be taken for a torn one this once");
            }
            standing_file::Read::Missing => {}
            standing_file::Read::Damaged => {
                damage = Some(format!(
                    "{} is damaged",
                    dir.join(standing_file::STANDING).display()
                ));
            }
            standing_file::Read::Valid(s) => {
                ensemble = s.ensemble;
                newest_generation = newest_generation.max(s.generation);
                if s.recovering {
                    damage =
                        Some("damage found on an earlier start; not yet resynchronized".into());
                }
                if s.generation == generation {
                    mark = Some(s.mark);
                } else if s.generation > generation {
                    history_lost = true;
                    damage = Some(format!(
                        "the snapshot of generation {} is missing or damaged, with no good fallback",
                        s.generation
                    ));
                }
            }
        }
        if log_generations.iter().any(|&g| g > generation) && !history_lost {
            history_lost = true;
            damage = Some(format!(
                "a log of a newer generation than the newest usable snapshot (generation {generation}) exists"
            ));
        }
        #[cfg(feature = "defects")]
        if cfg.cut_corruption_as_torn_tail {
            mark = None;
        }
        let accepted = read_epoch(fs.as_ref(), dir, ACCEPTED, has_state, &mut damage)?;
        let current = read_epoch(fs.as_ref(), dir, CURRENT, has_state, &mut damage)?;
        // Written before anything is cut: every damage known so far is in it.
        let mut standing = StandingFile::create(
            &fs,
            dir,
            Standing {
                generation,
                mark: mark.unwrap_or(Zxid::ZERO),
                ensemble,
                recovering: damage.is_some(),
            },
        )?;
        if history_lost {
            // Nothing here continues a history we can trust: keep every
            // snapshot and segment aside and start empty, recovering.
            error!(dir = %dir.display(), damage = damage.as_deref().unwrap_or(""), "durable state lost; setting the whole history aside");
            quarantine(fs.as_ref(), dir, &names)?;
            chosen = None;
            generation = next_generation(dir, newest_generation)?;
            base = Zxid::ZERO;
            standing.write(Standing {
                generation,
                mark: Zxid::ZERO,
                ensemble,
                recovering: true,
            })?;
        }
        let mut on_damage = |what: &str| -> Result<()> {
            if !standing.current().recovering {
                standing.write(Standing {
                    recovering: true,
                    ..standing.current()
                })?;
            }
            damage.get_or_insert_with(|| what.to_string());
            Ok(())
        };
        let (mut log, recovered) =
            TxnLog::open(fs.clone(), dir, generation, cfg.log, mark, &mut on_damage)?;
        if log.last() != Zxid::ZERO && log.last() < base {
            // The snapshot got ahead of the durable log (the state machine
            // applies logged records before their fsync). The snapshot covers
            // all of it; restart the log after it so appends stay contiguous.
            log.reset(generation)?;
        }
        log.set_floor(base);
        let replay = match after_base(base, log.chain_start(), recovered.records) {
            Ok(replay) => replay,
            Err(first) => {
                // A snapshot fell back to an older one, or the log's first
                // segment is gone: what lies between is lost, and nothing
                // after the hole can be replayed.
                let what = format!(
                    "the log resumes at {first} after the snapshot at {base}: the transactions between are lost"
                );
                error!(dir = %dir.display(), damage = %what, "the log does not continue the snapshot; setting it aside");
                on_damage(&what)?;
                log.set_aside_all()?;
                Vec::new()
            }
        };
        if let Some(m) = mark {
            let end = log.last().max(base);
            if m > end {
                on_damage(&format!(
                    "the log ends at {end} but was reported durable through {m} (a segment is missing or cut short)"
                ))?;
            }
        }
        let mut history = History::starting_after(base);
        for t in &replay {
            history.append(t.zxid).map_err(|g| StorageError::Gap {
                file: dir.to_path_buf(),
                last: g.last,
                next: g.next,
            })?;
        }
        let (accepted, current) = if damage.is_some() {
            // Damaged epoch files: the history's own epoch is the least they held.
            let floor = history.last().epoch();
            let accepted = accepted.max(floor);
            (accepted, current.max(floor).min(accepted))
        } else {
            (accepted, current)
        };
        standing.mark(generation, log.last().max(base))?;
        if let Some(d) = &damage {
            error!(dir = %dir.display(), damage = %d, "this server lost durable state: it rejoins as a non-voter until a leader has synchronized it");
        }
        info!(
            dir = %dir.display(),
            snapshot = %base,
            last = %history.last(),
            accepted = %accepted,
            current = %current,
            ensemble = %ensemble,
            recovering = damage.is_some(),
            "recovered"
        );
        let live: Vec<_> = snapshots
            .into_iter()
            .filter(|m| m.generation == generation && !damaged.contains(&m.path))
            .collect();
        let store = Store {
            fs,
            dir: dir.to_path_buf(),
            cfg,
            log,
            accepted,
            current,
            snapshots: live,
            standing,
            failed: None,
        };
        let recovery = Recovery {
            restored: Restored {
                accepted_epoch: accepted,
                current_epoch: current,
                history,
                ensemble,
                recovering: damage.is_some(),
            },
            snapshot: chosen,
            replay,
            truncated_bytes: recovered.truncated_bytes,
            damaged_snapshots: damaged,
            damage,
        };
        Ok((store, recovery))
    }

    /// Executes one write, in the core's order. Not durable until [`Store::sync`].
    pub fn apply(&mut self, op: &PersistOp) -> Result<()> {
        self.check()?;
        let result = self.apply_inner(op);
        self.fail_on(result)
    }

    fn apply_inner(&mut self, op: &PersistOp) -> Result<()> {
        match op {
            PersistOp::Append(txn) => self.log.append(txn),
            PersistOp::AcceptedEpoch(e) => {
                self.sync_log()?;
                epoch_file::write(self.fs.as_ref(), &self.dir, ACCEPTED, *e)?;
                self.accepted = *e;
                Ok(())
            }
            PersistOp::CurrentEpoch(e) => {
                self.sync_log()?;
                epoch_file::write(self.fs.as_ref(), &self.dir, CURRENT, *e)?;
                self.current = *e;
                Ok(())
            }
            PersistOp::Truncate { to } => self.truncate(*to),
            PersistOp::InstallSnapshot { zxid, data } => self.install(*zxid, data),
            PersistOp::Intact { ensemble } => {
                self.sync_log()?;
                self.standing.write(Standing {
                    ensemble: *ensemble,
                    recovering: false,
                    ..self.standing.current()
                })
            }
        }
    }

    /// Makes every applied write durable: one fdatasync of the log, then the
    /// durable mark moves (one fdatasync of the standing file) before the
    /// caller may report anything durable.
    pub fn sync(&mut self) -> Result<()> {
        self.check()?;
        let result = self.sync_log();
        self.fail_on(result)
    }

    fn sync_log(&mut self) -> Result<()> {
        self.log.sync()?;
        let generation = self.log.generation();
        let through = self.log.last().max(self.standing_floor());
        self.standing.mark(generation, through)
    }

    /// With an empty log the history ends at the newest snapshot.
    fn standing_floor(&self) -> Zxid {
        self.snapshots
            .iter()
            .filter(|m| m.generation == self.log.generation())
            .map(|m| m.zxid)
            .max()
            .unwrap_or(Zxid::ZERO)
    }

    /// TRUNC is total (REFERENCE §1.4): the log after `to`, and any snapshot
    /// newer than `to`, are removed durably.
    fn truncate(&mut self, to: Zxid) -> Result<()> {
        // Newer snapshots go first: a crash between the two steps must not
        // leave a snapshot ahead of a log that was already cut.
        let newer: Vec<_> = self
            .snapshots
            .iter()
            .filter(|m| m.zxid > to)
            .cloned()
            .collect();
        if !newer.is_empty() {
            for meta in &newer {
                self.fs
                    .remove(&meta.path)
                    .map_err(|e| StorageError::io("remove", &meta.path, e))?;
            }
            self.fs
                .sync_dir(&self.dir)
                .map_err(|e| StorageError::io("fsync directory", &self.dir, e))?;
            self.snapshots.retain(|m| m.zxid <= to);
        }
        // The mark comes down first: a crash between the two steps leaves
        // records past the mark, which recovery cuts as never durable.
        self.log.sync()?;
        let current = self.standing.current();
        if current.mark > to {
            self.standing.mark(self.log.generation(), to)?;
        }
        self.log.truncate_after(to)?;
        // If that emptied the log, the next segment follows `to`.
        self.log.set_floor(to);
        Ok(())
    }

    /// A snapshot received from the leader replaces the whole history. It is
    /// written in a new generation: once its rename is durable, recovery uses
    /// it and ignores every older log segment (REFERENCE §1.3).
    fn install(&mut self, zxid: Zxid, content: &Bytes) -> Result<()> {
        let generation = next_generation(&self.dir, self.log.generation())?;
        let meta = snapshot_file::write(self.fs.as_ref(), &self.dir, generation, zxid, content)?;
        self.log.reset(generation)?;
        self.log.set_floor(zxid);
        self.standing.mark(generation, zxid)?;
        for old in std::mem::take(&mut self.snapshots) {
            self.fs
                .remove(&old.path)
                .map_err(|e| StorageError::io("remove", &old.path, e))?;
        }
        self.fs
            .sync_dir(&self.dir)
            .map_err(|e| StorageError::io("fsync directory", &self.dir, e))?;
        self.snapshots.push(meta);
        Ok(())
    }

    /// Writes a snapshot of the applied state through `zxid` (which must be
    /// logged), then applies retention: keep the newest `snapshots_kept`
    /// snapshots and the log segments the oldest of them needs.
    pub fn write_snapshot(&mut self, zxid: Zxid, content: &[u8]) -> Result<()> {
        self.check()?;
        let result = self.write_snapshot_inner(zxid, content);
        self.fail_on(result)
    }

    fn write_snapshot_inner(&mut self, zxid: Zxid, content: &[u8]) -> Result<()> {
        let generation = self.log.generation();
        let meta = snapshot_file::write(self.fs.as_ref(), &self.dir, generation, zxid, content)?;
        self.retain(meta)
    }

    /// Adds `meta` and keeps the newest `snapshots_kept` snapshots plus the
    /// log the oldest of them needs.
    fn retain(&mut self, meta: SnapshotMeta) -> Result<()> {
        self.snapshots.push(meta);
        self.snapshots.sort_by_key(|m| m.zxid);
        let excess = self
            .snapshots
            .len()
            .saturating_sub(self.cfg.snapshots_kept.max(1));
        for old in self.snapshots.drain(..excess) {
            self.fs
                .remove(&old.path)
                .map_err(|e| StorageError::io("remove", &old.path, e))?;
        }
        if excess > 0 {
            self.fs
                .sync_dir(&self.dir)
                .map_err(|e| StorageError::io("fsync directory", &self.dir, e))?;
        }
        // The oldest kept snapshot must still be replayable from the log.
        if let Some(oldest) = self.snapshots.first() {
            self.log.purge_through(oldest.zxid)?;
        }
        Ok(())
    }

    /// A handle that writes snapshot files on another thread, so taking a
    /// snapshot does not stall log appends. Hand the result to
    /// [`Store::adopt_snapshot`].
    pub fn snapshot_writer(&self) -> SnapshotWriter {
        SnapshotWriter {
            fs: self.fs.clone(),
            dir: self.dir.clone(),
            generation: self.log.generation(),
            pace: None,
        }
    }

    /// Registers a snapshot written by a [`SnapshotWriter`] and applies
    /// retention. A snapshot from a generation that a received snapshot has
    /// since superseded is deleted instead (it continues a history we dropped).
    pub fn adopt_snapshot(&mut self, meta: SnapshotMeta) -> Result<bool> {
        self.check()?;
        if meta.generation != self.log.generation() {
            self.fs
                .remove(&meta.path)
                .map_err(|e| StorageError::io("remove", &meta.path, e))?;
            return Ok(false);
        }
        let result = self.retain(meta);
        self.fail_on(result).map(|()| true)
    }

    /// Logged transactions in `(after, through]`, for a DIFF.
    pub fn read_range(&self, after: Zxid, through: Zxid) -> Result<Vec<Txn>> {
        self.log.read_range(after, through)
    }

    pub fn epochs(&self) -> (Epoch, Epoch) {
        (self.accepted, self.current)
    }

    pub fn last_zxid(&self) -> Zxid {
        self.log.last()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Why the store stopped, if it did.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    fn check(&self) -> Result<()> {
        match &self.failed {
            Some(cause) => Err(StorageError::Failed {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    fn fail_on(&mut self, result: Result<()>) -> Result<()> {
        if let Err(e) = &result {
            warn!(dir = %self.dir.display(), error = %e, "storage failed; no further writes");
            self.failed = Some(e.to_string());
        }
        result
    }
}

/// Writes snapshot files off the log writer's thread (see [`Store::snapshot_writer`]).
#[derive(Debug, Clone)]
pub struct SnapshotWriter {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    generation: u32,
    /// Bytes per second a stream writes at most (None: as fast as it can).
    pace: Option<u64>,
}

impl SnapshotWriter {
    /// Streams at most `bytes_per_sec` (None: unpaced); see
    /// [`SnapshotStream::paced`].
    pub fn paced(mut self, bytes_per_sec: Option<u64>) -> SnapshotWriter {
        self.pace = bytes_per_sec;
        self
    }

    /// Writes the applied state through `zxid` durably and atomically.
    pub fn write(&self, zxid: Zxid, content: &[u8]) -> Result<SnapshotMeta> {
        snapshot_file::write(self.fs.as_ref(), &self.dir, self.generation, zxid, content)
    }

    /// Starts the snapshot of `zxid` as a stream (see [`SnapshotStream`]),
    /// written in synced steps (and paced, if asked): the background
    /// snapshots, beside the log on the same disk. The
    /// content's first `prefix_len` bytes are given to
    /// [`SnapshotWriter::finish`].
    pub fn stream(&self, zxid: Zxid, prefix_len: usize) -> Result<SnapshotStream> {
        let stream = SnapshotStream::create(
            self.fs.as_ref(),
            &self.dir,
            self.generation,
            zxid,
            prefix_len,
        )?;
        Ok(match self.pace {
            Some(bytes_per_sec) => stream.paced(bytes_per_sec),
            None => stream.in_steps(),
        })
    }

    /// Completes a stream: durable and visible when this returns.
    pub fn finish(&self, stream: SnapshotStream, prefix: &[u8]) -> Result<SnapshotMeta> {
        stream.finish(self.fs.as_ref(), prefix)
    }
}

/// Reads an epoch file. A missing or damaged one, while the directory holds
/// state, is damage: recorded in `damage` and read as epoch 0 (the caller
/// raises it to the history's epoch).
fn read_epoch(
    fs: &dyn Fs,
    dir: &Path,
    name: &str,
    has_state: bool,
    damage: &mut Option<String>,
) -> Result<Epoch> {
    let found = match epoch_file::read(fs, dir, name) {
        Ok(found) => found,
        Err(e @ StorageError::Corrupt { .. }) => {
            damage.get_or_insert_with(|| e.to_string());
            return Ok(Epoch(0));
        }
        Err(e) => return Err(e),
    };
    match found {
        Some(e) => Ok(e),
        None if !has_state => Ok(Epoch(0)),
        None => {
            let e = StorageError::MissingEpoch {
                file: dir.join(name),
            };
            damage.get_or_insert_with(|| e.to_string());
            Ok(Epoch(0))
        }
    }
}

/// Renames every snapshot and log segment in `names` to `<name>.damaged`.
fn quarantine(fs: &dyn Fs, dir: &Path, names: &[String]) -> Result<()> {
    for name in names {
        let ours = txn_log::parse_segment_name(name).is_some() || name.starts_with("snap.");
        if !ours || name.ends_with(txn_log::DAMAGED_SUFFIX) {
            continue;
        }
        let from = dir.join(name);
        let to = dir.join(format!("{name}{}", txn_log::DAMAGED_SUFFIX));
        fs.rename(&from, &to)
            .map_err(|e| StorageError::io("rename", &from, e))?;
    }
    fs.sync_dir(dir)
        .map_err(|e| StorageError::io("fsync directory", dir, e))
}

/// The records after the snapshot at `base`, or the first of them if they
/// do not continue it (a hole): by zxid, or by the chain link of the first
/// segment (`chain`, the zxid it follows), which also catches a lost tail
/// of an epoch before the next epoch's first counter.
fn after_base(
    base: Zxid,
    chain: Option<Zxid>,
    records: Vec<Txn>,
) -> std::result::Result<Vec<Txn>, Zxid> {
    let covered = records.iter().any(|t| t.zxid == base);
    let replay: Vec<Txn> = records.into_iter().filter(|t| t.zxid > base).collect();
    match replay.first() {
        Some(first)
            if !covered
                && (!base.is_followed_by(first.zxid) || chain.is_some_and(|c| c > base)) =>
        {
            Err(first.zxid)
        }
        _ => Ok(replay),
    }
}

/// Bytes a starting server must be able to write: a full disk is reported
/// at start, naming the directory, rather than at the first client write.
const SPACE_PROBE_BYTES: usize = 64 * 1024;

/// Writes, syncs and removes a temporary file of [`SPACE_PROBE_BYTES`].
fn probe_space(fs: &dyn Fs, dir: &Path) -> Result<()> {
    let path = dir.join(format!("space-probe{TEMP_SUFFIX}"));
    let mut file = fs
        .create(&path)
        .map_err(|e| StorageError::io("create", &path, e))?;
    let written = file
        .write_at(0, &[0xa5; SPACE_PROBE_BYTES])
        .and_then(|()| file.sync_data());
    drop(file);
    let removed = fs.remove(&path);
    written.map_err(|e| StorageError::io("write (is the disk full?)", &path, e))?;
    removed.map_err(|e| StorageError::io("remove", &path, e))
}

fn remove_temp_files(fs: &dyn Fs, dir: &Path) -> Result<()> {
    let names = fs.list(dir).map_err(|e| StorageError::io("list", dir, e))?;
    for name in names.iter().filter(|n| n.ends_with(TEMP_SUFFIX)) {
        let path = dir.join(name);
        fs.remove(&path)
            .map_err(|e| StorageError::io("remove", &path, e))?;
    }
    Ok(())
}

/// The generation after `generation`. Generations come from file names,
/// which carry no checksum: a directory naming the last one (found by
/// fuzzing: an empty `log.ffffffff.…`) is refused, not wrapped to 0.
fn next_generation(dir: &Path, generation: u32) -> Result<u32> {
    generation
        .checked_add(1)
        .ok_or_else(|| StorageError::Corrupt {
            file: dir.to_path_buf(),
            offset: 0,
            reason: format!("a file names generation {generation:#x}, the last there is"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sim_fs::SimFs;

    fn z(e: u32, c: u32) -> Zxid {
        Zxid::new(Epoch(e), c)
    }

    fn append(store: &mut Store, zxid: Zxid) {
        let txn = Txn {
            zxid,
            payload: Bytes::from_static(b"p"),
        };
        store.apply(&PersistOp::Append(txn)).expect("append");
    }

    #[test]
    fn background_snapshots_are_adopted_only_in_their_generation() {
        let fs = SimFs::new();
        let dir = Path::new("/data");
        let (mut store, _) = Store::open(fs.shared(), dir, StoreConfig::default()).expect("open");
        store
            .apply(&PersistOp::AcceptedEpoch(Epoch(1)))
            .expect("epoch");
        store
            .apply(&PersistOp::CurrentEpoch(Epoch(1)))
            .expect("epoch");
        for c in 1..=3 {
            append(&mut store, z(1, c));
        }
        store.sync().expect("sync");
        let writer = store.snapshot_writer();
        let kept = writer.write(z(1, 2), b"state at 1.2").expect("write");
        assert!(store.adopt_snapshot(kept).expect("adopt"));
        let (_, rec) = Store::open(fs.shared(), dir, StoreConfig::default()).expect("reopen");
        assert_eq!(rec.snapshot.expect("snapshot").meta.zxid, z(1, 2));
        assert_eq!(
            rec.replay.iter().map(|t| t.zxid).collect::<Vec<_>>(),
            vec![z(1, 3)]
        );

        // A snapshot taken before a SNAP from the leader continues the
        // history that SNAP replaced: it must not be adopted.
        let (mut store, _) = Store::open(fs.shared(), dir, StoreConfig::default()).expect("reopen");
        let stale = store
            .snapshot_writer()
            .write(z(1, 3), b"state at 1.3")
            .expect("write");
        let install = PersistOp::InstallSnapshot {
            zxid: z(2, 7),
            data: Bytes::from_static(b"leader state"),
        };
        store.apply(&install).expect("install");
        let path = stale.path.clone();
        assert!(!store.adopt_snapshot(stale).expect("adopt"));
        assert!(!fs
            .list(dir)
            .expect("list")
            .iter()
            .any(|n| dir.join(n) == path));
        let (_, rec) = Store::open(fs.shared(), dir, StoreConfig::default()).expect("reopen");
        assert_eq!(rec.snapshot.expect("snapshot").meta.zxid, z(2, 7));
        assert!(rec.replay.is_empty());
    }
}
