//! A Zab server as a deterministic state machine: restore it from durable state,
//! feed it [`Input`]s one at a time, drain [`Action`]s. No clocks, sockets,
//! files, threads or randomness: the shell (the server, or the simulator) does
//! all of that and reports back.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use bytes::Bytes;
use tracing::{debug, info};

use crate::config::{defect, Config};
use crate::election::{Decision, Election};
use crate::history::{GapError, History};
use crate::leader::Leader;
use crate::learner::Learner;
use crate::message::Message;
use crate::persist::{DurableState, PersistOp, PersistQueue};
use crate::types::{
    EnsembleId, Epoch, PeerId, PersistSeq, RequestId, ServerState, Standing, Txn, Vote, Zxid,
};

/// Something that happened to the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// One tick of the shell's clock elapsed.
    Tick,
    /// A message arrived from a peer (already decoded).
    Received { from: PeerId, msg: Message },
    /// The connection to a peer broke; anything in flight to it may be lost.
    PeerDown { peer: PeerId },
    /// Every persist action through `through` is on stable storage. A snapshot
    /// install is reported the same way: it is one of the ordered writes.
    Persisted { through: PersistSeq },
    /// The shell can no longer serve the log through `through` (a delivered
    /// zxid it holds): a snapshot purged it, or the shell dropped its copy
    /// from memory. The node no longer DIFFs from below it.
    Compacted { through: Zxid },
    /// A client write, already turned into an idempotent transaction payload.
    Propose { id: RequestId, payload: Bytes },
    /// A client sync: answer once this node has applied everything committed
    /// before the sync was issued, as confirmed by a quorum.
    Sync { id: RequestId },
    /// An opaque note for the leader's shell (see `Message::Relay`).
    Relay { payload: Bytes },
}

/// Something the shell must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send a message to a peer (FIFO per peer).
    Send { to: PeerId, msg: Message },
    /// Make `op` durable, in `seq` order, then report [`Input::Persisted`].
    Persist { seq: PersistSeq, op: PersistOp },
    /// Stream `Proposal { epoch, prev, txn }` for every logged txn in
    /// `(after, through]` to `to`, `prev` being the zxid before each.
    SendDiff {
        to: PeerId,
        epoch: Epoch,
        after: Zxid,
        through: Zxid,
    },
    /// Send `Snapshot { epoch, join, zxid, data }` to `to`, where data is the
    /// applied state, which is exactly through `zxid` when this action is processed.
    SendSnapshot {
        to: PeerId,
        epoch: Epoch,
        join: u64,
        zxid: Zxid,
    },
    /// Apply every logged transaction after the last delivered one through `through`.
    Deliver { through: Zxid },
    /// The sync `id` is complete: this node has applied through `zxid`.
    SyncDone { id: RequestId, zxid: Zxid },
    /// The request was not accepted and will not be applied; try `leader` if known.
    Reject {
        id: RequestId,
        leader: Option<PeerId>,
    },
    /// The node changed role or phase.
    RoleChanged(Role),
    /// A note relayed to this leader (`from` None: given to this node itself).
    Relayed {
        from: Option<PeerId>,
        payload: Bytes,
    },
}

/// What a server is doing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Role {
    #[default]
    Looking,
    /// `term` is the epoch the leader was established in; `epoch` the epoch of
    /// the zxids it issues now (later than `term` after a counter-exhaustion bump).
    Leading {
        term: Epoch,
        epoch: Epoch,
        phase: Phase,
    },
    Following {
        leader: PeerId,
        term: Epoch,
        phase: Phase,
    },
    Observing {
        leader: PeerId,
        term: Epoch,
        phase: Phase,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Discovery,
    Synchronization,
    Broadcast,
}

/// What a node is restored from: exactly what survived on disk.
#[derive(Clone, Debug, Default)]
pub struct Restored {
    pub accepted_epoch: Epoch,
    pub current_epoch: Epoch,
    /// The logged zxids, starting after the snapshot the shell loaded.
    pub history: History,
    /// The ensemble the disk says this history belongs to (`NONE`: not known).
    pub ensemble: EnsembleId,
    /// Recovery found lost or damaged durable state (a corrupt record, a
    /// missing segment, a damaged snapshot without a good fallback...). The
    /// node then neither votes nor counts until a leader has synchronized it
    /// ([`PersistOp::Intact`] clears it). A wiped directory needs no flag: it
    /// restores as blank, and blank servers do not count once an ensemble exists.
    pub recovering: bool,
}

