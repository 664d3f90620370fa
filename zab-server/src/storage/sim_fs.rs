//! An in-memory [`Fs`] that models what a power loss can do to a real disk, for
//! crash-consistency tests of the storage code.
//!
//! The storage formats (log segments, snapshots, epoch files written via temp
//! file + `fdatasync` + rename + directory fsync) are only correct if every
//! durability step is in the right place. A real disk does not tell you when a
//! step is missing: the page cache hides it until the power goes. This file
//! system keeps, next to what a running process sees, what the disk is
//! *guaranteed* to hold, and can produce the state a reboot might find.
//!
//! # Model
//!
//! * **File data.** Each inode has `durable` bytes (as of its last successful
//!   [`FsFile::sync_data`]), `current` bytes (what reads see), and the list of
//!   writes and truncations applied since that sync, in order. A power loss
//!   keeps the durable bytes plus, depending on [`CrashMode`], none, a subset,
//!   or a torn prefix of those operations.
//! * **Names.** Each directory has `durable` entries (as of its last
//!   [`Fs::sync_dir`]) and `current` entries, plus the log of creations,
//!   renames and removals done since. `sync_data` on a file does **not** make
//!   its name durable: a new file that was fsynced but whose directory was not
//!   can vanish, and a rename can be undone. A power loss replays a prefix of
//!   each directory's log onto its durable entries; every prefix is a state
//!   the directory really passed through, so renames stay atomic.
//! * **Directories** themselves ([`Fs::create_dir_all`]) are always durable;
//!   the storage code creates them once, at startup.
//! * **Open files** name an inode, not a path: like POSIX, a handle keeps
//!   working after its name is renamed or removed.
//!
//! # Injecting failures
//!
//! * [`SimFs::ops`] counts every mutating or syncing call. A test runs a
//!   workload once to learn how many operations it does, then for each `n`
//!   reruns it with [`SimFs::crash_after`]`(n)`, takes
//!   [`SimFs::power_loss`] with several modes and seeds, and checks that
//!   recovery on the result finds everything that was acknowledged as durable.
//! * [`SimFs::fail_next`] makes the next write or sync fail with `ENOSPC` or
//!   `EIO`. A failed `sync_data` poisons the file: like Linux, which marks the
//!   dirty pages clean after a writeback error, a later fsync would "succeed"
//!   without the lost data ever reaching the disk, so here every later
//!   `sync_data` of that file fails too. Storage code must treat a failed
//!   fsync as fatal for that file, never retry it.
//!
//! Everything is deterministic: randomness comes from the `seed` passed to
//! [`SimFs::power_loss`], so a failing case can be replayed exactly.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use super::fs::{Fs, FsFile};

/// What a power loss does to data written but not yet synced.
///
/// Durable data (synced file content, synced directory entries) always
/// survives, in every mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CrashMode {
    /// The harshest namespace outcome and the mildest data outcome: every
    /// unsynced creation, rename and removal is undone, and every file holds
    /// exactly its durable content. Deterministic (the seed is unused), so
    /// tests of "X is lost unless synced" need no seed search.
    DropUnsynced,
    /// Each directory keeps a random prefix of its unsynced namespace
    /// operations; each file keeps its durable content plus a random subset
    /// of its unsynced writes and truncations, applied in their original
    /// order. Page writeback has no ordering, so a later write can reach the
    /// disk while an earlier one does not: a log tail can have a hole.
    KeepSubset,
    /// Each directory keeps a random prefix of its unsynced namespace
    /// operations; each file keeps its durable content plus a random prefix
    /// of its unsynced operations, where the last kept write is torn (only a
    /// prefix of its bytes lands; the rest keeps the old bytes, or zeros past
    /// the old end, because the size was already extended). Then one random
    /// bit is flipped somewhere in the bytes covered by unsynced writes, as a
    /// sector being written when the power went can hold garbage. Checksums,
    /// not lengths, must catch this.
    TearAndFlip,
}

/// Which call [`SimFs::fail_next`] makes fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultOn {
    /// [`FsFile::write_at`].
    Write,
    /// [`FsFile::sync_data`] or [`Fs::sync_dir`], whichever comes first.
    Sync,
}

