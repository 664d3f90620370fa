//! Watch events, and how a reconnect's re-registration is made to deliver
//! each of them exactly once.
//!
//! After a reconnect the client sends SetWatches with the last zxid it saw,
//! and the server sends what the session missed before its reply: every
//! event, if it still holds the changes since (resumable watches), else a
//! stat comparison and `ContinuityLost`. Those catch-up events are held
//! until the reply comes. If the connection breaks first, they are dropped
//! and the next SetWatches starts from the same zxid, so a catch-up cut
//! short is sent again whole, and never delivered twice.

use zab_proto::{ErrorCode, Outcome, WatchEvent};

use super::{Machine, Output};

impl Machine {
    /// A watch event arrived.
    pub(super) fn on_event(&mut self, event: WatchEvent) {
        if self.rearm_outstanding {
            self.caught_up.push(event);
        } else {
            self.deliver(&event);
        }
    }

    fn deliver(&mut self, event: &WatchEvent) {
        let routed = self.watches.route(event);
        for to in routed.to {
            let event = event.clone();
            self.out.push(Output::Event { to, event });
        }
        self.out
            .extend(routed.ended.into_iter().map(Output::EndStream));
    }

    /// The SetWatches of this connection was answered with `outcome`.
    pub(super) fn on_rearmed(&mut self, outcome: &Outcome) {
        let refused = |code| {
            matches!(
                code,
                ErrorCode::TooManyWatches | ErrorCode::BadArguments | ErrorCode::NoAuth
            )
        };
        match outcome {
            Outcome::Ok(_) => {
                self.rearm_outstanding = false;
                for event in std::mem::take(&mut self.caught_up) {
                    self.deliver(&event);
                }
            }
            Outcome::Err(code) if refused(*code) => {
                // The server will not re-arm them, here or anywhere (all
                // or nothing): say so to every watch rather than let them
                // wait in silence.
                self.rearm_outstanding = false;
                self.caught_up.clear();
                let (events, ended) = self.watches.lost(self.last_zxid);
                for (to, event) in events {
                    self.out.push(Output::Event { to, event });
                }
                self.out.extend(ended.into_iter().map(Output::EndStream));
            }
            // Anything else comes with the connection's end (the next
            // SetWatches starts over).
            _ => {}
        }
    }
}
