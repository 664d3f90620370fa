//! The leader: discovery (choose an epoch a quorum accepts), synchronization
//! (bring each learner to the leader's history with DIFF, TRUNC or SNAP), and
//! broadcast (propose, count durable acks, commit in zxid order). It also
//! answers syncs only after a quorum confirms it still leads (REFERENCE §2), and
//! moves to a new epoch before the zxid counter runs out (§1.9).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use tracing::warn;

use crate::config::defect;
use crate::election::Decision;
use crate::message::Message;
use crate::node::{Action, Ctx, Next, Phase, Role};
use crate::types::{EnsembleId, Epoch, PeerId, PersistSeq, RequestId, Standing, Txn, Vote, Zxid};

#[derive(Debug)]
pub(crate) struct Leader {
    elected: Decision,
    /// The epoch this reign was established in (None until discovery chooses it).
    term: Option<Epoch>,
    /// The epoch of the zxids issued now.
    epoch: Epoch,
    phase: Phase,
    learners: BTreeMap<PeerId, LearnerLink>,
    /// Tick by which discovery and synchronization must be done.
    deadline: u64,
    /// Our own acceptedEpoch write for the chosen epoch.
    own_accept: Option<PersistSeq>,
    /// Our own currentEpoch write: our ACK(NEWLEADER).
    own_newleader: Option<PersistSeq>,
    /// The last zxid of the initial history (committed once established).
    newleader_zxid: Zxid,
    committed: Zxid,
    next_counter: u32,
    /// Proposed, not yet committed, in zxid order.
    outstanding: VecDeque<Zxid>,
    /// Writes held while an epoch bump completes: (origin, id, payload).
    held: VecDeque<(Option<PeerId>, RequestId, Bytes)>,
    bump: Option<Bump>,
    /// Leadership-confirmation rounds (heartbeats double as rounds).
    round_sent: u64,
    syncs: VecDeque<PendingSync>,
    /// Last tick at which a quorum was known to follow us.
    quorum_seen: u64,
    /// The ensemble our history belongs to; a new one if we bootstrap it.
    ensemble: EnsembleId,
}

/// The leader's view of one learner.
#[derive(Debug)]
struct LearnerLink {
    observer: bool,
    /// Counted towards quorums: a follower whose standing equals ours. A
    /// follower that lost its state is synchronized but never counted.
    votes: bool,
    /// The learner's join attempt this link belongs to.
    join: u64,
    stage: Stage,
    /// Highest zxid the learner reported durable (cumulative ACK).
    acked: Zxid,
    /// Highest confirmation round it answered.
    round_acked: u64,
    last_heard: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// FOLLOWERINFO received with this acceptedEpoch; LEADERINFO not sent yet.
    Info { accepted_epoch: Epoch },
    /// LEADERINFO sent.
    EpochSent,
    /// ACKEPOCH received; waiting for the discovery quorum before syncing.
    EpochAcked {
        fresh: bool,
        last_zxid: Zxid,
        log_start: Zxid,
    },
    /// Sync stream and NEWLEADER (ending at `zxid`) sent; proposals flow to
    /// it; its acks are not counted yet.
    Syncing { zxid: Zxid },
    /// ACK(NEWLEADER) received: its acks count.
    Synced,
}

#[derive(Debug)]
struct Bump {
    epoch: Epoch,
    last: Zxid,
    own: PersistSeq,
    acks: BTreeSet<PeerId>,
}

/// What a learner reported in ACKEPOCH.
#[derive(Clone, Copy, Debug)]
struct AckEpoch {
    fresh: bool,
    current_epoch: Epoch,
    last_zxid: Zxid,
    log_start: Zxid,
}

#[derive(Clone, Copy, Debug)]
struct PendingSync {
    origin: Option<PeerId>,
    id: RequestId,
    /// The first round sent after the sync arrived.
    round: u64,
}

impl Leader {
    pub(crate) fn start(ctx: &mut Ctx, elected: Decision) -> (Leader, Next) {
        let mut leader = Leader {
            elected,
            term: None,
            epoch: ctx.accepted_epoch,
            phase: Phase::Discovery,
            learners: BTreeMap::new(),
            deadline: ctx.now + u64::from(ctx.cfg.init_limit_ticks),
            own_accept: None,
            own_newleader: None,
            newleader_zxid: Zxid::ZERO,
            committed: ctx.delivered,
            next_counter: 1,
            outstanding: VecDeque::new(),
            held: VecDeque::new(),
            bump: None,
            round_sent: 0,
            syncs: VecDeque::new(),
            quorum_seen: ctx.now,
            ensemble: match ctx.standing {
                Standing::Member(e) if !e.is_none() => e,
                _ => ctx.cfg.new_ensemble_id,
            },
        };
        let next = leader.progress(ctx);
        (leader, next)
    }

    pub(crate) fn role(&self) -> Role {
        Role::Leading {
            term: self.term.unwrap_or(self.epoch),
            epoch: self.epoch,
            phase: self.phase,
        }
    }