/// An injected error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// `ENOSPC`: the disk is full. Recoverable in principle (free space and
    /// retry the write), but the failed write left nothing behind.
    NoSpace,
    /// `EIO`: the device failed. After a failed fsync the data is gone.
    Io,
}

impl Fault {
    /// The error the real file system would return.
    pub fn to_error(self) -> io::Error {
        match self {
            Fault::NoSpace => SimFs::enospc(),
            Fault::Io => SimFs::eio(),
        }
    }
}

/// The in-memory file system. Cloning is cheap and yields another handle on
/// the same state, so a test can keep one to inspect or crash while the code
/// under test owns another (e.g. as `Arc<dyn Fs>`).
#[derive(Clone, Default)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

impl SimFs {
    /// An empty file system: no directories, nothing crashed.
    pub fn new() -> Self {
        Self::default()
    }

    /// This file system as the storage code takes it, sharing state with
    /// `self`.
    pub fn shared(&self) -> Arc<dyn Fs> {
        Arc::new(self.clone())
    }

    /// `ENOSPC`, as the real file system reports a full disk.
    pub fn enospc() -> io::Error {
        io::Error::from(io::ErrorKind::StorageFull)
    }

    /// `EIO`, as the real file system reports a device error.
    pub fn eio() -> io::Error {
        io::Error::from_raw_os_error(5)
    }

    /// How many mutating or syncing calls have been made: `write_at`,
    /// `sync_data`, `set_len`, `create`, `open` that creates, `rename`,
    /// `remove`, `sync_dir`. Calls that fail (injected fault, missing file)
    /// count too, because they are points at which a crash can happen.
    /// Calls refused because the file system has crashed do not count.
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// After `n` more operations (as counted by [`SimFs::ops`]) the file
    /// system crashes: every later call, including reads, fails with
    /// "simulated crash" and does nothing. This is the process dying mid-way;
    /// use [`SimFs::power_loss`] afterwards for what the disk then holds.
    /// `crash_after(0)` crashes at once.
    pub fn crash_after(&self, n: u64) {
        let mut st = self.lock();
        if n == 0 {
            st.crashed = true;
        } else {
            st.crash_at = Some(st.ops.saturating_add(n));
        }
    }

    /// Whether the file system has crashed (see [`SimFs::crash_after`]).
    pub fn is_crashed(&self) -> bool {
        self.lock().crashed
    }

    /// Makes the next call matching `on` fail with `fault`, doing nothing
    /// (for a sync: making nothing durable). One pending fault per kind of
    /// call; a second `fail_next` with the same `on` replaces the first.
    pub fn fail_next(&self, fault: Fault, on: FaultOn) {
        let mut st = self.lock();
        match on {
            FaultOn::Write => st.write_fault = Some(fault),
            FaultOn::Sync => st.sync_fault = Some(fault),
        }
    }

