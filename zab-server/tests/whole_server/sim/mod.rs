//! The whole-server simulator: N full [`ServerCore`]s (protocol node,
//! replicated tree, sessions, watches, reply queues) and M simulated
//! clients in one thread, driven by one seeded PRNG over simulated time.
//! Every client byte goes through the real codecs; the simulator plays the
//! shell exactly as `zab_server::server::Driver` does: it reads the clocks
//! (simulated monotonic and wall time per server), draws entropy, moves
//! peer messages, persists, and carries client bytes.
//!
//! Faults: server crashes (a power loss: unsynced writes lost, kept in part
//! or torn) and restarts through the real storage recovery (`disk.rs`: the
//! real `Store` over an in-memory file system); on half the seeds, disk
//! faults (flipped bits, lost or cut segments, damaged snapshots and
//! metadata, wiped directories, full disks) on one server at a time;
//! partitions and an isolated leader; wall-clock steps of
//! an hour either way on any server; clients cut off with their connection
//! left open, paused, crashed, moved to another server while the old
//! connection still works, and bounced (a write left in flight, then the
//! same server again).
//!
//! Checks (see `checks.rs`): session expiry neither early nor late, what
//! each client sees (replies match requests, no watch event before its
//! watch's reply, a moved session's old connection applies nothing), and at
//! the end every server that applied the same zxid holds the same state.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use zab_core::{Input, Membership, Message, Node, PeerId, PersistOp, PersistSeq, Role, Txn, Zxid};
use zab_server::core::{
    ClientOutput, Clock, ConnId, Frontend, ServerCore, ServerInput, ServerOutput, SessionLimits,
};
use zab_server::replica::{Command, CommandBody, Replica};
use zab_server::server::Application;
use zab_tests::sim::rng::Rng;

mod config;
mod disk;
mod faults;
mod links;

pub use config::{Broken, Report, SimConfig};

use super::checks::{Hearing, SessionChecker};
use super::client::{ModelClient, RealClient, SimClient};
use super::histories::check_histories;
use disk::ServerDisk;

const TICK_US: u64 = 100_000;
/// Wall-clock time at the simulation's start (ms since the Unix epoch).
const WALL_START_MS: i64 = 1_800_000_000_000;
const HOUR_MS: i64 = 3_600_000;

#[derive(Debug)]
enum Event {
    Tick {
        server: usize,
        life: u64,
    },
    Peer {
        from: usize,
        to: usize,
        gen: u64,
        msg: Message,
    },
    PeerDown {
        server: usize,
        life: u64,
        peer: usize,
    },
    Persisted {
        server: usize,
        life: u64,
        through: PersistSeq,
    },
    /// A connection reaches its server.
    Accept {
        conn: ConnId,
    },
    ToServer {
        conn: ConnId,
        bytes: Bytes,
    },
    ServerSeesClose {
        conn: ConnId,
    },
    ToClient {
        conn: ConnId,
        bytes: Bytes,
    },
    ClientSeesClose {
        conn: ConnId,
    },
    ClientWake(usize),
    ClientBack(usize),
    Restart(usize),
    Heal,
    Nemesis,
}

