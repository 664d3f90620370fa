//! A deterministic simulator for zab-core: 3 to 7 nodes in one thread, with
//! simulated time, network and disks. One u64 seed derives everything: the
//! cluster's shape, the fault mix, the workload, every delay and every drop.
//!
//! Every message goes through the real codec. Invariants (see
//! [`crate::invariants`]) are checked at the step that could break them, against
//! the simulator's ground truth. After the chaos phase every fault is healed and
//! a liveness phase requires a leader, committed writes and answered syncs
//! within a bounded simulated time.

pub mod disk;
pub mod rng;

use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use zab_core::codec;
use zab_core::{
    Action, Config, Defects, Epoch, Input, Membership, Message, Node, PeerId, PersistOp,
    PersistSeq, Phase, RequestId, Role, Zxid,
};

use crate::invariants::{self as inv, Ghost, Violation};
use disk::{Disk, SnapshotState};
use rng::Rng;

/// Everything a run is made of, all derived from the seed unless overridden.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub voters: usize,
    pub observers: usize,
    /// Simulated milliseconds of faults and load.
    pub chaos_ms: u64,
    /// Simulated milliseconds the healed cluster has to make progress.
    pub liveness_ms: u64,
    pub tick_ms: u64,
    pub faults: FaultMix,
    pub defects: Defects,
    /// Small values exercise the epoch bump on counter exhaustion.
    pub counter_max: u32,
    /// Milliseconds between client operations (range).
    pub client_gap_ms: (u64, u64),
    pub sync_share: f64,
    /// Print every input and action (for replaying one seed).
    pub trace: bool,
}

/// Which faults a run injects and how often.
#[derive(Clone, Debug)]
pub struct FaultMix {
    pub nemesis_gap_ms: (u64, u64),
    pub partitions: bool,
    pub crashes: bool,
    pub pauses: bool,
    pub slow_disks: bool,
    pub loss: f64,
    pub duplication: f64,
    pub reordering: bool,
    pub compaction: bool,
}

impl SimConfig {
    /// Derives a run from `seed`: cluster size from `sizes`, then faults and load.
    pub fn from_seed(seed: u64, sizes: &[usize]) -> SimConfig {
        let mut rng = Rng::new(seed ^ 0x5eed_c0f1_9000_0001);
        let voters = *rng.pick(sizes);
        let observers = if rng.chance(0.25) { 1 } else { 0 };
        let faults = FaultMix {
            nemesis_gap_ms: (200, rng.range(800, 3000)),
            partitions: rng.chance(0.8),
            crashes: rng.chance(0.85),
            pauses: rng.chance(0.5),
            slow_disks: rng.chance(0.4),
            loss: if rng.chance(0.4) { 0.02 } else { 0.0 },
            duplication: if rng.chance(0.3) { 0.02 } else { 0.0 },
            reordering: rng.chance(0.2),
            compaction: rng.chance(0.5),
        };
        let counter_max = if rng.chance(0.2) {
            rng.range(5, 60) as u32
        } else {
            u32::MAX - 1000
        };
        SimConfig {
            seed,
            voters,
            observers,
            chaos_ms: 120_000,
            liveness_ms: 30_000,
            tick_ms: 100,
            faults,
            defects: Defects::default(),
            counter_max,
            client_gap_ms: (2, rng.range(10, 80)),
            sync_share: 0.1 + rng.below(30) as f64 / 100.0,
            trace: false,
        }
    }
}

/// The outcome of a run.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub seed: u64,
    pub sim_ms: u64,
    pub commits: u64,
    pub elections: u64,
    pub syncs: u64,
    pub writes_acked: u64,
    pub crashes: u64,
    pub messages: u64,
    pub epoch_bumps: u64,
    pub violation: Option<Violation>,
}

#[derive(Debug)]
enum Event {
    Tick {
        node: usize,
        life: u64,
    },
    Deliver {
        from: usize,
        to: usize,
        bytes: Bytes,
        sent_at: u64,
        sender_role: Role,
    },
    FsyncDone {
        node: usize,
        life: u64,
        through: PersistSeq,
    },
    PeerDown {
        node: usize,
        life: u64,
        peer: usize,
    },
    Client,
    Nemesis,
    Restart {
        node: usize,
    },
    Resume {
        node: usize,
        life: u64,
    },
}

