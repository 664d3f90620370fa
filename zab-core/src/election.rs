//! Fast leader election, as ZooKeeper runs it.
//!
//! Voters exchange notifications carrying a vote and an election round. A
//! looking voter adopts any better vote it sees (the order is durable epoch,
//! last logged zxid, id) and decides once a quorum of the same round agrees on
//! its vote. A server that finds a quorum already following or leading joins
//! that leader directly, so a restart does not force an election.
//!
//! The candidacy is computed only once every pending write is durable
//! (REFERENCE §1.6–1.7): a vote never claims more, or less, than the disk holds.

use std::collections::BTreeMap;

use crate::message::Message;
use crate::node::{Ctx, Next};
use crate::types::{PeerId, ServerState, Vote};

/// The outcome of an election: who leads, and the vote and round that say so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Decision {
    pub vote: Vote,
    pub round: u64,
}

#[derive(Debug)]
pub(crate) struct Election {
    /// None until every write issued under the previous role is durable.
    vote: Option<Vote>,
    /// Votes of looking voters in our round (our own included when we vote).
    votes: BTreeMap<PeerId, Vote>,
    /// Leaders claimed by servers that are out of the election.
    settled: BTreeMap<PeerId, (PeerId, ServerState, Vote, u64)>,
    resend_at: u64,
    /// Set when a quorum agrees but not every voter has spoken: wait one tick
    /// for a better vote before committing to the outcome.
    decide_at: Option<u64>,
}

impl Election {
    /// A placeholder for the instant between two roles.
    pub(crate) fn idle() -> Election {
        Election {
            vote: None,
            votes: BTreeMap::new(),
            settled: BTreeMap::new(),
            resend_at: 0,
            decide_at: None,
        }
    }

    pub(crate) fn start(ctx: &mut Ctx) -> (Election, Next) {
        let mut e = Election::idle();
        let next = e.on_persisted(ctx);
        (e, next)
    }

    /// Becomes a candidate once the disk has caught up with memory.
    pub(crate) fn on_persisted(&mut self, ctx: &mut Ctx) -> Next {
        if self.vote.is_some() || !ctx.persist.is_durable(ctx.persist.last_issued()) {
            return Next::Stay;
        }
        let own = ctx.own_vote();
        // Observers announce themselves only to be told who leads; voters
        // ignore their votes, so they never become candidates.
        let vote = self.votes.values().copied().fold(own, Vote::max);
        self.vote = Some(vote);
        self.votes.insert(ctx.id(), vote);
        self.broadcast(ctx);
        self.check(ctx)
    }

    pub(crate) fn on_tick(&mut self, ctx: &mut Ctx) -> Next {
        if self.vote.is_none() {
            return Next::Stay;
        }
        if let Some(at) = self.decide_at {
            if ctx.now >= at {
                return self.decide(ctx);
            }
        }
        if ctx.now >= self.resend_at {
            self.broadcast(ctx);
        }
        Next::Stay
    }

    pub(crate) fn on_notification(
        &mut self,
        ctx: &mut Ctx,
        from: PeerId,
        vote: Vote,
        round: u64,
        state: ServerState,
    ) -> Next {
        match state {
            ServerState::Looking => self.on_looking(ctx, from, vote, round),
            ServerState::Following | ServerState::Leading => {
                if ctx.believes(from) {
                    self.settled.insert(from, (vote.leader, state, vote, round));
                }
                self.check(ctx)
            }
            ServerState::Observing => Next::Stay,
        }
    }

    fn on_looking(&mut self, ctx: &mut Ctx, from: PeerId, vote: Vote, round: u64) -> Next {
        if !ctx.is_voter(from) {
            // An observer asking who leads: tell it what we think, if anything.
            if let Some(mine) = self.vote {
                self.notify(ctx, from, mine);
            }
            return Next::Stay;
        }
        if !ctx.counts(from) {
            // A voter whose vote we do not count (blank, recovering, another
            // standing), or we count nobody's. It learns who leads from the
            // servers that follow or lead; answering here could echo forever
            // between two servers that do not count each other.
            return Next::Stay;
        }
        if round < ctx.round {
            // A straggler from an older round: bring it up to date. Observers
            // only listen: their rounds are their own, and answering would
            // start an endless exchange with a voter in a lower round.
            if let (Some(mine), true) = (self.vote, ctx.votes()) {
                self.notify(ctx, from, mine);
            }
            return Next::Stay;
        }
        let new_round = round > ctx.round;
        if new_round {
            ctx.round = round;
            self.votes.clear();
            self.decide_at = None;
        }
        self.votes.insert(from, vote);
        let Some(mine) = self.vote else {
            // Not a candidate yet; the vote is remembered for when we are.
            return Next::Stay;
        };
        if !ctx.votes() {
            return Next::Stay;
        }
        let base = if new_round { ctx.own_vote() } else { mine };
        let best = base.max(vote);
        self.votes.insert(ctx.id(), best);
        if new_round || best != mine {
            self.vote = Some(best);
            self.decide_at = None;
            self.broadcast(ctx);
        }
        self.check(ctx)
    }