struct Scheduled {
    at: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

struct Server {
    core: Option<ServerCore>,
    life: u64,
    disk: ServerDisk,
    disk_free_at: u64,
    mono_origin_us: u64,
    wall_offset_ms: i64,
}

/// One client connection as the network sees it.
struct Link {
    client: usize,
    server: usize,
    server_life: u64,
    /// Bytes in both directions vanish; neither end is told (a partition
    /// without FIN or RST).
    blackholed: bool,
    server_open: bool,
    /// The session the client was accepted into on this connection.
    session: Option<u64>,
    stale: bool,
    hello_seen: bool,
    /// A resume's hello reached the server: (session, when, what it would
    /// prove), counted once the server's reply shows it accepted.
    hello_heard: Option<(u64, u64, Option<Hearing>)>,
    server_buf: BytesMut,
    to_server_at: u64,
    to_client_at: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientLife {
    Active,
    /// Cut off from every server until the given time (connection left open).
    Cut(u64),
    /// Frozen until the given time.
    Paused(u64),
}

pub struct Simulation {
    cfg: SimConfig,
    rng: Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    membership: Membership,
    servers: Vec<Server>,
    clients: Vec<SimClient>,
    client_life: Vec<ClientLife>,
    /// What reached each paused client, waiting in its sockets.
    held: Vec<VecDeque<Event>>,
    links: BTreeMap<ConnId, Link>,
    next_conn: ConnId,
    /// Cut peer links, both directions listed.
    cut: HashSet<(usize, usize)>,
    /// Per directed peer link: its generation (bumped when it breaks) and
    /// when its last message arrives (FIFO).
    peer_gen: HashMap<(usize, usize), u64>,
    peer_at: HashMap<(usize, usize), u64>,
    checker: SessionChecker,
    /// Zxids some server has logged (the first to log one proposed it).
    logged: HashSet<Zxid>,
    /// Which servers lead in broadcast (a new leader restarts the clocks).
    leading: Vec<bool>,
    calm: bool,
    /// `ZAB_WHOLE_SIM_TRACE`: print what clients send and receive, and
    /// each server's role changes.
    trace: bool,
    roles: Vec<String>,
    report: Report,
}

/// A run needing more events than this is livelocked.
const EVENTS_MAX: u64 = 30_000_000;

impl Simulation {
    pub fn new(cfg: SimConfig) -> Simulation {
        let mut rng = Rng::new(cfg.seed);
        let membership = Membership::new((1..=cfg.servers as u64).map(PeerId), []);
        let servers = (0..cfg.servers)
            .map(|_| Server {
                core: None,
                life: 0,
                disk: ServerDisk::new(cfg.cut_corruption_as_torn_tail),
                disk_free_at: 0,
                mono_origin_us: rng.below(1 << 40),
                wall_offset_ms: 0,
            })
            .collect();
        let clients = (0..cfg.clients)
            .map(|i| {
                let timeout_ms = rng.range(2_000, 8_000) as u32;
                if i < cfg.real_clients {
                    SimClient::Real(Box::new(RealClient::new(
                        i,
                        timeout_ms,
                        cfg.servers,
                        cfg.client_defects,
                        rng.next_u64(),
                    )))
                } else {
                    SimClient::Model(Box::new(ModelClient::new(i, timeout_ms)))
                }
            })
            .collect();
        let mut sim = Simulation {
            report: Report {
                seed: cfg.seed,
                servers: cfg.servers,
                disk_faults: cfg.disk_faults,
                ..Report::default()
            },
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            membership,
            servers,
            client_life: vec![ClientLife::Active; cfg.clients],
            held: (0..cfg.clients).map(|_| VecDeque::new()).collect(),
            clients,
            links: BTreeMap::new(),
            next_conn: 1,
            cut: HashSet::new(),
            peer_gen: HashMap::new(),
            peer_at: HashMap::new(),
            checker: SessionChecker::default(),
            logged: HashSet::new(),
            leading: Vec::new(),
            calm: false,
            trace: std::env::var_os("ZAB_WHOLE_SIM_TRACE").is_some(),
            roles: Vec::new(),
            cfg,
        };
        sim.leading = vec![false; sim.cfg.servers];
        sim.roles = vec![String::new(); sim.cfg.servers];
        for c in &mut sim.clients {
            c.set_trace(sim.trace);
        }
        for i in 0..sim.cfg.servers {
            sim.boot(i);
        }
        for c in 0..sim.cfg.clients {
            let at = sim.rng.range(200_000, 2_000_000);
            sim.schedule(at, Event::ClientWake(c));
        }
        let first = sim.rng.range(2_000_000, 5_000_000);
        sim.schedule(first, Event::Nemesis);
        sim.schedule(sim.cfg.chaos_ms * 1000, Event::Heal);
        sim
    }

