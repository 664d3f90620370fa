//! Why a request failed.

use std::fmt;

use zab_proto::ErrorCode;

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The connection broke before the reply: the request may or may not have
    /// taken effect. Distinct from every definite failure below.
    ConnectionLoss,
    /// The session is gone (expired or closed); its ephemerals are deleted.
    SessionExpired,
    /// The server answered with this error: the request had no effect.
    Server(ErrorCode),
    /// No server in the list accepted the connection.
    NoServer(String),
    /// The reply did not come within the request timeout
    /// ([`Builder::request_timeout`](crate::Builder::request_timeout)): the
    /// request may or may not have taken effect, as after ConnectionLoss.
    /// The session goes on.
    Timeout,
    /// The client's configuration is unusable (e.g. a chroot that is not a
    /// path).
    BadConfig(String),
    /// A multi failed as a whole: `err` for the failing op, and one code per
    /// op (Ok before it, RuntimeInconsistency after it). Nothing was applied.
    MultiFailed {
        err: ErrorCode,
        errors: Vec<ErrorCode>,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ConnectionLoss => write!(f, "connection lost; the request's outcome is unknown"),
            Error::SessionExpired => write!(f, "session expired"),
            Error::Server(code) => write!(f, "{code}"),
            Error::NoServer(why) => write!(f, "no server accepted the connection: {why}"),
            Error::Timeout => write!(
                f,
                "no reply within the request timeout; the request's outcome is unknown"
            ),
            Error::BadConfig(why) => write!(f, "bad client configuration: {why}"),
            Error::MultiFailed { err, errors } => {
                write!(f, "multi failed with {err}; per op: {errors:?}")
            }
        }
    }
}

impl std::error::Error for Error {}
