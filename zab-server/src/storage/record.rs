//! One transaction-log record on disk:
//!
//! ```text
//! +-----------+-----------+-----------+------------------+
//! | len (u32) | crc (u32) | zxid(u64) | payload (len B)  |
//! +-----------+-----------+-----------+------------------+
//! ```
//!
//! Big-endian. `crc` is CRC-32 (crc32fast) over `len`, `zxid` and the payload,
//! so a torn header and a torn payload are both caught. A header of sixteen zero
//! bytes marks the end of the log: segments are preallocated with zeros, and no
//! real record has zxid 0.

use bytes::{BufMut, Bytes};
use zab_core::{Txn, Zxid};

pub const HEADER_BYTES: usize = 16;

/// The largest payload a record may carry; anything claiming more is damage.
pub const PAYLOAD_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Appends the encoding of `txn` to `dst`.
pub fn encode(txn: &Txn, dst: &mut Vec<u8>) {
    let len = u32::try_from(txn.payload.len()).expect("payload checked against PAYLOAD_BYTES_MAX");
    dst.reserve(HEADER_BYTES + txn.payload.len());
    dst.put_u32(len);
    dst.put_u32(checksum(len, txn.zxid, &txn.payload));
    dst.put_u64(txn.zxid.0);
    dst.extend_from_slice(&txn.payload);
}

pub fn encoded_len(txn: &Txn) -> usize {
    HEADER_BYTES + txn.payload.len()
}

fn checksum(len: u32, zxid: Zxid, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len.to_be_bytes());
    h.update(&zxid.0.to_be_bytes());
    h.update(payload);
    h.finalize()
}

/// What is at an offset of a segment.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A valid record and the offset just after it.
    Record(Txn, usize),
    /// The end-of-log marker (zeros) or the exact end of the data.
    End,
    /// Not a valid record: torn, or damaged. `reason` says which check failed.
    Bad(&'static str),
}

/// Decodes the record at `offset` of `data` (a whole segment, zero-copy).
pub fn decode(data: &Bytes, offset: usize) -> Decoded {
    let rest = &data[offset.min(data.len())..];
    if rest.is_empty() {
        return Decoded::End;
    }
    if rest.len() < HEADER_BYTES {
        return if rest.iter().all(|&b| b == 0) {
            Decoded::End
        } else {
            Decoded::Bad("partial header")
        };
    }
    let header = &rest[..HEADER_BYTES];
    if header.iter().all(|&b| b == 0) {
        return Decoded::End;
    }
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    let mut zxid_bytes = [0u8; 8];
    zxid_bytes.copy_from_slice(&header[8..16]);
    let zxid = Zxid(u64::from_be_bytes(zxid_bytes));
    let len_usize = len as usize;
    if len_usize > PAYLOAD_BYTES_MAX {
        return Decoded::Bad("length over the limit");
    }
    if rest.len() - HEADER_BYTES < len_usize {
        return Decoded::Bad("record runs past the end of the file");
    }
    let start = offset + HEADER_BYTES;
    let payload = data.slice(start..start + len_usize);
    if checksum(len, zxid, &payload) != crc {
        return Decoded::Bad("checksum mismatch");
    }
    if zxid == Zxid::ZERO {
        return Decoded::Bad("zero zxid");
    }
    Decoded::Record(Txn { zxid, payload }, start + len_usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zab_core::Epoch;

    fn txn(c: u32, payload: &'static [u8]) -> Txn {
        Txn {
            zxid: Zxid::new(Epoch(1), c),
            payload: Bytes::from_static(payload),
        }
    }

    #[test]
    fn round_trip_and_end_marker() {
        let mut buf = Vec::new();
        encode(&txn(1, b"hello"), &mut buf);
        encode(&txn(2, b""), &mut buf);
        buf.extend_from_slice(&[0; 40]);
        let data = Bytes::from(buf);
        let Decoded::Record(a, next) = decode(&data, 0) else {
            panic!("first record")
        };
        assert_eq!(a, txn(1, b"hello"));
        let Decoded::Record(b, next) = decode(&data, next) else {
            panic!("second record")
        };
        assert_eq!(b, txn(2, b""));
        assert_eq!(decode(&data, next), Decoded::End);
    }

    #[test]
    fn every_torn_prefix_and_every_bit_flip_is_detected() {
        let mut buf = Vec::new();
        encode(&txn(7, b"some payload bytes"), &mut buf);
        for cut in 1..buf.len() {
            // A torn record is never data: it reads as damage, or (when only
            // leading zero bytes landed) as the end of the log.
            let data = Bytes::copy_from_slice(&buf[..cut]);
            assert!(
                !matches!(decode(&data, 0), Decoded::Record(..)),
                "cut at {cut}"
            );
        }
        for bit in 0..buf.len() * 8 {
            let mut damaged = buf.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            let data = Bytes::from(damaged);
            assert!(matches!(decode(&data, 0), Decoded::Bad(_)), "bit {bit}");
        }
    }
}
