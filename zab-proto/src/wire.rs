//! Primitive encodings shared by every message: integers, strings, byte
//! arrays, lists, optionals, and the frame around a body.
//!
//! One body writer ([`Body::write`]) serves both the sizing pass and the real
//! write, so a length prefix can never disagree with the bytes that follow
//! it, and no intermediate buffer is needed. [`Reader`] is the only way bytes
//! are read: every getter checks what is left of the frame first, so the
//! panicking `Buf` getters are never reached with too few bytes.

use bytes::{Buf, BufMut, Bytes};

use crate::error::DecodeError;
use crate::types::ErrorCode;

/// Where a body goes: a [`Sizer`] that counts or a [`Writer`] that writes.
pub(crate) trait Sink {
    /// Fixed-size bytes with no length prefix (magic, password).
    fn raw(&mut self, b: &[u8]);

    fn u8(&mut self, v: u8) {
        self.raw(&[v]);
    }
    fn u16(&mut self, v: u16) {
        self.raw(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.raw(&v.to_be_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.raw(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.raw(&v.to_be_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.raw(&v.to_be_bytes());
    }
    fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }
    fn error_code(&mut self, code: ErrorCode) {
        self.i32(code.code());
    }
    /// A list's element count (u32).
    fn count(&mut self, n: usize) {
        self.u32(len_u32(n));
    }
    /// A byte array: u32 length, then the bytes.
    fn bytes(&mut self, b: &[u8]) {
        self.count(b.len());
        self.raw(b);
    }
    /// A string: u32 byte length, then its UTF-8 bytes.
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    /// A list of strings: u32 count, then each string.
    fn strs(&mut self, list: &[String]) {
        self.count(list.len());
        for s in list {
            self.str(s);
        }
    }
}

/// A length or count as its u32 wire form. Only reached by [`Writer`] after
/// [`encode_frame`] checked that the whole body fits a u32 length, and every
/// element of a list takes at least one byte, so this never saturates.
fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Counts bytes instead of writing them.
pub(crate) struct Sizer(pub(crate) usize);

impl Sink for Sizer {
    fn raw(&mut self, b: &[u8]) {
        self.0 = self.0.saturating_add(b.len());
    }
}

/// Writes into the caller's buffer.
pub(crate) struct Writer<'a, B: BufMut>(pub(crate) &'a mut B);

impl<B: BufMut> Sink for Writer<'_, B> {
    fn raw(&mut self, b: &[u8]) {
        self.0.put_slice(b);
    }
}

/// A message body: what follows the length prefix.
pub(crate) trait Body {
    fn write<S: Sink>(&self, s: &mut S);
}

/// The body length of `m` in bytes (the value of its length prefix).
pub(crate) fn body_len(m: &impl Body) -> usize {
    let mut sizer = Sizer(0);
    m.write(&mut sizer);
    sizer.0
}

/// Appends `m` as one frame: u32 body length, then the body.
///
/// # Panics
///
/// If the body exceeds `u32::MAX` bytes, which the length prefix cannot
/// express. Callers keep bodies under the negotiated frame limit (at most
/// `u32::MAX`), so this is a programming error, not a runtime condition.
pub(crate) fn encode_frame(m: &impl Body, dst: &mut impl BufMut) {
    let len = u32::try_from(body_len(m))
        .expect("message body exceeds u32::MAX bytes; keep it under the frame limit");
    dst.put_u32(len);
    m.write(&mut Writer(dst));
}

/// A bounds-checked cursor over one frame's body, or over any record built
/// from the same primitives (the server's log commands use it too).
///
/// `message` names what is being decoded ("Create request"), `field` the
/// field being read; both end up in [`DecodeError`]s.
#[derive(Debug)]
pub struct Reader {
    buf: Bytes,
    message: &'static str,
}

impl Reader {
    pub fn new(buf: Bytes, message: &'static str) -> Self {
        Reader { buf, message }
    }

    /// Renames what is being decoded, for nested parts such as multi ops.
    pub fn set_message(&mut self, message: &'static str) {
        self.message = message;
    }

