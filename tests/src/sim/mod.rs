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
mod faults;
pub mod rng;
mod shell;

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
    /// Some crashes also damage the disk (wipe it, or lose a detected part of
    /// it), on one server at a time: the others are intact whenever it happens.
    pub disk_faults: bool,
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
            disk_faults: rng.chance(0.5),
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
    pub disk_faults: u64,
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
    /// A disk fault hit this node and it has not yet been synchronized back
    /// to an intact member (see `Simulation::damage_disk`).
    damaged: bool,
    /// The durable image just before the last disk fault (for `commit_quorum`).
    before_fault: Option<disk::Image>,
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
/// Snapshot chunk size on simulated links (the transport's is 1 MiB): the
/// simulated snapshot is 16 bytes, so each crosses in four chunks.
const SIM_CHUNK_BYTES: usize = 4;

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
                damaged: false,
                before_fault: None,
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
        let mut decoder =
            codec::StreamDecoder::new(codec::FRAME_BYTES_MAX, codec::SNAPSHOT_BYTES_MAX);
        let msg = match decoder.decode(&mut buf) {
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
                let at = self
                    .ghost
                    .confirmations
                    .entry((to_id, from_id, term))
                    .or_insert(0);
                *at = (*at).max(sent_at);
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
}

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