    /// Decides when the votes allow it: a quorum already settled on a live
    /// leader, or a quorum of this round agreeing with our vote.
    fn check(&mut self, ctx: &mut Ctx) -> Next {
        let Some(mine) = self.vote else {
            return Next::Stay;
        };
        if let Some(d) = self.settled_leader(ctx) {
            return self.finish(ctx, d);
        }
        if !ctx.votes() {
            return Next::Stay;
        }
        let agreeing = self
            .votes
            .iter()
            .filter(|(_, v)| **v == mine)
            .map(|(p, _)| *p);
        if !ctx.election_quorum(agreeing) {
            self.decide_at = None;
            return Next::Stay;
        }
        let everyone = ctx
            .cfg
            .membership
            .voters()
            .all(|p| self.votes.contains_key(&p));
        if everyone {
            return self.decide(ctx);
        }
        if self.decide_at.is_none() {
            self.decide_at = Some(ctx.now + 1);
        }
        Next::Stay
    }

    fn decide(&mut self, ctx: &mut Ctx) -> Next {
        let Some(vote) = self.vote else {
            return Next::Stay;
        };
        let round = ctx.round;
        self.finish(ctx, Decision { vote, round })
    }

    fn finish(&mut self, ctx: &mut Ctx, d: Decision) -> Next {
        if d.vote.leader == ctx.id() {
            Next::Lead(d)
        } else {
            Next::Learn(d)
        }
    }

    /// A quorum of voters report following or leading the same server, and that
    /// server itself says it leads: join it without an election.
    fn settled_leader(&self, ctx: &Ctx) -> Option<Decision> {
        let (_, &(leader, _, vote, round)) =
            self.settled.iter().find(|(from, (leader, state, _, _))| {
                **from == *leader && *state == ServerState::Leading
            })?;
        if leader == ctx.id() {
            return None;
        }
        let backers = self
            .settled
            .iter()
            .filter(|(p, (l, _, _, _))| *l == leader && ctx.believes(**p))
            .map(|(p, _)| *p);
        ctx.cfg
            .membership
            .is_quorum(backers)
            .then_some(Decision { vote, round })
    }

    fn broadcast(&mut self, ctx: &mut Ctx) {
        let Some(vote) = self.vote else { return };
        for peer in ctx.peers() {
            self.notify(ctx, peer, vote);
        }
        self.resend_at = ctx.now + u64::from(ctx.cfg.election_resend_ticks);
    }

