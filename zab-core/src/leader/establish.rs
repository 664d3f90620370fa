//! Establishing a reign: discovery (an epoch a quorum accepts) and
//! synchronization (each learner brought to the leader's history with DIFF,
//! TRUNC or SNAP, then NEWLEADER acknowledged by a quorum).

use tracing::{info, warn};

use super::*;

impl Leader {
    // ---- discovery ----

    pub(super) fn on_follower_info(
        &mut self,
        ctx: &mut Ctx,
        from: PeerId,
        accepted_epoch: Epoch,
        observer: bool,
        join: u64,
        standing: Standing,
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
        let votes = !observer && ctx.counts_standing(from, standing);
        if !observer && !votes {
            info!(node = %ctx.id(), peer = %from, ?standing, "synchronizing a follower that does not vote (its standing differs from ours)");
        }
        self.learners.insert(
            from,
            LearnerLink {
                observer,
                votes,
                join,
                stage: Stage::Info { accepted_epoch },
                acked: Zxid::ZERO,
                round_acked: 0,
                last_heard: ctx.now,
            },
        );
        self.progress(ctx)
    }

    pub(super) fn on_ack_epoch(&mut self, ctx: &mut Ctx, from: PeerId, ack: AckEpoch) -> Next {
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
        if link.votes && self.phase == Phase::Discovery && (ack.current_epoch, ack.last_zxid) > ours
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
    pub(super) fn progress(&mut self, ctx: &mut Ctx) -> Next {
        if self.term.is_none() {
            self.choose_epoch(ctx);
        }
        if self.term.is_none() {
            return Next::Stay;
        }
        if let Some(promised) = self.send_leader_info(ctx) {
            if self.phase == Phase::Broadcast {
                // A learner promised a later epoch (it tried to lead, or
                // heard a leader that never got established) and can never
                // follow us as we are; nor can it be elected while we lead.
                // Move our zxid epoch past its promise, as a counter bump
                // does, and it can join.
                return self.start_bump_past(ctx, promised);
            }
        }
        if self.phase == Phase::Discovery {
            let own_durable = self.own_accept.is_some_and(|s| ctx.persist.is_durable(s));
            // Only fresh acceptances make us the epoch's one leader.
            let acked = self
                .learners
                .iter()
                .filter(|(_, l)| {
                    l.votes && matches!(l.stage, Stage::EpochAcked { fresh: true, .. })
                })
                .map(|(p, _)| *p);
            if !(own_durable && ctx.cfg.membership.is_quorum(acked.chain([ctx.id()]))) {
                return Next::Stay;
            }
            self.phase = Phase::Synchronization;
            self.newleader_zxid = ctx.history.last();
            let mut seq = ctx.write_current_epoch(self.epoch);
            if ctx.standing != Standing::Member(self.ensemble) {
                // A new ensemble (or one from before ensemble ids) is named
                // by its first leader; recorded after the history it names.
                info!(node = %ctx.id(), ensemble = %self.ensemble, "naming the ensemble");
                seq = ctx.write_intact(self.ensemble);
            }
            self.own_newleader = Some(seq);
            info!(node = %ctx.id(), epoch = %self.epoch, zxid = %self.newleader_zxid, "discovery quorum; synchronizing");
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

    /// LEADERINFO to every learner that has asked and can follow our epoch;
    /// returns the highest acceptedEpoch of those that cannot (they promised
    /// a later one).
    pub(super) fn send_leader_info(&mut self, ctx: &mut Ctx) -> Option<Epoch> {
        let term = self.term?;
        let epoch = self.epoch;
        let mut promised = None;
        for (peer, link) in self.learners.iter_mut() {
            if let Stage::Info { accepted_epoch } = link.stage {
                if accepted_epoch > epoch {
                    promised = promised.max(Some(accepted_epoch));
                    continue;
                }
                link.stage = Stage::EpochSent;
                let join = link.join;
                let ensemble = self.ensemble;
                ctx.send(
                    *peer,
                    Message::LeaderInfo {
                        term,
                        epoch,
                        join,
                        ensemble,
                    },
                );
            }
        }
        promised
    }

    /// Once a quorum (us included) has told us its acceptedEpoch, pick an epoch
    /// above all of them and make it durable as ours.
    pub(super) fn choose_epoch(&mut self, ctx: &mut Ctx) {
        // Every learner's promise raises the epoch; only voters make the quorum.
        let infos: Vec<(PeerId, Epoch, bool)> = self
            .learners
            .iter()
            .filter_map(|(p, l)| match l.stage {
                Stage::Info { accepted_epoch } => Some((*p, accepted_epoch, l.votes)),
                _ => None,
            })
            .collect();
        let ids = infos
            .iter()
            .filter(|(_, _, votes)| *votes)
            .map(|(p, _, _)| *p)
            .chain([ctx.id()]);
        if !ctx.cfg.membership.is_quorum(ids) {
            return;
        }
        let highest = infos
            .iter()
            .map(|(_, e, _)| *e)
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
    pub(super) fn start_sync(&mut self, ctx: &mut Ctx, peer: PeerId) {
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

    pub(super) fn on_ack_newleader(&mut self, ctx: &mut Ctx, from: PeerId) -> Next {
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
    pub(super) fn try_establish(&mut self, ctx: &mut Ctx) -> Next {
        let own = self
            .own_newleader
            .is_some_and(|s| ctx.persist.is_durable(s));
        let synced = self
            .learners
            .iter()
            .filter(|(_, l)| l.votes && l.stage == Stage::Synced)
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
}