struct Scheduled {
    at: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    /// Reversed: BinaryHeap is a max-heap and we want the earliest event.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// One server: its process (None while crashed), disk and applied state.
struct Slot {
    id: PeerId,
    node: Option<Node>,
    /// Incremented at each crash so events of a dead process are ignored.
    life: u64,
    disk: Disk,
    applied: SnapshotState,
    role: Role,
    paused: bool,
    held: Vec<Event>,
    /// What the last NEWLEADER of the current join attempt asked for, to
    /// check ACK(NEWLEADER).
    newleader: (Epoch, Zxid),
    /// The node's current attempt to join a leader (from its FOLLOWERINFO).
    join: u64,
}

struct Net {
    blocked: HashSet<(usize, usize)>,
    loss: f64,
    duplication: f64,
    reordering: bool,
    /// Last scheduled delivery per link, to keep links FIFO unless reordering.
    last: HashMap<(usize, usize), u64>,
}

/// A client operation the liveness phase waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Probe {
    Write(u64),
    Sync(usize, RequestId),
}

#[allow(missing_debug_implementations)] // holds the whole run; printing it is never useful
pub struct Simulation {
    cfg: SimConfig,
    rng: Rng,
    now: u64,
    queue: BinaryHeap<Scheduled>,
    seq: u64,
    slots: Vec<Slot>,
    membership: Membership,
    net: Net,
    ghost: Ghost,
    /// Client writes: write id → (origin slot, request id, acknowledged).
    writes: HashMap<u64, (usize, RequestId, bool)>,
    /// Client syncs in flight: (slot, id) → highest acknowledged zxid when issued.
    syncs: HashMap<(usize, RequestId), Zxid>,
    next_request: u64,
    next_write: u64,
    healed: bool,
    probes: BTreeSet<Probe>,
    /// Terms in which a leader was established (elections that succeeded;
    /// epoch bumps within a term are not elections).
    terms: HashSet<Epoch>,
    events: u64,
    report: Report,
}

/// A run that needs more events than this is livelocked (a message storm);
/// a healthy 150 s run needs well under a million.
const EVENTS_MAX: u64 = 20_000_000;

impl Simulation {
    pub fn new(cfg: SimConfig) -> Simulation {
        let n = cfg.voters + cfg.observers;
        let membership = Membership::new(
            (1..=cfg.voters as u64).map(PeerId),
            (cfg.voters as u64 + 1..=n as u64).map(PeerId),
        );
        let slots = (0..n)
            .map(|i| Slot {
                id: PeerId(i as u64 + 1),
                node: None,
                life: 0,
                disk: Disk::default(),
                applied: SnapshotState::default(),
                role: Role::Looking,
                paused: false,
                held: Vec::new(),
                newleader: (Epoch(0), Zxid::ZERO),
                join: 0,
            })
            .collect();
        let mut sim = Simulation {
            rng: Rng::new(cfg.seed),
            now: 0,
            queue: BinaryHeap::new(),
            seq: 0,
            slots,
            membership,
            net: Net {
                blocked: HashSet::new(),
                loss: 0.0,
                duplication: 0.0,
                reordering: false,
                last: HashMap::new(),
            },
            ghost: Ghost::default(),
            writes: HashMap::new(),
            syncs: HashMap::new(),
            next_request: 1,
            next_write: 1,
            healed: false,
            probes: BTreeSet::new(),
            terms: HashSet::new(),
            events: 0,
            report: Report {
                seed: cfg.seed,
                ..Report::default()
            },
            cfg,
        };
        for i in 0..n {
            sim.boot(i);
        }
        let gap = sim.cfg.client_gap_ms;
        let first = sim.rng.range(gap.0, gap.1);
        sim.schedule(first, Event::Client);
        let nem = sim.cfg.faults.nemesis_gap_ms;
        let first = sim.rng.range(nem.0, nem.1);
        sim.schedule(first, Event::Nemesis);
        sim
    }

    /// Runs the chaos phase, heals, runs the liveness phase; stops at the first
    /// violated invariant.
    pub fn run(mut self) -> Report {
        self.run_until(self.cfg.chaos_ms);
        if self.report.violation.is_none() {
            self.heal();
            self.liveness();
        }
        self.report.sim_ms = self.now;
        self.report.commits = self.ghost.delivered.len() as u64;
        self.report.elections = self.terms.len() as u64;
        self.report.writes_acked = self.ghost.acked_writes.len() as u64;
        for slot in &self.slots {
            if let Some(node) = &slot.node {
                self.report.epoch_bumps += node.stats().epoch_bumps;
            }
        }
        self.report
    }

