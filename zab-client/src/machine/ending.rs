//! How the application ends its use of a session: closing it when the
//! last handle goes, or walking away and leaving it to expire.

use zab_proto::Request;

use super::{Link, Machine, Output};

impl Machine {
    /// The application walks away from the session without closing it, as
    /// a crashed process would: the connection is dropped and the session
    /// expires on the servers after its timeout.
    pub fn abandon(&mut self) {
        match self.link {
            Link::Done if self.expired.is_some() => self.out.push(Output::Finished(None)),
            Link::Done => {}
            Link::Idle { .. } => self.finish(None),
            _ => {
                self.out.push(Output::Hangup);
                self.finish(None);
            }
        }
    }

    /// The application is done with the client (its last handle is gone).
    /// On an open connection the session is closed, as [`Request::CloseSession`]
    /// would: its ephemeral nodes go at once rather than at its expiry, and
    /// the machine finishes at the reply (or when the connection is lost,
    /// at the latest after the read timeout). Without one it just stops:
    /// the session expires on the servers.
    pub fn shutdown(&mut self) {
        match self.link {
            Link::Open { .. } if !self.closing => {
                self.closing = true;
                self.send(None, Request::CloseSession, None);
            }
            Link::Open { .. } => {}
            _ => self.abandon(),
        }
    }
}