impl Restored {
    /// The standing this disk entitles the node to.
    pub fn standing(&self) -> Standing {
        // Epochs alone do not make a member: a server that accepted an epoch
        // in a bootstrap's discovery but crashed before NEWLEADER holds no
        // history and acknowledged nothing.
        let empty = self.history.last() == Zxid::ZERO && self.history.base() == Zxid::ZERO;
        if self.recovering {
            Standing::Recovering(self.ensemble)
        } else if self.ensemble.is_none() && empty {
            Standing::Blank
        } else {
            Standing::Member(self.ensemble)
        }
    }
}

/// A restored state that cannot be right; the node refuses to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestoreError {
    /// currentEpoch above acceptedEpoch: a node never adopts an epoch it has not accepted.
    CurrentAboveAccepted { current: Epoch, accepted: Epoch },
    /// A logged zxid from an epoch the node never accepted.
    LogAheadOfEpoch { last: Zxid, accepted: Epoch },
    /// A configuration value outside what the protocol can work with.
    BadConfig(&'static str),
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestoreError::CurrentAboveAccepted { current, accepted } => write!(
                f,
                "currentEpoch {current} is above acceptedEpoch {accepted}: epoch files are inconsistent"
            ),
            RestoreError::LogAheadOfEpoch { last, accepted } => write!(
                f,
                "log ends at zxid {last}, from an epoch above acceptedEpoch {accepted}"
            ),
            RestoreError::BadConfig(what) => write!(f, "invalid configuration: {what}"),
        }
    }
}

impl std::error::Error for RestoreError {}

/// One learner as its leader sees it (metrics: follower lag).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LearnerView {
    pub id: PeerId,
    pub observer: bool,
    /// Receiving proposals and counted (past ACK(NEWLEADER)); otherwise
    /// being discovered or synchronized.
    pub synced: bool,
    /// The highest zxid it reported durable.
    pub acked: Zxid,
}

/// Counters for metrics and for the simulator's campaign summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub elections: u64,
    pub established: u64,
    pub proposals: u64,
    pub syncs_answered: u64,
    pub epoch_bumps: u64,
    /// Messages ignored as stale, duplicated or out of phase (not errors).
    pub dropped: u64,
    /// Times the node left a role because a peer broke the protocol's order.
    pub protocol_errors: u64,
}

/// The state every role shares: configuration, the history index, the epochs,
/// the persist queue and the outbox.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) cfg: Config,
    pub(crate) history: History,
    /// Latest acceptedEpoch written (possibly not yet durable).
    pub(crate) accepted_epoch: Epoch,
    /// Latest currentEpoch written (possibly not yet durable).
    pub(crate) current_epoch: Epoch,
    pub(crate) persist: PersistQueue,
    /// The last zxid handed to the state machine.
    pub(crate) delivered: Zxid,
    pub(crate) now: u64,
    pub(crate) round: u64,
    /// Attempts to join a leader so far (see `Message::FollowerInfo`).
    pub(crate) joins: u64,
    /// Latest standing written (possibly not yet durable), like the epochs.
    pub(crate) standing: Standing,
    /// A node without an ensemble id (blank, or from before ids) that heard
    /// of a named ensemble: it may have been wiped, so it joins as a
    /// non-voter rather than vote for anything.
    pub(crate) joining: bool,
    /// The standing each peer last claimed.
    pub(crate) peer_standing: BTreeMap<PeerId, Standing>,
    pub(crate) stats: Stats,
    out: VecDeque<Action>,
}

impl Ctx {
    pub(crate) fn id(&self) -> PeerId {
        self.cfg.id
    }

    pub(crate) fn send(&mut self, to: PeerId, msg: Message) {
        self.out.push_back(Action::Send { to, msg });
    }

    pub(crate) fn emit(&mut self, action: Action) {
        self.out.push_back(action);
    }

