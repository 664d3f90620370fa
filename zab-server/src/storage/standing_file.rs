//! The `standing` file: what this server's disk vouches for.
//!
//! - **The durable mark**: the log is durable through this zxid (of this
//!   snapshot generation). It is written and fdatasynced after every log sync
//!   and before the core hears "durable", so recovery can tell a torn tail
//!   (bytes past the mark: never reported durable, safe to cut) from damage
//!   (a bad or missing record at or below the mark: something this server may
//!   have acknowledged is gone).
//! - **The ensemble** this server's history belongs to (zero: none yet).
//! - **Recovering**: set when recovery found damage, cleared only once an
//!   established leader has synchronized this server again. While set, the
//!   server never votes (see `zab_core::Restored::recovering`).
//!
//! Two fixed slots, written alternately, each checksummed: a torn write of
//! one slot leaves the other, so the file is updated in place with one
//! fdatasync and never via rename.
//!
//! ```text
//! slot (at offset 0 and 512), big-endian:
//! magic "ZABS" | version u8 = 1 | flags u8 (bit 0: recovering) | 0 u16 |
//! seq u64 | generation u32 | 0 u32 | mark zxid u64 | ensemble u64 | crc32 u32
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Buf, BufMut};
use zab_core::{EnsembleId, Zxid};

use super::error::{Result, StorageError};
use super::fs::{Fs, FsFile};

pub const STANDING: &str = "standing";

const MAGIC: &[u8; 4] = b"ZABS";
const VERSION: u8 = 1;
const SLOT_BYTES: usize = 44;
const SLOT_STRIDE: u64 = 512;
const RECOVERING: u8 = 1;

/// One slot's content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Standing {
    /// The snapshot generation whose log `mark` refers to.
    pub generation: u32,
    /// Every log record of `generation` through this zxid was reported durable.
    pub mark: Zxid,
    pub ensemble: EnsembleId,
    pub recovering: bool,
}

/// What is on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    Missing,
    /// The file exists but neither slot is valid.
    Damaged,
    Valid(Standing),
}

/// The open file, with the sequence number of the newest slot.
#[derive(Debug)]
pub struct StandingFile {
    path: PathBuf,
    file: Box<dyn FsFile>,
    seq: u64,
    current: Standing,
}

pub fn read(fs: &dyn Fs, dir: &Path) -> Result<Read> {
    let path = dir.join(STANDING);
    let data = match fs.read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Read::Missing),
        Err(e) => return Err(StorageError::io("read", path, e)),
    };
    Ok(match newest(&data) {
        Some((_, s)) => Read::Valid(s),
        None => Read::Damaged,
    })
}

impl StandingFile {
    /// Opens the file for updates and writes `standing` into it durably.
    pub fn create(fs: &Arc<dyn Fs>, dir: &Path, standing: Standing) -> Result<StandingFile> {
        let path = dir.join(STANDING);
        let existing = match fs.read(&path) {
            Ok(d) => newest(&d).map_or(0, |(seq, _)| seq),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(StorageError::io("read", path, e)),
        };
        let created = existing == 0;
        let file = fs
            .open(&path)
            .map_err(|e| StorageError::io("open", &path, e))?;
        let mut out = StandingFile {
            path,
            file,
            seq: existing,
            current: standing,
        };
        out.write(standing)?;
        if created {
            fs.sync_dir(dir)
                .map_err(|e| StorageError::io("fsync directory", dir, e))?;
        }
        Ok(out)
    }

    pub fn current(&self) -> Standing {
        self.current
    }

    /// Writes `standing` into the older slot and fdatasyncs it.
    pub fn write(&mut self, standing: Standing) -> Result<()> {
        // A slot claiming the last sequence number could never be
        // superseded (found by fuzzing): refuse it rather than wrap.
        let seq = self
            .seq
            .checked_add(1)
            .ok_or_else(|| StorageError::Corrupt {
                file: self.path.clone(),
                offset: 0,
                reason: "the standing file's sequence number is at its maximum".into(),
            })?;
        let slot = encode(seq, &standing);
        let offset = (seq % 2) * SLOT_STRIDE;
        self.file
            .write_at(offset, &slot)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| StorageError::io("write", &self.path, e))?;
        self.seq = seq;
        self.current = standing;
        Ok(())
    }

    /// Moves the durable mark (a no-op when it is already there).
    pub fn mark(&mut self, generation: u32, mark: Zxid) -> Result<()> {
        if self.current.generation == generation && self.current.mark == mark {
            return Ok(());
        }
        self.write(Standing {
            generation,
            mark,
            ..self.current
        })
    }
}

