//! acceptedEpoch and currentEpoch, each in its own small file, written
//! atomically (temp file, fsync, rename, directory fsync) and checksummed, so
//! a torn or missing file is detected rather than read as zero (REFERENCE §1.8).
//!
//! Format (text, one line): `<epoch in decimal> <crc32 of that decimal, hex>\n`.

use std::path::Path;

use zab_core::Epoch;

use super::error::{Result, StorageError};
use super::fs::Fs;

pub const ACCEPTED: &str = "acceptedEpoch";
pub const CURRENT: &str = "currentEpoch";

/// Reads an epoch file; `Ok(None)` if it does not exist.
pub fn read(fs: &dyn Fs, dir: &Path, name: &str) -> Result<Option<Epoch>> {
    let path = dir.join(name);
    let data = match fs.read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io("read", path, e)),
    };
    parse(&data)
        .map(Some)
        .ok_or_else(|| StorageError::corrupt(&path, 0, "epoch file is torn or damaged"))
}

fn parse(data: &[u8]) -> Option<Epoch> {
    let text = std::str::from_utf8(data).ok()?;
    let line = text.strip_suffix('\n')?;
    let (number, crc) = line.split_once(' ')?;
    let crc = u32::from_str_radix(crc, 16).ok()?;
    if crc32fast::hash(number.as_bytes()) != crc {
        return None;
    }
    number.parse().ok().map(Epoch)
}

/// Writes an epoch file atomically; durable when this returns.
pub fn write(fs: &dyn Fs, dir: &Path, name: &str, epoch: Epoch) -> Result<()> {
    let number = epoch.0.to_string();
    let content = format!("{number} {:08x}\n", crc32fast::hash(number.as_bytes()));
    super::write_atomically(fs, dir, name, content.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_round_trips_and_rejects_damage() {
        assert_eq!(
            parse(b"7 a0e4d9a2\n").map(|e| e.0).is_some(),
            crc32fast::hash(b"7") == 0xa0e4_d9a2
        );
        let good = format!("42 {:08x}\n", crc32fast::hash(b"42"));
        assert_eq!(parse(good.as_bytes()), Some(Epoch(42)));
        assert_eq!(
            parse(&good.as_bytes()[..good.len() - 1]),
            None,
            "torn: no newline"
        );
        assert_eq!(parse(good.replace("42", "43").as_bytes()), None, "checksum");
        assert_eq!(parse(b""), None);
    }
}