    /// What a reboot after a power loss right now would find, as a new,
    /// independent file system (operation counter at zero, not crashed, no
    /// pending faults, everything in it durable). `self` is left unchanged, so
    /// one crash point can be tried with many modes and seeds.
    ///
    /// Works whether or not `self` has crashed. Files open on `self` do not
    /// refer to the new file system.
    pub fn power_loss(&self, mode: CrashMode, seed: u64) -> SimFs {
        let st = self.lock();
        let mut rng = SplitMix64(seed);

        // Namespace first: only inodes that still have a name come back.
        let mut dirs = BTreeMap::new();
        let mut live = BTreeSet::new();
        for (path, dir) in &st.dirs {
            let keep = match mode {
                CrashMode::DropUnsynced => 0,
                CrashMode::KeepSubset | CrashMode::TearAndFlip => rng.below(dir.log.len() + 1),
            };
            let mut entries = dir.durable.clone();
            for op in &dir.log[..keep] {
                op.apply(&mut entries);
            }
            live.extend(entries.values().copied());
            dirs.insert(
                path.clone(),
                Dir {
                    durable: entries.clone(),
                    current: entries,
                    log: Vec::new(),
                },
            );
        }

        let mut inodes = BTreeMap::new();
        for id in live {
            // Every id in a directory map or log names a live inode: inodes
            // are only freed once nothing refers to them (`State::collect`).
            let Some(inode) = st.inodes.get(&id) else {
                continue;
            };
            let data = inode.after_power_loss(mode, &mut rng);
            inodes.insert(id, Inode::durable(data));
        }

        SimFs {
            state: Arc::new(Mutex::new(State {
                dirs,
                inodes,
                next_inode: st.next_inode,
                ..State::default()
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

impl fmt::Debug for SimFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A summary: the state can hold megabytes of file data. `try_lock` so
        // that formatting never deadlocks against a holder of the lock.
        match self.state.try_lock() {
            Ok(st) => st.fmt(f),
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner().fmt(f),
            Err(std::sync::TryLockError::WouldBlock) => f.write_str("SimFs { <locked> }"),
        }
    }
}

/// Locks the shared state. A panic while holding the lock (a failing
/// assertion in a test thread) leaves the state consistent, because every
/// mutation is completed before anything that can panic, so poisoning is
/// ignored.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn crashed() -> io::Error {
    io::Error::other("simulated crash")
}

type InodeId = u64;

#[derive(Default)]
struct State {
    dirs: BTreeMap<PathBuf, Dir>,
    inodes: BTreeMap<InodeId, Inode>,
    next_inode: InodeId,
    ops: u64,
    /// Value of `ops` at which the file system crashes.
    crash_at: Option<u64>,
    crashed: bool,
    write_fault: Option<Fault>,
    sync_fault: Option<Fault>,
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFs")
            .field("dirs", &self.dirs)
            .field("inodes", &self.inodes)
            .field("ops", &self.ops)
            .field("crash_at", &self.crash_at)
            .field("crashed", &self.crashed)
            .field("write_fault", &self.write_fault)
            .field("sync_fault", &self.sync_fault)
            .finish()
    }
}

impl State {
    /// Refuses any call once crashed. Reads and other non-counted calls use
    /// this too.
    fn check(&self) -> io::Result<()> {
        if self.crashed {
            Err(crashed())
        } else {
            Ok(())
        }
    }

    /// Starts a counted operation: refuses it if crashed, else counts it. The
    /// operation that reaches the `crash_after` limit still happens; the
    /// crash takes effect for the calls after it.
    fn begin_op(&mut self) -> io::Result<()> {
        self.check()?;
        self.ops += 1;
        if self.crash_at.is_some_and(|at| self.ops >= at) {
            self.crashed = true;
        }
        Ok(())
    }

    fn take_fault(&mut self, on: FaultOn) -> io::Result<()> {
        let fault = match on {
            FaultOn::Write => self.write_fault.take(),
            FaultOn::Sync => self.sync_fault.take(),
        };
        fault.map_or(Ok(()), |f| Err(f.to_error()))
    }

    fn dir(&self, dir: &Path) -> io::Result<&Dir> {
        self.dirs.get(dir).ok_or_else(|| not_found(dir))
    }

    fn dir_mut(&mut self, dir: &Path) -> io::Result<&mut Dir> {
        self.dirs.get_mut(dir).ok_or_else(|| not_found(dir))
    }

    fn lookup(&self, path: &Path) -> io::Result<InodeId> {
        let (dir, name) = split(path)?;
        self.dir(dir)?
            .current
            .get(&name)
            .copied()
            .ok_or_else(|| not_found(path))
    }

    fn inode_mut(&mut self, id: InodeId) -> &mut Inode {
        // Open handles keep their inode alive (`Inode::handles`), and handles
        // are the only callers with an id.
        self.inodes
            .entry(id)
            .or_insert_with(|| Inode::durable(Vec::new()))
    }

    /// Creates an empty inode named `name` in `dir`, replacing any entry, and
    /// returns a handle on it.
    fn create_in(&mut self, dir: &Path, name: String) -> io::Result<InodeId> {
        let id = self.next_inode;
        let d = self.dir_mut(dir)?;
        let old = d.current.insert(name.clone(), id);
        d.log.push(NsOp::Link { name, inode: id });
        self.next_inode += 1;
        let mut inode = Inode::durable(Vec::new());
        inode.handles = 1;
        self.inodes.insert(id, inode);
        if let Some(old) = old {
            self.collect(old);
        }
        Ok(id)
    }

    /// Frees inode `id` if nothing can reach it any more: no open handle, no
    /// name now, no name a power loss could bring back. Keeps long crash
    /// simulations (many log segments created and deleted) from growing
    /// without bound.
    fn collect(&mut self, id: InodeId) {
        let Some(inode) = self.inodes.get(&id) else {
            return;
        };
        if inode.handles > 0 {
            return;
        }
        let named = self.dirs.values().any(|d| {
            d.current.values().any(|&i| i == id)
                || d.durable.values().any(|&i| i == id)
                || d.log
                    .iter()
                    .any(|op| matches!(op, NsOp::Link { inode, .. } if *inode == id))
        });
        if !named {
            self.inodes.remove(&id);
        }
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: not found", path.display()),
    )
}

/// Splits a file path into its directory and its name.
fn split(path: &Path) -> io::Result<(&Path, String)> {
    let invalid = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a file path", path.display()),
        )
    };
    let dir = path.parent().ok_or_else(invalid)?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(invalid)?;
    Ok((dir, name.to_owned()))
}

