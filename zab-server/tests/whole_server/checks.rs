//! The session-expiry checker: what the servers did, judged against what
//! really happened on the simulated network.
//!
//! - **Never early.** When a leader logs a session's expiry, at least the
//!   session's timeout has passed since the last traffic of the session that
//!   could have reached that leader: heard by the leader itself, or by a
//!   follower of it whose relay (sent at its next tick) was not cut off by a
//!   crash or a broken link. Traffic heard by a server out of the quorum, or
//!   in the moments before a link broke, could never reach the leader; a
//!   timeout cannot be judged on it.
//! - **Never late.** Once the ensemble is calm, a session whose client has
//!   fallen silent is expired within its timeout + 2 ticks + 1 s of its
//!   last traffic (or of the newest leader's election, which restarts every
//!   session's clock).

use std::collections::{HashMap, HashSet};

/// A follower relays what it heard at its next tick; allow two.
const RELAY_WINDOW_US: u64 = 200_000;
/// How late an expiry may be: 2 ticks + 1 s.
const LATE_SLACK_US: u64 = 1_200_000;

/// One frame of a session that a server in broadcast received.
#[derive(Clone, Copy, Debug)]
pub struct Hearing {
    pub at: u64,
    pub server: usize,
    /// The leader that server followed (or itself, leading).
    pub leader: usize,
}

/// A crashed server (`peer` None) or a broken link, from `start` to `end`.
#[derive(Clone, Copy, Debug)]
struct Outage {
    server: usize,
    peer: Option<usize>,
    start: u64,
    end: Option<u64>,
}

impl Outage {
    fn overlaps(&self, from: u64, to: u64) -> bool {
        self.start <= to && self.end.is_none_or(|end| end >= from)
    }

    /// Whether this outage can have stopped `a`'s relay to `b`.
    fn affects(&self, a: usize, b: usize) -> bool {
        match self.peer {
            None => self.server == a || self.server == b,
            Some(p) => (self.server, p) == (a, b) || (self.server, p) == (b, a),
        }
    }
}

#[derive(Debug, Default)]
pub struct SessionChecker {
    timeouts: HashMap<u64, u32>,
    hearings: HashMap<u64, Vec<Hearing>>,
    /// The last frame of each session any open server connection received.
    last_traffic: HashMap<u64, u64>,
    expired: HashMap<u64, u64>,
    outages: Vec<Outage>,
    /// When a leader last came to broadcast (it restarts every clock).
    leader_since: u64,
}

impl SessionChecker {
    pub fn session_accepted(&mut self, session: u64, timeout_ms: u32) {
        self.timeouts.insert(session, timeout_ms);
    }

    /// A frame of `session` reached an open connection; `hearing` is set
    /// when that server was in broadcast and the connection is not a moved
    /// session's stale one.
    pub fn traffic(&mut self, session: u64, at: u64, hearing: Option<Hearing>) {
        self.last_traffic.insert(session, at);
        if let Some(h) = hearing {
            self.hearings.entry(session).or_default().push(h);
        }
    }

    pub fn outage(&mut self, server: usize, peer: Option<usize>, start: u64) {
        self.outages.push(Outage {
            server,
            peer,
            start,
            end: None,
        });
    }

    pub fn outage_over(&mut self, server: usize, peer: Option<usize>, end: u64) {
        for o in self.outages.iter_mut().filter(|o| o.end.is_none()) {
            let same = match (o.peer, peer) {
                (None, None) => o.server == server,
                (Some(p), Some(q)) => (o.server, p) == (server, q) || (o.server, p) == (q, server),
                _ => false,
            };
            if same {
                o.end = Some(end);
            }
        }
    }

    pub fn leader_elected(&mut self, at: u64) {
        self.leader_since = at;
    }

    /// Whether some leader logged the expiry of `session`.
    pub fn has_expired(&self, session: u64) -> bool {
        self.expired.contains_key(&session)
    }

    pub fn expiries(&self) -> u64 {
        self.expired.len() as u64
    }

    /// `leader` logged the expiry of `session` at `at`: a violation if the
    /// session was heard within its timeout.
    pub fn expired(&mut self, session: u64, at: u64, leader: usize) -> Option<String> {
        if self.expired.insert(session, at).is_some() {
            return None;
        }
        let timeout_ms = *self.timeouts.get(&session)?;
        let timeout_us = u64::from(timeout_ms) * 1000;
        if std::env::var_os("ZAB_WHOLE_SIM_TRACE").is_some() {
            let last = self.last_traffic.get(&session).copied().unwrap_or(0);
            eprintln!(
                "{:>9} ms: server {} expires {session:#x} (timeout {timeout_ms} ms), last traffic {} ms ago",
                at / 1000,
                leader + 1,
                (at - last) / 1000
            );
        }
        // The latest that counts (a resume's hearing is recorded once its
        // accept is known, so the list is not in time order).
        let counted = self
            .hearings
            .get(&session)?
            .iter()
            .filter(|h| {
                h.leader == leader
                    && (h.server == leader
                        || (h.at + RELAY_WINDOW_US <= at
                            && !self.outages.iter().any(|o| {
                                o.affects(h.server, leader)
                                    && o.overlaps(h.at, h.at + RELAY_WINDOW_US)
                            })))
            })
            .max_by_key(|h| h.at)?;
        (at < counted.at + timeout_us).then(|| {
            format!(
                "session {session:#x} (timeout {timeout_ms} ms) expired by server {} at {} ms, \
                 {} ms after server {} heard it",
                leader + 1,
                at / 1000,
                (at - counted.at) / 1000,
                counted.server + 1
            )
        })
    }

    /// At the end of a run: every session no live client holds must have
    /// expired by its deadline, counted from the calm phase at the earliest.
    pub fn late(&self, now: u64, calm_from: u64, live: &HashSet<u64>) -> Option<String> {
        let mut sessions: Vec<(&u64, &u32)> = self.timeouts.iter().collect();
        sessions.sort();
        for (&session, &timeout_ms) in sessions {
            if live.contains(&session) || self.expired.contains_key(&session) {
                continue;
            }
            let last = self.last_traffic.get(&session).copied().unwrap_or(0);
            let from = last.max(calm_from).max(self.leader_since);
            let deadline = from + u64::from(timeout_ms) * 1000 + LATE_SLACK_US;
            if deadline <= now {
                return Some(format!(
                    "session {session:#x} (timeout {timeout_ms} ms), silent since {} ms, \
                     was still open at {} ms",
                    last / 1000,
                    now / 1000
                ));
            }
        }
        None
    }
}
