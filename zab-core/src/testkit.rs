//! A hand-driven in-process ensemble for unit and scenario tests: messages are
//! delivered in FIFO order, every write is durable at once, nothing is lost
//! unless a test says so. Tests use it to reach a known state, then feed one
//! input and assert the exact actions.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::message::Message;
use crate::node::{Action, Input, Node, Restored};
use crate::persist::PersistOp;
use crate::quorum::Membership;
use crate::types::{Epoch, PeerId, PersistSeq, RequestId, Txn, Zxid};
use crate::{Config, History};

pub(crate) fn z(epoch: u32, counter: u32) -> Zxid {
    Zxid::new(Epoch(epoch), counter)
}

pub(crate) fn p(id: u64) -> PeerId {
    PeerId(id)
}

/// A history holding `epoch:1..=last` for each `(epoch, last)`, after `base`.
pub(crate) fn history(base: Zxid, runs: &[(u32, u32)]) -> History {
    let mut h = History::starting_after(base);
    for &(epoch, last) in runs {
        let first = if base.epoch() == Epoch(epoch) {
            base.counter() + 1
        } else {
            1
        };
        for c in first..=last {
            h.append(z(epoch, c)).expect("test history is contiguous");
        }
    }
    h
}

/// The standing of nodes restored with epochs but no ensemble id: a history
/// from before ensemble ids, counted among its kind.
pub(crate) const LEGACY: crate::types::Standing =
    crate::types::Standing::Member(crate::types::EnsembleId::NONE);

/// The ensemble id node `id` names when it is the first leader (`Config::new`'s).
pub(crate) fn new_ensemble(id: u64) -> crate::types::EnsembleId {
    Config::new(p(id), Membership::new([p(id)], [])).new_ensemble_id
}

pub(crate) fn restored(accepted: u32, current: u32, history: History) -> Restored {
    Restored {
        accepted_epoch: Epoch(accepted),
        current_epoch: Epoch(current),
        history,
        ..Restored::default()
    }
}

pub(crate) fn config(id: u64, voters: &[u64]) -> Config {
    Config::new(p(id), Membership::new(voters.iter().copied().map(p), []))
}

pub(crate) fn node(id: u64, voters: &[u64], state: Restored) -> Node {
    Node::new(config(id, voters), state).expect("consistent test state")
}

pub(crate) fn take(node: &mut Node) -> Vec<Action> {
    node.drain_actions().collect()
}

/// The messages among `actions`, as (to, message).
pub(crate) fn sends(actions: &[Action]) -> Vec<(PeerId, Message)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { to, msg } => Some((*to, msg.clone())),
            _ => None,
        })
        .collect()
}

/// Reports every write issued so far durable; returns the resulting actions.
pub(crate) fn persist_all(node: &mut Node, issued: &[Action]) -> Vec<Action> {
    let last = issued.iter().rev().find_map(|a| match a {
        Action::Persist { seq, .. } => Some(*seq),
        _ => None,
    });
    match last {
        Some(through) => {
            node.handle(Input::Persisted { through });
            take(node)
        }
        None => Vec::new(),
    }
}

/// A small ensemble wired together, with each node's log kept so diffs can be
/// streamed. `cut` links drop messages.
pub(crate) struct Ensemble {
    pub nodes: BTreeMap<PeerId, Node>,
    pub logs: BTreeMap<PeerId, Vec<Txn>>,
    pub cut: BTreeSet<(PeerId, PeerId)>,
    /// Every action each node took, for assertions.
    pub seen: BTreeMap<PeerId, Vec<Action>>,
    queue: VecDeque<(PeerId, PeerId, Message)>,
    next_request: u64,
}

impl Ensemble {
    pub(crate) fn new(nodes: Vec<Node>) -> Ensemble {
        let mut e = Ensemble {
            nodes: BTreeMap::new(),
            logs: BTreeMap::new(),
            cut: BTreeSet::new(),
            seen: BTreeMap::new(),
            queue: VecDeque::new(),
            next_request: 1,
        };
        for n in nodes {
            e.add(n, Vec::new());
        }
        e
    }

