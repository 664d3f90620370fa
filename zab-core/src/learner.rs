//! A learner: a follower (votes, acknowledges) or an observer (only learns).
//!
//! Discovery: FOLLOWERINFO, then accept the leader's epoch durably before
//! ACKEPOCH. Synchronization: apply DIFF / TRUNC / SNAP, then make the history
//! and then currentEpoch durable before ACK(NEWLEADER) (REFERENCE §1.1).
//! Broadcast: log proposals, acknowledge what is durable, deliver what the
//! leader commits, relay client writes and syncs to the leader.

use std::collections::{BTreeSet, VecDeque};

use bytes::Bytes;
use tracing::{info, warn};

use crate::config::defect;
use crate::election::Decision;
use crate::leader::message_epoch;
use crate::message::Message;
use crate::node::{Action, Ctx, Next, Phase, Role};
use crate::types::{
    EnsembleId, Epoch, PeerId, PersistSeq, RequestId, ServerState, Standing, Txn, Vote, Zxid,
};

#[derive(Debug)]
pub(crate) struct Learner {
    elected: Decision,
    leader: PeerId,
    observer: bool,
    /// Whether our acknowledgements count (see `Ctx::votes`). A voter that
    /// joins without it (it lost its state) is synchronized, records itself
    /// intact, and then rejoins as a counted follower.
    voting: bool,
    /// The leader's ensemble, learned from LEADERINFO.
    ensemble: EnsembleId,
    /// The intact-standing write after which we rejoin as a voter.
    rejoin: Option<PersistSeq>,
    /// This attempt to join (echoed by the leader's sync messages).
    join: u64,
    /// The leader's term, learned from LEADERINFO.
    term: Option<Epoch>,
    stage: Stage,
    /// Tick by which we must be up to date (initLimit).
    deadline: u64,
    last_heard: u64,
    /// The highest commit the leader announced.
    commit: Zxid,
    /// The last zxid we acknowledged.
    acked: Zxid,
    /// Where the synced history ended (NEWLEADER's zxid).
    newleader_zxid: Zxid,
    /// An epoch bump waiting for its writes to be durable.
    bump: Option<(Epoch, PersistSeq)>,
    /// Syncs relayed to the leader, not yet answered.
    syncs_sent: BTreeSet<RequestId>,
    /// Syncs the leader answered, waiting until we have applied their zxid.
    syncs_ready: VecDeque<(RequestId, Zxid)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// FOLLOWERINFO sent.
    Connecting,
    /// Writing the leader's epoch as acceptedEpoch; ACKEPOCH once durable.
    AcceptingEpoch {
        seq: PersistSeq,
        fresh: bool,
    },
    /// Receiving the sync stream.
    Syncing,
    /// Making the synced history and currentEpoch durable before ACK(NEWLEADER).
    AckingNewLeader {
        seq: PersistSeq,
    },
    /// ACK(NEWLEADER) sent, waiting for UPTODATE.
    Synced,
    Broadcast,
}

impl Learner {
    pub(crate) fn start(ctx: &mut Ctx, elected: Decision) -> Learner {
        let observer = !ctx.is_voter(ctx.id());
        let voting = ctx.votes();
        let leader = elected.vote.leader;
        ctx.joins += 1;
        let join = ctx.joins;
        ctx.send(
            leader,
            Message::FollowerInfo {
                accepted_epoch: ctx.accepted_epoch,
                observer,
                join,
                standing: ctx.standing,
            },
        );
        Learner {
            elected,
            leader,
            observer,
            voting,
            ensemble: EnsembleId::NONE,
            rejoin: None,
            join,
            term: None,
            stage: Stage::Connecting,
            deadline: ctx.now + u64::from(ctx.cfg.init_limit_ticks),
            last_heard: ctx.now,
            commit: Zxid::ZERO,
            acked: Zxid::ZERO,
            newleader_zxid: Zxid::ZERO,
            bump: None,
            syncs_sent: BTreeSet::new(),
            syncs_ready: VecDeque::new(),
        }
    }