fn to_usize(n: u64) -> io::Result<usize> {
    usize::try_from(n).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "offset or length too large for memory",
        )
    })
}

/// One directory: its names as the disk is sure to hold them, as the process
/// sees them, and how to get from one to the other.
#[derive(Debug, Default)]
struct Dir {
    /// As of the last `sync_dir`.
    durable: BTreeMap<String, InodeId>,
    current: BTreeMap<String, InodeId>,
    /// Namespace operations since the last `sync_dir`, in order; `durable`
    /// with all of them applied is `current`.
    log: Vec<NsOp>,
}

/// A change to one directory's entries.
///
/// A rename across directories is logged as a `Remove` in the source and a
/// `Link` in the destination, so a power loss may keep either, both or
/// neither: harsher than a journaling file system, which makes it atomic.
/// The storage code only renames within a directory (temp file → final name),
/// where `Rename` is atomic.
#[derive(Debug, Clone)]
enum NsOp {
    /// A name for an inode (new file, or cross-directory rename target),
    /// replacing any entry of that name.
    Link {
        name: String,
        inode: InodeId,
    },
    /// A rename within the directory, replacing any entry named `to`.
    Rename {
        from: String,
        to: String,
    },
    Remove {
        name: String,
    },
}

impl NsOp {
    fn apply(&self, entries: &mut BTreeMap<String, InodeId>) {
        match self {
            NsOp::Link { name, inode } => {
                entries.insert(name.clone(), *inode);
            }
            NsOp::Rename { from, to } => {
                // `from` exists: the log replays a history that happened.
                if let Some(id) = entries.remove(from) {
                    entries.insert(to.clone(), id);
                }
            }
            NsOp::Remove { name } => {
                entries.remove(name);
            }
        }
    }
}

/// A file's data.
struct Inode {
    /// As of the last successful `sync_data`.
    durable: Vec<u8>,
    /// What reads see: `durable` with `unsynced` applied.
    current: Vec<u8>,
    /// Writes and truncations since the last successful `sync_data`, in order.
    unsynced: Vec<DataOp>,
    /// A `sync_data` failed: every later one fails too (see module doc).
    poisoned: bool,
    /// Open handles, which keep the inode alive after its last name goes.
    handles: usize,
}

impl fmt::Debug for Inode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Lengths, not bytes: contents can be large.
        f.debug_struct("Inode")
            .field("durable_len", &self.durable.len())
            .field("current_len", &self.current.len())
            .field("unsynced", &self.unsynced)
            .field("poisoned", &self.poisoned)
            .field("handles", &self.handles)
            .finish()
    }
}

impl Inode {
    fn durable(data: Vec<u8>) -> Self {
        Inode {
            durable: data.clone(),
            current: data,
            unsynced: Vec::new(),
            poisoned: false,
            handles: 0,
        }
    }

    /// The content a reboot finds (see [`CrashMode`]).
    fn after_power_loss(&self, mode: CrashMode, rng: &mut SplitMix64) -> Vec<u8> {
        let mut data = self.durable.clone();
        match mode {
            CrashMode::DropUnsynced => {}
            CrashMode::KeepSubset => {
                for op in &self.unsynced {
                    if rng.coin() {
                        op.apply(&mut data);
                    }
                }
            }
            CrashMode::TearAndFlip => {
                let keep = rng.below(self.unsynced.len() + 1);
                for (i, op) in self.unsynced[..keep].iter().enumerate() {
                    match op {
                        DataOp::Write {
                            offset,
                            data: bytes,
                        } if i + 1 == keep && !bytes.is_empty() => {
                            // Torn: strictly fewer bytes than written land,
                            // but the size already covers the whole write.
                            let landed = rng.below(bytes.len());
                            let end = offset + bytes.len();
                            if data.len() < end {
                                data.resize(end, 0);
                            }
                            data[*offset..offset + landed].copy_from_slice(&bytes[..landed]);
                        }
                        _ => op.apply(&mut data),
                    }
                }
                self.flip_in_written_range(&mut data, rng);
            }
        }
        data
    }