    /// Its learners, as the leader sees them (for metrics).
    pub(crate) fn learners(&self) -> Vec<crate::node::LearnerView> {
        self.learners
            .iter()
            .map(|(&id, link)| crate::node::LearnerView {
                id,
                observer: link.observer,
                synced: link.stage == Stage::Synced,
                acked: link.acked,
            })
            .collect()
    }

    pub(crate) fn elected(&self) -> Vote {
        self.elected.vote
    }

    pub(crate) fn elected_round(&self) -> u64 {
        self.elected.round
    }

    /// Leaving the role: every sync still waiting is answered with a rejection;
    /// writes in flight have an unknown outcome and are left to the shell.
    pub(crate) fn abandon(self, ctx: &mut Ctx) {
        for s in self.syncs {
            if s.origin.is_none() {
                ctx.emit(Action::Reject {
                    id: s.id,
                    leader: None,
                });
            }
        }
        for (origin, id, _) in self.held {
            if origin.is_none() {
                ctx.emit(Action::Reject { id, leader: None });
            }
        }
    }

    pub(crate) fn on_tick(&mut self, ctx: &mut Ctx) -> Next {
        if self.phase != Phase::Broadcast {
            if ctx.now > self.deadline {
                return Next::Looking("leader not established within initLimit");
            }
            return Next::Stay;
        }
        let fresh = ctx.now.saturating_sub(u64::from(ctx.cfg.sync_limit_ticks));
        let alive = self
            .learners
            .iter()
            .filter(|(_, l)| l.votes && l.stage == Stage::Synced && l.last_heard >= fresh)
            .map(|(p, _)| *p)
            .chain([ctx.id()]);
        if ctx.cfg.membership.is_quorum(alive) {
            self.quorum_seen = ctx.now;
        } else if ctx.now - self.quorum_seen > u64::from(ctx.cfg.sync_limit_ticks) {
            return Next::Looking("lost quorum for syncLimit");
        }
        self.send_round(ctx);
        self.resend_bump(ctx);
        Next::Stay
    }

    /// NEWEPOCH or its ack may have been lost: ask again each tick.
    fn resend_bump(&mut self, ctx: &mut Ctx) {
        let (Some(bump), Some(term)) = (&self.bump, self.term) else {
            return;
        };
        for (peer, link) in &self.learners {
            if link.stage == Stage::Synced && !link.observer && !bump.acks.contains(peer) {
                let msg = Message::NewEpoch {
                    epoch: term,
                    new_epoch: bump.epoch,
                    last: bump.last,
                };
                ctx.send(*peer, msg);
            }
        }
    }

    pub(crate) fn on_peer_down(&mut self, _ctx: &mut Ctx, peer: PeerId) -> Next {
        // It will reconnect with FOLLOWERINFO; whatever we sent it may be lost.
        self.forget(peer);
        Next::Stay
    }

    /// Stops counting `peer` as a learner until it sends FOLLOWERINFO again.
    pub(crate) fn forget(&mut self, peer: PeerId) {
        self.learners.remove(&peer);
    }

    pub(crate) fn on_persisted(&mut self, ctx: &mut Ctx) -> Next {
        let next = self.progress(ctx);
        if !matches!(next, Next::Stay) {
            return next;
        }
        if self.phase == Phase::Broadcast {
            self.advance_commit(ctx);
            self.check_bump(ctx);
        }
        Next::Stay
    }

    pub(crate) fn on_message(&mut self, ctx: &mut Ctx, from: PeerId, msg: Message) -> Next {
        if let Message::FollowerInfo {
            accepted_epoch,
            observer,
            join,
            standing,
        } = msg
        {
            return self.on_follower_info(ctx, from, accepted_epoch, observer, join, standing);
        }
        let Some(term) = self.term else {
            ctx.stats.dropped += 1;
            return Next::Stay;
        };
        if message_epoch(&msg) != Some(term) {
            ctx.stats.dropped += 1;
            return Next::Stay;
        }
        let Some(link) = self.learners.get_mut(&from) else {
            ctx.stats.dropped += 1;
            return Next::Stay;
        };
        link.last_heard = ctx.now;
        let current_join = link.join;
        match msg {
            Message::AckEpoch { join, .. } | Message::AckNewLeader { join, .. }
                if join != current_join =>
            {
                // Left over from an earlier attempt of this learner to join.
                ctx.stats.dropped += 1;
                Next::Stay
            }
            Message::AckEpoch {
                fresh,
                current_epoch,
                last_zxid,
                log_start,
                ..
            } => {
                let ack = AckEpoch {
                    fresh,
                    current_epoch,
                    last_zxid,
                    log_start,
                };
                self.on_ack_epoch(ctx, from, ack)
            }
            Message::AckNewLeader { .. } => self.on_ack_newleader(ctx, from),
            Message::Ack { zxid, .. } => {
                if link.stage == Stage::Synced && link.votes && zxid > link.acked {
                    link.acked = zxid;
                    self.advance_commit(ctx);
                }
                Next::Stay
            }
            Message::PingAck { round, .. } => {
                if link.stage == Stage::Synced && link.votes && round > link.round_acked {
                    link.round_acked = round;
                    self.answer_syncs(ctx);
                }
                Next::Stay
            }
            Message::AckNewEpoch { new_epoch, .. } => {
                let voter = link.votes && link.stage == Stage::Synced;
                if let Some(bump) = self.bump.as_mut().filter(|b| b.epoch == new_epoch && voter) {
                    bump.acks.insert(from);
                    self.check_bump(ctx);
                }
                Next::Stay
            }
            Message::Forward { id, payload, .. } => {
                if let Some(check) = ctx.cfg.forwarded_check {
                    if let Err(why) = check(from, &payload) {
                        warn!(node = %ctx.id(), peer = %from, reason = %why, "refusing a forwarded write");
                        ctx.stats.protocol_errors += 1;
                        self.reject(ctx, Some(from), id);
                        return Next::Stay;
                    }
                }
                self.on_propose(ctx, Some(from), id, payload)
            }
            Message::Relay { payload, .. } => {
                if self.phase == Phase::Broadcast {
                    ctx.emit(Action::Relayed {
                        from: Some(from),
                        payload,
                    });
                }
                Next::Stay
            }
            Message::Sync { id, .. } => self.on_sync(ctx, Some(from), id),
            _ => {
                ctx.stats.dropped += 1;
                Next::Stay
            }
        }
    }