    /// Adds (or replaces, as after a restart) a node whose log holds `log`.
    pub(crate) fn add(&mut self, node: Node, log: Vec<Txn>) {
        let id = node.id();
        self.logs.insert(id, log);
        self.seen.insert(id, Vec::new());
        self.nodes.insert(id, node);
    }

    pub(crate) fn node(&self, id: u64) -> &Node {
        &self.nodes[&p(id)]
    }

    pub(crate) fn node_mut(&mut self, id: u64) -> &mut Node {
        self.nodes.get_mut(&p(id)).expect("node exists")
    }

    pub(crate) fn input(&mut self, id: u64, input: Input) {
        self.node_mut(id).handle(input);
        self.settle();
    }

    pub(crate) fn propose(&mut self, id: u64, payload: &'static [u8]) -> RequestId {
        let rid = RequestId(self.next_request);
        self.next_request += 1;
        let payload = bytes::Bytes::from_static(payload);
        self.input(id, Input::Propose { id: rid, payload });
        rid
    }

    /// Ticks every node `n` times, settling after each.
    pub(crate) fn tick(&mut self, n: usize) {
        for _ in 0..n {
            let ids: Vec<_> = self.nodes.keys().copied().collect();
            for id in ids {
                if let Some(node) = self.nodes.get_mut(&id) {
                    node.handle(Input::Tick);
                }
            }
            self.settle();
        }
    }

    /// Runs until no node has anything left to do; bounded, so a livelock fails.
    pub(crate) fn settle(&mut self) {
        for _ in 0..100_000 {
            let mut busy = false;
            let ids: Vec<_> = self.nodes.keys().copied().collect();
            for id in ids {
                let actions = take(self.nodes.get_mut(&id).expect("listed"));
                busy |= !actions.is_empty();
                let mut durable: Option<PersistSeq> = None;
                for a in actions {
                    self.act(id, &a, &mut durable);
                    self.seen.get_mut(&id).expect("listed").push(a);
                }
                if let Some(through) = durable {
                    self.nodes
                        .get_mut(&id)
                        .expect("listed")
                        .handle(Input::Persisted { through });
                }
            }
            if let Some((from, to, msg)) = self.queue.pop_front() {
                busy = true;
                if !self.cut.contains(&(from, to)) {
                    if let Some(node) = self.nodes.get_mut(&to) {
                        node.handle(Input::Received { from, msg });
                    }
                }
            }
            if !busy {
                return;
            }
        }
        panic!("ensemble did not settle: livelock");
    }

    fn act(&mut self, id: PeerId, action: &Action, durable: &mut Option<PersistSeq>) {
        match action {
            Action::Send { to, msg } => self.queue.push_back((id, *to, msg.clone())),
            Action::Persist { seq, op } => {
                *durable = Some(*seq);
                let log = self.logs.get_mut(&id).expect("listed");
                match op {
                    PersistOp::Append(txn) => log.push(txn.clone()),
                    PersistOp::Truncate { to } => log.retain(|t| t.zxid <= *to),
                    PersistOp::InstallSnapshot { .. } => log.clear(),
                    PersistOp::AcceptedEpoch(_)
                    | PersistOp::CurrentEpoch(_)
                    | PersistOp::Intact { .. } => {}
                }
            }
            Action::SendDiff {
                to,
                epoch,
                after,
                through,
            } => {
                let txns: Vec<_> = self.logs[&id]
                    .iter()
                    .filter(|t| t.zxid > *after && t.zxid <= *through)
                    .cloned()
                    .collect();
                for msg in crate::message::diff_stream(*epoch, *after, txns) {
                    self.queue.push_back((id, *to, msg));
                }
            }
            Action::SendSnapshot {
                to,
                epoch,
                join,
                zxid,
            } => {
                let msg = Message::Snapshot {
                    epoch: *epoch,
                    join: *join,
                    zxid: *zxid,
                    data: bytes::Bytes::from_static(b"state"),
                };
                self.queue.push_back((id, *to, msg));
            }
            _ => {}
        }
    }
}
