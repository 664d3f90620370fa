//! Each simulated server's storage: the real [`Store`] over an in-memory
//! [`SimFs`], so a restart runs the same recovery a real server runs (torn
//! tails, the durable mark, damage found and set aside), and the disk
//! faults below hit the real file formats.
//!
//! A crash is a power loss ([`SimFs::power_loss`] in a random mode: unsynced
//! writes dropped, kept in part, or torn with a flipped bit). A disk fault
//! strikes a crashed server's disk before it restarts: a flipped bit in a
//! log segment, a lost segment, a segment cut short, a damaged snapshot,
//! epoch or standing file, or the whole directory wiped. A full disk makes
//! a running server's next write fail, and the server stops (fail-stop, as
//! the real driver does).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use zab_core::{PersistOp, PersistSeq, Zxid};
use zab_server::replica::FrozenState;
use zab_server::storage::sim_fs::{CrashMode, Fault, FaultOn, SimFs};
use zab_server::storage::txn_log::LogConfig;
use zab_server::storage::{Fs, Recovery, Store, StoreConfig};
use zab_tests::sim::rng::Rng;

/// Every server's data directory on its own file system.
const DIR: &str = "/data";

/// Small segments, so a run has several and a fault can hit a sealed one.
const SEGMENT_BYTES: u64 = 16 * 1024;
const PREALLOC_BYTES: u64 = 4 * 1024;

/// The disk faults, by the name the report counts them under.
pub(super) const DAMAGE: &[&str] = &[
    "disk-bit-flip",
    "disk-lost-segment",
    "disk-cut-segment",
    "disk-bad-snapshot",
    "disk-bad-metadata",
    "disk-wipe",
];

/// One server's disk and the store open on it while the server runs.
pub(super) struct ServerDisk {
    fs: SimFs,
    store: Option<Store>,
    cfg: StoreConfig,
    /// Struck by a disk fault and not yet resynchronized: no other server's
    /// disk may be damaged meanwhile (a quorum must keep a good copy of
    /// every committed transaction).
    pub damaged: bool,
    /// The `Intact` write that ends `damaged` once durable.
    intact_at: Option<PersistSeq>,
    /// A full disk is due: the next write fails, and that is expected.
    full: bool,
}

impl ServerDisk {
    pub fn new(cut_corruption_as_torn_tail: bool) -> ServerDisk {
        #[allow(unused_mut)]
        let mut cfg = StoreConfig {
            log: LogConfig {
                segment_bytes_max: SEGMENT_BYTES,
                prealloc_bytes: PREALLOC_BYTES,
            },
            snapshots_kept: 2,
            ..StoreConfig::default()
        };
        cfg.cut_corruption_as_torn_tail = cut_corruption_as_torn_tail;
        ServerDisk {
            fs: SimFs::new(),
            store: None,
            cfg,
            damaged: false,
            intact_at: None,
            full: false,
        }
    }

    /// Opens the store on what the disk holds, as a starting server does.
    pub fn open(&mut self) -> Result<Recovery, String> {
        self.intact_at = None;
        let (store, recovery) = Store::open(self.fs.shared(), Path::new(DIR), self.cfg)
            .map_err(|e| format!("cannot open its data directory: {e}"))?;
        self.store = Some(store);
        Ok(recovery)
    }

    /// Executes one write (not yet durable), as the group-commit writer does.
    pub fn write(&mut self, seq: PersistSeq, op: &PersistOp) -> Result<(), String> {
        if matches!(op, PersistOp::Intact { .. }) {
            self.intact_at = Some(seq);
        }
        self.store_mut()?
            .apply(op)
            .map_err(|e| format!("storage failed: {e}"))
    }

    /// Makes every write so far durable; `through` is what gets reported.
    pub fn sync(&mut self, through: PersistSeq) -> Result<(), String> {
        self.store_mut()?
            .sync()
            .map_err(|e| format!("storage failed: {e}"))?;
        if self.intact_at.is_some_and(|at| at <= through) {
            self.damaged = false;
        }
        Ok(())
    }

    /// The shell's periodic snapshot. A failure keeps the log, as the real
    /// driver does (it only warns).
    /// Writes `state`'s snapshot as the server's snapshot thread does:
    /// streamed, here through a small buffer so one snapshot is many writes
    /// (a power loss can land between any two).
    pub fn snapshot(&mut self, zxid: Zxid, state: &FrozenState) {
        if let Ok(store) = self.store_mut() {
            let writer = store.snapshot_writer();
            if let Ok((meta, _)) = state.write_snapshot(&writer, zxid, 4096) {
                let _ = store.adopt_snapshot(meta);
            }
        }
    }