    /// Flips one bit in a byte covered by some unsynced write and present in
    /// `data`, chosen uniformly among such bytes (counting overlaps more than
    /// once). Durable bytes no unsynced write touched are never hit: the disk
    /// does not scribble on sectors it was not writing.
    fn flip_in_written_range(&self, data: &mut [u8], rng: &mut SplitMix64) {
        let ranges: Vec<(usize, usize)> = self
            .unsynced
            .iter()
            .filter_map(|op| match op {
                DataOp::Write {
                    offset,
                    data: bytes,
                } => {
                    let end = (offset + bytes.len()).min(data.len());
                    (*offset < end).then_some((*offset, end))
                }
                DataOp::SetLen { .. } => None,
            })
            .collect();
        let total: usize = ranges.iter().map(|(start, end)| end - start).sum();
        if total == 0 {
            return;
        }
        let mut pick = rng.below(total);
        for (start, end) in ranges {
            if pick < end - start {
                data[start + pick] ^= 1 << rng.below(8);
                return;
            }
            pick -= end - start;
        }
    }
}

/// A change to a file's data since its last sync.
#[derive(Clone)]
enum DataOp {
    Write { offset: usize, data: Vec<u8> },
    SetLen { len: usize },
}

impl fmt::Debug for DataOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataOp::Write { offset, data } => f
                .debug_struct("Write")
                .field("offset", offset)
                .field("len", &data.len())
                .finish(),
            DataOp::SetLen { len } => f.debug_struct("SetLen").field("len", len).finish(),
        }
    }
}

impl DataOp {
    fn apply(&self, content: &mut Vec<u8>) {
        match self {
            DataOp::Write { offset, data } => {
                let end = offset + data.len();
                if content.len() < end {
                    // A write past the end leaves a hole, which reads as zeros.
                    content.resize(end, 0);
                }
                content[*offset..end].copy_from_slice(data);
            }
            DataOp::SetLen { len } => content.resize(*len, 0),
        }
    }
}

/// SplitMix64: tiny, fast, and good enough to pick crash outcomes; inline so
/// the simulator needs no extra crate.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`; `n` must be positive.
    fn below(&mut self, n: usize) -> usize {
        debug_assert!(n > 0);
        // Multiply-shift: the high half of a 64×64-bit product is below `n`,
        // so it fits back in usize.
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    fn coin(&mut self) -> bool {
        self.next_u64() >> 63 == 1
    }
}

impl Fs for SimFs {
    fn open(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let mut st = self.lock();
        st.check()?;
        let (dir, name) = split(path)?;
        let existing = st.dir(dir)?.current.get(&name).copied();
        let inode = match existing {
            Some(id) => {
                st.inode_mut(id).handles += 1;
                id
            }
            None => {
                st.begin_op()?;
                st.create_in(dir, name)?
            }
        };
        Ok(Box::new(SimFile::new(&self.state, inode)))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let mut st = self.lock();
        st.begin_op()?;
        let (dir, name) = split(path)?;
        let inode = st.create_in(dir, name)?;
        Ok(Box::new(SimFile::new(&self.state, inode)))
    }