    fn need(&self, needed: usize, field: &'static str) -> Result<(), DecodeError> {
        let remaining = self.buf.remaining();
        if remaining < needed {
            return Err(DecodeError::Truncated {
                message: self.message,
                field,
                needed,
                remaining,
            });
        }
        Ok(())
    }

    pub fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        self.need(1, field)?;
        Ok(self.buf.get_u8())
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        self.need(2, field)?;
        Ok(self.buf.get_u16())
    }

    pub fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.need(4, field)?;
        Ok(self.buf.get_u32())
    }

    pub fn i32(&mut self, field: &'static str) -> Result<i32, DecodeError> {
        self.need(4, field)?;
        Ok(self.buf.get_i32())
    }

    pub fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        self.need(8, field)?;
        Ok(self.buf.get_u64())
    }

    pub fn i64(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        self.need(8, field)?;
        Ok(self.buf.get_i64())
    }

    /// Fixed-size bytes with no length prefix.
    pub fn raw<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        self.need(N, field)?;
        let mut out = [0u8; N];
        self.buf.copy_to_slice(&mut out);
        Ok(out)
    }

    /// A u8 that must be 0 or 1: booleans and optional-value presence flags.
    pub(crate) fn bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(self.bad_value(field, value)),
        }
    }

    /// A u8 enum; values outside its domain are [`DecodeError::BadValue`].
    pub(crate) fn enum_u8<T>(
        &mut self,
        field: &'static str,
        from: fn(u8) -> Option<T>,
    ) -> Result<T, DecodeError> {
        let value = self.u8(field)?;
        from(value).ok_or_else(|| self.bad_value(field, value))
    }

    /// An error code; unknown values decode to [`ErrorCode::Unknown`].
    pub(crate) fn error_code(&mut self, field: &'static str) -> Result<ErrorCode, DecodeError> {
        self.i32(field).map(ErrorCode::from_code)
    }

    /// A byte array, sliced from the frame without copying. The inner
    /// length is checked against the rest of the frame first.
    pub fn bytes(&mut self, field: &'static str) -> Result<Bytes, DecodeError> {
        let len = self.u32(field)?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        self.need(len, field)?;
        Ok(self.buf.split_to(len))
    }

    /// A string; its bytes must be valid UTF-8.
    pub fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let raw = self.bytes(field)?;
        match std::str::from_utf8(&raw) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(DecodeError::BadUtf8 {
                message: self.message,
                field,
            }),
        }
    }

    /// A list's element count. Every element takes at least
    /// `element_bytes_min` bytes, so a count the rest of the frame cannot
    /// hold is rejected here, before the caller reserves room for it.
    pub(crate) fn count(
        &mut self,
        field: &'static str,
        element_bytes_min: usize,
    ) -> Result<usize, DecodeError> {
        let n = usize::try_from(self.u32(field)?).unwrap_or(usize::MAX);
        self.need(n.saturating_mul(element_bytes_min), field)?;
        Ok(n)
    }

    /// A list of strings: u32 count, then each string.
    pub(crate) fn strings(&mut self, field: &'static str) -> Result<Vec<String>, DecodeError> {
        let n = self.count(field, 4)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.string(field)?);
        }
        Ok(out)
    }

    pub fn bad_value(&self, field: &'static str, value: u8) -> DecodeError {
        DecodeError::BadValue {
            message: self.message,
            field,
            value,
        }
    }

    /// Ends decoding: the body must have been consumed exactly.
    pub fn finish(self) -> Result<(), DecodeError> {
        match self.buf.remaining() {
            0 => Ok(()),
            extra => Err(DecodeError::TrailingBytes {
                message: self.message,
                extra,
            }),
        }
    }
}

/// Declares a fieldless enum carried on the wire as a u8, with its values in
/// one place: `ALL`, `to_u8` and `from_u8` cannot drift apart.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in wire order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The wire value.
            pub const fn to_u8(self) -> u8 {
                match self {
                    $( $name::$variant => $value, )+
                }
            }

            /// The value for a wire byte, or `None` if the byte is not one.
            pub const fn from_u8(value: u8) -> Option<Self> {
                match value {
                    $( $value => Some($name::$variant), )+
                    _ => None,
                }
            }
        }
    };
}

pub(crate) use wire_enum;
