//! Jute, ZooKeeper's binary encoding: big-endian `int` (4 bytes) and
//! `long` (8), `boolean` as one byte, `buffer` and `ustring` as an `int`
//! length (-1: null) and the bytes, vectors as an `int` count (-1: null)
//! and the elements. Records are their fields in order, with no tags.

use bytes::{Buf, BufMut, Bytes};

use crate::{Acl, Perms, Stat};

/// Why a ZooKeeper frame could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JuteError {
    /// The body ended inside `field` of `record`.
    Truncated {
        record: &'static str,
        field: &'static str,
    },
    /// `field` holds a value outside its domain.
    BadValue {
        record: &'static str,
        field: &'static str,
        value: i64,
    },
    /// A string field is not UTF-8.
    BadUtf8 {
        record: &'static str,
        field: &'static str,
    },
}

impl std::fmt::Display for JuteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JuteError::Truncated { record, field } => {
                write!(
                    f,
                    "truncated ZooKeeper {record}: the frame ends inside `{field}`"
                )
            }
            JuteError::BadValue {
                record,
                field,
                value,
            } => write!(f, "ZooKeeper {record}: `{field}` = {value} is out of range"),
            JuteError::BadUtf8 { record, field } => {
                write!(f, "ZooKeeper {record}: `{field}` is not UTF-8")
            }
        }
    }
}

impl std::error::Error for JuteError {}

/// Reads one record's fields from a frame body.
#[derive(Debug)]
pub struct JuteReader {
    buf: Bytes,
    record: &'static str,
}

impl JuteReader {
    pub fn new(buf: Bytes, record: &'static str) -> JuteReader {
        JuteReader { buf, record }
    }

    /// Names the record being read, for errors.
    pub fn record(&mut self, record: &'static str) {
        self.record = record;
    }

    pub fn remaining(&self) -> usize {
        self.buf.remaining()
    }

    fn need(&self, n: usize, field: &'static str) -> Result<(), JuteError> {
        match self.buf.remaining() >= n {
            true => Ok(()),
            false => Err(JuteError::Truncated {
                record: self.record,
                field,
            }),
        }
    }

    fn bad(&self, field: &'static str, value: i64) -> JuteError {
        JuteError::BadValue {
            record: self.record,
            field,
            value,
        }
    }

    pub fn int(&mut self, field: &'static str) -> Result<i32, JuteError> {
        self.need(4, field)?;
        Ok(self.buf.get_i32())
    }

    pub fn long(&mut self, field: &'static str) -> Result<i64, JuteError> {
        self.need(8, field)?;
        Ok(self.buf.get_i64())
    }

    pub fn bool(&mut self, field: &'static str) -> Result<bool, JuteError> {
        self.need(1, field)?;
        Ok(self.buf.get_u8() != 0)
    }

    /// A length (-1, null, reads as 0) no larger than what is left.
    fn len(&mut self, field: &'static str, unit: usize) -> Result<usize, JuteError> {
        match self.int(field)? {
            -1 => Ok(0),
            n if n < 0 => Err(self.bad(field, i64::from(n))),
            n => {
                let n = n as usize;
                self.need(n.saturating_mul(unit), field)?;
                Ok(n)
            }
        }
    }

    pub fn buffer(&mut self, field: &'static str) -> Result<Bytes, JuteError> {
        let n = self.len(field, 1)?;
        Ok(self.buf.split_to(n))
    }

    pub fn ustring(&mut self, field: &'static str) -> Result<String, JuteError> {
        let bytes = self.buffer(field)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| JuteError::BadUtf8 {
            record: self.record,
            field,
        })
    }

    pub fn strings(&mut self, field: &'static str) -> Result<Vec<String>, JuteError> {
        let n = self.len(field, 4)?;
        (0..n).map(|_| self.ustring(field)).collect()
    }

    /// A `vector<ACL>`: each entry `perms`, then its id's scheme and id.
    pub fn acls(&mut self, field: &'static str) -> Result<Vec<Acl>, JuteError> {
        let n = self.len(field, 12)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let bits = self.int("acl.perms")?;
            let perms = u8::try_from(bits)
                .ok()
                .and_then(Perms::from_bits)
                .ok_or_else(|| self.bad("acl.perms", i64::from(bits)))?;
            out.push(Acl {
                perms,
                scheme: self.ustring("acl.scheme")?,
                id: self.ustring("acl.id")?,
            });
        }
        Ok(out)
    }
}