    fn run_until(&mut self, end: u64) {
        while self.report.violation.is_none() {
            match self.queue.peek() {
                Some(s) if s.at <= end => {}
                _ => break,
            }
            let Some(s) = self.queue.pop() else { break };
            self.events += 1;
            if self.events > EVENTS_MAX {
                let detail = format!(
                    "more than {EVENTS_MAX} events by {} ms: a message storm",
                    s.at
                );
                note(&mut self.report, inv::fail("bounded_work", detail));
                break;
            }
            self.now = s.at;
            self.dispatch(s.event);
        }
        if self.report.violation.is_none() {
            self.now = self.now.max(end);
        }
    }

    fn schedule(&mut self, after_ms: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at: self.now + after_ms,
            seq: self.seq,
            event,
        });
    }

    fn node_config(&self, i: usize) -> Config {
        let mut c = Config::new(self.slots[i].id, self.membership.clone());
        c.init_limit_ticks = 10;
        c.sync_limit_ticks = 5;
        c.election_resend_ticks = 2;
        c.in_flight_max = 2_000;
        c.counter_max = self.cfg.counter_max;
        c.defects = self.cfg.defects;
        c
    }

    /// Starts (or restarts) the process of slot `i` from its durable image.
    fn boot(&mut self, i: usize) {
        let cfg = self.node_config(i);
        let slot = &mut self.slots[i];
        slot.disk.view = slot.disk.durable.clone();
        slot.applied = slot.disk.durable.snapshot;
        slot.role = Role::Looking;
        slot.paused = false;
        slot.held.clear();
        match Node::new(cfg, slot.disk.durable.restored()) {
            Ok(node) => slot.node = Some(node),
            Err(e) => {
                let detail = format!("{:?} cannot restart from its disk: {e}", slot.id);
                note(&mut self.report, inv::fail("restore", detail));
                return;
            }
        }
        let life = slot.life;
        let offset = self.rng.range(1, self.cfg.tick_ms);
        self.schedule(offset, Event::Tick { node: i, life });
        self.drain(i);
    }

    fn dispatch(&mut self, event: Event) {
        match event {
            Event::Tick { node, life } => {
                if self.slots[node].life != life || self.slots[node].node.is_none() {
                    return;
                }
                self.schedule(self.cfg.tick_ms, Event::Tick { node, life });
                if self.slots[node].paused {
                    return; // a stopped process misses its ticks
                }
                self.maybe_compact(node);
                self.input(node, Input::Tick);
            }
            Event::Deliver { .. } => self.deliver(event),
            Event::FsyncDone {
                node,
                life,
                through,
            } => {
                let slot = &mut self.slots[node];
                if slot.life != life || slot.node.is_none() {
                    return;
                }
                if slot.paused {
                    slot.held.push(Event::FsyncDone {
                        node,
                        life,
                        through,
                    });
                    return;
                }
                slot.disk.synced(through);
                slot.disk.fsync_in_flight = false;
                self.input(node, Input::Persisted { through });
                self.kick_fsync(node);
            }
            Event::PeerDown { node, life, peer } => {
                if self.slots[node].paused {
                    self.slots[node]
                        .held
                        .push(Event::PeerDown { node, life, peer });
                } else if self.slots[node].life == life {
                    let peer = self.slots[peer].id;
                    self.input(node, Input::PeerDown { peer });
                }
            }
            Event::Client => self.client(),
            Event::Nemesis => self.nemesis(),
            Event::Restart { node } => {
                if self.slots[node].node.is_none() {
                    self.boot(node);
                }
            }
            Event::Resume { node, life } => {
                if self.slots[node].life == life {
                    self.resume(node);
                }
            }
        }
    }

    fn deliver(&mut self, event: Event) {
        let Event::Deliver {
            from,
            to,
            bytes,
            sent_at,
            sender_role,
        } = event
        else {
            return;
        };
        if self.slots[to].node.is_none() || self.net.blocked.contains(&(from, to)) {
            return;
        }
        if self.slots[to].paused {
            self.slots[to].held.push(Event::Deliver {
                from,
                to,
                bytes,
                sent_at,
                sender_role,
            });
            return;
        }
        let mut buf = bytes
            .try_into_mut()
            .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
        let msg = match codec::decode(&mut buf, codec::FRAME_BYTES_MAX) {
            Ok(Some(msg)) if buf.is_empty() => msg,
            other => {
                let detail = format!("frame did not round-trip: {other:?}");
                note(&mut self.report, inv::fail("codec", detail));
                return;
            }
        };
        let to_id = self.slots[to].id;
        let from_id = self.slots[from].id;
        // Ground truth for the sync check: the sender followed us in this term
        // when it sent this.
        if let Role::Following { leader, term, .. } = sender_role {
            if leader == to_id {
                let entry = self
                    .ghost
                    .confirmations
                    .entry((to_id, from_id))
                    .or_insert((term, 0));
                if entry.0 != term || entry.1 < sent_at {
                    *entry = (term, sent_at);
                }
            }
        }
        match &msg {
            Message::Sync { id, .. } => {
                // A duplicated message is the same sync: its first arrival counts.
                self.ghost
                    .sync_arrivals
                    .entry((to_id, from_id, *id))
                    .or_insert(self.now);
            } // Only NEWLEADER of the current join attempt is acted upon.
            Message::NewLeader {
                current_epoch,
                zxid,
                join,
                ..
            } if *join == self.slots[to].join => self.slots[to].newleader = (*current_epoch, *zxid),
            _ => {}
        }
        self.input(to, Input::Received { from: from_id, msg });
    }

    fn input(&mut self, i: usize, input: Input) {
        if self.cfg.trace {
            println!("{:>7} {:?} <- {input:?}", self.now, self.slots[i].id);
        }
        let Some(node) = self.slots[i].node.as_mut() else {
            return;
        };
        node.handle(input);
        self.drain(i);
    }

    fn drain(&mut self, i: usize) {
        loop {
            let Some(action) = self.slots[i].node.as_mut().and_then(Node::poll_action) else {
                break;
            };
            self.act(i, action);
            if self.report.violation.is_some() {
                return;
            }
        }
    }

    fn act(&mut self, i: usize, action: Action) {
        if self.cfg.trace {
            println!("{:>7} {:?} -> {action:?}", self.now, self.slots[i].id);
        }
        match action {
            Action::Send { to, msg } => self.on_send(i, to, msg),
            Action::Persist { seq, op } => self.on_persist(i, seq, op),
            Action::SendDiff {
                to,
                epoch,
                after,
                through,
            } => {
                let txns = self.slots[i].disk.view.range(after, through).to_vec();
                let complete = txns.first().is_some_and(|t| after.is_followed_by(t.zxid))
                    && txns.last().is_some_and(|t| t.zxid == through);
                if !complete {
                    let detail = format!(
                        "{:?} asked to stream ({after}, {through}] it does not hold",
                        self.slots[i].id
                    );
                    note(&mut self.report, inv::fail("diff_source", detail));
                    return;
                }
                for msg in zab_core::diff_stream(epoch, after, txns) {
                    self.on_send(i, to, msg);
                }
            }
            Action::SendSnapshot {
                to,
                epoch,
                join,
                zxid,
            } => {
                let state = self.slots[i].applied;
                if state.zxid != zxid {
                    let detail = format!(
                        "snapshot asked at {zxid}, applied state is at {}",
                        state.zxid
                    );
                    note(&mut self.report, inv::fail("snapshot_source", detail));
                    return;
                }
                let data = state.encode();
                self.on_send(
                    i,
                    to,
                    Message::Snapshot {
                        epoch,
                        join,
                        zxid,
                        data,
                    },
                );
            }
            Action::Deliver { through } => self.on_deliver(i, through),
            Action::SyncDone { id, zxid } => self.on_sync_done(i, id, zxid),
            Action::Reject { id, .. } => {
                self.syncs.remove(&(i, id));
                let write = self.probes.iter().find(|p| matches!(p, Probe::Write(w) if self.writes.get(w).is_some_and(|&(o, r, _)| o == i && r == id))).copied();
                if let Some(p) = write {
                    self.probes.remove(&p);
                }
                self.probes.remove(&Probe::Sync(i, id));
            }
            Action::RoleChanged(role) => self.on_role(i, role),
            // The simulated workload sends no relayed notes.
            Action::Relayed { .. } => {}
        }
    }
    fn on_send(&mut self, i: usize, to: PeerId, msg: Message) {
        if let Message::FollowerInfo { join, .. } = msg {
            self.slots[i].join = join;
        }
        let slot = &self.slots[i];
        let node = slot.node.as_ref().expect("only live nodes act");
        let (accepted, current, last) = match msg {
            // Nothing is written between the acceptedEpoch barrier and ACKEPOCH.
            Message::AckNewLeader { .. } => {
                (node.accepted_epoch(), slot.newleader.0, slot.newleader.1)
            }
            _ => (
                node.accepted_epoch(),
                node.current_epoch(),
                node.history().last(),
            ),
        };
        let check =
            inv::ack_durable::on_send(slot.id, &msg, &slot.disk.durable, accepted, current, last);
        note(&mut self.report, check);
        let check = inv::vote_reflects_disk::on_send(slot.id, &msg, &slot.disk.durable);
        note(&mut self.report, check);
        if let (Message::SyncReply { id, .. }, Role::Leading { term, .. }) = (&msg, slot.role) {
            let check = inv::sync_linearizable::on_answered(
                &self.ghost,
                slot.id,
                term,
                to,
                *id,
                &self.membership,
            );
            note(&mut self.report, check);
        }
        let j = (to.0 - 1) as usize;
        self.transmit(i, j, msg);
    }

    fn transmit(&mut self, from: usize, to: usize, msg: Message) {
        self.report.messages += 1;
        if self.net.blocked.contains(&(from, to)) || self.rng.chance(self.net.loss) {
            return;
        }
        let bytes = codec::encode_to_bytes(&msg);
        let copies = if self.rng.chance(self.net.duplication) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut delay = self.rng.range(1, 5);
            if self.net.reordering {
                delay += self.rng.below(40);
            } else {
                let last = self.net.last.entry((from, to)).or_insert(0);
                let at = (self.now + delay).max(*last);
                *last = at;
                delay = at - self.now;
            }
            let sender_role = self.slots[from].role;
            let event = Event::Deliver {
                from,
                to,
                bytes: bytes.clone(),
                sent_at: self.now,
                sender_role,
            };
            self.schedule(delay, event);
        }
    }

    fn on_persist(&mut self, i: usize, seq: PersistSeq, op: PersistOp) {
        let slot = &self.slots[i];
        let view = &slot.disk.view;
        let check = match &op {
            PersistOp::Append(txn) => {
                let gap = inv::no_zxid_gaps::on_append(slot.id, view.last_zxid(), txn.zxid);
                if gap.is_ok() && matches!(slot.role, Role::Leading { .. }) {
                    inv::integrity::on_proposed(&mut self.ghost, txn)
                } else {
                    gap
                }
            }
            PersistOp::Truncate { to } => {
                inv::committed_never_truncated::on_truncate(&self.ghost, slot.id, view, *to)
            }
            PersistOp::InstallSnapshot { data, .. } => {
                let snap = SnapshotState::decode(data.clone());
                let check =
                    inv::committed_never_truncated::on_install(&self.ghost, slot.id, view, snap);
                self.slots[i].applied = snap;
                check
            }
            PersistOp::AcceptedEpoch(_) | PersistOp::CurrentEpoch(_) => Ok(()),
        };
        note(&mut self.report, check);
        self.slots[i].disk.write(seq, op);
        self.kick_fsync(i);
    }

    /// Group commit: one fsync covers every write issued before it started.
    fn kick_fsync(&mut self, i: usize) {
        let disk = &mut self.slots[i].disk;
        if disk.fsync_in_flight {
            return;
        }
        let Some(&(through, _)) = disk.pending.back() else {
            return;
        };
        disk.fsync_in_flight = true;
        let latency = if disk.slow {
            self.rng.range(30, 400)
        } else {
            self.rng.range(1, 4)
        };
        let life = self.slots[i].life;
        self.schedule(
            latency,
            Event::FsyncDone {
                node: i,
                life,
                through,
            },
        );
    }

    fn on_deliver(&mut self, i: usize, through: Zxid) {
        let id = self.slots[i].id;
        let start = self.slots[i].applied;
        let txns = self.slots[i].disk.view.range(start.zxid, through).to_vec();
        if txns.last().map(|t| t.zxid) != Some(through) {
            let detail = format!("{id:?} delivered through {through}, which it has not logged");
            note(&mut self.report, inv::fail("integrity", detail));
            return;
        }
        if let Role::Leading { .. } = self.slots[i].role {
            let disks = self
                .slots
                .iter()
                .filter(|s| self.membership.is_voter(s.id))
                .map(|s| (s.id, &s.disk.durable));
            let check = inv::commit_quorum::on_commit(id, through, &self.membership, disks);
            note(&mut self.report, check);
        }
        let mut state = start;
        for txn in txns {
            let checks = [
                inv::primary_order::on_delivered(state.zxid, txn.zxid),
                inv::no_zxid_gaps::on_delivered(id, state.zxid, txn.zxid),
                inv::integrity::on_delivered(&self.ghost, txn.zxid, &txn.payload),
                inv::agreement::on_delivered(
                    &mut self.ghost,
                    id,
                    state.len,
                    txn.zxid,
                    &txn.payload,
                ),
            ];
            for check in checks {
                note(&mut self.report, check);
            }
            state = SnapshotState {
                zxid: txn.zxid,
                len: state.len + 1,
            };
            self.client_ack(i, &txn.payload, txn.zxid);
        }
        self.slots[i].applied = state;
    }

    /// The origin server applied its client's write: the client hears success.
    fn client_ack(&mut self, i: usize, payload: &Bytes, zxid: Zxid) {
        let write = payload.clone().get_u64();
        // For liveness, committed anywhere is enough: the origin may have
        // caught up through a snapshot and never apply the write itself.
        self.probes.remove(&Probe::Write(write));
        if let Some(entry) = self.writes.get_mut(&write) {
            if entry.0 == i && !entry.2 {
                entry.2 = true;
                self.ghost.acked_writes.push((write, zxid));
                self.ghost.max_acked = self.ghost.max_acked.max(zxid);
            }
        }
    }

    fn on_sync_done(&mut self, i: usize, id: RequestId, zxid: Zxid) {
        let slot = &self.slots[i];
        if let Role::Leading { term, .. } = slot.role {
            let check = inv::sync_linearizable::on_answered(
                &self.ghost,
                slot.id,
                term,
                slot.id,
                id,
                &self.membership,
            );
            note(&mut self.report, check);
        }
        let Some(required) = self.syncs.remove(&(i, id)) else {
            let detail = format!("{:?} completed sync {id:?} twice or never issued", slot.id);
            note(&mut self.report, inv::fail("sync_linearizable", detail));
            return;
        };
        let applied = slot.applied.zxid;
        note(
            &mut self.report,
            inv::sync_linearizable::on_done(slot.id, id, required, zxid, applied),
        );
        self.probes.remove(&Probe::Sync(i, id));
        self.report.syncs += 1;
    }

    fn on_role(&mut self, i: usize, role: Role) {
        self.slots[i].role = role;
        if let Role::Leading {
            epoch,
            term,
            phase: Phase::Broadcast,
        } = role
        {
            self.terms.insert(term);
            let id = self.slots[i].id;
            let check = inv::one_leader_per_epoch::on_established(&mut self.ghost, id, epoch);
            note(&mut self.report, check);
            let history = &self.slots[i].disk.view;
            note(
                &mut self.report,
                inv::primary_integrity::on_established(&self.ghost, id, epoch, history),
            );
            note(
                &mut self.report,
                inv::acked_writes_survive::on_established(&self.ghost, id, epoch, history),
            );
        }
    }

    /// Now and then the shell snapshots its applied state and purges the log.
    fn maybe_compact(&mut self, i: usize) {
        if !self.cfg.faults.compaction || !self.rng.chance(0.01) {
            return;
        }
        let slot = &mut self.slots[i];
        let state = slot.applied;
        let durable = &slot.disk.durable;
        if !slot.disk.pending.is_empty()
            || state.zxid <= durable.snapshot.zxid
            || !durable.contains(state.zxid)
        {
            return;
        }
        slot.disk.compact(state);
        self.input(
            i,
            Input::Compacted {
                through: state.zxid,
            },
        );
    }

    // ---- workload ----

    fn client(&mut self) {
        if self.healed {
            return;
        }
        let gap = self.cfg.client_gap_ms;
        let next = self.rng.range(gap.0, gap.1);
        self.schedule(next, Event::Client);
        let i = self.rng.below(self.slots.len() as u64) as usize;
        if self.slots[i].node.is_none() || self.slots[i].paused {
            return;
        }
        if self.rng.chance(self.cfg.sync_share) {
            self.issue_sync(i, false);
        } else {
            self.issue_write(i, false);
        }
    }
    fn issue_write(&mut self, i: usize, probe: bool) -> u64 {
        let write = self.next_write;
        self.next_write += 1;
        if probe {
            self.probes.insert(Probe::Write(write));
        }
        let id = RequestId(self.next_request);
        self.next_request += 1;
        self.writes.insert(write, (i, id, false));
        let mut payload = BytesMut::with_capacity(16);
        payload.put_u64(write);
        payload.put_u64(self.slots[i].id.0);
        self.input(
            i,
            Input::Propose {
                id,
                payload: payload.freeze(),
            },
        );
        write
    }
    fn issue_sync(&mut self, i: usize, probe: bool) -> RequestId {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        if probe {
            // Before the input: a one-voter leader answers at once.
            self.probes.insert(Probe::Sync(i, id));
        }
        self.syncs.insert((i, id), self.ghost.max_acked);
        if let Role::Leading { .. } = self.slots[i].role {
            let me = self.slots[i].id;
            self.ghost.sync_arrivals.insert((me, me, id), self.now);
        }
        self.input(i, Input::Sync { id });
        id
    }

    // ---- faults ----

    fn nemesis(&mut self) {
        if self.healed {
            return;
        }
        let gap = self.cfg.faults.nemesis_gap_ms;
        let next = self.rng.range(gap.0, gap.1);
        self.schedule(next, Event::Nemesis);
        let f = self.cfg.faults.clone();
        let n = self.slots.len();
        match self.rng.below(10) {
            0..=2 if f.partitions => self.partition(),
            3 if f.partitions || f.loss > 0.0 || f.duplication > 0.0 || f.reordering => {
                self.net.blocked.clear();
                self.net.loss = 0.0;
                self.net.duplication = 0.0;
                self.net.reordering = false;
            }
            4 | 5 if f.crashes => {
                let i = self.rng.below(n as u64) as usize;
                self.crash(i);
            }
            6 if f.pauses => {
                let i = self.rng.below(n as u64) as usize;
                if self.slots[i].node.is_some() && !self.slots[i].paused {
                    self.slots[i].paused = true;
                    let life = self.slots[i].life;
                    let dur = self.rng.range(300, 5000);
                    self.schedule(dur, Event::Resume { node: i, life });
                }
            }
            7 if f.slow_disks => {
                let i = self.rng.below(n as u64) as usize;
                self.slots[i].disk.slow = !self.slots[i].disk.slow;
            }
            8 => {
                self.net.loss = if self.net.loss > 0.0 { 0.0 } else { f.loss };
                self.net.duplication = if self.net.duplication > 0.0 {
                    0.0
                } else {
                    f.duplication
                };
            }
            9 if f.reordering => self.net.reordering = !self.net.reordering,
            _ => {}
        }
    }

    fn partition(&mut self) {
        let n = self.slots.len();
        self.net.blocked.clear();
        let block = |a: usize, b: usize, both: bool, set: &mut HashSet<(usize, usize)>| {
            set.insert((a, b));
            if both {
                set.insert((b, a));
            }
        };
        let mut set = HashSet::new();
        match self.rng.below(4) {
            0 => {
                // Two halves.
                let side: Vec<bool> = (0..n).map(|_| self.rng.chance(0.5)).collect();
                for a in 0..n {
                    for b in 0..n {
                        if side[a] != side[b] {
                            block(a, b, false, &mut set);
                        }
                    }
                }
            }
            1 => {
                // One node isolated.
                let x = self.rng.below(n as u64) as usize;
                for b in (0..n).filter(|&b| b != x) {
                    block(x, b, true, &mut set);
                }
            }
            2 => {
                // One-way: a few links drop in one direction only.
                for _ in 0..self.rng.range(1, n as u64) {
                    let a = self.rng.below(n as u64) as usize;
                    let b = self.rng.below(n as u64) as usize;
                    if a != b {
                        block(a, b, false, &mut set);
                    }
                }
            }
            _ => {
                // Bridge: two halves that only one node connects.
                let bridge = self.rng.below(n as u64) as usize;
                let side: Vec<bool> = (0..n).map(|_| self.rng.chance(0.5)).collect();
                for a in 0..n {
                    for b in 0..n {
                        if a != bridge && b != bridge && side[a] != side[b] {
                            block(a, b, false, &mut set);
                        }
                    }
                }
            }
        }
        self.net.blocked = set;
    }

    fn crash(&mut self, i: usize) {
        if self.slots[i].node.is_none() {
            return;
        }
        if self.cfg.trace {
            println!("{:>7} {:?} CRASH", self.now, self.slots[i].id);
        }
        self.report.crashes += 1;
        let pending = self.slots[i].disk.pending.len() as u64;
        // Half the crashes lose every unsynced write; the others keep a prefix.
        let keep = if self.rng.chance(0.5) {
            0
        } else {
            self.rng.range(0, pending) as usize
        };
        let slot = &mut self.slots[i];
        if let Some(node) = slot.node.take() {
            self.report.epoch_bumps += node.stats().epoch_bumps;
        }
        slot.disk.crash(keep);
        slot.life += 1;
        slot.paused = false;
        slot.held.clear();
        slot.role = Role::Looking;
        for j in (0..self.slots.len()).filter(|&j| j != i) {
            let life = self.slots[j].life;
            let delay = self.rng.range(1, 30);
            self.schedule(
                delay,
                Event::PeerDown {
                    node: j,
                    life,
                    peer: i,
                },
            );
        }
        let down = self.rng.range(200, 5000);
        self.schedule(down, Event::Restart { node: i });
    }

    fn resume(&mut self, i: usize) {
        if !self.slots[i].paused {
            return;
        }
        self.slots[i].paused = false;
        for event in std::mem::take(&mut self.slots[i].held) {
            self.schedule(0, event);
        }
    }

    // ---- liveness ----

    fn heal(&mut self) {
        self.healed = true;
        self.net.blocked.clear();
        self.net.loss = 0.0;
        self.net.duplication = 0.0;
        self.net.reordering = false;
        for i in 0..self.slots.len() {
            self.slots[i].disk.slow = false;
            self.resume(i);
            if self.slots[i].node.is_none() {
                self.boot(i);
            }
        }
    }

    /// After healing: a leader is established with everyone in broadcast, and
    /// a batch of new writes and syncs at every server completes, within a
    /// bounded time. A batch caught by a leader change is retried, as a client
    /// would after ConnectionLoss.
    fn liveness(&mut self) {
        let deadline = self.now + self.cfg.liveness_ms;
        let mut batch: Option<(PeerId, u64)> = None;
        while self.now < deadline && self.report.violation.is_none() {
            self.run_until(self.now + 100);
            let leader = self.stable_leader();
            match (batch, leader) {
                (None, Some(l)) => batch = Some((l, self.issue_probes())),
                (Some((l, started)), now_leader) => {
                    let converged = self
                        .slots
                        .iter()
                        .all(|s| s.applied.len == self.ghost.delivered.len() as u64);
                    if self.probes.is_empty() && converged {
                        return;
                    }
                    if now_leader != Some(l) || self.now - started > 5_000 {
                        self.probes.clear();
                        batch = None;
                    }
                }
                (None, None) => {}
            }
        }
        if self.report.violation.is_none() {
            let roles: Vec<_> = self
                .slots
                .iter()
                .map(|s| (s.id, s.role, s.applied.len))
                .collect();
            let detail = format!(
                "no progress {} ms after healing (waiting for {:?}); roles {roles:?}, committed {}",
                self.cfg.liveness_ms,
                self.probes,
                self.ghost.delivered.len()
            );
            note(&mut self.report, inv::fail("liveness", detail));
        }
    }

    /// One write and one sync at every server; returns the time issued.
    fn issue_probes(&mut self) -> u64 {
        for i in 0..self.slots.len() {
            self.issue_write(i, true);
            self.issue_sync(i, true);
        }
        self.now
    }

    fn stable_leader(&self) -> Option<PeerId> {
        let leader = self.slots.iter().find_map(|s| match s.role {
            Role::Leading {
                phase: Phase::Broadcast,
                term,
                ..
            } => Some((s.id, term)),
            _ => None,
        })?;
        let all = self.slots.iter().all(|s| match s.role {
            Role::Leading { .. } => s.id == leader.0,
            Role::Following {
                leader: l,
                term,
                phase: Phase::Broadcast,
            }
            | Role::Observing {
                leader: l,
                term,
                phase: Phase::Broadcast,
            } => l == leader.0 && term == leader.1,
            _ => false,
        });
        all.then_some(leader.0)
    }
}

/// Keeps the first violation of a run (a free function, so callers can hold
/// borrows of other fields of the simulation).
fn note(report: &mut Report, check: inv::Check) {
    if let Err(v) = check {
        if report.violation.is_none() {
            report.violation = Some(v);
        }
    }
}

/// The command that replays a run bit for bit.
pub fn replay_command(seed: u64, sizes: &[usize], defect: Option<&str>, chaos_ms: u64) -> String {
    let sizes: Vec<String> = sizes.iter().map(ToString::to_string).collect();
    let mut cmd = format!("scripts/sim.sh --seed {seed} --sizes {}", sizes.join(","));
    if chaos_ms != 120_000 {
        cmd.push_str(&format!(" --chaos-ms {chaos_ms}"));
    }
    if let Some(d) = defect {
        cmd.push_str(&format!(" --defect {d}"));
    }
    cmd
}
