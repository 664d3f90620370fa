//! The transaction log: append-only segment files of [`record`]s.
//!
//! Segment names: `log.<generation:08x>.<first zxid:016x>`. The active segment
//! is preallocated with zeros (so an fdatasync rarely has to update the file
//! size) and sealed at its exact length, fully synced, before the next one is
//! created; the directory is fsynced whenever a segment appears or vanishes.
//!
//! Recovery rules (see [`TxnLog::open`]), given the durable mark (the last
//! zxid ever reported durable, from `standing_file`):
//! - the first bad record, trailing garbage, gap or empty sealed segment
//!   ends the trustworthy log;
//! - if everything the mark vouches for comes before that point, what follows
//!   can only be writes whose fsync never completed (a torn record, or later
//!   writes that reached the disk before earlier ones): a torn tail, cut off;
//! - otherwise it is **damage**: records this server reported durable (and
//!   may have acknowledged) are bad or gone. Damage is never cut silently: the
//!   caller is told first (it records the server as recovering), the damaged
//!   bytes are kept in `<segment>.damaged`, and the valid prefix stays.
//!
//! Without a mark (a data directory from before marks) every bad tail of the
//! last segment is taken for a torn one, as before.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use tracing::warn;
use zab_core::{Txn, Zxid};

use super::error::{Result, StorageError};
use super::fs::{Fs, FsFile};
use super::record::{self, Decoded};

/// Sizes of the log's files.
#[derive(Clone, Copy, Debug)]
pub struct LogConfig {
    /// A segment is sealed once it holds at least this many bytes.
    pub segment_bytes_max: u64,
    /// Zeros written ahead of the data in the active segment.
    pub prealloc_bytes: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes_max: 64 * 1024 * 1024,
            prealloc_bytes: 64 * 1024 * 1024,
        }
    }
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    first: Zxid,
    /// The zxid its first record follows, from its name (segments of older
    /// builds have none). It chains the segments: a segment lost from the
    /// middle shows as a break in the chain even where the zxids alone
    /// look contiguous (a lost epoch's tail, followed by the next epoch's
    /// first counter).
    prev: Option<Zxid>,
    /// Last zxid in the segment (ZERO while empty).
    last: Zxid,
    /// Bytes of records.
    len: u64,
}

#[derive(Debug)]
struct Active {
    file: Box<dyn FsFile>,
    /// The file's allocated size (data plus preallocated zeros).
    allocated: u64,
}

#[derive(Debug)]
pub struct TxnLog {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    generation: u32,
    cfg: LogConfig,
    segments: Vec<Segment>,
    active: Option<Active>,
    /// Encoded records not yet written to the active segment.
    pending: Vec<u8>,
    /// Segment length including `pending`.
    last: Zxid,
    /// What the history starts after while the log is empty (the snapshot
    /// it continues): the chain link of the first segment rolled then.
    floor: Zxid,
}

/// What recovery found.
#[derive(Debug)]
pub struct Recovered {
    /// Every valid record, in order (zero-copy views of the segment files).
    pub records: Vec<Txn>,
    /// Bytes cut from the tail of the last segment.
    pub truncated_bytes: u64,
    /// Damage found (already reported to the caller's `on_damage`).
    pub damage: Option<String>,
}

/// Suffix of a damaged file kept aside for the operator; never read again.
pub const DAMAGED_SUFFIX: &str = ".damaged";

/// Where the trustworthy log ends, and why.
struct Stop {
    offset: usize,
    reason: String,
}

/// `log.<generation>.<first zxid>.<zxid it follows>`, in fixed-width hex.
pub fn segment_name(generation: u32, first: Zxid, prev: Zxid) -> String {
    format!("log.{generation:08x}.{:016x}.{:016x}", first.0, prev.0)
}