    pub(crate) fn role(&self) -> Role {
        let phase = match self.stage {
            Stage::Connecting | Stage::AcceptingEpoch { .. } => Phase::Discovery,
            Stage::Syncing | Stage::AckingNewLeader { .. } | Stage::Synced => {
                Phase::Synchronization
            }
            Stage::Broadcast => Phase::Broadcast,
        };
        let (leader, term) = (self.leader, self.term.unwrap_or_default());
        if self.observer {
            Role::Observing {
                leader,
                term,
                phase,
            }
        } else {
            Role::Following {
                leader,
                term,
                phase,
            }
        }
    }

    pub(crate) fn elected(&self) -> Vote {
        self.elected.vote
    }

    pub(crate) fn elected_round(&self) -> u64 {
        self.elected.round
    }

    pub(crate) fn leader(&self) -> PeerId {
        self.leader
    }

    pub(crate) fn server_state(&self) -> ServerState {
        if self.observer {
            ServerState::Observing
        } else {
            ServerState::Following
        }
    }

    /// Leaving the role: syncs are rejected (they have no effect, so that is
    /// exact); relayed writes have an unknown outcome, left to the shell.
    pub(crate) fn abandon(self, ctx: &mut Ctx) {
        let ids = self
            .syncs_sent
            .into_iter()
            .chain(self.syncs_ready.into_iter().map(|(id, _)| id));
        for id in ids {
            ctx.emit(Action::Reject { id, leader: None });
        }
    }

    pub(crate) fn on_tick(&mut self, ctx: &mut Ctx) -> Next {
        if self.stage != Stage::Broadcast {
            if ctx.now > self.deadline {
                return Next::Looking("not up to date within initLimit");
            }
            if self.stage == Stage::Connecting {
                // The leader may have decided a moment after us and dropped
                // our first FOLLOWERINFO while still looking: say it again
                // (a copy of the same join attempt is ignored once known).
                ctx.send(
                    self.leader,
                    Message::FollowerInfo {
                        accepted_epoch: ctx.accepted_epoch,
                        observer: self.observer,
                        join: self.join,
                        standing: ctx.standing,
                    },
                );
            }
        } else if ctx.now - self.last_heard > u64::from(ctx.cfg.sync_limit_ticks) {
            return Next::Looking("leader silent for syncLimit");
        }
        Next::Stay
    }

    pub(crate) fn on_peer_down(&mut self, peer: PeerId) -> Next {
        if peer == self.leader {
            Next::Looking("connection to leader lost")
        } else {
            Next::Stay
        }
    }

    pub(crate) fn on_propose(&mut self, ctx: &mut Ctx, id: RequestId, payload: Bytes) -> Next {
        match (self.stage, self.term) {
            (Stage::Broadcast, Some(epoch)) => {
                ctx.send(self.leader, Message::Forward { epoch, id, payload })
            }
            _ => ctx.emit(Action::Reject {
                id,
                leader: Some(self.leader),
            }),
        }
        Next::Stay
    }

    /// Passes an opaque note to the leader (see `Message::Relay`).
    pub(crate) fn on_relay(&mut self, ctx: &mut Ctx, payload: Bytes) -> Next {
        if let (Stage::Broadcast, Some(epoch)) = (self.stage, self.term) {
            ctx.send(self.leader, Message::Relay { epoch, payload });
        }
        Next::Stay
    }

    pub(crate) fn on_sync(&mut self, ctx: &mut Ctx, id: RequestId) -> Next {
        match (self.stage, self.term) {
            (Stage::Broadcast, Some(epoch))
                if self.syncs_sent.len() < ctx.cfg.pending_syncs_max =>
            {
                self.syncs_sent.insert(id);
                ctx.send(self.leader, Message::Sync { epoch, id });
            }
            _ => ctx.emit(Action::Reject {
                id,
                leader: Some(self.leader),
            }),
        }
        Next::Stay
    }