    fn store_mut(&mut self) -> Result<&mut Store, String> {
        self.store
            .as_mut()
            .ok_or_else(|| "storage used while the server is down".to_string())
    }

    /// The power goes: what a reboot finds replaces the disk.
    pub fn power_loss(&mut self, rng: &mut Rng) {
        self.store = None;
        let mode = match rng.below(3) {
            0 => CrashMode::DropUnsynced,
            1 => CrashMode::KeepSubset,
            _ => CrashMode::TearAndFlip,
        };
        self.fs = self.fs.power_loss(mode, rng.next_u64());
        self.full = false;
    }

    /// The next write on this disk fails with `ENOSPC`.
    pub fn fill(&mut self) {
        self.full = true;
        self.fs.fail_next(Fault::NoSpace, FaultOn::Write);
    }

    /// Whether a storage failure was the injected full disk (anything else
    /// is a bug in storage).
    pub fn was_full(&mut self) -> bool {
        std::mem::take(&mut self.full)
    }

    /// Strikes the (powered-off) disk with one fault; returns its name, or
    /// `None` if the disk holds nothing that fault could hit.
    pub fn damage(&mut self, rng: &mut Rng) -> Option<&'static str> {
        debug_assert!(self.store.is_none(), "damage strikes a stopped server");
        let kind = DAMAGE[rng.below(DAMAGE.len() as u64) as usize];
        let done = match kind {
            "disk-bit-flip" => self
                .pick(rng, is_segment)
                .is_some_and(|f| self.flip(&f, rng)),
            "disk-lost-segment" => self.pick(rng, is_segment).is_some_and(|f| self.remove(&f)),
            "disk-cut-segment" => self
                .pick(rng, is_segment)
                .is_some_and(|f| self.cut(&f, rng)),
            "disk-bad-snapshot" => self.newest_snapshot().is_some_and(|f| self.flip(&f, rng)),
            "disk-bad-metadata" => self
                .pick(rng, is_metadata)
                .is_some_and(|f| self.flip(&f, rng)),
            _ => {
                self.fs = SimFs::new();
                true
            }
        };
        if done {
            self.damaged = true;
        }
        done.then_some(kind)
    }

    fn names(&self) -> Vec<String> {
        let mut names = self.fs.list(Path::new(DIR)).unwrap_or_default();
        names.sort();
        names
    }

    fn pick(&self, rng: &mut Rng, which: fn(&str) -> bool) -> Option<PathBuf> {
        let names: Vec<String> = self.names().into_iter().filter(|n| which(n)).collect();
        if names.is_empty() {
            return None;
        }
        let name = &names[rng.below(names.len() as u64) as usize];
        Some(Path::new(DIR).join(name))
    }

    fn newest_snapshot(&self) -> Option<PathBuf> {
        // `snap.<generation>.<zxid>`, both fixed-width hex: the newest sorts last.
        let name = self
            .names()
            .into_iter()
            .rfind(|n| n.starts_with("snap.") && !n.ends_with(".damaged"))?;
        Some(Path::new(DIR).join(name))
    }

    /// The bytes of `path` that hold data (trailing zeros are preallocation).
    fn content(&self, path: &Path) -> Option<Bytes> {
        let data = self.fs.read(path).ok()?;
        let end = data.iter().rposition(|&b| b != 0)? + 1;
        Some(data.slice(..end))
    }

    fn flip(&self, path: &Path, rng: &mut Rng) -> bool {
        let Some(data) = self.content(path) else {
            return false;
        };
        let at = rng.below(data.len() as u64);
        let byte = data[at as usize] ^ (1 << rng.below(8));
        self.rewrite(path, |f| f.write_at(at, &[byte]))
    }

    fn cut(&self, path: &Path, rng: &mut Rng) -> bool {
        let Some(data) = self.content(path) else {
            return false;
        };
        let len = rng.below(data.len() as u64);
        self.rewrite(path, |f| f.set_len(len))
    }

    fn rewrite(
        &self,
        path: &Path,
        change: impl FnOnce(&mut dyn zab_server::storage::FsFile) -> std::io::Result<()>,
    ) -> bool {
        let Ok(mut file) = self.fs.open(path) else {
            return false;
        };
        change(file.as_mut()).is_ok() && file.sync_data().is_ok()
    }

    fn remove(&self, path: &Path) -> bool {
        self.fs.remove(path).is_ok() && self.fs.sync_dir(Path::new(DIR)).is_ok()
    }
}

fn is_segment(name: &str) -> bool {
    name.starts_with("log.") && !name.ends_with(".damaged")
}

fn is_metadata(name: &str) -> bool {
    matches!(name, "acceptedEpoch" | "currentEpoch" | "standing")
}
