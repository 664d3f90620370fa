//! The leader: discovery (choose an epoch a quorum accepts), synchronization
//! (bring each learner to the leader's history with DIFF, TRUNC or SNAP), and
//! broadcast (propose, count durable acks, commit in zxid order). It also
//! answers syncs only after a quorum confirms it still leads (REFERENCE §2), and
//! moves to a new epoch before the zxid counter runs out (§1.9).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use tracing::{info, warn};

use crate::config::defect;
use crate::election::Decision;
use crate::message::Message;
use crate::node::{Action, Ctx, Next, Phase, Role};
use crate::types::{Epoch, PeerId, PersistSeq, RequestId, Txn, Vote, Zxid};

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
}

/// The leader's view of one learner.
#[derive(Debug)]
struct LearnerLink {
    observer: bool,
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
            .filter(|(_, l)| l.stage == Stage::Synced && l.last_heard >= fresh)
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
        } = msg
        {
            return self.on_follower_info(ctx, from, accepted_epoch, observer, join);
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
                if link.stage == Stage::Synced && !link.observer && zxid > link.acked {
                    link.acked = zxid;
                    self.advance_commit(ctx);
                }
                Next::Stay
            }
            Message::PingAck { round, .. } => {
                if link.stage == Stage::Synced && !link.observer && round > link.round_acked {
                    link.round_acked = round;
                    self.answer_syncs(ctx);
                }
                Next::Stay
            }
            Message::AckNewEpoch { new_epoch, .. } => {
                let voter = !link.observer && link.stage == Stage::Synced;
                if let Some(bump) = self.bump.as_mut().filter(|b| b.epoch == new_epoch && voter) {
                    bump.acks.insert(from);
                    self.check_bump(ctx);
                }
                Next::Stay
            }
            Message::Forward { id, payload, .. } => self.on_propose(ctx, Some(from), id, payload),
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

    // ---- discovery ----

    fn on_follower_info(
        &mut self,
        ctx: &mut Ctx,
        from: PeerId,
        accepted_epoch: Epoch,
        observer: bool,
        join: u64,
    ) -> Next {
        if self.learners.get(&from).is_some_and(|l| l.join >= join) {
            // A duplicate or late copy of an attempt we already know.
            ctx.stats.dropped += 1;
            return Next::Stay;
        }
        if observer == ctx.is_voter(from) {
            warn!(node = %ctx.id(), peer = %from, "learner's observer flag contradicts membership");
            ctx.stats.protocol_errors += 1;
            return Next::Stay;
        }
        self.learners.insert(
            from,
            LearnerLink {
                observer,
                join,
                stage: Stage::Info { accepted_epoch },
                acked: Zxid::ZERO,
                round_acked: 0,
                last_heard: ctx.now,
            },
        );
        self.progress(ctx)
    }

    fn on_ack_epoch(&mut self, ctx: &mut Ctx, from: PeerId, ack: AckEpoch) -> Next {
        let Some(link) = self.learners.get_mut(&from) else {
            return Next::Stay;
        };
        if link.stage != Stage::EpochSent {
            ctx.stats.dropped += 1;
            return Next::Stay;
        }
        // A voter more up to date than us means the election chose wrongly for
        // this quorum; leading would lose its transactions (Zab discovery).
        let ours = (ctx.current_epoch, ctx.history.last());
        if !link.observer
            && self.phase == Phase::Discovery
            && (ack.current_epoch, ack.last_zxid) > ours
        {
            warn!(node = %ctx.id(), peer = %from, "follower is ahead of the leader");
            return Next::Looking("a follower is ahead of the leader");
        }
        link.stage = Stage::EpochAcked {
            fresh: ack.fresh,
            last_zxid: ack.last_zxid,
            log_start: ack.log_start,
        };
        self.progress(ctx)
    }

    /// Moves discovery and synchronization forward as far as what we have allows.
    fn progress(&mut self, ctx: &mut Ctx) -> Next {
        if self.term.is_none() {
            self.choose_epoch(ctx);
        }
        let Some(term) = self.term else {
            return Next::Stay;
        };
        // LEADERINFO to everyone who has asked.
        let epoch = self.epoch;
        for (peer, link) in self.learners.iter_mut() {
            if let Stage::Info { accepted_epoch } = link.stage {
                if accepted_epoch > epoch {
                    // It has promised a later leader; it cannot follow us.
                    continue;
                }
                link.stage = Stage::EpochSent;
                let join = link.join;
                ctx.send(*peer, Message::LeaderInfo { term, epoch, join });
            }
        }
        if self.phase == Phase::Discovery {
            let own_durable = self.own_accept.is_some_and(|s| ctx.persist.is_durable(s));
            // Only fresh acceptances make us the epoch's one leader.
            let acked = self
                .learners
                .iter()
                .filter(|(_, l)| matches!(l.stage, Stage::EpochAcked { fresh: true, .. }))
                .map(|(p, _)| *p);
            if !(own_durable && ctx.cfg.membership.is_quorum(acked.chain([ctx.id()]))) {
                return Next::Stay;
            }
            self.phase = Phase::Synchronization;
            self.newleader_zxid = ctx.history.last();
            self.own_newleader = Some(ctx.write_current_epoch(self.epoch));
            info!(node = %ctx.id(), epoch = %term, zxid = %self.newleader_zxid, "discovery quorum; synchronizing");
            ctx.emit(Action::RoleChanged(self.role()));
        }
        let ready: Vec<_> = self
            .learners
            .iter()
            .filter_map(|(p, l)| match l.stage {
                Stage::EpochAcked { .. } => Some(*p),
                _ => None,
            })
            .collect();
        for peer in ready {
            self.start_sync(ctx, peer);
        }
        if self.phase == Phase::Synchronization {
            return self.try_establish(ctx);
        }
        Next::Stay
    }

    /// Once a quorum (us included) has told us its acceptedEpoch, pick an epoch
    /// above all of them and make it durable as ours.
    fn choose_epoch(&mut self, ctx: &mut Ctx) {
        let infos: Vec<(PeerId, Epoch)> = self
            .learners
            .iter()
            .filter_map(|(p, l)| match l.stage {
                Stage::Info { accepted_epoch } => Some((*p, accepted_epoch)),
                _ => None,
            })
            .collect();
        let ids = infos.iter().map(|(p, _)| *p).chain([ctx.id()]);
        if !ctx.cfg.membership.is_quorum(ids) {
            return;
        }
        let highest = infos
            .iter()
            .map(|(_, e)| *e)
            .fold(ctx.accepted_epoch, Epoch::max);
        let Some(epoch) = highest.checked_next() else {
            warn!(node = %ctx.id(), "a peer reports acceptedEpoch at the end of the epoch space");
            ctx.stats.protocol_errors += 1;
            return;
        };
        self.term = Some(epoch);
        self.epoch = epoch;
        self.own_accept = Some(ctx.write_accepted_epoch(epoch));
        info!(node = %ctx.id(), epoch = %epoch, "proposing epoch");
    }

    // ---- synchronization ----

    /// Sends `peer` what it lacks (DIFF), what it must drop (TRUNC) or all of
    /// it (SNAP), then NEWLEADER. From here on it also receives every proposal.
    fn start_sync(&mut self, ctx: &mut Ctx, peer: PeerId) {
        let (Some(term), Some(link)) = (self.term, self.learners.get_mut(&peer)) else {
            return;
        };
        let Stage::EpochAcked {
            last_zxid,
            log_start,
            ..
        } = link.stage
        else {
            return;
        };
        link.stage = Stage::Syncing {
            zxid: ctx.history.last(),
        };
        let join = link.join;
        let history = &ctx.history;
        let last = history.last();
        let after = if last_zxid >= history.base() && history.contains(last_zxid) {
            ctx.send(peer, Message::Diff { epoch: term, join });
            Some(last_zxid)
        } else {
            match history.last_before(last_zxid).filter(|&t| t >= log_start) {
                Some(to) => {
                    ctx.send(
                        peer,
                        Message::Trunc {
                            epoch: term,
                            join,
                            to,
                        },
                    );
                    Some(to)
                }
                None => None,
            }
        };
        let after = after.unwrap_or_else(|| {
            let zxid = ctx.delivered;
            ctx.emit(Action::SendSnapshot {
                to: peer,
                epoch: term,
                join,
                zxid,
            });
            zxid
        });
        if after < last {
            ctx.emit(Action::SendDiff {
                to: peer,
                epoch: term,
                after,
                through: last,
            });
        }
        ctx.send(
            peer,
            Message::NewLeader {
                epoch: term,
                join,
                current_epoch: self.epoch,
                zxid: last,
            },
        );
        if let Some(bump) = &self.bump {
            ctx.send(
                peer,
                Message::NewEpoch {
                    epoch: term,
                    new_epoch: bump.epoch,
                    last: bump.last,
                },
            );
        }
    }

    fn on_ack_newleader(&mut self, ctx: &mut Ctx, from: PeerId) -> Next {
        let Some(link) = self.learners.get_mut(&from) else {
            return Next::Stay;
        };
        let Stage::Syncing { zxid } = link.stage else {
            ctx.stats.dropped += 1;
            return Next::Stay;
        };
        link.stage = Stage::Synced;
        // ACK(NEWLEADER) means the synced history is durable there.
        link.acked = link.acked.max(zxid);
        match self.phase {
            Phase::Synchronization => self.try_establish(ctx),
            Phase::Broadcast => {
                let (epoch, committed) = (self.term.unwrap_or(self.epoch), self.committed);
                ctx.send(from, Message::UpToDate { epoch, committed });
                Next::Stay
            }
            Phase::Discovery => Next::Stay,
        }
    }

    /// Established once a quorum, us included, has the initial history and the
    /// new currentEpoch durable (REFERENCE §1.2): it is then committed.
    fn try_establish(&mut self, ctx: &mut Ctx) -> Next {
        let own = self
            .own_newleader
            .is_some_and(|s| ctx.persist.is_durable(s));
        let synced = self
            .learners
            .iter()
            .filter(|(_, l)| l.stage == Stage::Synced)
            .map(|(p, _)| *p);
        if !(own && ctx.cfg.membership.is_quorum(synced.chain([ctx.id()]))) {
            return Next::Stay;
        }
        let term = self.term.expect("synchronizing implies an epoch");
        self.phase = Phase::Broadcast;
        self.quorum_seen = ctx.now;
        self.committed = self.newleader_zxid;
        ctx.stats.established += 1;
        info!(node = %ctx.id(), epoch = %term, zxid = %self.committed, "established");
        ctx.deliver(self.committed);
        ctx.emit(Action::RoleChanged(self.role()));
        let committed = self.committed;
        for (peer, link) in &self.learners {
            if link.stage == Stage::Synced {
                ctx.send(
                    *peer,
                    Message::UpToDate {
                        epoch: term,
                        committed,
                    },
                );
            }
        }
        Next::Stay
    }

    // ---- broadcast ----

    fn propose(&mut self, ctx: &mut Ctx, payload: Bytes) {
        let term = self.term.expect("broadcasting implies an epoch");
        let zxid = Zxid::new(self.epoch, self.next_counter);
        self.next_counter += 1;
        let txn = Txn { zxid, payload };
        let prev = ctx.history.last();
        if let Err(gap) = ctx.append(txn.clone()) {
            // Our own numbering cannot leave gaps; this is a bug, not input.
            panic!("leader produced a gap: {gap}");
        }
        ctx.stats.proposals += 1;
        self.outstanding.push_back(zxid);
        for (peer, link) in &self.learners {
            if matches!(link.stage, Stage::Syncing { .. } | Stage::Synced) {
                ctx.send(
                    *peer,
                    Message::Proposal {
                        epoch: term,
                        prev,
                        txn: txn.clone(),
                    },
                );
            }
        }
        if defect!(ctx.cfg, commit_without_quorum) {
            self.commit(ctx, zxid);
        }
    }

    /// Commits, in zxid order, the longest prefix a quorum including us has durable.
    fn advance_commit(&mut self, ctx: &mut Ctx) {
        let own = ctx.durable().last_zxid;
        let mut candidate = Zxid::ZERO;
        for &z in self.outstanding.iter().rev() {
            if z > own {
                continue;
            }
            let holders = self
                .learners
                .iter()
                .filter(|(_, l)| l.stage == Stage::Synced && l.acked >= z)
                .map(|(p, _)| *p)
                .chain([ctx.id()]);
            if ctx.cfg.membership.is_quorum(holders) {
                candidate = z;
                break;
            }
        }
        if candidate > self.committed {
            self.commit(ctx, candidate);
        }
    }

    fn commit(&mut self, ctx: &mut Ctx, zxid: Zxid) {
        let term = self.term.expect("broadcasting implies an epoch");
        while self.outstanding.front().is_some_and(|&z| z <= zxid) {
            self.outstanding.pop_front();
        }
        self.committed = zxid;
        ctx.deliver(zxid);
        for (peer, link) in &self.learners {
            if matches!(link.stage, Stage::Syncing { .. } | Stage::Synced) {
                ctx.send(*peer, Message::Commit { epoch: term, zxid });
            }
        }
    }

    // ---- counter exhaustion ----

    /// The counter is nearly spent: have a quorum durably accept the next epoch
    /// (making us its only leader), then continue in it. Writes are held, not
    /// refused, meanwhile, and commits of the old epoch continue.
    fn start_bump(&mut self, ctx: &mut Ctx) -> Next {
        if self.bump.is_some() {
            return Next::Stay;
        }
        let term = self.term.expect("broadcasting implies an epoch");
        let Some(epoch) = self.epoch.checked_next() else {
            return Next::Looking("epoch space exhausted");
        };
        if ctx.accepted_epoch >= epoch {
            return Next::Looking("a later epoch was accepted here");
        }
        ctx.write_accepted_epoch(epoch);
        let own = ctx.write_current_epoch(epoch);
        let last = ctx.history.last();
        info!(node = %ctx.id(), from = %self.epoch, to = %epoch, "zxid counter exhausted; moving to a new epoch");
        self.bump = Some(Bump {
            epoch,
            last,
            own,
            acks: BTreeSet::new(),
        });
        for (peer, link) in &self.learners {
            if matches!(link.stage, Stage::Syncing { .. } | Stage::Synced) {
                ctx.send(
                    *peer,
                    Message::NewEpoch {
                        epoch: term,
                        new_epoch: epoch,
                        last,
                    },
                );
            }
        }
        self.check_bump(ctx);
        Next::Stay
    }

    fn check_bump(&mut self, ctx: &mut Ctx) {
        let Some(bump) = &self.bump else { return };
        let own = ctx.persist.is_durable(bump.own);
        if !(own
            && ctx
                .cfg
                .membership
                .is_quorum(bump.acks.iter().copied().chain([ctx.id()])))
        {
            return;
        }
        self.epoch = bump.epoch;
        self.next_counter = 1;
        self.bump = None;
        ctx.stats.epoch_bumps += 1;
        ctx.emit(Action::RoleChanged(self.role()));
        while let Some((_, _, payload)) = self.held.pop_front() {
            self.propose(ctx, payload);
        }
    }

    // ---- leadership confirmation (linearizable sync) ----

    fn send_round(&mut self, ctx: &mut Ctx) {
        let Some(term) = self.term else { return };
        self.round_sent += 1;
        let round = self.round_sent;
        for (peer, link) in &self.learners {
            if matches!(link.stage, Stage::Syncing { .. } | Stage::Synced) {
                ctx.send(*peer, Message::Ping { epoch: term, round });
            }
        }
        // A one-voter ensemble confirms itself.
        self.answer_syncs(ctx);
    }

    /// The highest round a quorum of voters (us included) has answered.
    fn confirmed_round(&self, ctx: &Ctx) -> u64 {
        let mut rounds: Vec<u64> = self
            .learners
            .iter()
            .filter(|(_, l)| l.stage == Stage::Synced && !l.observer)
            .map(|(_, l)| l.round_acked)
            .collect();
        rounds.sort_unstable_by(|a, b| b.cmp(a));
        for &r in &rounds {
            let holders = self
                .learners
                .iter()
                .filter(|(_, l)| l.stage == Stage::Synced && !l.observer && l.round_acked >= r)
                .map(|(p, _)| *p)
                .chain([ctx.id()]);
            if ctx.cfg.membership.is_quorum(holders) {
                return r;
            }
        }
        if ctx.cfg.membership.is_quorum([ctx.id()]) {
            self.round_sent
        } else {
            0
        }
    }

    fn answer_syncs(&mut self, ctx: &mut Ctx) {
        if self.syncs.is_empty() {
            return;
        }
        let confirmed = self.confirmed_round(ctx);
        self.answer_up_to(ctx, confirmed);
        if !self.syncs.is_empty() && confirmed >= self.round_sent {
            self.send_round(ctx);
        }
    }

    fn answer_up_to(&mut self, ctx: &mut Ctx, confirmed: u64) {
        let Some(term) = self.term else { return };
        let zxid = self.committed;
        while self.syncs.front().is_some_and(|s| s.round <= confirmed) {
            let Some(s) = self.syncs.pop_front() else {
                break;
            };
            ctx.stats.syncs_answered += 1;
            match s.origin {
                None => ctx.emit(Action::SyncDone { id: s.id, zxid }),
                Some(peer) => ctx.send(
                    peer,
                    Message::SyncReply {
                        epoch: term,
                        id: s.id,
                        zxid,
                    },
                ),
            }
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

#[cfg(test)]
mod tests;
