//! A reign's steady state: broadcast (propose, count durable acks, commit
//! in zxid order), the epoch bump before the zxid counter runs out, and the
//! leadership-confirmation rounds that answer syncs (REFERENCE §2).

use bytes::Bytes;
use tracing::info;

use super::*;

impl Leader {
    // ---- broadcast ----

    pub(super) fn propose(&mut self, ctx: &mut Ctx, payload: Bytes) {
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
    pub(super) fn advance_commit(&mut self, ctx: &mut Ctx) {
        let own = ctx.durable().last_zxid;
        let mut candidate = Zxid::ZERO;
        for &z in self.outstanding.iter().rev() {
            if z > own {
                continue;
            }
            let holders = self
                .learners
                .iter()
                .filter(|(_, l)| l.votes && l.stage == Stage::Synced && l.acked >= z)
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

    pub(super) fn commit(&mut self, ctx: &mut Ctx, zxid: Zxid) {
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
    pub(super) fn start_bump(&mut self, ctx: &mut Ctx) -> Next {
        self.start_bump_past(ctx, self.epoch)
    }

    /// A bump to the epoch after `floor` (at least the next one).
    pub(super) fn start_bump_past(&mut self, ctx: &mut Ctx, floor: Epoch) -> Next {
        if self.bump.is_some() {
            return Next::Stay;
        }
        let term = self.term.expect("broadcasting implies an epoch");
        let Some(epoch) = self.epoch.max(floor).checked_next() else {
            return Next::Looking("epoch space exhausted");
        };
        if ctx.accepted_epoch >= epoch {
            return Next::Looking("a later epoch was accepted here");
        }
        ctx.write_accepted_epoch(epoch);
        let own = ctx.write_current_epoch(epoch);
        let last = ctx.history.last();
        info!(node = %ctx.id(), from = %self.epoch, to = %epoch, "moving to a new epoch (zxid counter exhausted, or a learner promised a later one)");
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

    pub(super) fn check_bump(&mut self, ctx: &mut Ctx) {
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
        // Learners that promised an epoch up to this one can follow us now.
        self.send_leader_info(ctx);
    }

    // ---- leadership confirmation (linearizable sync) ----

    pub(super) fn send_round(&mut self, ctx: &mut Ctx) {
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
    pub(super) fn confirmed_round(&self, ctx: &Ctx) -> u64 {
        let mut rounds: Vec<u64> = self
            .learners
            .iter()
            .filter(|(_, l)| l.stage == Stage::Synced && l.votes)
            .map(|(_, l)| l.round_acked)
            .collect();
        rounds.sort_unstable_by(|a, b| b.cmp(a));
        for &r in &rounds {
            let holders = self
                .learners
                .iter()
                .filter(|(_, l)| l.stage == Stage::Synced && l.votes && l.round_acked >= r)
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

    pub(super) fn answer_syncs(&mut self, ctx: &mut Ctx) {
        if self.syncs.is_empty() {
            return;
        }
        let confirmed = self.confirmed_round(ctx);
        self.answer_up_to(ctx, confirmed);
        if !self.syncs.is_empty() && confirmed >= self.round_sent {
            self.send_round(ctx);
        }
    }

    pub(super) fn answer_up_to(&mut self, ctx: &mut Ctx, confirmed: u64) {
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