/// The zxid a segment's first record follows, if its name says (names of
/// older builds, `log.<generation>.<first zxid>`, do not).
pub fn segment_chain(name: &str) -> Option<Zxid> {
    let rest = name.strip_prefix("log.")?;
    let mut parts = rest.split('.');
    let (_, _, prev) = (parts.next()?, parts.next()?, parts.next()?);
    (prev.len() == 16 && parts.next().is_none())
        .then(|| u64::from_str_radix(prev, 16).ok().map(Zxid))
        .flatten()
}

pub fn parse_segment_name(name: &str) -> Option<(u32, Zxid)> {
    let rest = name.strip_prefix("log.")?;
    let (generation, rest) = rest.split_once('.')?;
    let first = match rest.split_once('.') {
        Some((first, prev)) if prev.len() == 16 && !prev.contains('.') => first,
        Some(_) => return None,
        None => rest,
    };
    if generation.len() != 8 || first.len() != 16 {
        return None;
    }
    Some((
        u32::from_str_radix(generation, 16).ok()?,
        Zxid(u64::from_str_radix(first, 16).ok()?),
    ))
}

impl TxnLog {
    /// Opens the log of `generation` in `dir`, verifying every segment and
    /// cutting a torn tail. Segments of older generations are superseded by a
    /// snapshot and deleted; a newer generation than any usable snapshot is an
    /// error the caller reports.
    ///
    /// `mark`: the durable mark for this generation, if known. `on_damage` is
    /// called once, before anything is cut, when recovery finds damage.
    pub fn open(
        fs: Arc<dyn Fs>,
        dir: &Path,
        generation: u32,
        cfg: LogConfig,
        mark: Option<Zxid>,
        on_damage: &mut dyn FnMut(&str) -> Result<()>,
    ) -> Result<(TxnLog, Recovered)> {
        let mut names: Vec<(u32, Zxid, String)> = fs
            .list(dir)
            .map_err(|e| StorageError::io("list", dir, e))?
            .into_iter()
            .filter_map(|n| parse_segment_name(&n).map(|(g, z)| (g, z, n)))
            .collect();
        names.sort();
        let mut stale = false;
        for (g, _, name) in &names {
            if *g < generation {
                let path = dir.join(name);
                fs.remove(&path)
                    .map_err(|e| StorageError::io("remove", &path, e))?;
                stale = true;
            } else if *g > generation {
                return Err(StorageError::corrupt(
                    dir.join(name),
                    0,
                    format!("log generation {g} has no valid snapshot (newest usable is generation {generation})"),
                ));
            }
        }
        if stale {
            fs.sync_dir(dir)
                .map_err(|e| StorageError::io("fsync directory", dir, e))?;
        }
        let mut log = TxnLog {
            fs,
            dir: dir.to_path_buf(),
            generation,
            cfg,
            segments: Vec::new(),
            active: None,
            pending: Vec::new(),
            last: Zxid::ZERO,
            floor: Zxid::ZERO,
        };
        let ours: Vec<_> = names
            .into_iter()
            .filter(|(g, _, _)| *g == generation)
            .collect();
        let mut records = Vec::new();
        let mut truncated_bytes = 0;
        let mut damage = None;
        let count = ours.len();
        let mut files = ours.into_iter().enumerate();
        for (i, (_, first, name)) in files.by_ref() {
            let path = dir.join(&name);
            let is_last = i + 1 == count;
            let chain = segment_chain(&name);
            let (seg, stop) = log.scan_segment(&path, (first, chain), is_last, &mut records)?;
            let Some(stop) = stop else {
                if seg.last == Zxid::ZERO {
                    // The newest segment was created but nothing in it became
                    // durable.
                    log.remove_empty_segment(&path)?;
                } else {
                    log.segments.push(seg);
                }
                continue;
            };
            let valid_through = records.last().map_or(Zxid::ZERO, |t: &Txn| t.zxid);
            let vouched = mark.is_some_and(|m| m > valid_through);
            if is_last && !vouched {
                // Past everything ever reported durable: a torn tail.
                warn!(file = %path.display(), offset = stop.offset, reason = %stop.reason, "cutting a torn tail off the log (past the durable mark)");
                truncated_bytes += log.cut_at(&path, stop.offset)?;
            } else {
                let what = format!(
                    "{} at byte offset {}: {} (the log was reported durable through {}, \
                     only {valid_through} is intact)",
                    path.display(),
                    stop.offset,
                    stop.reason,
                    mark.map_or_else(|| "an unknown zxid".to_string(), |m| m.to_string()),
                );
                tracing::error!(damage = %what, "the log is damaged");
                on_damage(&what)?;
                log.keep_aside(&path)?;
                log.cut_at(&path, stop.offset)?;
                for (_, (_, _, later)) in files.by_ref() {
                    let later = dir.join(later);
                    log.keep_aside(&later)?;
                    log.fs
                        .remove(&later)
                        .map_err(|e| StorageError::io("remove", &later, e))?;
                }
                log.fs
                    .sync_dir(dir)
                    .map_err(|e| StorageError::io("fsync directory", dir, e))?;
                damage = Some(what);
            }
            if seg.last == Zxid::ZERO {
                // Nothing in the segment survived.
                log.remove_empty_segment(&path)?;
            } else {
                log.segments.push(Segment {
                    len: stop.offset as u64,
                    ..seg
                });
            }
            break;
        }
        if let Some(seg) = log.segments.last() {
            log.last = seg.last;
            // Appends continue in the newest segment.
            let file = log
                .fs
                .open(&seg.path)
                .map_err(|e| StorageError::io("open", &seg.path, e))?;
            let allocated = file
                .len()
                .map_err(|e| StorageError::io("stat", &seg.path, e))?;
            log.active = Some(Active { file, allocated });
        }
        Ok((
            log,
            Recovered {
                records,
                truncated_bytes,
                damage,
            },
        ))
    }

