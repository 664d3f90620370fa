//! A data directory as fuzz input, and checksum repair so the fuzzer gets
//! past the checksums into the parsers behind them.
//!
//! ```text
//! dir   := entry*                    (at most ENTRIES_MAX; a cut entry ends it)
//! entry := name_len u8, name, content_len u16 (big-endian), content
//! ```
//!
//! Names are taken as written (lossy UTF-8); one that is empty or holds a
//! path separator is skipped.

use bytes::BufMut;
use zab_server::storage::epoch_file::{ACCEPTED, CURRENT};
use zab_server::storage::record::{HEADER_BYTES, PAYLOAD_BYTES_MAX};
use zab_server::storage::standing_file::STANDING;
use zab_server::storage::{snapshot_file, txn_log};

/// Files per directory a target looks at.
pub const ENTRIES_MAX: usize = 16;

/// Splits fuzz input into `(name, content)` files.
pub fn parse(mut data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    while out.len() < ENTRIES_MAX {
        let Some((&name_len, rest)) = data.split_first() else {
            break;
        };
        let Some(name) = rest.get(..usize::from(name_len)) else {
            break;
        };
        let rest = &rest[usize::from(name_len)..];
        let Some(len) = rest.get(..2) else {
            break;
        };
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let rest = &rest[2..];
        let content = &rest[..len.min(rest.len())];
        data = &rest[content.len()..];
        let name = String::from_utf8_lossy(name).into_owned();
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            continue;
        }
        out.push((name, content.to_vec()));
    }
    out
}

/// The inverse of [`parse`], for seeds (contents longer than a u16 are cut).
pub fn encode(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, content) in entries {
        let name = &name.as_bytes()[..name.len().min(255)];
        let content = &content[..content.len().min(usize::from(u16::MAX))];
        out.put_u8(name.len() as u8);
        out.put_slice(name);
        out.put_u16(content.len() as u16);
        out.put_slice(content);
    }
    out
}

/// Rewrites the checksums of `content` as the file named `name` would have
/// them if it had been written whole.
pub fn fix_checksums(name: &str, content: &mut [u8]) {
    if txn_log::parse_segment_name(name).is_some() {
        fix_records(content);
    } else if snapshot_file::parse_name(name).is_some() {
        fix_snapshot(content, true);
    } else if name == ACCEPTED || name == CURRENT {
        // Only the checksum is rewritten, in place, when its width allows.
        fix_epoch_line(content);
    } else if name == STANDING {
        fix_standing(content);
    }
}

/// Log records: each header's CRC over len, zxid and payload, walking the
/// records until the end marker or one whose length does not fit.
pub fn fix_records(seg: &mut [u8]) {
    let mut off = 0usize;
    while off + HEADER_BYTES <= seg.len() {
        let header = &seg[off..off + HEADER_BYTES];
        if header.iter().all(|&b| b == 0) {
            break;
        }
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if len > PAYLOAD_BYTES_MAX || seg.len() - off - HEADER_BYTES < len {
            break;
        }
        let mut h = crc32fast::Hasher::new();
        h.update(&seg[off..off + 4]);
        h.update(&seg[off + 8..off + HEADER_BYTES]);
        h.update(&seg[off + HEADER_BYTES..off + HEADER_BYTES + len]);
        let crc = h.finalize();
        seg[off + 4..off + 8].copy_from_slice(&crc.to_be_bytes());
        off += HEADER_BYTES + len;
    }
}

/// Snapshot file header: content length (if `length`), content CRC, header CRC.
pub fn fix_snapshot(file: &mut [u8], length: bool) {
    const HEADER: usize = 36;
    if file.len() < HEADER {
        return;
    }
    if length {
        let len = (file.len() - HEADER) as u64;
        file[20..28].copy_from_slice(&len.to_be_bytes());
    }
    let content_crc = crc32fast::hash(&file[HEADER..]);
    file[28..32].copy_from_slice(&content_crc.to_be_bytes());
    let header_crc = crc32fast::hash(&file[..32]);
    file[32..36].copy_from_slice(&header_crc.to_be_bytes());
}

/// `<number> <crc hex>\n`: the CRC of whatever stands before the first
/// space, written over the 8 bytes after it (if there are 8).
pub fn fix_epoch_line(line: &mut [u8]) {
    let Some(space) = line.iter().position(|&b| b == b' ') else {
        return;
    };
    let crc = format!("{:08x}", crc32fast::hash(&line[..space]));
    if let Some(slot) = line.get_mut(space + 1..space + 9) {
        slot.copy_from_slice(crc.as_bytes());
    }
}

/// The standing file's two slots (at 0 and 512): the CRC of each slot's
/// first 40 bytes, in its last 4.
pub fn fix_standing(file: &mut [u8]) {
    for at in [0usize, 512] {
        if let Some(slot) = file.get_mut(at..at + 44) {
            let crc = crc32fast::hash(&slot[..40]);
            slot[40..].copy_from_slice(&crc.to_be_bytes());
        }
    }
}