    pub fn run(mut self) -> Report {
        let end = (self.cfg.chaos_ms + self.cfg.calm_ms) * 1000;
        while self.report.violation.is_none() {
            let Some(Reverse(next)) = self.queue.pop() else {
                break;
            };
            if next.at > end {
                break;
            }
            self.now = next.at;
            self.report.events += 1;
            if self.report.events > EVENTS_MAX {
                self.report.violation = Some("livelock: too many events".into());
                break;
            }
            self.dispatch(next.event);
            if self.report.violation.is_none() {
                self.report.violation = self.clients.iter().find_map(|c| c.violation().cloned());
            }
        }
        self.now = end;
        if self.report.violation.is_none() {
            self.report.violation = self.finish();
        }
        self.report.sim_ms = self.now / 1000;
        self.report.acked_writes = self.clients.iter().map(SimClient::acked_writes).sum();
        self.report.sessions = self.clients.iter().map(SimClient::sessions_started).sum();
        self.report.expiries = self.checker.expiries();
        self.report
    }

    /// Client `c` runs again; it first reads what arrived while it was
    /// paused, in order.
    fn resume_client(&mut self, c: usize) {
        self.client_life[c] = ClientLife::Active;
        while let Some(event) = self.held[c].pop_front() {
            self.dispatch(event);
        }
    }

    fn schedule(&mut self, at: u64, event: Event) {
        self.seq += 1;
        let seq = self.seq;
        self.queue.push(Reverse(Scheduled { at, seq, event }));
    }

    fn after(&mut self, delay_us: u64, event: Event) {
        self.schedule(self.now + delay_us, event);
    }

    fn count(&mut self, fault: &'static str) {
        *self.report.faults.entry(fault).or_default() += 1;
    }

    fn clock(&self, i: usize) -> Clock {
        let s = &self.servers[i];
        Clock {
            mono_us: s.mono_origin_us + self.now,
            wall_ms: WALL_START_MS + (self.now / 1000) as i64 + s.wall_offset_ms,
        }
    }

    /// Starts server `i` from what its disk holds.
    fn boot(&mut self, i: usize) {
        if self.servers[i].life > 0 {
            self.checker.outage_over(i, None, self.now);
        }
        let s = &mut self.servers[i];
        s.life += 1;
        let recovery = match s.disk.open() {
            Ok(r) => r,
            Err(e) => {
                self.report.violation = Some(format!("server {} failed to start: {e}", i + 1));
                return;
            }
        };
        if self.trace {
            eprintln!(
                "{:>9} µs server {} restarts: last {}, accepted {}, current {}, {:?}, damage {:?}",
                self.now,
                i + 1,
                recovery.restored.history.last(),
                recovery.restored.accepted_epoch,
                recovery.restored.current_epoch,
                recovery.restored.standing(),
                recovery.damage
            );
        }
        let mut replica = Replica::new();
        if let Some(snapshot) = &recovery.snapshot {
            if let Err(e) = replica.restore(&snapshot.content) {
                self.report.violation = Some(format!(
                    "server {}: snapshot {} does not load: {e}",
                    i + 1,
                    snapshot.meta.path.display()
                ));
                return;
            }
        }
        let mut cfg = zab_core::Config::new(PeerId(i as u64 + 1), self.membership.clone());
        cfg.init_limit_ticks = 20;
        cfg.sync_limit_ticks = 5;
        cfg.new_ensemble_id = zab_core::EnsembleId(self.rng.next_u64().max(1));
        cfg.forwarded_check = Some(zab_server::replica::check_forwarded);
        // A broken protocol rule of zab-core's own self-test, to show the
        // whole-server checks catch protocol bugs too.
        if let Ok(name) = std::env::var("ZAB_WHOLE_SIM_CORE_DEFECT") {
            cfg.defects = zab_tests::defect(&name).expect("a zab-core defect");
        }
        if self.cfg.wiped_server_votes {
            cfg.defects.wiped_server_votes = true;
        }
        let node = match Node::new(cfg, recovery.restored) {
            Ok(node) => node,
            Err(e) => {
                self.report.violation = Some(format!(
                    "server {}: recovered state does not start: {e}",
                    i + 1
                ));
                return;
            }
        };
        let frontend = Frontend::new(
            i as u64 + 1,
            SessionLimits::default(),
            self.rng.next_u64(),
            Arc::new(zab_server::metrics::Metrics::default()),
        )
        .with_defects(self.cfg.defects);
        let snapshot_every = 300;
        // Also by bytes, small enough that large multis trigger it.
        let mut core = ServerCore::new(node, replica, frontend, recovery.replay, snapshot_every)
            .with_snapshot_every_bytes(64 << 10)
            .with_diff_window(snapshot_every as usize, 64 << 10);
        let clock = self.clock(i);
        if let Err(e) = core.start(clock) {
            self.report.violation = Some(format!("server {} failed to start: {e}", i + 1));
        }
        self.servers[i].core = Some(core);
        let phase = self.rng.below(TICK_US);
        let life = self.servers[i].life;
        self.after(phase, Event::Tick { server: i, life });
        self.drain(i);
    }