    /// Reads one segment's valid records into `records`. Returns the segment
    /// and, if it does not end cleanly, where and why the trustworthy part
    /// stops (nothing is modified here).
    fn scan_segment(
        &mut self,
        path: &Path,
        (first, chain): (Zxid, Option<Zxid>),
        is_last: bool,
        records: &mut Vec<Txn>,
    ) -> Result<(Segment, Option<Stop>)> {
        let data = self
            .fs
            .read(path)
            .map_err(|e| StorageError::io("read", path, e))?;
        let mut offset = 0usize;
        let mut last = Zxid::ZERO;
        let mut prev = records.last().map(|t: &Txn| t.zxid);
        let mut stop = None;
        loop {
            match record::decode(&data, offset) {
                Decoded::Record(txn, next) => {
                    let expected_first = offset == 0 && txn.zxid != first;
                    let gap = prev.is_some_and(|p| !p.is_followed_by(txn.zxid));
                    // The segment names what it follows; the log before it
                    // must end there.
                    let broken =
                        offset == 0 && prev.is_some() && chain.is_some_and(|c| Some(c) != prev);
                    if broken {
                        let reason = format!(
                            "the segment follows {} but the log before it ends at {} (a segment is missing)",
                            chain.unwrap_or(Zxid::ZERO),
                            prev.unwrap_or(Zxid::ZERO)
                        );
                        stop = Some(Stop { offset, reason });
                        break;
                    }
                    if expected_first || gap {
                        let reason = format!(
                            "zxid {} follows {}, leaving a gap (is a log segment missing?)",
                            txn.zxid,
                            prev.unwrap_or(Zxid::ZERO)
                        );
                        stop = Some(Stop { offset, reason });
                        break;
                    }
                    prev = Some(txn.zxid);
                    last = txn.zxid;
                    records.push(owned(txn));
                    offset = next;
                }
                Decoded::End => break,
                Decoded::Bad(reason) => {
                    stop = Some(Stop {
                        offset,
                        reason: reason.to_string(),
                    });
                    break;
                }
            }
        }
        if stop.is_none() && data[offset..].iter().any(|&b| b != 0) {
            let reason = if is_last {
                "bytes after the end-of-log marker"
            } else {
                "data after the end of a sealed segment"
            };
            stop = Some(Stop {
                offset,
                reason: reason.to_string(),
            });
        }
        if stop.is_none() && last == Zxid::ZERO && !is_last {
            stop = Some(Stop {
                offset: 0,
                reason: "sealed segment holds no records".to_string(),
            });
        }
        let seg = Segment {
            path: path.to_path_buf(),
            first,
            prev: chain,
            last,
            len: offset as u64,
        };
        Ok((seg, stop))
    }

