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
                if ctx.is_voter(from) {
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
        if round < ctx.round {
            // A straggler from an older round: bring it up to date. Observers
            // only listen: their rounds are their own, and answering would
            // start an endless exchange with a voter in a lower round.
            if let (Some(mine), true) = (self.vote, ctx.is_voter(ctx.id())) {
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
        if !ctx.is_voter(ctx.id()) {
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
        if !ctx.is_voter(ctx.id()) {
            return Next::Stay;
        }
        let agreeing = self
            .votes
            .iter()
            .filter(|(_, v)| **v == mine)
            .map(|(p, _)| *p);
        if !ctx.cfg.membership.is_quorum(agreeing) {
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
            .filter(|(_, (l, _, _, _))| *l == leader)
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
            },
        );
    }
}