pub fn put_int(dst: &mut impl BufMut, v: i32) {
    dst.put_i32(v);
}

pub fn put_long(dst: &mut impl BufMut, v: i64) {
    dst.put_i64(v);
}

pub fn put_bool(dst: &mut impl BufMut, v: bool) {
    dst.put_u8(u8::from(v));
}

/// Lengths are below the frame limit, far under `i32::MAX`.
fn put_len(dst: &mut impl BufMut, n: usize) {
    dst.put_i32(i32::try_from(n).unwrap_or(i32::MAX));
}

pub fn put_buffer(dst: &mut impl BufMut, v: &[u8]) {
    put_len(dst, v.len());
    dst.put_slice(v);
}

pub fn put_ustring(dst: &mut impl BufMut, v: &str) {
    put_buffer(dst, v.as_bytes());
}

pub fn put_strings<S: AsRef<str>>(dst: &mut impl BufMut, v: &[S]) {
    put_len(dst, v.len());
    for s in v {
        put_ustring(dst, s.as_ref());
    }
}

pub fn put_acls(dst: &mut impl BufMut, acls: &[Acl]) {
    put_len(dst, acls.len());
    for a in acls {
        put_int(dst, i32::from(a.perms.bits()));
        put_ustring(dst, &a.scheme);
        put_ustring(dst, &a.id);
    }
}

/// ZooKeeper's `Stat`, whose fields and order are ours.
pub fn put_stat(dst: &mut impl BufMut, s: &Stat) {
    dst.put_u64(s.czxid);
    dst.put_u64(s.mzxid);
    dst.put_i64(s.ctime);
    dst.put_i64(s.mtime);
    dst.put_i32(s.version);
    dst.put_i32(s.cversion);
    dst.put_i32(s.aversion);
    dst.put_u64(s.ephemeral_owner);
    dst.put_i32(s.data_length);
    dst.put_i32(s.num_children);
    dst.put_u64(s.pzxid);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nulls_read_as_empty_and_lengths_are_checked() {
        let mut body = Vec::new();
        put_int(&mut body, -1); // a null buffer
        put_int(&mut body, -1); // a null vector
        put_int(&mut body, 1_000); // a length past the end
        let mut r = JuteReader::new(Bytes::from(body), "test");
        assert_eq!(r.buffer("b").expect("null"), Bytes::new());
        assert_eq!(r.strings("v").expect("null"), Vec::<String>::new());
        assert_eq!(
            r.buffer("c"),
            Err(JuteError::Truncated {
                record: "test",
                field: "c"
            })
        );
        let mut negative = Vec::new();
        put_int(&mut negative, -7);
        let mut r = JuteReader::new(Bytes::from(negative), "test");
        assert!(matches!(
            r.ustring("s"),
            Err(JuteError::BadValue { value: -7, .. })
        ));
    }

    #[test]
    fn acls_round_trip_and_bad_perms_are_refused() {
        let acls = vec![Acl {
            perms: Perms::ALL,
            scheme: "world".into(),
            id: "anyone".into(),
        }];
        let mut body = Vec::new();
        put_acls(&mut body, &acls);
        let mut r = JuteReader::new(Bytes::from(body), "test");
        assert_eq!(r.acls("acl").expect("valid"), acls);
        let mut bad = Vec::new();
        put_int(&mut bad, 1);
        put_int(&mut bad, 64);
        put_ustring(&mut bad, "world");
        put_ustring(&mut bad, "anyone");
        let mut r = JuteReader::new(Bytes::from(bad), "test");
        assert!(matches!(
            r.acls("acl"),
            Err(JuteError::BadValue { value: 64, .. })
        ));
    }
}
