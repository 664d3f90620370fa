//! Why a peer's bytes could not be decoded.

use std::error::Error;
use std::fmt;

/// Why a peer's bytes could not be decoded. Any of these means the peer is
/// broken, incompatible or not a peer at all: the connection should be closed.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum CodecError {
    /// The length prefix announces a body longer than the receiver accepts.
    /// Nothing was consumed or reserved.
    FrameTooLarge { len: usize, max: usize },
    /// The frame's body is empty: there is not even a message tag.
    EmptyFrame,
    /// The message tag is not one this version knows.
    UnknownTag(u8),
    /// The frame ended inside a field: `field` needs `needed` bytes but only
    /// `remaining` are left in the frame.
    Truncated {
        kind: &'static str,
        field: &'static str,
        needed: usize,
        remaining: usize,
    },
    /// The message was complete but the frame had `extra` more bytes.
    TrailingBytes { kind: &'static str, extra: usize },
    /// A bool or enum field held a value outside its domain.
    BadValue {
        kind: &'static str,
        field: &'static str,
        value: u8,
    },
    /// A streamed snapshot's frames broke the stream's rules (see
    /// [`super::StreamDecoder`]): out of order, longer than announced, over the
    /// receiver's limit, or failing its checksum. Nothing of it was kept.
    BadSnapshotStream { reason: &'static str },
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::FrameTooLarge { len, max } => write!(
                f,
                "peer frame of {len} bytes exceeds the limit of {max} bytes; \
                 the peer is not speaking this protocol, or its messages \
                 (e.g. snapshot chunks) need a larger frame limit"
            ),
            CodecError::EmptyFrame => write!(
                f,
                "peer sent an empty frame with no message tag; \
                 the peer's encoder is broken or it is not a zab peer"
            ),
            CodecError::UnknownTag(tag) => write!(
                f,
                "peer sent unknown message tag {tag}; \
                 it runs an incompatible version or is not a zab peer"
            ),
            CodecError::Truncated {
                kind,
                field,
                needed,
                remaining,
            } => write!(
                f,
                "truncated {kind} message: field `{field}` needs {needed} bytes \
                 but only {remaining} remain in the frame; \
                 the peer runs an incompatible version or its encoder is broken"
            ),
            CodecError::TrailingBytes { kind, extra } => write!(
                f,
                "{kind} message is followed by {extra} unexpected bytes in its frame; \
                 the peer runs an incompatible version or its encoder is broken"
            ),
            CodecError::BadValue { kind, field, value } => write!(
                f,
                "{kind} message has invalid value {value} in field `{field}`; \
                 the peer runs an incompatible version or its encoder is broken"
            ),
            CodecError::BadSnapshotStream { reason } => write!(
                f,
                "peer's streamed snapshot is invalid: {reason}; \
                 the transfer is discarded (the leader sends a new one)"
            ),
        }
    }
}

impl Error for CodecError {}
