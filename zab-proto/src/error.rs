//! [`DecodeError`]: why a frame's body is not a valid message.

use std::error::Error;
use std::fmt;

use crate::request::OpCode;
use crate::types::ErrorCode;

/// Why a frame's body could not be decoded.
///
/// Any of these means the other side is broken, incompatible or not speaking
/// this protocol. The server closes that one connection, after sending
/// nothing (the session survives until its timeout); the client drops the
/// connection and reconnects. `message` names what was being decoded
/// ("Create request") and `field` the field at fault.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum DecodeError {
    /// The body ended inside a field: `field` needs `needed` bytes but only
    /// `remaining` are left. Also reported for a list whose element count
    /// cannot fit in the rest of the body.
    Truncated {
        message: &'static str,
        field: &'static str,
        needed: usize,
        remaining: usize,
    },
    /// The message was complete but the body had `extra` more bytes.
    TrailingBytes { message: &'static str, extra: usize },
    /// The handshake did not start with the magic bytes `ZABC`.
    BadMagic { found: [u8; 4] },
    /// The handshake asked for a protocol version this side does not speak.
    /// The server answers with a refusal (`BadArguments`) instead of
    /// closing, so the client learns why.
    UnsupportedVersion { version: u16 },
    /// A request (or an op inside a multi, or a result inside a multi reply)
    /// carries an opcode this version does not know.
    UnknownOpCode { opcode: u8 },
    /// A multi contains an op that cannot be part of a multi.
    NotAMultiOp { opcode: OpCode },
    /// A bool, presence flag or enum field holds a value outside its domain.
    BadValue {
        message: &'static str,
        field: &'static str,
        value: u8,
    },
    /// A string field is not valid UTF-8.
    BadUtf8 {
        message: &'static str,
        field: &'static str,
    },
    /// A request header's xid and opcode do not go together: a ping whose
    /// xid is not -2, or another opcode with a negative xid.
    BadXid { xid: i32, opcode: u8 },
    /// A reply's xid is not that of the client's oldest outstanding request
    /// (replies come back in request order), or is a reserved negative value
    /// other than -1 and -2.
    UnexpectedXid { xid: i32 },
    /// A frame that cannot carry an error does: a ping reply or watch
    /// notification with `err != 0`, or a handshake refusal with code 0.
    BadErr {
        message: &'static str,
        err: ErrorCode,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const BROKEN: &str = "the other side runs an incompatible version or its encoder is broken";
        match self {
            DecodeError::Truncated {
                message,
                field,
                needed,
                remaining,
            } => write!(
                f,
                "truncated {message}: field `{field}` needs {needed} bytes but only \
                 {remaining} remain in the frame; {BROKEN}"
            ),
            DecodeError::TrailingBytes { message, extra } => write!(
                f,
                "{message} is followed by {extra} unexpected bytes in its frame; {BROKEN}"
            ),
            DecodeError::BadMagic { found } => write!(
                f,
                "handshake starts with {found:02x?} instead of the magic \"ZABC\"; \
                 the other side is not a zab client"
            ),
            DecodeError::UnsupportedVersion { version } => write!(
                f,
                "client protocol version {version} is not supported (this side speaks {}); \
                 upgrade the older side",
                crate::connect::PROTOCOL_VERSION
            ),
            DecodeError::UnknownOpCode { opcode } => {
                write!(f, "unknown opcode {opcode}; {BROKEN}")
            }
            DecodeError::NotAMultiOp { opcode } => write!(
                f,
                "a multi contains {opcode:?}, which cannot be part of a multi \
                 (only Create, Delete, SetData and Check can); {BROKEN}"
            ),
            DecodeError::BadValue {
                message,
                field,
                value,
            } => write!(
                f,
                "{message} has invalid value {value} in field `{field}`; {BROKEN}"
            ),
            DecodeError::BadUtf8 { message, field } => write!(
                f,
                "{message} has a string field `{field}` that is not valid UTF-8; {BROKEN}"
            ),
            DecodeError::BadXid { xid, opcode } => write!(
                f,
                "request header has xid {xid} with opcode {opcode}: pings use xid -2 \
                 and every other request a non-negative xid; {BROKEN}"
            ),
            DecodeError::UnexpectedXid { xid } => write!(
                f,
                "reply with xid {xid} does not answer the oldest outstanding request; \
                 replies must come back in request order; {BROKEN}"
            ),
            DecodeError::BadErr { message, err } => write!(
                f,
                "{message} carries error code {} where none is allowed; {BROKEN}",
                err.code()
            ),
        }
    }
}

impl Error for DecodeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_explain_themselves() {
        let errors = [
            DecodeError::Truncated {
                message: "Create request",
                field: "path",
                needed: 10,
                remaining: 3,
            },
            DecodeError::TrailingBytes {
                message: "Ping",
                extra: 1,
            },
            DecodeError::BadMagic { found: *b"HTTP" },
            DecodeError::UnsupportedVersion { version: 9 },
            DecodeError::UnknownOpCode { opcode: 200 },
            DecodeError::NotAMultiOp {
                opcode: OpCode::Sync,
            },
            DecodeError::BadValue {
                message: "Create request",
                field: "mode",
                value: 9,
            },
            DecodeError::BadUtf8 {
                message: "Sync request",
                field: "path",
            },
            DecodeError::BadXid { xid: -5, opcode: 1 },
            DecodeError::UnexpectedXid { xid: 7 },
            DecodeError::BadErr {
                message: "ping reply",
                err: ErrorCode::NoNode,
            },
        ];
        for e in errors {
            let text = e.to_string();
            assert!(text.len() > 40, "{text}");
            let _: &dyn Error = &e;
        }
        assert!(DecodeError::BadMagic { found: *b"HTTP" }
            .to_string()
            .contains("[48, 54, 54, 50]"));
    }
}