    fn issue(&mut self, op: PersistOp) -> PersistSeq {
        let seq = self.persist.issue(&op, self.history.last());
        self.out.push_back(Action::Persist { seq, op });
        seq
    }

    pub(crate) fn write_accepted_epoch(&mut self, epoch: Epoch) -> PersistSeq {
        debug_assert!(
            epoch >= self.accepted_epoch,
            "acceptedEpoch never goes back"
        );
        self.accepted_epoch = epoch;
        self.issue(PersistOp::AcceptedEpoch(epoch))
    }

    pub(crate) fn write_current_epoch(&mut self, epoch: Epoch) -> PersistSeq {
        debug_assert!(
            epoch <= self.accepted_epoch,
            "currentEpoch above acceptedEpoch"
        );
        self.current_epoch = epoch;
        self.issue(PersistOp::CurrentEpoch(epoch))
    }

    pub(crate) fn append(&mut self, txn: Txn) -> Result<PersistSeq, GapError> {
        self.history.append(txn.zxid)?;
        Ok(self.issue(PersistOp::Append(txn)))
    }

    pub(crate) fn truncate(&mut self, to: Zxid) -> PersistSeq {
        debug_assert!(to >= self.delivered, "truncating delivered transactions");
        self.history.truncate_after(to);
        self.issue(PersistOp::Truncate { to })
    }

    pub(crate) fn install_snapshot(&mut self, zxid: Zxid, data: Bytes) -> PersistSeq {
        self.history.reset_to_snapshot(zxid);
        self.delivered = zxid;
        self.issue(PersistOp::InstallSnapshot { zxid, data })
    }

    /// Hands everything through `through` to the state machine, in order.
    pub(crate) fn deliver(&mut self, through: Zxid) {
        if through > self.delivered {
            debug_assert!(
                self.history.contains(through),
                "delivering an unlogged zxid"
            );
            self.delivered = through;
            self.out.push_back(Action::Deliver { through });
        }
    }

    pub(crate) fn durable(&self) -> DurableState {
        self.persist.durable()
    }

    /// This node's candidacy: its durable currentEpoch and last *logged* zxid
    /// (REFERENCE §1.6). Only meaningful once no write is pending.
    pub(crate) fn own_vote(&self) -> Vote {
        let durable = self.durable();
        let zxid = if defect!(self.cfg, vote_with_applied_zxid) {
            self.delivered
        } else {
            durable.last_zxid
        };
        Vote {
            epoch: durable.current_epoch,
            zxid,
            leader: self.id(),
        }
    }

    pub(crate) fn is_voter(&self, id: PeerId) -> bool {
        self.cfg.membership.is_voter(id)
    }

    /// Whether this node's own vote and acknowledgements count: it is a voter
    /// whose disk vouches for what it claims (see [`Standing`]).
    pub(crate) fn votes(&self) -> bool {
        if !self.is_voter(self.id()) {
            return false;
        }
        if defect!(self.cfg, wiped_server_votes) {
            return true;
        }
        match self.standing {
            Standing::Member(_) | Standing::Blank => !self.joining,
            Standing::Recovering(_) => false,
        }
    }

    /// Whether a vote or acknowledgement from `peer`, claiming `standing`,
    /// counts here: only between voters of one and the same standing.
    pub(crate) fn counts_standing(&self, peer: PeerId, standing: Standing) -> bool {
        if !self.is_voter(peer) {
            return false;
        }
        if defect!(self.cfg, wiped_server_votes) {
            return true;
        }
        self.votes() && !matches!(standing, Standing::Recovering(_)) && standing == self.standing
    }

    /// [`Ctx::counts_standing`] for the standing `peer` last claimed (us: [`Ctx::votes`]).
    pub(crate) fn counts(&self, peer: PeerId) -> bool {
        if peer == self.id() {
            return self.votes();
        }
        self.peer_standing
            .get(&peer)
            .is_some_and(|&s| self.counts_standing(peer, s))
    }

