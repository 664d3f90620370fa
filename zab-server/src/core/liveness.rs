//! Time-driven work of the server core, once per tick, all on the
//! monotonic clock handed in:
//! - every server closes connections whose handshake did not complete within
//!   the bound, and connections silent for their session's timeout (a client
//!   cut off with its socket left open, or paused, sends nothing);
//! - followers relay to the leader the sessions they heard from;
//! - the leader expires sessions not heard from for their timeout, and
//!   sweeps empty containers and expired TTL nodes (those use the wall clock
//!   the nodes were stamped with).
//!
//! A session is heard only through its client's traffic (requests and
//! pings, which clients send every third of the timeout), never through an
//! open connection.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tracing::{info, warn};
use zab_core::{Input, Role, Zxid};

use super::frontend::{Frontend, Phase};
use super::ConnId;
use crate::replica::{CommandBody, Replica};

/// Container and TTL removals the leader proposes per tick.
const SWEEP_PER_TICK: usize = 16;

impl Frontend {
    /// Per tick: closes silent connections; followers relay which sessions
    /// they heard from; the leader expires sessions silent for their timeout.
    pub fn on_tick(&mut self, role: Role, replica: &Replica) -> Vec<Input> {
        self.close_silent();
        if self.defects.connection_is_liveness {
            let open = self.by_session.keys().copied();
            self.touched.extend(open.collect::<Vec<_>>());
        }
        let leading = matches!(
            role,
            Role::Leading {
                phase: zab_core::Phase::Broadcast,
                ..
            }
        );
        let now = self.liveness_now();
        if leading && !self.leading {
            // A new leader restarts every session's clock (REFERENCE §4).
            self.last_heard = replica
                .tree
                .sessions()
                .into_iter()
                .map(|(s, _)| (s, now))
                .collect();
            self.expiring.clear();
            info!("leading: session clocks restarted");
        }
        self.leading = leading;
        let relaying = matches!(
            role,
            Role::Following {
                phase: zab_core::Phase::Broadcast,
                ..
            } | Role::Observing {
                phase: zab_core::Phase::Broadcast,
                ..
            }
        );
        if !leading && !relaying {
            // Keep what clients said while this server is between leaders or
            // still syncing: the new leader restarts every session's clock
            // when it starts, and these touches must reach it after that, or
            // a session that pinged all along expires on a slow rejoin.
            return Vec::new();
        }
        let touched = std::mem::take(&mut self.touched);
        if !leading {
            if touched.is_empty() {
                return Vec::new();
            }
            let mut payload = BytesMut::with_capacity(touched.len() * 8);
            for s in touched {
                payload.put_u64(s);
            }
            return vec![Input::Relay {
                payload: payload.freeze(),
            }];
        }
        for s in touched {
            self.last_heard.insert(s, now);
        }
        let mut inputs = self.sweep(replica);
        inputs.extend(self.expire(replica));
        inputs
    }

    /// Leader: a follower heard from these sessions.
    pub fn on_relayed(&mut self, mut payload: Bytes) {
        let now = self.liveness_now();
        while payload.remaining() >= 8 {
            self.last_heard.insert(payload.get_u64(), now);
        }
    }

    /// Closes connections whose client is silent past its bound.
    fn close_silent(&mut self) {
        let now = self.clock.mono_us;
        let handshake_us = u64::from(self.limits.handshake_timeout_ms) * 1000;
        let silent: Vec<(ConnId, &'static str)> = self
            .conns
            .iter()
            .filter_map(|(&conn, c)| {
                let quiet_us = now.saturating_sub(c.heard_us);
                match c.phase {
                    Phase::Handshaking if quiet_us > handshake_us => {
                        Some((conn, "no handshake within the bound"))
                    }
                    Phase::Open { timeout_ms }
                        if quiet_us > u64::from(timeout_ms) * 1000
                            && !self.defects.connection_is_liveness =>
                    {
                        Some((conn, "client silent for its session timeout"))
                    }
                    Phase::Moved if quiet_us > handshake_us => {
                        Some((conn, "the session moved elsewhere"))
                    }
                    _ => None,
                }
            })
            .collect();
        for (conn, why) in silent {
            warn!(conn, why, "closing a client connection");
            self.forget(conn);
        }
    }

    /// Leader: empty containers and expired TTL nodes, a few per tick.
    fn sweep(&mut self, replica: &Replica) -> Vec<Input> {
        let mut inputs = Vec::new();
        let wall = self.clock.wall_ms;
        for path in replica
            .tree
            .expired_candidates(wall)
            .into_iter()
            .take(SWEEP_PER_TICK)
        {
            let Some(st) = replica.tree.exists(&path) else {
                continue;
            };
            let (mzxid, pzxid) = (Zxid(st.mzxid), Zxid(st.pzxid));
            if !self.sweeping.insert((path.clone(), mzxid, pzxid)) {
                continue;
            }
            let body = CommandBody::DeleteExpired { path, mzxid, pzxid };
            inputs.push(self.propose_unanswered(0, body));
        }
        if self.sweeping.len() > 10_000 {
            self.sweeping.clear();
        }
        inputs
    }

    /// Leader: sessions not heard from for their timeout end, each by one
    /// command that removes its ephemerals at one zxid.
    fn expire(&mut self, replica: &Replica) -> Vec<Input> {
        let now = self.liveness_now();
        let mut inputs = Vec::new();
        for (session, timeout_ms) in replica.tree.sessions() {
            let heard = *self.last_heard.entry(session).or_insert(now);
            if now.saturating_sub(heard) > u64::from(timeout_ms) * 1000
                && self.expiring.insert(session)
            {
                info!(session = format_args!("{session:#x}"), "session expired");
                inputs.push(self.propose_unanswered(session, CommandBody::ExpireSession));
            }
        }
        inputs
    }

    /// A command no client waits on (token 0 is never a request's).
    fn propose_unanswered(&mut self, session: u64, body: CommandBody) -> Input {
        let id = self.next_id();
        let mut cmd = self.command(session, 0, id, body);
        cmd.request = 0;
        Input::Propose {
            id,
            payload: cmd.encode(),
        }
    }
}