    fn input(&mut self, i: usize, input: ServerInput) {
        let clock = self.clock(i);
        let Some(core) = self.servers[i].core.as_mut() else {
            return;
        };
        if let Err(e) = core.handle(clock, input) {
            self.report.violation = Some(format!("server {} stopped: {e}", i + 1));
            return;
        }
        let leads = matches!(
            core.node().role(),
            Role::Leading {
                phase: zab_core::Phase::Broadcast,
                ..
            }
        );
        if leads && !self.leading[i] {
            self.checker.leader_elected(self.now);
        }
        if self.trace {
            let role = format!("{:?}", core.node().role());
            if self.roles[i] != role {
                eprintln!(
                    "{:>9} µs server {}: {role} (applied {})",
                    self.now,
                    i + 1,
                    core.status().applied
                );
                self.roles[i] = role;
            }
        }
        self.leading[i] = leads;
        self.drain(i);
    }

    /// Carries out server `i`'s outputs, as the tokio shell does.
    fn drain(&mut self, i: usize) {
        let life = self.servers[i].life;
        while let Some(out) = self.servers[i].core.as_mut().and_then(ServerCore::poll) {
            match out {
                ServerOutput::Peer { to, msg } => self.send_peer(i, to.0 as usize - 1, msg),
                ServerOutput::Persist { seq, op } => {
                    if let PersistOp::Append(txn) = &op {
                        self.observe_logged(i, txn);
                    }
                    if let Err(e) = self.servers[i].disk.write(seq, &op) {
                        self.storage_failed(i, &e);
                        return;
                    }
                    let lat = self.rng.range(100, 2_000);
                    let at = self.servers[i].disk_free_at.max(self.now) + lat;
                    self.servers[i].disk_free_at = at;
                    self.schedule(
                        at,
                        Event::Persisted {
                            server: i,
                            life,
                            through: seq,
                        },
                    );
                }
                ServerOutput::PeerSnapshot {
                    to,
                    epoch,
                    join,
                    zxid,
                    state,
                } => {
                    let data = state.encode().into();
                    let msg = Message::Snapshot {
                        epoch,
                        join,
                        zxid,
                        data,
                    };
                    self.send_peer(i, to.0 as usize - 1, msg);
                }
                ServerOutput::WriteSnapshot { zxid, state } => {
                    if self.trace {
                        eprintln!("{:>9} µs server {} snapshots at {zxid}", self.now, i + 1);
                    }
                    self.servers[i].disk.snapshot(zxid, &state);
                }
                ServerOutput::Client(ClientOutput::Send { conn, bytes }) => {
                    self.on_handshake_reply(conn, &bytes);
                    let delay = self.rng.range(50, 800);
                    if let Some(l) = self.links.get_mut(&conn) {
                        if l.server_open && !l.blackholed {
                            let at = l.to_client_at.max(self.now + delay);
                            l.to_client_at = at;
                            self.schedule(at, Event::ToClient { conn, bytes });
                        }
                    }
                }
                ServerOutput::Client(ClientOutput::Close { conn }) => {
                    if self.trace {
                        eprintln!("{:>9} µs server {} closes {conn}", self.now, i + 1);
                    }
                    let delay = self.rng.range(50, 800);
                    if let Some(l) = self.links.get_mut(&conn) {
                        if l.server_open {
                            l.server_open = false;
                            if !l.blackholed {
                                let at = l.to_client_at.max(self.now + delay);
                                l.to_client_at = at;
                                self.schedule(at, Event::ClientSeesClose { conn });
                            }
                        }
                    }
                }
            }
        }
    }