    /// Whether `peer`'s claim that some server leads can be believed by us: a
    /// voter believes the peers it counts; a non-voter, intact members of its
    /// ensemble (any ensemble, when it does not know its own).
    pub(crate) fn believes(&self, peer: PeerId) -> bool {
        if self.votes() {
            return self.counts(peer);
        }
        if !self.is_voter(peer) {
            return false;
        }
        let mine = self.standing.ensemble();
        match self.peer_standing.get(&peer) {
            Some(Standing::Member(e)) => mine.is_none() || *e == mine,
            _ => false,
        }
    }

    /// Whether `ids` (filtered by [`Ctx::counts`]) can elect: a majority of
    /// voters, except that a blank ensemble is bootstrapped only by every
    /// voter, so that a wiped server and a stale one never pass for a new ensemble.
    pub(crate) fn election_quorum(&self, ids: impl IntoIterator<Item = PeerId>) -> bool {
        let ids: Vec<PeerId> = ids.into_iter().filter(|&p| self.counts(p)).collect();
        if self.standing == Standing::Blank && !defect!(self.cfg, wiped_server_votes) {
            return self.cfg.membership.voters().all(|v| ids.contains(&v));
        }
        self.cfg.membership.is_quorum(ids)
    }

    /// Records a peer's claimed standing. A node without an ensemble id that
    /// hears of a named ensemble stops voting for the rest of its run.
    pub(crate) fn heard_standing(&mut self, peer: PeerId, standing: Standing) {
        self.peer_standing.insert(peer, standing);
        let named = !standing.ensemble().is_none();
        if self.standing.ensemble().is_none() && named && !self.joining {
            info!(node = %self.id(), %peer, ?standing, "an ensemble exists; joining it as a non-voter until synchronized");
            self.joining = true;
        }
    }

    /// Records that this history is an intact copy of `ensemble`'s.
    pub(crate) fn write_intact(&mut self, ensemble: EnsembleId) -> PersistSeq {
        self.standing = Standing::Member(ensemble);
        self.joining = false;
        self.issue(PersistOp::Intact { ensemble })
    }

    pub(crate) fn peers(&self) -> Vec<PeerId> {
        let me = self.id();
        self.cfg.membership.members().filter(|&p| p != me).collect()
    }
}

/// What a role handler asks the node to do next.
#[derive(Debug)]
pub(crate) enum Next {
    Stay,
    /// Return to election; the reason is logged.
    Looking(&'static str),
    Lead(Decision),
    Learn(Decision),
}

#[derive(Debug)]
enum RoleState {
    Looking(Election),
    Leading(Leader),
    Learning(Learner),
}

/// One Zab server.
#[derive(Debug)]
pub struct Node {
    ctx: Ctx,
    role: RoleState,
}

impl Node {
    /// Restores a node from its durable state. It starts looking for a leader.
    pub fn new(cfg: Config, restored: Restored) -> Result<Node, RestoreError> {
        if cfg.counter_max == 0 || cfg.counter_max == u32::MAX {
            return Err(RestoreError::BadConfig(
                "counter_max must be in 1..u32::MAX",
            ));
        }
        if cfg.sync_limit_ticks == 0 || cfg.init_limit_ticks == 0 || cfg.in_flight_max == 0 {
            return Err(RestoreError::BadConfig(
                "tick limits and in_flight_max must be positive",
            ));
        }
        if !cfg.membership.is_member(cfg.id) {
            return Err(RestoreError::BadConfig(
                "this server is not in the membership",
            ));
        }
        if restored.current_epoch > restored.accepted_epoch {
            return Err(RestoreError::CurrentAboveAccepted {
                current: restored.current_epoch,
                accepted: restored.accepted_epoch,
            });
        }
        let last = restored.history.last();
        if last.epoch() > restored.accepted_epoch {
            return Err(RestoreError::LogAheadOfEpoch {
                last,
                accepted: restored.accepted_epoch,
            });
        }
        let standing = restored.standing();
        let durable = DurableState {
            accepted_epoch: restored.accepted_epoch,
            current_epoch: restored.current_epoch,
            last_zxid: last,
        };
        let ctx = Ctx {
            delivered: restored.history.base(),
            history: restored.history,
            accepted_epoch: restored.accepted_epoch,
            current_epoch: restored.current_epoch,
            persist: PersistQueue::new(durable),
            now: 0,
            round: 0,
            joins: 0,
            standing,
            joining: false,
            peer_standing: BTreeMap::new(),
            stats: Stats::default(),
            out: VecDeque::new(),
            cfg,
        };
        let mut node = Node {
            ctx,
            role: RoleState::Looking(Election::idle()),
        };
        node.enter_looking("started");
        Ok(node)
    }

