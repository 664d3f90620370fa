//! What the session machine tells its driver: the outputs it queues and
//! the vocabulary they use.

use bytes::Bytes;
use zab_proto::{Response, WatchEvent, PASSWORD_BYTES};

use crate::watch::Delivery;
use crate::Error;

/// Names one call, so the driver can route its reply and its watch stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallId(pub u64);

/// The session's connection state, as a stream of changes
/// ([`Client::session_states`](crate::Client::session_states)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionState {
    /// Connected to a server; requests flow.
    Connected,
    /// The server was lost; requests in flight failed with ConnectionLoss and
    /// new ones wait. The session lives on for its timeout.
    Disconnected,
    /// Connected again, to a server not behind what this client has seen;
    /// watches were re-registered.
    Reconnected,
    /// The session is gone: its ephemerals are deleted; every request fails.
    Expired,
}

/// What the machine asks of its driver, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    /// Open a TCP connection to `servers[server]` (resolving its name now),
    /// then report [`Machine::dialed`](super::Machine::dialed) or [`Machine::dial_failed`](super::Machine::dial_failed).
    Dial { server: usize },
    /// Write these bytes on the open connection.
    Send(Bytes),
    /// Drop the connection (or the dial in progress).
    Hangup,
    /// The answer to a call.
    Reply {
        call: CallId,
        result: Result<Response, Error>,
    },
    /// A watch event for `to`.
    Event { to: Delivery, event: WatchEvent },
    /// This call's watch stream ends: its one-shot fired, its request
    /// failed, or the session ended.
    EndStream(CallId),
    /// The session-wide event stream ends (the session expired).
    EndEvents,
    /// The session's state changed.
    State(SessionState),
    /// The server broke the protocol (an undecodable frame, a reply to
    /// nothing, a reply out of order): the connection was dropped and the
    /// client reconnects. Worth a warning in the application's log; a
    /// correct server never causes one.
    ProtocolViolation { server: usize, why: String },
    /// The machine is done: the first connection failed on every server
    /// (`Some`: `Client::connect`'s error), or the session was closed or the
    /// client dropped (`None`). Nothing follows.
    Finished(Option<Error>),
}

/// The session's terms, once a server accepted it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Session {
    pub id: u64,
    pub password: [u8; PASSWORD_BYTES],
    /// The negotiated timeout.
    pub timeout_ms: u32,
    /// The negotiated frame limit: larger requests fail here, typed.
    pub max_frame_bytes: u32,
}

/// Who ended the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpiredBy {
    /// A server refused to resume it: the ensemble expired it.
    Server,
    /// No server accepted it again within its timeout: the client gave up
    /// (the ensemble expires it too, having heard nothing for as long).
    Timeout,
}
