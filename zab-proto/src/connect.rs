//! The handshake's first frame, [`ConnectRequest`], and the negotiation
//! rules the server applies to it.
//!
//! ```text
//! body: magic "ZABC" | protocol_version u16 | last_zxid_seen u64 |
//!       timeout_ms u32 | session_id u64 | password [16] | max_frame_bytes u32
//! ```
//!
//! The magic and the version come first in every protocol version, so a
//! server can always tell a stranger from a client it is too old for, and
//! refuse the latter with a reason instead of closing.

use std::fmt;

use bytes::{BufMut, Bytes};

use crate::error::DecodeError;
use crate::frame::FRAME_BYTES_MIN;
use crate::wire::{self, Body, Reader, Sink};

/// The first four bytes of a connect request's body.
pub const MAGIC: [u8; 4] = *b"ZABC";

/// The client protocol version this crate speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// Length of a session password.
pub const PASSWORD_BYTES: usize = 16;

/// The client's opening frame: which session, how fresh its view is, and
/// the terms it asks for.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    /// [`PROTOCOL_VERSION`].
    pub protocol_version: u16,
    /// The highest zxid the client has seen in any reply header (0 for a
    /// new client). A server that has not applied it yet refuses with
    /// `ServerBehind`, so a client never goes back in time.
    pub last_zxid_seen: u64,
    /// The session timeout the client asks for; the server clamps it.
    pub timeout_ms: u32,
    /// 0 for a new session; otherwise the session to resume.
    pub session_id: u64,
    /// The password of the session to resume; zeros for a new session.
    pub password: [u8; PASSWORD_BYTES],
    /// The largest frame body the client accepts and will send; at least
    /// [`FRAME_BYTES_MIN`].
    pub max_frame_bytes: u32,
}

impl fmt::Debug for ConnectRequest {
    /// The password is a session credential: it is never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectRequest")
            .field("protocol_version", &self.protocol_version)
            .field(
                "last_zxid_seen",
                &format_args!("{:#x}", self.last_zxid_seen),
            )
            .field("timeout_ms", &self.timeout_ms)
            .field("session_id", &format_args!("{:#x}", self.session_id))
            .field("password", &"<redacted>")
            .field("max_frame_bytes", &self.max_frame_bytes)
            .finish()
    }
}

impl ConnectRequest {
    /// Size of an encoded request's body in this protocol version.
    pub const BODY_BYTES: usize = 4 + 2 + 8 + 4 + 8 + PASSWORD_BYTES + 4;

    /// Appends the frame (length prefix and body) to `dst`.
    pub fn encode(&self, dst: &mut impl BufMut) {
        wire::encode_frame(self, dst);
    }

    /// Decodes the first frame's body.
    ///
    /// A body that starts with the magic but asks for another protocol
    /// version is [`DecodeError::UnsupportedVersion`], whatever follows: the
    /// server answers it with a refusal (`BadArguments`), not by closing.
    pub fn decode(body: Bytes) -> Result<ConnectRequest, DecodeError> {
        let mut r = Reader::new(body, "ConnectRequest");
        let found: [u8; 4] = r.raw("magic")?;
        if found != MAGIC {
            return Err(DecodeError::BadMagic { found });
        }
        let protocol_version = r.u16("protocol_version")?;
        if protocol_version != PROTOCOL_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                version: protocol_version,
            });
        }
        let request = ConnectRequest {
            protocol_version,
            last_zxid_seen: r.u64("last_zxid_seen")?,
            timeout_ms: r.u32("timeout_ms")?,
            session_id: r.u64("session_id")?,
            password: r.raw("password")?,
            max_frame_bytes: r.u32("max_frame_bytes")?,
        };
        r.finish()?;
        Ok(request)
    }
}

impl Body for ConnectRequest {
    fn write<S: Sink>(&self, s: &mut S) {
        s.raw(&MAGIC);
        s.u16(self.protocol_version);
        s.u64(self.last_zxid_seen);
        s.u32(self.timeout_ms);
        s.u64(self.session_id);
        s.raw(&self.password);
        s.u32(self.max_frame_bytes);
    }
}