    /// Feeds one input. Actions accumulate until drained.
    pub fn handle(&mut self, input: Input) {
        let next = match input {
            Input::Tick => {
                self.ctx.now += 1;
                self.on_tick()
            }
            Input::Received { from, msg } => self.on_message(from, msg),
            Input::PeerDown { peer } => match &mut self.role {
                RoleState::Looking(_) => Next::Stay,
                RoleState::Leading(l) => l.on_peer_down(&mut self.ctx, peer),
                RoleState::Learning(l) => l.on_peer_down(peer),
            },
            Input::Persisted { through } => {
                if self.ctx.persist.persisted(through) {
                    self.on_persisted()
                } else {
                    Next::Stay
                }
            }
            Input::Compacted { through } => {
                assert!(
                    through <= self.ctx.delivered,
                    "compacted past the applied state"
                );
                self.ctx.history.compact(through);
                Next::Stay
            }
            Input::Propose { id, payload } => match &mut self.role {
                RoleState::Looking(_) => {
                    self.ctx.emit(Action::Reject { id, leader: None });
                    Next::Stay
                }
                RoleState::Leading(l) => l.on_propose(&mut self.ctx, None, id, payload),
                RoleState::Learning(l) => l.on_propose(&mut self.ctx, id, payload),
            },
            Input::Relay { payload } => match &mut self.role {
                RoleState::Looking(_) => Next::Stay,
                RoleState::Leading(l) => l.on_relay(&mut self.ctx, payload),
                RoleState::Learning(l) => l.on_relay(&mut self.ctx, payload),
            },
            Input::Sync { id } => match &mut self.role {
                RoleState::Looking(_) => {
                    self.ctx.emit(Action::Reject { id, leader: None });
                    Next::Stay
                }
                RoleState::Leading(l) => l.on_sync(&mut self.ctx, None, id),
                RoleState::Learning(l) => l.on_sync(&mut self.ctx, id),
            },
        };
        self.apply(next);
    }

    /// The next action to perform, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.ctx.out.pop_front()
    }

