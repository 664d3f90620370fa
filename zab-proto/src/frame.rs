//! Length-prefixed framing: every message is a big-endian u32 body length,
//! then that many bytes of body.
//!
//! [`decode_frame`] treats its input as hostile: it never panics, checks the
//! length prefix against the caller's limit before reserving memory, and
//! slices the body out of the receive buffer without copying it.

use std::error::Error;
use std::fmt;

use bytes::{Buf, Bytes, BytesMut};

/// Size of the big-endian u32 body-length prefix.
pub const LEN_PREFIX_BYTES: usize = 4;

/// The server's default frame limit: 1 MiB of body. The limit in force on a
/// connection is negotiated in the handshake (the smaller of the client's
/// and the server's).
pub const FRAME_BYTES_DEFAULT: u32 = 1024 * 1024;

/// The smallest frame limit either side may offer: every fixed-size message
/// and a reasonable error fit in it. A client offering less is refused with
/// `BadArguments`.
pub const FRAME_BYTES_MIN: u32 = 4096;

/// The limit both sides apply to the handshake frames (before a limit has
/// been negotiated). A connect request is 46 bytes of body; the rest is room
/// for future versions and for a refusal's message.
pub const HANDSHAKE_FRAME_BYTES_MAX: u32 = 4096;

/// Why a byte stream could not be split into frames.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FrameError {
    /// The length prefix announces a body longer than the receiver accepts.
    /// Nothing was consumed or reserved.
    TooLarge { len: u32, max: u32 },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLarge { len, max } => write!(
                f,
                "frame of {len} bytes exceeds the negotiated limit of {max} bytes; \
                 the sender ignored the limit or is not speaking the zab client protocol"
            ),
        }
    }
}

impl Error for FrameError {}

/// Takes one frame's body off the front of `src`, if a whole frame is
/// buffered.
///
/// Returns `Ok(None)` without consuming anything while the frame is
/// incomplete; then it reserves room for the rest of the frame (after the
/// limit check) so the transport reads it without repeated regrowth. On
/// `Ok(Some(body))` exactly one frame has been consumed and `body` is a
/// zero-copy slice of `src`'s storage.
///
/// `frame_bytes_max` bounds the body length (the prefix is not counted); a
/// larger prefix is rejected with [`FrameError::TooLarge`] before anything is
/// reserved or consumed. The connection must then be closed: the stream
/// cannot be resynchronized.
pub fn decode_frame(src: &mut BytesMut, frame_bytes_max: u32) -> Result<Option<Bytes>, FrameError> {
    let Some(len) = peek_body_len(src) else {
        return Ok(None);
    };
    if len > frame_bytes_max {
        return Err(FrameError::TooLarge {
            len,
            max: frame_bytes_max,
        });
    }
    // A u32 always fits usize on the 32- and 64-bit targets we build for; a
    // 16-bit target saturates and can never have the frame buffered anyway.
    let body_len = usize::try_from(len).unwrap_or(usize::MAX);
    let frame_len = body_len.saturating_add(LEN_PREFIX_BYTES);
    if src.len() < frame_len {
        src.reserve(frame_len - src.len());
        return Ok(None);
    }
    src.advance(LEN_PREFIX_BYTES);
    Ok(Some(src.split_to(body_len).freeze()))
}

/// The body length announced by a buffered prefix, if four bytes are there.
fn peek_body_len(src: &[u8]) -> Option<u32> {
    let prefix: [u8; LEN_PREFIX_BYTES] = src.get(..LEN_PREFIX_BYTES)?.try_into().ok()?;
    Some(u32::from_be_bytes(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    fn framed(body: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        b.put_u32(u32::try_from(body.len()).expect("test bodies are small"));
        b.put_slice(body);
        b
    }

    #[test]
    fn whole_frames_come_out_one_at_a_time() {
        let mut buf = framed(b"abc");
        buf.extend_from_slice(&framed(b"")[..]);
        buf.extend_from_slice(&framed(b"de")[..]);
        assert_eq!(
            decode_frame(&mut buf, 16),
            Ok(Some(Bytes::from_static(b"abc")))
        );
        assert_eq!(decode_frame(&mut buf, 16), Ok(Some(Bytes::new())));
        assert_eq!(
            decode_frame(&mut buf, 16),
            Ok(Some(Bytes::from_static(b"de")))
        );
        assert_eq!(decode_frame(&mut buf, 16), Ok(None));
        assert!(buf.is_empty());
    }

    #[test]
    fn every_cut_point_is_incomplete_and_consumes_nothing() {
        let wire = framed(b"hello, world");
        for cut in 0..wire.len() {
            let mut buf = BytesMut::from(&wire[..cut]);
            assert_eq!(decode_frame(&mut buf, 64), Ok(None));
            assert_eq!(&buf[..], &wire[..cut]);
        }
    }

    #[test]
    fn oversized_length_rejected_before_reserving() {
        let mut buf = BytesMut::from(&u32::MAX.to_be_bytes()[..]);
        let capacity = buf.capacity();
        assert_eq!(
            decode_frame(&mut buf, FRAME_BYTES_DEFAULT),
            Err(FrameError::TooLarge {
                len: u32::MAX,
                max: FRAME_BYTES_DEFAULT
            })
        );
        assert_eq!(buf.capacity(), capacity, "reserved for a rejected frame");
        assert_eq!(buf.len(), 4, "rejected frame was consumed");
    }

    #[test]
    fn limit_is_inclusive_and_counts_the_body_only() {
        let wire = framed(&[7; 10]);
        assert!(decode_frame(&mut wire.clone(), 10).is_ok_and(|b| b.is_some()));
        assert_eq!(
            decode_frame(&mut wire.clone(), 9),
            Err(FrameError::TooLarge { len: 10, max: 9 })
        );
    }

    #[test]
    fn incomplete_frame_reserves_room_for_the_rest() {
        let wire = framed(&[1; 300]);
        let mut buf = BytesMut::from(&wire[..6]);
        assert_eq!(decode_frame(&mut buf, 1000), Ok(None));
        assert!(buf.capacity() >= wire.len());
    }

    #[test]
    fn body_is_a_slice_of_the_receive_buffer() {
        let mut buf = framed(&[9; 100]);
        let start = buf.as_ptr() as usize;
        let body = decode_frame(&mut buf, 1000)
            .expect("valid")
            .expect("complete");
        assert_eq!(
            body.as_ptr() as usize,
            start + LEN_PREFIX_BYTES,
            "body was copied"
        );
    }

    #[test]
    fn error_explains_itself() {
        let text = FrameError::TooLarge { len: 10, max: 5 }.to_string();
        assert!(text.contains("10") && text.contains("limit of 5"), "{text}");
    }
}
