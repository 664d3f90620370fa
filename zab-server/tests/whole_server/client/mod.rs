//! Simulated clients, speaking to the servers through the real codecs.
//!
//! Most are [`RealClient`]s: zab-client's own session machine
//! (`zab_client::machine`), driven by the simulator as the async client's
//! task drives it over TCP. A few are [`ModelClient`]s: a small model of
//! the wire that also does what the real client never does but a server
//! must survive (xids that start afresh on each connection and repeat a
//! write's left in flight). Each checks what it can see itself.

mod history;
mod model;
mod real;

use bytes::Bytes;
use zab_proto::PASSWORD_BYTES;
use zab_server::core::ConnId;
use zab_tests::sim::rng::Rng;

pub use model::ModelClient;
pub use real::{RealClient, SEQ_PARENT};

/// The root the clients write under and watch.
pub const ROOT: &str = "/w";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Session {
    pub id: u64,
    pub password: [u8; PASSWORD_BYTES],
    pub timeout_ms: u32,
}

/// What a client asks of the simulated network.
#[derive(Debug)]
pub enum Action {
    Connect { conn: ConnId, server: usize },
    Send { conn: ConnId, bytes: Bytes },
    Close { conn: ConnId },
}

/// What a client made of bytes from a server.
#[derive(Debug, Default)]
pub struct Received {
    pub actions: Vec<Action>,
    /// The session a handshake in them accepted.
    pub accepted: Option<Session>,
    /// A server refused to resume this session as expired.
    pub told_expired: Option<u64>,
}

#[derive(Debug)]
pub enum SimClient {
    /// Both boxed: the clients differ in size, and a list of them is
    /// walked far more often than either is built.
    Model(Box<ModelClient>),
    Real(Box<RealClient>),
}

macro_rules! each {
    ($self:expr, $c:ident => $e:expr) => {
        match $self {
            SimClient::Model($c) => $e,
            SimClient::Real($c) => $e,
        }
    };
}

impl SimClient {
    pub fn index(&self) -> usize {
        each!(self, c => c.index)
    }

    pub fn violation(&self) -> Option<&String> {
        each!(self, c => c.violation.as_ref())
    }

    pub fn sessions_started(&self) -> u64 {
        each!(self, c => c.sessions_started)
    }

    pub fn acked_writes(&self) -> u64 {
        each!(self, c => c.acked_writes)
    }

    /// Persistent nodes whose creation was acknowledged.
    pub fn acked_paths(&self) -> &[String] {
        each!(self, c => &c.acked_paths)
    }

    pub fn requested_timeout_ms(&self) -> u32 {
        each!(self, c => c.requested_timeout_ms)
    }

    pub fn set_trace(&mut self, on: bool) {
        each!(self, c => c.trace = on)
    }

    /// The session this client holds, if any.
    pub fn session_id(&self) -> Option<u64> {
        match self {
            SimClient::Model(c) => c.session.map(|s| s.id),
            SimClient::Real(c) => c.session_id(),
        }
    }

    /// A moved session's old connection, kept open to test it is stale.
    pub fn stale_conn(&self) -> Option<ConnId> {
        match self {
            SimClient::Model(c) => c.stale.as_ref().map(|s| s.id),
            SimClient::Real(c) => c.stale_conn(),
        }
    }

    /// Periodic work: connect, ping, leave a silent server, write.
    pub fn wake(
        &mut self,
        now: u64,
        rng: &mut Rng,
        servers: usize,
        next_conn: &mut ConnId,
    ) -> Vec<Action> {
        each!(self, c => c.wake(now, rng, servers, next_conn))
    }

    /// The process restarted: it knows no session and has seen nothing.
    pub fn forget_session(&mut self) {
        each!(self, c => c.forget_session())
    }

    /// Asks for the session to be moved to `server` (a nemesis fault).
    pub fn move_session(&mut self, server: usize) {
        each!(self, c => c.move_session(server))
    }

    /// A nemesis fault: a write, then the connection drops at once.
    pub fn bounce(&mut self, now: u64, next_conn: &mut ConnId) -> Vec<Action> {
        each!(self, c => c.bounce(now, next_conn))
    }

    /// The server closed `conn` (or refused it).
    pub fn closed(&mut self, now: u64, conn: ConnId, next_conn: &mut ConnId) -> Vec<Action> {
        match self {
            SimClient::Model(c) => {
                c.closed(conn);
                Vec::new()
            }
            SimClient::Real(c) => c.closed(now, conn, next_conn),
        }
    }

    /// The client abandons its connections (it crashed); returns what to
    /// close.
    pub fn drop_connections(&mut self) -> Vec<Action> {
        each!(self, c => c.drop_connections())
    }

    /// Bytes from the server on `conn`.
    pub fn received(
        &mut self,
        now: u64,
        conn: ConnId,
        bytes: &[u8],
        next_conn: &mut ConnId,
    ) -> Received {
        match self {
            SimClient::Model(c) => c.received(now, conn, bytes),
            SimClient::Real(c) => c.received(now, conn, bytes, next_conn),
        }
    }
}