    /// All pending actions, in order.
    pub fn drain_actions(&mut self) -> impl Iterator<Item = Action> + '_ {
        self.ctx.out.drain(..)
    }

    pub fn id(&self) -> PeerId {
        self.ctx.id()
    }

    pub fn role(&self) -> Role {
        match &self.role {
            RoleState::Looking(_) => Role::Looking,
            RoleState::Leading(l) => l.role(),
            RoleState::Learning(l) => l.role(),
        }
    }

    /// What the node believes is on stable storage.
    pub fn durable(&self) -> DurableState {
        self.ctx.durable()
    }

    /// The in-memory history index (including writes not yet durable).
    pub fn history(&self) -> &History {
        &self.ctx.history
    }

    pub fn delivered(&self) -> Zxid {
        self.ctx.delivered
    }

    /// The latest acceptedEpoch written (durable or not).
    pub fn accepted_epoch(&self) -> Epoch {
        self.ctx.accepted_epoch
    }

    /// The latest currentEpoch written (durable or not).
    pub fn current_epoch(&self) -> Epoch {
        self.ctx.current_epoch
    }

    /// What this node's disk entitles it to (latest written).
    pub fn standing(&self) -> Standing {
        self.ctx.standing
    }

    /// Whether this node's vote counts now (false while recovering, or while
    /// a blank node joins an existing ensemble).
    pub fn votes(&self) -> bool {
        self.ctx.votes()
    }

    pub fn stats(&self) -> Stats {
        self.ctx.stats
    }

    /// The leader's learners (none unless leading).
    pub fn learners(&self) -> Vec<LearnerView> {
        match &self.role {
            RoleState::Leading(l) => l.learners(),
            _ => Vec::new(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.ctx.cfg
    }

    fn on_tick(&mut self) -> Next {
        match &mut self.role {
            RoleState::Looking(e) => e.on_tick(&mut self.ctx),
            RoleState::Leading(l) => l.on_tick(&mut self.ctx),
            RoleState::Learning(l) => l.on_tick(&mut self.ctx),
        }
    }

    fn on_persisted(&mut self) -> Next {
        match &mut self.role {
            RoleState::Looking(e) => e.on_persisted(&mut self.ctx),
            RoleState::Leading(l) => l.on_persisted(&mut self.ctx),
            RoleState::Learning(l) => l.on_persisted(&mut self.ctx),
        }
    }

    fn on_message(&mut self, from: PeerId, msg: Message) -> Next {
        if from == self.id() || !self.ctx.cfg.membership.is_member(from) {
            self.ctx.stats.dropped += 1;
            return Next::Stay;
        }
        if let Message::Notification {
            vote,
            round,
            state,
            standing,
        } = msg
        {
            self.ctx.heard_standing(from, standing);
            return self.on_notification(from, vote, round, state);
        }
        match &mut self.role {
            RoleState::Looking(_) => {
                self.ctx.stats.dropped += 1;
                Next::Stay
            }
            RoleState::Leading(l) => l.on_message(&mut self.ctx, from, msg),
            RoleState::Learning(l) => l.on_message(&mut self.ctx, from, msg),
        }
    }

    /// Election traffic reaches every role: a server that is not looking
    /// answers a looking one with the vote that elected its leader, which is how
    /// a restarted server joins a running ensemble without an election.
    fn on_notification(
        &mut self,
        from: PeerId,
        vote: Vote,
        round: u64,
        state: ServerState,
    ) -> Next {
        let (elected, elected_round, my_state, leader) = match &mut self.role {
            RoleState::Looking(e) => {
                return e.on_notification(&mut self.ctx, from, vote, round, state)
            }
            RoleState::Leading(l) => (
                l.elected(),
                l.elected_round(),
                ServerState::Leading,
                self.ctx.id(),
            ),
            RoleState::Learning(l) => {
                (l.elected(), l.elected_round(), l.server_state(), l.leader())
            }
        };
        if state == ServerState::Looking {
            if from == leader {
                // Our leader is electing again: it has given up this reign.
                return Next::Looking("leader is looking");
            }
            if let RoleState::Leading(l) = &mut self.role {
                // A learner that is electing no longer follows us.
                l.forget(from);
            }
            self.ctx.send(
                from,
                Message::Notification {
                    vote: elected,
                    round: elected_round,
                    state: my_state,
                    standing: self.ctx.standing,
                },
            );
        }
        Next::Stay
    }

    fn apply(&mut self, next: Next) {
        match next {
            Next::Stay => {}
            Next::Looking(reason) => self.enter_looking(reason),
            Next::Lead(decision) => {
                info!(node = %self.id(), round = decision.round, "elected leader");
                self.leave_role();
                let (leader, next) = Leader::start(&mut self.ctx, decision);
                self.role = RoleState::Leading(leader);
                self.emit_role();
                self.apply(next);
            }
            Next::Learn(decision) => {
                info!(node = %self.id(), leader = %decision.vote.leader, "following");
                self.leave_role();
                self.role = RoleState::Learning(Learner::start(&mut self.ctx, decision));
                self.emit_role();
            }
        }
    }

    /// Ends the current role: what it still owed clients is answered.
    fn leave_role(&mut self) {
        match std::mem::replace(&mut self.role, RoleState::Looking(Election::idle())) {
            RoleState::Leading(l) => l.abandon(&mut self.ctx),
            RoleState::Learning(l) => l.abandon(&mut self.ctx),
            RoleState::Looking(_) => {}
        }
    }

    fn enter_looking(&mut self, reason: &'static str) {
        debug!(node = %self.id(), reason, "looking");
        self.leave_role();
        self.ctx.stats.elections += 1;
        self.ctx.round += 1;
        // Announce the role before the first notification goes out.
        self.emit_role();
        let (election, next) = Election::start(&mut self.ctx);
        self.role = RoleState::Looking(election);
        self.apply(next);
    }

    fn emit_role(&mut self) {
        let role = self.role();
        self.ctx.emit(Action::RoleChanged(role));
    }
}