fn encode(seq: u64, s: &Standing) -> Vec<u8> {
    let mut b = Vec::with_capacity(SLOT_BYTES);
    b.extend_from_slice(MAGIC);
    b.put_u8(VERSION);
    b.put_u8(if s.recovering { RECOVERING } else { 0 });
    b.put_u16(0);
    b.put_u64(seq);
    b.put_u32(s.generation);
    b.put_u32(0);
    b.put_u64(s.mark.0);
    b.put_u64(s.ensemble.0);
    let crc = crc32fast::hash(&b);
    b.put_u32(crc);
    b
}

fn decode(slot: &[u8]) -> Option<(u64, Standing)> {
    if slot.len() < SLOT_BYTES || &slot[..4] != MAGIC {
        return None;
    }
    let body = &slot[..SLOT_BYTES - 4];
    let mut crc = &slot[SLOT_BYTES - 4..SLOT_BYTES];
    if crc32fast::hash(body) != crc.get_u32() {
        return None;
    }
    let mut b = &body[4..];
    if b.get_u8() != VERSION {
        return None;
    }
    let flags = b.get_u8();
    b.advance(2);
    let seq = b.get_u64();
    let generation = b.get_u32();
    b.advance(4);
    let mark = Zxid(b.get_u64());
    let ensemble = EnsembleId(b.get_u64());
    Some((
        seq,
        Standing {
            generation,
            mark,
            ensemble,
            recovering: flags & RECOVERING != 0,
        },
    ))
}

/// The valid slot with the highest sequence number.
fn newest(data: &[u8]) -> Option<(u64, Standing)> {
    [0usize, SLOT_STRIDE as usize]
        .into_iter()
        .filter_map(|at| data.get(at..).and_then(decode))
        .max_by_key(|(seq, _)| *seq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sim_fs::SimFs;
    use zab_core::Epoch;

    fn standing(c: u32) -> Standing {
        Standing {
            generation: 0,
            mark: Zxid::new(Epoch(1), c),
            ensemble: EnsembleId(7),
            recovering: c % 2 == 0,
        }
    }

    #[test]
    fn the_newest_slot_wins_and_a_torn_slot_falls_back_to_the_other() {
        let fs = SimFs::new();
        let shared = fs.shared();
        let dir = Path::new("/d");
        fs.create_dir_all(dir).expect("dir");
        assert_eq!(read(&*shared, dir).expect("read"), Read::Missing);
        let mut f = StandingFile::create(&shared, dir, standing(1)).expect("create");
        f.write(standing(2)).expect("write");
        f.write(standing(3)).expect("write");
        assert_eq!(read(&*shared, dir).expect("read"), Read::Valid(standing(3)));
        // Damage the newest slot (seq 3 lives at offset 512): the previous wins.
        let path = dir.join(STANDING);
        let mut raw = shared.read(&path).expect("raw").to_vec();
        raw[512 + 20] ^= 0x10;
        shared
            .create(&path)
            .and_then(|mut w| w.write_at(0, &raw).and_then(|()| w.sync_data()))
            .expect("rewrite");
        assert_eq!(read(&*shared, dir).expect("read"), Read::Valid(standing(2)));
        raw[20] ^= 0x10;
        shared
            .create(&path)
            .and_then(|mut w| w.write_at(0, &raw).and_then(|()| w.sync_data()))
            .expect("rewrite");
        assert_eq!(read(&*shared, dir).expect("read"), Read::Damaged);
        // Reopening continues after the highest valid sequence number.
        let reopened = StandingFile::create(&shared, dir, standing(5)).expect("reopen");
        assert_eq!(reopened.current(), standing(5));
        assert_eq!(read(&*shared, dir).expect("read"), Read::Valid(standing(5)));
    }
}