/// The session timeout the server grants: the client's request clamped to
/// the server's `[min_ms, max_ms]` (its `min_session_timeout_ms` and
/// `max_session_timeout_ms`). A `max_ms` below `min_ms` grants `min_ms`.
pub fn negotiate_timeout_ms(requested_ms: u32, min_ms: u32, max_ms: u32) -> u32 {
    requested_ms.min(max_ms).max(min_ms)
}

/// The frame limit in force on a connection: the smaller of the client's and
/// the server's. `None` if the client offers less than [`FRAME_BYTES_MIN`]:
/// the server refuses the handshake with `BadArguments`.
pub fn negotiate_frame_bytes(client_max: u32, server_max: u32) -> Option<u32> {
    (client_max >= FRAME_BYTES_MIN).then_some(client_max.min(server_max))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{self, body_of, connect_requests, raw_body};

    #[test]
    fn round_trip() {
        for request in connect_requests() {
            let body = body_of(|b| request.encode(b));
            assert_eq!(body.len(), ConnectRequest::BODY_BYTES);
            assert_eq!(ConnectRequest::decode(body), Ok(request.clone()));
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        for request in connect_requests() {
            testkit::assert_truncations_fail(
                &body_of(|b| request.encode(b)),
                ConnectRequest::decode,
            );
        }
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        for request in connect_requests() {
            let got = testkit::with_trailing_byte(
                &body_of(|b| request.encode(b)),
                ConnectRequest::decode,
            );
            assert_eq!(
                got,
                Err(DecodeError::TrailingBytes {
                    message: "ConnectRequest",
                    extra: 1
                })
            );
        }
    }

    #[test]
    fn strangers_are_told_from_other_versions() {
        assert_eq!(
            ConnectRequest::decode(raw_body(b"GET / HTTP/1.1")),
            Err(DecodeError::BadMagic { found: *b"GET " })
        );
        // A future version with a longer body: still a typed version error.
        let mut v2 = b"ZABC\x00\x02".to_vec();
        v2.extend_from_slice(&[0; 100]);
        assert_eq!(
            ConnectRequest::decode(raw_body(&v2)),
            Err(DecodeError::UnsupportedVersion { version: 2 })
        );
        assert_eq!(
            ConnectRequest::decode(raw_body(b"ZABC\x00\x00")),
            Err(DecodeError::UnsupportedVersion { version: 0 })
        );
    }

    #[test]
    fn debug_hides_the_password() {
        let text = format!("{:?}", connect_requests()[1]);
        assert!(
            text.contains("<redacted>") && !text.contains("password: ["),
            "{text}"
        );
    }

    #[test]
    fn timeout_is_clamped_to_2_to_20_ticks() {
        assert_eq!(negotiate_timeout_ms(100, 2_000, 60_000), 2_000);
        assert_eq!(negotiate_timeout_ms(30_000, 2_000, 60_000), 30_000);
        assert_eq!(negotiate_timeout_ms(u32::MAX, 2_000, 60_000), 60_000);
        assert_eq!(negotiate_timeout_ms(0, u32::MAX, u32::MAX), u32::MAX);
        assert_eq!(negotiate_timeout_ms(5_000, 4_000, 3_000), 4_000);
    }

    #[test]
    fn frame_limit_is_the_minimum_and_has_a_floor() {
        assert_eq!(negotiate_frame_bytes(1 << 20, 1 << 16), Some(1 << 16));
        assert_eq!(negotiate_frame_bytes(1 << 16, 1 << 20), Some(1 << 16));
        assert_eq!(
            negotiate_frame_bytes(FRAME_BYTES_MIN, 1 << 20),
            Some(FRAME_BYTES_MIN)
        );
        assert_eq!(negotiate_frame_bytes(FRAME_BYTES_MIN - 1, 1 << 20), None);
    }
}