    /// Removes a segment that holds no records, durably. Its name promises a
    /// first zxid that may never come (a TRUNC or a new epoch can follow).
    fn remove_empty_segment(&mut self, path: &Path) -> Result<()> {
        self.fs
            .remove(path)
            .map_err(|e| StorageError::io("remove", path, e))?;
        self.fs
            .sync_dir(&self.dir)
            .map_err(|e| StorageError::io("fsync directory", &self.dir, e))
    }

    /// Cuts `path` at `offset` durably; returns the bytes removed.
    fn cut_at(&mut self, path: &Path, offset: usize) -> Result<u64> {
        let mut file = self
            .fs
            .open(path)
            .map_err(|e| StorageError::io("open", path, e))?;
        let len = file.len().map_err(|e| StorageError::io("stat", path, e))?;
        file.set_len(offset as u64)
            .and_then(|()| file.sync_data())
            .map_err(|e| StorageError::io("truncate", path, e))?;
        Ok(len.saturating_sub(offset as u64))
    }

    /// Copies `path` to `<path>.damaged` for the operator (durably).
    fn keep_aside(&mut self, path: &Path) -> Result<()> {
        let data = self
            .fs
            .read(path)
            .map_err(|e| StorageError::io("read", path, e))?;
        let aside = PathBuf::from(format!("{}{DAMAGED_SUFFIX}", path.display()));
        let mut file = self
            .fs
            .create(&aside)
            .map_err(|e| StorageError::io("create", &aside, e))?;
        file.write_at(0, &data)
            .and_then(|()| file.sync_data())
            .map_err(|e| StorageError::io("write", &aside, e))
    }

    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// The last zxid appended (durable or not); ZERO when empty.
    pub fn last(&self) -> Zxid {
        self.last
    }

    /// Sets what the history starts after while the log is empty (the
    /// snapshot the log continues).
    pub fn set_floor(&mut self, floor: Zxid) {
        self.floor = floor;
    }

    /// The zxid the first segment holding records follows, if its name says.
    pub fn chain_start(&self) -> Option<Zxid> {
        self.segments
            .iter()
            .find(|s| s.last != Zxid::ZERO)
            .and_then(|s| s.prev)
    }

    /// The first zxid held, if any.
    pub fn first(&self) -> Option<Zxid> {
        self.segments
            .iter()
            .find(|s| s.last != Zxid::ZERO)
            .map(|s| s.first)
    }

    /// Buffers `txn`; it is written and made durable by [`TxnLog::sync`].
    pub fn append(&mut self, txn: &Txn) -> Result<()> {
        if txn.payload.len() > record::PAYLOAD_BYTES_MAX {
            return Err(StorageError::Failed {
                cause: format!(
                    "transaction {} is larger than a log record may be",
                    txn.zxid
                ),
            });
        }
        let full = self
            .segments
            .last()
            .is_some_and(|s| s.len + self.pending.len() as u64 >= self.cfg.segment_bytes_max);
        if self.segments.is_empty() || full {
            self.roll(txn.zxid)?;
        }
        let seg = self.segments.last_mut().expect("rolled above");
        record::encode(txn, &mut self.pending);
        if seg.last == Zxid::ZERO {
            seg.first = txn.zxid;
        }
        seg.last = txn.zxid;
        self.last = txn.zxid;
        Ok(())
    }