    pub(crate) fn on_persisted(&mut self, ctx: &mut Ctx) -> Next {
        let Some(term) = self.term else {
            return Next::Stay;
        };
        if let Stage::AcceptingEpoch { seq, fresh } = self.stage {
            if !ctx.persist.is_durable(seq) {
                return Next::Stay;
            }
            // Every earlier write is durable too, so memory and disk agree here.
            let durable = ctx.durable();
            debug_assert_eq!(durable.last_zxid, ctx.history.last());
            self.stage = Stage::Syncing;
            ctx.emit(Action::RoleChanged(self.role()));
            ctx.send(
                self.leader,
                Message::AckEpoch {
                    epoch: term,
                    join: self.join,
                    fresh,
                    current_epoch: durable.current_epoch,
                    last_zxid: durable.last_zxid,
                    log_start: ctx.history.base(),
                },
            );
        }
        if let Stage::AckingNewLeader { seq } = self.stage {
            if !ctx.persist.is_durable(seq) {
                return Next::Stay;
            }
            self.ack_newleader(ctx, term);
        }
        if self.rejoin.is_some_and(|seq| ctx.persist.is_durable(seq)) {
            info!(node = %ctx.id(), ensemble = %self.ensemble, "synchronized after losing state; rejoining as a voter");
            return Next::Learn(self.elected);
        }
        if let Some((new_epoch, seq)) = self.bump {
            if ctx.persist.is_durable(seq) {
                self.bump = None;
                if !self.observer {
                    ctx.send(
                        self.leader,
                        Message::AckNewEpoch {
                            epoch: term,
                            new_epoch,
                        },
                    );
                }
            }
        }
        self.send_ack(ctx, term);
        Next::Stay
    }

    pub(crate) fn on_message(&mut self, ctx: &mut Ctx, from: PeerId, msg: Message) -> Next {
        if from != self.leader {
            ctx.stats.dropped += 1;
            return Next::Stay;
        }
        if let Message::LeaderInfo {
            term,
            epoch,
            join,
            ensemble,
        } = msg
        {
            if join != self.join {
                ctx.stats.dropped += 1;
                return Next::Stay;
            }
            return self.on_leader_info(ctx, term, epoch, ensemble);
        }
        let stale = match &msg {
            Message::Diff { join, .. }
            | Message::Trunc { join, .. }
            | Message::Snapshot { join, .. }
            | Message::NewLeader { join, .. } => *join != self.join,
            _ => false,
        };
        if stale {
            // Left over from an earlier attempt to join this leader.
            ctx.stats.dropped += 1;
            return Next::Stay;
        }
        if self.term.is_none() || message_epoch(&msg) != self.term {
            ctx.stats.dropped += 1;
            return Next::Stay;
        }
        self.last_heard = ctx.now;
        let in_sync = matches!(self.stage, Stage::Syncing);
        let past_newleader = matches!(
            self.stage,
            Stage::AckingNewLeader { .. } | Stage::Synced | Stage::Broadcast
        );
        match msg {
            Message::Diff { .. } if in_sync => Next::Stay,
            Message::Trunc { to, .. } if in_sync => self.on_trunc(ctx, to),
            Message::Snapshot { zxid, data, .. } if in_sync => self.on_snapshot(ctx, zxid, data),
            Message::Proposal { prev, txn, .. } if in_sync || past_newleader => {
                self.on_proposal(ctx, prev, txn)
            }
            Message::NewLeader {
                current_epoch,
                zxid,
                ..
            } if in_sync => self.on_newleader(ctx, current_epoch, zxid),
            Message::Commit { zxid, .. } if in_sync || past_newleader => {
                self.commit = self.commit.max(zxid);
                self.deliver(ctx);
                Next::Stay
            }
            Message::UpToDate { committed, .. } if self.stage == Stage::Synced => {
                self.stage = Stage::Broadcast;
                self.commit = self.commit.max(committed);
                ctx.emit(Action::RoleChanged(self.role()));
                self.deliver(ctx);
                if !self.voting && !self.observer && self.rejoin.is_none() {
                    // Our history is now the leader's, durably (the write is
                    // ordered after every synced one): we may vote again.
                    self.rejoin = Some(ctx.write_intact(self.ensemble));
                }
                Next::Stay
            }
            Message::Ping { epoch, round } => {
                ctx.send(self.leader, Message::PingAck { epoch, round });
                Next::Stay
            }
            Message::NewEpoch {
                new_epoch, last, ..
            } if past_newleader => self.on_new_epoch(ctx, new_epoch, last),
            Message::SyncReply { id, zxid, .. } => {
                if self.syncs_sent.remove(&id) {
                    self.syncs_ready.push_back((id, zxid));
                    self.deliver(ctx);
                }
                Next::Stay
            }
            Message::Rejected { id, .. } => {
                self.syncs_sent.remove(&id);
                ctx.emit(Action::Reject {
                    id,
                    leader: Some(self.leader),
                });
                Next::Stay
            }
            _ => {
                ctx.stats.dropped += 1;
                Next::Stay
            }
        }
    }