    /// A session's expiry is logged: the leader appends its own proposal
    /// first, so the first server seen logging it is the one that decided.
    fn observe_logged(&mut self, i: usize, txn: &Txn) {
        if !self.logged.insert(txn.zxid) {
            return; // a follower logging the leader's proposal
        }
        let Ok(cmd) = Command::decode(txn.payload.clone()) else {
            return;
        };
        if cmd.body == CommandBody::ExpireSession {
            if let Some(v) = self.checker.expired(cmd.session, self.now, i) {
                self.report.violation = Some(v);
            }
        }
    }

    fn send_peer(&mut self, from: usize, to: usize, msg: Message) {
        if self.cut.contains(&(from, to)) || self.servers[to].core.is_none() {
            return;
        }
        let msg = through_the_codec(msg);
        let gen = *self.peer_gen.get(&(from, to)).unwrap_or(&0);
        let delay = self.rng.range(100, 2_000);
        let at = self
            .peer_at
            .get(&(from, to))
            .copied()
            .unwrap_or(0)
            .max(self.now + delay);
        self.peer_at.insert((from, to), at);
        self.schedule(at, Event::Peer { from, to, gen, msg });
    }

    /// The peer link between `a` and `b` broke: what was in flight is lost
    /// and both ends are told.
    fn break_link(&mut self, a: usize, b: usize) {
        for (x, y) in [(a, b), (b, a)] {
            *self.peer_gen.entry((x, y)).or_default() += 1;
            let life = self.servers[x].life;
            let delay = self.rng.range(1_000, 20_000);
            self.after(
                delay,
                Event::PeerDown {
                    server: x,
                    life,
                    peer: y,
                },
            );
        }
    }

    fn dispatch(&mut self, event: Event) {
        match event {
            Event::Tick { server, life } => {
                if self.servers[server].life == life && self.servers[server].core.is_some() {
                    self.input(server, ServerInput::Tick);
                    self.after(TICK_US, Event::Tick { server, life });
                }
            }
            Event::Peer { from, to, gen, msg } => {
                let live = *self.peer_gen.get(&(from, to)).unwrap_or(&0) == gen;
                if live && !self.cut.contains(&(from, to)) {
                    let from = PeerId(from as u64 + 1);
                    self.input(to, ServerInput::Protocol(Input::Received { from, msg }));
                }
            }
            Event::PeerDown { server, life, peer } => {
                if self.servers[server].life == life {
                    let peer = PeerId(peer as u64 + 1);
                    self.input(server, ServerInput::Protocol(Input::PeerDown { peer }));
                }
            }
            Event::Persisted {
                server,
                life,
                through,
            } => {
                let s = &mut self.servers[server];
                if s.life != life || s.core.is_none() {
                    return;
                }
                if let Err(e) = s.disk.sync(through) {
                    self.storage_failed(server, &e);
                    return;
                }
                self.input(server, ServerInput::Protocol(Input::Persisted { through }));
            }
            Event::Accept { conn } => self.on_accept(conn),
            Event::ToServer { conn, bytes } => self.on_to_server(conn, &bytes),
            Event::ServerSeesClose { conn } => {
                let Some(l) = self.links.get_mut(&conn) else {
                    return;
                };
                let (server, life) = (l.server, l.server_life);
                if l.server_open && self.servers[server].life == life {
                    l.server_open = false;
                    self.input(server, ServerInput::ClientClosed { conn });
                }
            }
            Event::ToClient { conn, bytes } => self.on_to_client(conn, bytes),
            Event::ClientSeesClose { conn } => {
                if let Some(c) = self.links.get(&conn).map(|l| l.client) {
                    if let ClientLife::Paused(_) = self.client_life[c] {
                        self.held[c].push_back(Event::ClientSeesClose { conn });
                        return;
                    }
                    let actions = self.clients[c].closed(self.now, conn, &mut self.next_conn);
                    self.client_actions(c, actions);
                }
            }
            Event::ClientWake(c) => {
                if self.client_life[c] == ClientLife::Active
                    || matches!(self.client_life[c], ClientLife::Cut(_))
                {
                    let n = self.cfg.servers;
                    let actions =
                        self.clients[c].wake(self.now, &mut self.rng, n, &mut self.next_conn);
                    self.client_actions(c, actions);
                }
                let next = self.rng.range(50_000, 250_000);
                self.after(next, Event::ClientWake(c));
            }
            Event::ClientBack(c) => {
                if let ClientLife::Cut(until) | ClientLife::Paused(until) = self.client_life[c] {
                    if until <= self.now {
                        self.resume_client(c);
                    }
                }
            }
            Event::Restart(i) => {
                if self.servers[i].core.is_none() {
                    self.boot(i);
                }
            }
            Event::Heal => self.heal(),
            Event::Nemesis => {
                if !self.calm {
                    self.nemesis();
                    let next = self.rng.range(1_000_000, 4_000_000);
                    self.after(next, Event::Nemesis);
                }
            }
        }
    }