    /// Writes everything appended and fdatasyncs it: one sync per batch.
    pub fn sync(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let seg = self
            .segments
            .last_mut()
            .expect("pending data implies a segment");
        let active = self
            .active
            .as_mut()
            .expect("pending data implies an active segment");
        let offset = seg.len;
        let end = offset + self.pending.len() as u64;
        let path = &seg.path;
        active
            .file
            .write_at(offset, &self.pending)
            .map_err(|e| StorageError::io("write", path, e))?;
        if end > active.allocated {
            active.allocated = end;
        }
        active
            .file
            .sync_data()
            .map_err(|e| StorageError::io("fdatasync", path, e))?;
        seg.len = end;
        self.pending.clear();
        Ok(())
    }

    /// Seals the active segment and starts a new one whose first record is `first`.
    fn roll(&mut self, first: Zxid) -> Result<()> {
        self.sync()?;
        if let (Some(active), Some(seg)) = (self.active.as_mut(), self.segments.last()) {
            let path = &seg.path;
            active
                .file
                .set_len(seg.len)
                .and_then(|()| active.file.sync_data())
                .map_err(|e| StorageError::io("seal segment", path, e))?;
        }
        // An empty segment (a fresh log, or one emptied by truncation) is reused.
        if self.segments.last().is_some_and(|s| s.last == Zxid::ZERO) {
            let seg = self.segments.pop().expect("checked");
            self.fs
                .remove(&seg.path)
                .map_err(|e| StorageError::io("remove", &seg.path, e))?;
        }
        let prev = if self.last == Zxid::ZERO {
            self.floor
        } else {
            self.last
        };
        let path = self.dir.join(segment_name(self.generation, first, prev));
        let mut file = self
            .fs
            .create(&path)
            .map_err(|e| StorageError::io("create", &path, e))?;
        file.set_len(self.cfg.prealloc_bytes)
            .and_then(|()| file.sync_data())
            .map_err(|e| StorageError::io("preallocate", &path, e))?;
        self.fs
            .sync_dir(&self.dir)
            .map_err(|e| StorageError::io("fsync directory", &self.dir, e))?;
        self.active = Some(Active {
            file,
            allocated: self.cfg.prealloc_bytes,
        });
        self.segments.push(Segment {
            path,
            first,
            prev: Some(prev),
            last: Zxid::ZERO,
            len: 0,
        });
        Ok(())
    }

    /// Removes every record after `to`, across segments; durable when this returns.
    pub fn truncate_after(&mut self, to: Zxid) -> Result<()> {
        self.sync()?;
        if to >= self.last {
            return Ok(());
        }
        let mut removed = false;
        while self
            .segments
            .last()
            .is_some_and(|s| s.first > to || s.last == Zxid::ZERO)
        {
            let seg = self.segments.pop().expect("checked");
            self.active = None;
            self.fs
                .remove(&seg.path)
                .map_err(|e| StorageError::io("remove", &seg.path, e))?;
            removed = true;
        }
        if removed {
            self.fs
                .sync_dir(&self.dir)
                .map_err(|e| StorageError::io("fsync directory", &self.dir, e))?;
        }
        if let Some(seg) = self.segments.last_mut() {
            if seg.last > to {
                let data = self
                    .fs
                    .read(&seg.path)
                    .map_err(|e| StorageError::io("read", &seg.path, e))?;
                let mut offset = 0;
                while let Decoded::Record(txn, next) = record::decode(&data, offset) {
                    if txn.zxid > to {
                        break;
                    }
                    offset = next;
                }
                drop(data);
                let mut file = self
                    .fs
                    .open(&seg.path)
                    .map_err(|e| StorageError::io("open", &seg.path, e))?;
                file.set_len(offset as u64)
                    .and_then(|()| file.sync_data())
                    .map_err(|e| StorageError::io("truncate", &seg.path, e))?;
                seg.len = offset as u64;
                seg.last = to;
                self.active = Some(Active {
                    file,
                    allocated: offset as u64,
                });
            } else if self.active.is_none() {
                let file = self
                    .fs
                    .open(&seg.path)
                    .map_err(|e| StorageError::io("open", &seg.path, e))?;
                let allocated = file
                    .len()
                    .map_err(|e| StorageError::io("stat", &seg.path, e))?;
                self.active = Some(Active { file, allocated });
            }
        }
        self.last = self.segments.last().map_or(Zxid::ZERO, |s| s.last);
        Ok(())
    }

