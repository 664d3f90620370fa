//! The primitives shared by the transaction and snapshot encodings: big-endian
//! fixed-width integers, `u32` length-prefixed byte strings, and a reader that
//! checks every length against what is left before it allocates.

use bytes::{BufMut, Bytes};
use zab_proto::{Acl, Perms};

use super::znode::NodeKind;

/// A decode failure: where, and which check failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Malformed {
    pub(crate) offset: usize,
    pub(crate) reason: &'static str,
}

pub(crate) fn put_bytes(dst: &mut impl BufMut, bytes: &[u8]) {
    // Every caller's input is bounded far below 4 GiB (frame and snapshot
    // limits), so the length always fits; saturating keeps encode infallible
    // and makes a violation a decode error rather than a silent wrap.
    dst.put_u32(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
    dst.put_slice(bytes);
}

pub(crate) fn put_kind(dst: &mut impl BufMut, kind: NodeKind) {
    match kind {
        NodeKind::Persistent => dst.put_u8(0),
        NodeKind::Ephemeral => dst.put_u8(1),
        NodeKind::Container => dst.put_u8(2),
        NodeKind::Ttl { ttl_ms } => {
            dst.put_u8(3);
            dst.put_u64(ttl_ms);
        }
    }
}

/// An ACL list: `count:u32 (perms:u8 scheme id)*` (strings length-prefixed).
pub(crate) fn put_acls(dst: &mut impl BufMut, acl: &[Acl]) {
    dst.put_u32(u32::try_from(acl.len()).unwrap_or(u32::MAX));
    for entry in acl {
        dst.put_u8(entry.perms.bits());
        put_bytes(dst, entry.scheme.as_bytes());
        put_bytes(dst, entry.id.as_bytes());
    }
}

/// A cursor over an encoded buffer. Every read is checked; none panics.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn offset(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn error(&self, reason: &'static str) -> Malformed {
        Malformed {
            offset: self.pos,
            reason,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.remaining() < n {
            return Err(self.error("truncated"));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Malformed> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, Malformed> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn i32(&mut self) -> Result<i32, Malformed> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, Malformed> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, Malformed> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    pub(crate) fn magic(&mut self, expected: &[u8]) -> Result<(), Malformed> {
        let at = self.pos;
        if self.take(expected.len())? != expected {
            return Err(Malformed {
                offset: at,
                reason: "bad magic",
            });
        }
        Ok(())
    }

    /// A `u32` count of items that each take at least `item_bytes_min`
    /// bytes, refused if the rest of the buffer cannot hold that many (so a
    /// damaged count never drives a large allocation).
    pub(crate) fn count(&mut self, item_bytes_min: usize) -> Result<usize, Malformed> {
        let at = self.pos;
        let count = self.u32()? as usize;
        if count.saturating_mul(item_bytes_min.max(1)) > self.remaining() {
            return Err(Malformed {
                offset: at,
                reason: "count larger than the rest of the buffer",
            });
        }
        Ok(count)
    }

    pub(crate) fn slice(&mut self) -> Result<&'a [u8], Malformed> {
        let at = self.pos;
        let len = self.u32()? as usize;
        if len > self.remaining() {
            return Err(Malformed {
                offset: at,
                reason: "length runs past the end",
            });
        }
        self.take(len)
    }

    /// A length-prefixed byte string, copied: nodes must not keep a slice of
    /// a log segment or snapshot alive (that would pin the whole buffer).
    pub(crate) fn bytes(&mut self) -> Result<Bytes, Malformed> {
        Ok(Bytes::copy_from_slice(self.slice()?))
    }

    /// What [`put_acls`] wrote; permission bits beyond ADMIN are refused.
    pub(crate) fn acls(&mut self) -> Result<Vec<Acl>, Malformed> {
        let count = self.count(1 + 4 + 4)?;
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let at = self.pos;
            let perms = Perms::from_bits(self.u8()?).ok_or(Malformed {
                offset: at,
                reason: "ACL permission bits out of range",
            })?;
            out.push(Acl {
                perms,
                scheme: self.string()?,
                id: self.string()?,
            });
        }
        Ok(out)
    }

    pub(crate) fn string(&mut self) -> Result<String, Malformed> {
        let at = self.pos;
        let raw = self.slice()?;
        match std::str::from_utf8(raw) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(Malformed {
                offset: at,
                reason: "string is not UTF-8",
            }),
        }
    }

    pub(crate) fn kind(&mut self) -> Result<NodeKind, Malformed> {
        let at = self.pos;
        match self.u8()? {
            0 => Ok(NodeKind::Persistent),
            1 => Ok(NodeKind::Ephemeral),
            2 => Ok(NodeKind::Container),
            3 => Ok(NodeKind::Ttl {
                ttl_ms: self.u64()?,
            }),
            _ => Err(Malformed {
                offset: at,
                reason: "unknown node kind",
            }),
        }
    }

    pub(crate) fn finish(&self) -> Result<(), Malformed> {
        if self.remaining() != 0 {
            return Err(self.error("trailing bytes"));
        }
        Ok(())
    }
}