    fn read(&self, path: &Path) -> io::Result<Bytes> {
        let st = self.lock();
        st.check()?;
        let id = st.lookup(path)?;
        let data = st
            .inodes
            .get(&id)
            .map(|i| i.current.clone())
            .unwrap_or_default();
        Ok(Bytes::from(data))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.begin_op()?;
        let id = st.lookup(from)?;
        let (from_dir, from_name) = split(from)?;
        let (to_dir, to_name) = split(to)?;
        st.dir(to_dir)?;
        if from == to {
            // POSIX: renaming a file onto itself does nothing.
            return Ok(());
        }
        let replaced;
        if from_dir == to_dir {
            let d = st.dir_mut(from_dir)?;
            d.current.remove(&from_name);
            replaced = d.current.insert(to_name.clone(), id);
            d.log.push(NsOp::Rename {
                from: from_name,
                to: to_name,
            });
        } else {
            let src = st.dir_mut(from_dir)?;
            src.current.remove(&from_name);
            src.log.push(NsOp::Remove { name: from_name });
            let dst = st.dir_mut(to_dir)?;
            replaced = dst.current.insert(to_name.clone(), id);
            dst.log.push(NsOp::Link {
                name: to_name,
                inode: id,
            });
        }
        if let Some(old) = replaced {
            st.collect(old);
        }
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.begin_op()?;
        let id = st.lookup(path)?;
        let (dir, name) = split(path)?;
        let d = st.dir_mut(dir)?;
        d.current.remove(&name);
        d.log.push(NsOp::Remove { name });
        st.collect(id);
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let st = self.lock();
        st.check()?;
        // Files only: storage directories hold no subdirectories.
        Ok(st.dir(dir)?.current.keys().cloned().collect())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.begin_op()?;
        st.dir(dir)?;
        st.take_fault(FaultOn::Sync)?;
        let d = st.dir_mut(dir)?;
        let old_durable = std::mem::replace(&mut d.durable, d.current.clone());
        let log = std::mem::take(&mut d.log);
        // Inodes that only the old durable entries or the log could have
        // brought back may now be unreachable.
        let mut dropped: BTreeSet<InodeId> = old_durable.into_values().collect();
        dropped.extend(log.iter().filter_map(|op| match op {
            NsOp::Link { inode, .. } => Some(*inode),
            NsOp::Rename { .. } | NsOp::Remove { .. } => None,
        }));
        for id in dropped {
            st.collect(id);
        }
        Ok(())
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.check()?;
        for d in dir.ancestors() {
            st.dirs.entry(d.to_path_buf()).or_default();
        }
        Ok(())
    }
}

/// An open file: the shared state and an inode, so it keeps working after its
/// name is renamed or removed.
struct SimFile {
    state: Arc<Mutex<State>>,
    inode: InodeId,
}

impl SimFile {
    /// The caller has already counted this handle in `Inode::handles`.
    fn new(state: &Arc<Mutex<State>>, inode: InodeId) -> Self {
        SimFile {
            state: Arc::clone(state),
            inode,
        }
    }
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFile")
            .field("inode", &self.inode)
            .finish()
    }
}

impl FsFile for SimFile {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut st = lock(&self.state);
        st.begin_op()?;
        st.take_fault(FaultOn::Write)?;
        let offset = to_usize(offset)?;
        offset
            .checked_add(data.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "write past usize::MAX"))?;
        if data.is_empty() {
            return Ok(());
        }
        let inode = st.inode_mut(self.inode);
        let op = DataOp::Write {
            offset,
            data: data.to_vec(),
        };
        op.apply(&mut inode.current);
        inode.unsynced.push(op);
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut st = lock(&self.state);
        st.begin_op()?;
        if let Err(e) = st.take_fault(FaultOn::Sync) {
            // Nothing becomes durable; the unsynced ops stay pending, so a
            // power loss may still keep some of them, or none.
            st.inode_mut(self.inode).poisoned = true;
            return Err(e);
        }
        let inode = st.inode_mut(self.inode);
        if inode.poisoned {
            return Err(SimFs::eio());
        }
        inode.durable = inode.current.clone();
        inode.unsynced.clear();
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let mut st = lock(&self.state);
        st.begin_op()?;
        let len = to_usize(len)?;
        let inode = st.inode_mut(self.inode);
        let op = DataOp::SetLen { len };
        op.apply(&mut inode.current);
        inode.unsynced.push(op);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        let st = lock(&self.state);
        st.check()?;
        Ok(st
            .inodes
            .get(&self.inode)
            .map_or(0, |i| i.current.len() as u64))
    }
}

impl Drop for SimFile {
    fn drop(&mut self) {
        let mut st = lock(&self.state);
        if let Some(inode) = st.inodes.get_mut(&self.inode) {
            inode.handles = inode.handles.saturating_sub(1);
        }
        st.collect(self.inode);
    }
}

#[cfg(test)]
mod tests;