    fn on_leader_info(
        &mut self,
        ctx: &mut Ctx,
        term: Epoch,
        epoch: Epoch,
        ensemble: EnsembleId,
    ) -> Next {
        if self.stage != Stage::Connecting {
            ctx.stats.dropped += 1;
            return Next::Stay;
        }
        let ours = ctx.standing.ensemble();
        if !ours.is_none() && ours != ensemble {
            // Following would replace our history with another ensemble's.
            warn!(node = %ctx.id(), ours = %ours, theirs = %ensemble, "the leader belongs to another ensemble");
            ctx.stats.protocol_errors += 1;
            return Next::Looking("the leader belongs to another ensemble");
        }
        self.ensemble = ensemble;
        if epoch < ctx.accepted_epoch {
            return Next::Looking("leader's epoch is below our acceptedEpoch");
        }
        self.term = Some(term);
        self.last_heard = ctx.now;
        // Rewritten even when unchanged: the write is also the barrier after
        // which every earlier write is durable, so ACKEPOCH reports the disk.
        let fresh = epoch > ctx.accepted_epoch;
        let seq = ctx.write_accepted_epoch(epoch);
        self.stage = Stage::AcceptingEpoch { seq, fresh };
        Next::Stay
    }

    fn on_trunc(&mut self, ctx: &mut Ctx, to: Zxid) -> Next {
        if defect!(ctx.cfg, skip_trunc) {
            return Next::Stay;
        }
        if to < ctx.delivered || to < ctx.history.base() {
            // Only an unsafe leader would ask us to forget what we applied.
            warn!(node = %ctx.id(), to = %to, "refusing TRUNC below applied state");
            ctx.stats.protocol_errors += 1;
            return Next::Looking("TRUNC below applied state");
        }
        ctx.truncate(to);
        Next::Stay
    }

    fn on_snapshot(&mut self, ctx: &mut Ctx, zxid: Zxid, data: Bytes) -> Next {
        if zxid < ctx.delivered {
            ctx.stats.protocol_errors += 1;
            return Next::Looking("snapshot older than applied state");
        }
        if zxid.epoch() > ctx.accepted_epoch {
            // The leader bumped its epoch after our LEADERINFO. As for a
            // sync stream's proposals: acceptedEpoch covers every zxid on
            // disk, or a crash before NEWLEADER leaves a disk that does not
            // restore (seed 126250 of the protocol simulator).
            ctx.write_accepted_epoch(zxid.epoch());
        }
        ctx.install_snapshot(zxid, data);
        Next::Stay
    }

    fn on_proposal(&mut self, ctx: &mut Ctx, prev: Zxid, txn: Txn) -> Next {
        let held = txn.zxid <= ctx.history.base() || ctx.history.contains(txn.zxid);
        if txn.zxid <= ctx.history.last() && held {
            // A duplicate of what we hold: harmless.
            ctx.stats.dropped += 1;
            return Next::Stay;
        }
        if prev != ctx.history.last() {
            warn!(node = %ctx.id(), prev = %prev, last = %ctx.history.last(), "proposal does not extend our history");
            ctx.stats.protocol_errors += 1;
            // We missed part of the stream. The leader is fine; resynchronize
            // with it rather than disturb the ensemble with an election.
            return Next::Learn(self.elected);
        }
        let epoch = txn.zxid.epoch();
        if self.stage != Stage::Syncing && epoch > ctx.current_epoch {
            // The leader proposes in a bumped epoch only after a quorum took
            // its NEWEPOCH; ours was lost (it is re-sent each tick). This
            // proposal extends our history exactly where the bump began
            // (`prev` matched above), which is all NEWEPOCH checks, so adopt
            // the bump now: nothing of the new epoch may be acknowledged
            // before currentEpoch covers it, or a server with a higher
            // currentEpoch and a shorter history would win an election
            // against the acknowledgements that committed it.
            if epoch > ctx.accepted_epoch {
                ctx.write_accepted_epoch(epoch);
            }
            let seq = ctx.write_current_epoch(epoch);
            self.bump = Some((epoch, seq));
        } else if epoch > ctx.accepted_epoch {
            // A sync stream can carry zxids from an epoch the leader bumped to
            // after our LEADERINFO. Keep "acceptedEpoch covers every logged
            // zxid" true on disk, which restore checks; NEWLEADER then sets
            // currentEpoch before anything is acknowledged.
            ctx.write_accepted_epoch(epoch);
        }
        match ctx.append(txn) {
            Ok(_) => Next::Stay,
            Err(gap) => {
                warn!(node = %ctx.id(), %gap, "proposal stream has a gap");
                ctx.stats.protocol_errors += 1;
                Next::Learn(self.elected)
            }
        }
    }