    /// Keeps every segment aside as `<segment>.damaged` and empties the log:
    /// its records do not continue the history recovery starts from.
    pub fn set_aside_all(&mut self) -> Result<()> {
        self.remove_all_segments(true)
    }

    /// Deletes every segment and starts `generation` (after a snapshot install).
    pub fn reset(&mut self, generation: u32) -> Result<()> {
        self.remove_all_segments(false)?;
        self.generation = generation;
        Ok(())
    }

    /// Empties the log, durably; with `keep_aside`, copies of the segments
    /// stay as `<segment>.damaged`.
    fn remove_all_segments(&mut self, keep_aside: bool) -> Result<()> {
        self.pending.clear();
        self.active = None;
        for seg in std::mem::take(&mut self.segments) {
            if keep_aside {
                self.keep_aside(&seg.path)?;
            }
            self.fs
                .remove(&seg.path)
                .map_err(|e| StorageError::io("remove", &seg.path, e))?;
        }
        self.fs
            .sync_dir(&self.dir)
            .map_err(|e| StorageError::io("fsync directory", &self.dir, e))?;
        self.last = Zxid::ZERO;
        Ok(())
    }

    /// Removes sealed segments whose records are all at or below `zxid`.
    pub fn purge_through(&mut self, zxid: Zxid) -> Result<usize> {
        let keep_from = self
            .segments
            .iter()
            .position(|s| s.last > zxid || s.last == Zxid::ZERO)
            .unwrap_or(self.segments.len());
        // Never the active (last) segment.
        let n = keep_from.min(self.segments.len().saturating_sub(1));
        for seg in self.segments.drain(..n) {
            self.fs
                .remove(&seg.path)
                .map_err(|e| StorageError::io("remove", &seg.path, e))?;
        }
        if n > 0 {
            self.fs
                .sync_dir(&self.dir)
                .map_err(|e| StorageError::io("fsync directory", &self.dir, e))?;
        }
        Ok(n)
    }

    /// The durable records in `(after, through]`, for a DIFF to a follower.
    pub fn read_range(&self, after: Zxid, through: Zxid) -> Result<Vec<Txn>> {
        let mut out = Vec::new();
        for seg in &self.segments {
            if seg.last <= after || seg.first > through || seg.len == 0 {
                continue;
            }
            let data = self
                .fs
                .read(&seg.path)
                .map_err(|e| StorageError::io("read", &seg.path, e))?;
            let data = data.slice(..(seg.len as usize).min(data.len()));
            let mut offset = 0;
            loop {
                match record::decode(&data, offset) {
                    Decoded::Record(txn, next) => {
                        if txn.zxid > after && txn.zxid <= through {
                            out.push(owned(txn));
                        }
                        offset = next;
                    }
                    Decoded::End => break,
                    Decoded::Bad(reason) => {
                        return Err(StorageError::corrupt(&seg.path, offset as u64, reason))
                    }
                }
            }
        }
        Ok(out)
    }

    /// Paths of the segment files, oldest first (for inspection and tests).
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        self.segments.iter().map(|s| s.path.clone()).collect()
    }
}

/// A copy of `txn` that does not point into a mapped segment: segments are
/// truncated and rewritten in place by TRUNC, which would change (or, past the
/// new end, fault) a view that outlived the read.
fn owned(txn: Txn) -> Txn {
    Txn {
        zxid: txn.zxid,
        payload: Bytes::copy_from_slice(&txn.payload),
    }
}

/// Reads a whole segment for offline inspection: every record until the end
/// or the first bad one, and the offset and reason where it stopped.
pub fn inspect_segment(data: &Bytes) -> (Vec<Txn>, Option<(usize, &'static str)>) {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        match record::decode(data, offset) {
            Decoded::Record(txn, next) => {
                out.push(txn);
                offset = next;
            }
            Decoded::End => return (out, None),
            Decoded::Bad(reason) => return (out, Some((offset, reason))),
        }
    }
}