    /// Every acknowledged create is in the tree of every server that has
    /// caught up (applied as much as any), whatever crashed and lost its
    /// unsynced writes on the way.
    fn lost_writes(&self) -> Option<String> {
        let newest = self
            .servers
            .iter()
            .filter_map(|s| s.core.as_ref().map(|c| c.status().applied))
            .max()?;
        for (i, s) in self.servers.iter().enumerate() {
            let Some(core) = &s.core else { continue };
            if core.status().applied != newest {
                continue;
            }
            for c in &self.clients {
                if let Some(path) = c
                    .acked_paths()
                    .iter()
                    .find(|p| core.replica().tree.exists(p).is_none())
                {
                    return Some(format!(
                        "server {} (applied {newest}) lost {path}, acknowledged to client {}",
                        i + 1,
                        c.index()
                    ));
                }
            }
        }
        None
    }

    /// The end-of-run checks: sessions whose clients went silent ended on
    /// time, and servers that applied the same zxid agree on the state.
    fn finish(&mut self) -> Option<String> {
        let live: HashSet<u64> = self
            .clients
            .iter()
            .zip(&self.client_life)
            .filter(|(_, life)| **life == ClientLife::Active)
            .filter_map(|(c, _)| c.session_id())
            .collect();
        let calm_from = self.cfg.chaos_ms * 1000;
        if let Some(v) = self.checker.late(self.now, calm_from, &live) {
            return Some(v);
        }
        if let Some(v) = self.lost_writes() {
            return Some(v);
        }
        let newest = self
            .servers
            .iter()
            .filter_map(|s| s.core.as_ref())
            .max_by_key(|c| c.status().applied)?;
        match check_histories(&self.clients, &newest.replica().tree, &self.checker) {
            Ok(checked) => self.report.checked = checked,
            Err(v) => return Some(v),
        }
        let mut by_zxid: BTreeMap<Zxid, (usize, Vec<u8>)> = BTreeMap::new();
        for (i, s) in self.servers.iter().enumerate() {
            let Some(core) = &s.core else { continue };
            let applied = core.status().applied;
            let state = core.replica().snapshot();
            match by_zxid.get(&applied) {
                Some((j, other)) if *other != state => {
                    return Some(format!(
                        "servers {} and {} applied {applied} and hold different trees",
                        j + 1,
                        i + 1
                    ));
                }
                Some(_) => {}
                None => {
                    by_zxid.insert(applied, (i, state));
                }
            }
        }
        None
    }
}

/// Snapshot chunk size on simulated links (the transport's is 1 MiB): small
/// enough that every real tree's snapshot is streamed.
const SIM_CHUNK_BYTES: usize = 256;

/// `msg` as the peer at the other end decodes it from the transport's frames
/// (snapshots streamed in chunks, reassembled and checksummed).
fn through_the_codec(msg: Message) -> Message {
    let mut wire = bytes::BytesMut::new();
    for frame in zab_core::codec::frames(&msg, SIM_CHUNK_BYTES) {
        wire.extend_from_slice(&frame);
    }
    let mut decoder = zab_core::codec::StreamDecoder::new(
        zab_core::codec::FRAME_BYTES_MAX,
        zab_core::codec::SNAPSHOT_BYTES_MAX,
    );
    match decoder.decode(&mut wire) {
        Ok(Some(decoded)) if wire.is_empty() && decoded == msg => decoded,
        other => panic!("a peer message did not survive the codec: {other:?}"),
    }
}