    fn on_newleader(&mut self, ctx: &mut Ctx, current_epoch: Epoch, zxid: Zxid) -> Next {
        if ctx.history.last() != zxid {
            ctx.stats.protocol_errors += 1;
            return Next::Looking("synced history does not end at NEWLEADER's zxid");
        }
        if current_epoch > ctx.accepted_epoch {
            // Joining after an epoch bump: accept it before adopting it.
            ctx.write_accepted_epoch(current_epoch);
        }
        // Ordered after every synced write: durable means all of them are.
        self.newleader_zxid = zxid;
        let mut seq = ctx.write_current_epoch(current_epoch);
        if self.voting && !self.observer && ctx.standing != Standing::Member(self.ensemble) {
            // A bootstrap (or the first reign with ensemble ids): adopt the
            // leader's name for the history we now share, before acknowledging.
            seq = ctx.write_intact(self.ensemble);
        }
        self.stage = Stage::AckingNewLeader { seq };
        if defect!(ctx.cfg, ack_newleader_before_durable) {
            let term = self.term.expect("synchronizing implies a term");
            self.ack_newleader(ctx, term);
        }
        Next::Stay
    }

    fn ack_newleader(&mut self, ctx: &mut Ctx, term: Epoch) {
        self.stage = Stage::Synced;
        // ACK(NEWLEADER) covers the synced history; proposals that arrived
        // after NEWLEADER are acknowledged by `send_ack` once durable.
        self.acked = self.newleader_zxid;
        ctx.send(
            self.leader,
            Message::AckNewLeader {
                epoch: term,
                join: self.join,
            },
        );
    }
    fn on_new_epoch(&mut self, ctx: &mut Ctx, new_epoch: Epoch, last: Zxid) -> Next {
        let term = self.term.expect("past NEWLEADER implies a term");
        if new_epoch == ctx.accepted_epoch && new_epoch == ctx.current_epoch {
            // The leader re-sent it (our ack may have been lost): ack again
            // once durable. Only this leader, in this term, can have sent it.
            if self.bump.is_none() && !self.observer && ctx.durable().current_epoch == new_epoch {
                ctx.send(
                    self.leader,
                    Message::AckNewEpoch {
                        epoch: term,
                        new_epoch,
                    },
                );
            }
            return Next::Stay;
        }
        if last != ctx.history.last() || new_epoch <= ctx.accepted_epoch {
            ctx.stats.protocol_errors += 1;
            return Next::Looking("cannot accept the leader's new epoch");
        }
        ctx.write_accepted_epoch(new_epoch);
        let seq = ctx.write_current_epoch(new_epoch);
        self.bump = Some((new_epoch, seq));
        Next::Stay
    }

    /// Acknowledges, cumulatively, whatever became durable since the last ACK.
    /// Never before ACK(NEWLEADER): until then currentEpoch is not ours.
    fn send_ack(&mut self, ctx: &mut Ctx, term: Epoch) {
        if self.observer || !matches!(self.stage, Stage::Synced | Stage::Broadcast) {
            return;
        }
        let durable = ctx.durable().last_zxid;
        if durable > self.acked {
            self.acked = durable;
            ctx.send(
                self.leader,
                Message::Ack {
                    epoch: term,
                    zxid: durable,
                },
            );
        }
    }

    /// Delivers what is committed and logged; answers syncs now satisfied.
    fn deliver(&mut self, ctx: &mut Ctx) {
        if self.stage != Stage::Broadcast {
            return;
        }
        ctx.deliver(self.commit.min(ctx.history.last()));
        while let Some(&(id, zxid)) = self.syncs_ready.front() {
            if ctx.delivered < zxid {
                break;
            }
            self.syncs_ready.pop_front();
            ctx.emit(Action::SyncDone { id, zxid });
        }
    }
}

#[cfg(test)]
mod tests;