    /// A client write, local (`origin` None) or forwarded by a learner.
    pub(crate) fn on_propose(
        &mut self,
        ctx: &mut Ctx,
        origin: Option<PeerId>,
        id: RequestId,
        payload: Bytes,
    ) -> Next {
        let full = self.outstanding.len() + self.held.len() >= ctx.cfg.in_flight_max;
        if self.phase != Phase::Broadcast || full {
            self.reject(ctx, origin, id);
            return Next::Stay;
        }
        if self.bump.is_some() || self.next_counter > ctx.cfg.counter_max {
            self.held.push_back((origin, id, payload));
            self.start_bump(ctx)
        } else {
            self.propose(ctx, payload);
            Next::Stay
        }
    }

    /// A note for the leader's shell: the leader is its own recipient.
    pub(crate) fn on_relay(&mut self, ctx: &mut Ctx, payload: Bytes) -> Next {
        if self.phase == Phase::Broadcast {
            ctx.emit(Action::Relayed {
                from: None,
                payload,
            });
        }
        Next::Stay
    }

    /// A client sync, local or relayed. Answered once a quorum has confirmed our
    /// leadership in a round sent after the sync arrived.
    pub(crate) fn on_sync(&mut self, ctx: &mut Ctx, origin: Option<PeerId>, id: RequestId) -> Next {
        if self.phase != Phase::Broadcast || self.syncs.len() >= ctx.cfg.pending_syncs_max {
            self.reject(ctx, origin, id);
            return Next::Stay;
        }
        let pending = PendingSync {
            origin,
            id,
            round: self.round_sent + 1,
        };
        self.syncs.push_back(pending);
        if defect!(ctx.cfg, sync_without_quorum) {
            self.answer_up_to(ctx, u64::MAX);
            return Next::Stay;
        }
        // One round at a time: syncs that arrive while a round is in flight
        // share the next one, started as soon as this one is confirmed.
        if self.confirmed_round(ctx) >= self.round_sent {
            self.send_round(ctx);
        }
        self.answer_syncs(ctx);
        Next::Stay
    }

    fn reject(&self, ctx: &mut Ctx, origin: Option<PeerId>, id: RequestId) {
        match (origin, self.term) {
            (None, _) => ctx.emit(Action::Reject {
                id,
                leader: Some(ctx.id()),
            }),
            (Some(peer), Some(epoch)) => ctx.send(peer, Message::Rejected { epoch, id }),
            (Some(_), None) => {}
        }
    }
}

/// The leader-learner term a message carries, if it is one of theirs.
pub(crate) fn message_epoch(msg: &Message) -> Option<Epoch> {
    match msg {
        Message::Notification { .. } | Message::FollowerInfo { .. } => None,
        Message::LeaderInfo { term, .. } => Some(*term),
        Message::AckEpoch { epoch, .. } => Some(*epoch),
        Message::Diff { epoch, .. }
        | Message::Trunc { epoch, .. }
        | Message::Snapshot { epoch, .. }
        | Message::NewLeader { epoch, .. }
        | Message::AckNewLeader { epoch, .. }
        | Message::UpToDate { epoch, .. }
        | Message::Proposal { epoch, .. }
        | Message::Ack { epoch, .. }
        | Message::Commit { epoch, .. }
        | Message::Ping { epoch, .. }
        | Message::PingAck { epoch, .. }
        | Message::NewEpoch { epoch, .. }
        | Message::AckNewEpoch { epoch, .. }
        | Message::Forward { epoch, .. }
        | Message::Rejected { epoch, .. }
        | Message::Sync { epoch, .. }
        | Message::Relay { epoch, .. }
        | Message::SyncReply { epoch, .. } => Some(*epoch),
    }
}

mod broadcast;
mod establish;

#[cfg(test)]
mod tests;