    fn notify(&self, ctx: &mut Ctx, to: PeerId, vote: Vote) {
        let round = ctx.round;
        ctx.send(
            to,
            Message::Notification {
                vote,
                round,
                state: ServerState::Looking,
                standing: ctx.standing,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::message::Message;
    use crate::node::{Action, Input, Phase, Role};
    use crate::testkit::{history, node, p, restored, sends, take, z};
    use crate::types::{EnsembleId, Epoch, ServerState, Standing, Vote, Zxid};

    /// The standing of the restored test nodes: a history from before ensemble ids.
    const LEGACY: Standing = Standing::Member(EnsembleId::NONE);

    fn looking(vote: Vote, round: u64) -> Message {
        Message::Notification {
            vote,
            round,
            state: ServerState::Looking,
            standing: LEGACY,
        }
    }

    fn vote(epoch: u32, zxid: Zxid, leader: u64) -> Vote {
        Vote {
            epoch: Epoch(epoch),
            zxid,
            leader: p(leader),
        }
    }

    #[test]
    fn tie_on_zxid_is_broken_by_the_higher_id() {
        let mut n = node(
            2,
            &[1, 2, 3],
            restored(1, 1, history(Zxid::ZERO, &[(1, 5)])),
        );
        let own = vote(1, z(1, 5), 2);
        assert_eq!(
            sends(&take(&mut n)),
            vec![(p(1), looking(own, 1)), (p(3), looking(own, 1))],
            "announces its durable epoch and last logged zxid"
        );
        // p1 has the same zxid but a lower id: our vote stands, nothing to say.
        n.handle(Input::Received {
            from: p(1),
            msg: looking(vote(1, z(1, 5), 1), 1),
        });
        assert_eq!(take(&mut n), vec![]);
        // p3 ties on zxid and wins on id: adopt and announce. Every voter has
        // now been heard and a quorum agrees, so follow p3 at once.
        let v3 = vote(1, z(1, 5), 3);
        n.handle(Input::Received {
            from: p(3),
            msg: looking(v3, 1),
        });
        let follow = Message::FollowerInfo {
            accepted_epoch: Epoch(1),
            observer: false,
            join: 1,
            standing: LEGACY,
        };
        assert_eq!(
            sends(&take(&mut n)),
            vec![
                (p(1), looking(v3, 1)),
                (p(3), looking(v3, 1)),
                (p(3), follow)
            ]
        );
        assert_eq!(
            n.role(),
            Role::Following {
                leader: p(3),
                term: Epoch(0),
                phase: Phase::Discovery,
            }
        );
    }

    #[test]
    fn a_quorum_without_every_voter_waits_one_tick() {
        let mut n = node(
            2,
            &[1, 2, 3, 4, 5],
            restored(1, 1, history(Zxid::ZERO, &[(1, 5)])),
        );
        take(&mut n);
        for from in [4, 5] {
            n.handle(Input::Received {
                from: p(from),
                msg: looking(vote(1, z(1, 5), 5), 1),
            });
        }
        // {p2, p4, p5} agree on p5, but p1 and p3 might still bring a better vote.
        assert!(sends(&take(&mut n))
            .iter()
            .all(|(_, m)| matches!(m, Message::Notification { .. })));
        assert_eq!(n.role(), Role::Looking);
        n.handle(Input::Tick);
        assert!(matches!(n.role(), Role::Following { leader, .. } if leader == p(5)));
    }

    #[test]
    fn higher_epoch_beats_higher_zxid() {
        let mut n = node(
            1,
            &[1, 2, 3],
            restored(3, 3, history(Zxid::ZERO, &[(3, 1)])),
        );
        take(&mut n);
        // p2 logged more, but in an older epoch: our vote stands.
        n.handle(Input::Received {
            from: p(2),
            msg: looking(vote(2, z(2, 90), 2), 1),
        });
        assert_eq!(take(&mut n), vec![]);
    }

    #[test]
    fn restarted_node_joins_a_running_ensemble_without_an_election() {
        let mut n = node(
            3,
            &[1, 2, 3],
            restored(2, 2, history(Zxid::ZERO, &[(2, 4)])),
        );
        take(&mut n);
        let elected = vote(2, z(2, 9), 2);
        // One follower's word is not enough.
        n.handle(Input::Received {
            from: p(1),
            msg: Message::Notification {
                vote: elected,
                round: 4,
                state: ServerState::Following,
                standing: LEGACY,
            },
        });
        assert_eq!(take(&mut n), vec![]);
        // The leader itself says it leads, and with p1 that is a quorum.
        n.handle(Input::Received {
            from: p(2),
            msg: Message::Notification {
                vote: elected,
                round: 4,
                state: ServerState::Leading,
                standing: LEGACY,
            },
        });
        assert_eq!(
            take(&mut n),
            vec![
                Action::Send {
                    to: p(2),
                    msg: Message::FollowerInfo {
                        accepted_epoch: Epoch(2),
                        observer: false,
                        join: 1,
                        standing: LEGACY,
                    },
                },
                Action::RoleChanged(Role::Following {
                    leader: p(2),
                    term: Epoch(0),
                    phase: Phase::Discovery,
                }),
            ]
        );
        assert_eq!(n.stats().elections, 1, "no new election round was started");
    }

    #[test]
    fn no_vote_before_pending_writes_are_durable() {
        use crate::testkit::Ensemble;
        // A follower with an unsynced append that returns to election must
        // not vote until the append is durable (its vote would overstate the disk).
        let mut e = Ensemble::new(vec![
            node(1, &[1, 2, 3], restored(0, 0, Default::default())),
            node(2, &[1, 2, 3], restored(0, 0, Default::default())),
            node(3, &[1, 2, 3], restored(0, 0, Default::default())),
        ]);
        e.tick(3);
        assert!(matches!(
            e.node(3).role(),
            Role::Leading {
                phase: Phase::Broadcast,
                ..
            }
        ));
        let mut follower = e.nodes.remove(&p(1)).expect("p1");
        follower.handle(Input::Received {
            from: p(3),
            msg: Message::Proposal {
                epoch: Epoch(1),
                prev: e.node(3).history().last(),
                txn: crate::types::Txn {
                    zxid: z(1, 1),
                    payload: bytes::Bytes::from_static(b"x"),
                },
            },
        });
        let issued = take(&mut follower);
        follower.handle(Input::PeerDown { peer: p(3) });
        let after = take(&mut follower);
        assert_eq!(
            after,
            vec![Action::RoleChanged(Role::Looking)],
            "no notification yet"
        );
        let after = crate::testkit::persist_all(&mut follower, &issued);
        let own = vote(1, z(1, 1), 1);
        // The bootstrap named the ensemble after its first leader, p3.
        let named = |vote, round| match looking(vote, round) {
            Message::Notification {
                vote, round, state, ..
            } => Message::Notification {
                vote,
                round,
                state,
                standing: Standing::Member(crate::testkit::new_ensemble(3)),
            },
            other => other,
        };
        assert_eq!(
            sends(&after),
            vec![(p(2), named(own, 2)), (p(3), named(own, 2))]
        );
    }
}
