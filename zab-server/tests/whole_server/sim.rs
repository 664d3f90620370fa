//! The whole-server simulator: N full [`ServerCore`]s (protocol node,
//! replicated tree, sessions, watches, reply queues) and M simulated
//! clients in one thread, driven by one seeded PRNG over simulated time.
//! Every client byte goes through the real codecs; the simulator plays the
//! shell exactly as `zab_server::server::Driver` does: it reads the clocks
//! (simulated monotonic and wall time per server), draws entropy, moves
//! peer messages, persists, and carries client bytes.
//!
//! Faults: server crashes (unsynced writes lost) and restarts from their
//! simulated disks; partitions and an isolated leader; wall-clock steps of
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
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use zab_core::{
    Epoch, History, Input, Membership, Message, Node, PeerId, PersistOp, PersistSeq, Restored,
    Role, Txn, Zxid,
};
use zab_proto::{ConnectRequest, RequestFrame, HANDSHAKE_FRAME_BYTES_MAX};
use zab_server::core::{
    ClientOutput, Clock, ConnId, Defects, Entropy, Frontend, ServerCore, ServerInput, ServerOutput,
    SessionLimits,
};
use zab_server::replica::{Command, CommandBody, Replica};
use zab_server::server::Application;
use zab_tests::sim::rng::Rng;

use super::checks::{Hearing, SessionChecker};
use super::client::{Action, SimClient};

const TICK_US: u64 = 100_000;
/// Wall-clock time at the simulation's start (ms since the Unix epoch).
const WALL_START_MS: i64 = 1_800_000_000_000;
const HOUR_MS: i64 = 3_600_000;

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub servers: usize,
    pub clients: usize,
    /// Faults run this long, then everything heals for `calm_ms`.
    pub chaos_ms: u64,
    pub calm_ms: u64,
    pub defects: Defects,
}

impl SimConfig {
    /// Everything from the seed: 3 or 5 servers, 8 clients, 120 s of
    /// faults and 25 s of calm.
    pub fn from_seed(seed: u64, defects: Defects) -> SimConfig {
        let mut rng = Rng::new(seed ^ 0x5e55_10e5);
        SimConfig {
            seed,
            servers: if rng.chance(0.5) { 3 } else { 5 },
            clients: 8,
            chaos_ms: 120_000,
            calm_ms: 25_000,
            defects,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Report {
    pub seed: u64,
    pub servers: usize,
    pub sim_ms: u64,
    pub events: u64,
    pub sessions: u64,
    pub expiries: u64,
    pub acked_writes: u64,
    pub faults: BTreeMap<&'static str, u64>,
    pub violation: Option<String>,
}

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

/// What a server keeps on its simulated disk.
#[derive(Debug, Default, Clone)]
struct Disk {
    accepted: Epoch,
    current: Epoch,
    snapshot: Option<(Zxid, Bytes)>,
    log: Vec<Txn>,
}

impl Disk {
    fn base(&self) -> Zxid {
        self.snapshot.as_ref().map_or(Zxid::ZERO, |(z, _)| *z)
    }

    fn apply(&mut self, op: &PersistOp) {
        match op {
            PersistOp::AcceptedEpoch(e) => self.accepted = *e,
            PersistOp::CurrentEpoch(e) => self.current = *e,
            PersistOp::Append(txn) => {
                if txn.zxid > self.base() {
                    self.log.push(txn.clone());
                }
            }
            PersistOp::Truncate { to } => self.log.retain(|t| t.zxid <= *to),
            PersistOp::InstallSnapshot { zxid, data } => {
                self.snapshot = Some((*zxid, data.clone()));
                self.log.clear();
            }
        }
    }

    /// The shell's periodic snapshot, durable at once.
    fn compact(&mut self, zxid: Zxid, content: Bytes) {
        if zxid > self.base() {
            self.log.retain(|t| t.zxid > zxid);
            self.snapshot = Some((zxid, content));
        }
    }
}

struct Server {
    core: Option<ServerCore>,
    life: u64,
    disk: Disk,
    /// Writes issued but not yet durable, in order.
    pending: Vec<(PersistSeq, PersistOp)>,
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
    links: HashMap<ConnId, Link>,
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
                disk: Disk::default(),
                pending: Vec::new(),
                disk_free_at: 0,
                mono_origin_us: rng.below(1 << 40),
                wall_offset_ms: 0,
            })
            .collect();
        let clients = (0..cfg.clients)
            .map(|i| SimClient::new(i, rng.range(2_000, 8_000) as u32))
            .collect();
        let mut sim = Simulation {
            report: Report {
                seed: cfg.seed,
                servers: cfg.servers,
                ..Report::default()
            },
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            membership,
            servers,
            client_life: vec![ClientLife::Active; cfg.clients],
            clients,
            links: HashMap::new(),
            next_conn: 1,
            cut: HashSet::new(),
            peer_gen: HashMap::new(),
            peer_at: HashMap::new(),
            checker: SessionChecker::default(),
            logged: HashSet::new(),
            leading: Vec::new(),
            calm: false,
            cfg,
        };
        sim.leading = vec![false; sim.cfg.servers];
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
                self.report.violation = self.clients.iter().find_map(|c| c.violation.clone());
            }
        }
        self.now = end;
        if self.report.violation.is_none() {
            self.report.violation = self.finish();
        }
        self.report.sim_ms = self.now / 1000;
        self.report.acked_writes = self.clients.iter().map(|c| c.acked_writes).sum();
        self.report.sessions = self.clients.iter().map(|c| c.sessions_started).sum();
        self.report.expiries = self.checker.expiries();
        self.report
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
        s.pending.clear();
        let mut replica = Replica::new();
        if let Some((_, content)) = &s.disk.snapshot {
            replica
                .restore(content)
                .expect("a snapshot this simulation wrote loads");
        }
        let mut history = History::starting_after(s.disk.base());
        for t in &s.disk.log {
            history
                .append(t.zxid)
                .expect("the simulated log is contiguous");
        }
        let restored = Restored {
            accepted_epoch: s.disk.accepted,
            current_epoch: s.disk.current,
            history,
        };
        let mut cfg = zab_core::Config::new(PeerId(i as u64 + 1), self.membership.clone());
        cfg.init_limit_ticks = 20;
        cfg.sync_limit_ticks = 5;
        let node = Node::new(cfg, restored).expect("the simulated disk restores");
        let frontend = Frontend::new(
            i as u64 + 1,
            SessionLimits::default(),
            self.rng.next_u64(),
            Arc::new(zab_server::metrics::Metrics::default()),
        )
        .with_defects(self.cfg.defects);
        let recovered = s.disk.log.clone();
        let snapshot_every = 300;
        let mut core = ServerCore::new(node, replica, frontend, recovered, snapshot_every);
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
                    let s = &mut self.servers[i];
                    s.pending.push((seq, op));
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
                ServerOutput::WriteSnapshot { zxid, content } => {
                    self.servers[i].disk.compact(zxid, Bytes::from(content));
                }
                ServerOutput::Client(ClientOutput::Send { conn, bytes }) => {
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
                let done = s.pending.iter().take_while(|(q, _)| *q <= through).count();
                let ops: Vec<(PersistSeq, PersistOp)> = s.pending.drain(..done).collect();
                for (_, op) in &ops {
                    s.disk.apply(op);
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
                    if let ClientLife::Paused(until) = self.client_life[c] {
                        self.schedule(until, Event::ClientSeesClose { conn });
                        return;
                    }
                    self.clients[c].closed(conn);
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
                        self.client_life[c] = ClientLife::Active;
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

    fn client_actions(&mut self, c: usize, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Connect { conn, server } => {
                    let stale = false;
                    let blackholed = matches!(self.client_life[c], ClientLife::Cut(_));
                    self.links.insert(
                        conn,
                        Link {
                            client: c,
                            server,
                            server_life: self.servers[server].life,
                            blackholed,
                            server_open: false,
                            session: None,
                            stale,
                            hello_seen: false,
                            server_buf: BytesMut::new(),
                            to_server_at: 0,
                            to_client_at: 0,
                        },
                    );
                    let delay = self.rng.range(50, 800);
                    self.after(delay, Event::Accept { conn });
                    if let Some(old) = self.clients[c].stale.as_ref().map(|s| s.id) {
                        if let Some(l) = self.links.get_mut(&old) {
                            l.stale = true;
                        }
                    }
                }
                Action::Send { conn, bytes } => {
                    let delay = self.rng.range(50, 800);
                    if let Some(l) = self.links.get_mut(&conn) {
                        if !l.blackholed {
                            let at = l.to_server_at.max(self.now + delay);
                            l.to_server_at = at;
                            self.schedule(at, Event::ToServer { conn, bytes });
                        }
                    }
                }
                Action::Close { conn } => {
                    let delay = self.rng.range(50, 800);
                    if let Some(l) = self.links.get_mut(&conn) {
                        if !l.blackholed {
                            let at = l.to_server_at.max(self.now + delay);
                            l.to_server_at = at;
                            self.schedule(at, Event::ServerSeesClose { conn });
                        }
                    }
                }
            }
        }
    }

    fn on_accept(&mut self, conn: ConnId) {
        let Some(l) = self.links.get_mut(&conn) else {
            return;
        };
        let server = l.server;
        if self.servers[server].core.is_none() || l.blackholed {
            // Refused (or never answered, when cut off): the client's own
            // handshake timeout deals with a blackholed one.
            if !l.blackholed {
                let delay = self.rng.range(50, 800);
                self.after(delay, Event::ClientSeesClose { conn });
            }
            return;
        }
        l.server_open = true;
        l.server_life = self.servers[server].life;
        self.input(server, ServerInput::ClientOpened { conn });
    }

    /// Bytes reach the server: framed and decoded as the listener does.
    fn on_to_server(&mut self, conn: ConnId, bytes: &[u8]) {
        let Some(l) = self.links.get_mut(&conn) else {
            return;
        };
        let server = l.server;
        if !l.server_open || self.servers[server].life != l.server_life {
            return;
        }
        l.server_buf.extend_from_slice(bytes);
        loop {
            let Some(l) = self.links.get_mut(&conn) else {
                return;
            };
            if !l.server_open {
                return;
            }
            let limit = if l.hello_seen {
                zab_proto::FRAME_BYTES_DEFAULT
            } else {
                HANDSHAKE_FRAME_BYTES_MAX
            };
            let body = match zab_proto::decode_frame(&mut l.server_buf, limit) {
                Ok(Some(body)) => body,
                Ok(None) => return,
                Err(e) => {
                    self.report.violation =
                        Some(format!("a client frame the server cannot read: {e}"));
                    return;
                }
            };
            let (session, stale) = (l.session, l.stale);
            let input = if l.hello_seen {
                let frame = RequestFrame::decode(body).expect("clients send well-formed frames");
                if let Some(session) = session {
                    self.hear(session, server, stale);
                }
                ServerInput::ClientFrame { conn, frame }
            } else {
                l.hello_seen = true;
                let hello = ConnectRequest::decode(body).expect("a well-formed hello");
                if hello.session_id != 0 {
                    self.hear(hello.session_id, server, false);
                }
                let mut entropy = [0u8; 24];
                for chunk in entropy.chunks_mut(8) {
                    chunk.copy_from_slice(&self.rng.next_u64().to_be_bytes());
                }
                ServerInput::ClientHello {
                    conn,
                    hello,
                    entropy: Entropy(entropy),
                }
            };
            self.input(server, input);
        }
    }

    /// Server `i` received traffic of `session`: the checker's evidence.
    fn hear(&mut self, session: u64, i: usize, stale: bool) {
        let Some(core) = self.servers[i].core.as_ref() else {
            return;
        };
        let leader = match core.status().role {
            Role::Leading {
                phase: zab_core::Phase::Broadcast,
                ..
            } => Some(i),
            Role::Following {
                leader,
                phase: zab_core::Phase::Broadcast,
                ..
            } => Some(leader.0 as usize - 1),
            _ => None,
        };
        let hearing = leader.filter(|_| !stale).map(|leader| Hearing {
            at: self.now,
            server: i,
            leader,
        });
        self.checker.traffic(session, self.now, hearing);
    }

    fn on_to_client(&mut self, conn: ConnId, bytes: Bytes) {
        let Some(l) = self.links.get(&conn) else {
            return;
        };
        let c = l.client;
        if let ClientLife::Paused(until) = self.client_life[c] {
            // A paused process reads nothing; the bytes wait in its socket.
            self.schedule(until, Event::ToClient { conn, bytes });
            return;
        }
        let (actions, accepted) = self.clients[c].received(self.now, conn, &bytes);
        if let Some(session) = accepted {
            if let Some(l) = self.links.get_mut(&conn) {
                l.session = Some(session.id);
            }
            self.checker
                .session_accepted(session.id, session.timeout_ms);
        }
        self.client_actions(c, actions);
    }

    fn leader(&self) -> Option<usize> {
        (0..self.cfg.servers).find(|&i| {
            self.servers[i].core.as_ref().is_some_and(|c| {
                matches!(
                    c.status().role,
                    Role::Leading {
                        phase: zab_core::Phase::Broadcast,
                        ..
                    }
                )
            })
        })
    }

    fn crash(&mut self, i: usize) {
        if self.servers[i].core.take().is_none() {
            return;
        }
        self.leading[i] = false;
        self.checker.outage(i, None, self.now);
        // Unsynced writes are lost; its connections close (clients see it).
        self.servers[i].pending.clear();
        for j in 0..self.cfg.servers {
            if j != i {
                self.break_link(i, j);
            }
        }
        let conns: Vec<ConnId> = self
            .links
            .iter()
            .filter(|(_, l)| l.server == i && l.server_open)
            .map(|(c, _)| *c)
            .collect();
        for conn in conns {
            let l = self.links.get_mut(&conn).expect("listed");
            l.server_open = false;
            if !l.blackholed {
                let at = l.to_client_at.max(self.now + 100);
                self.schedule(at, Event::ClientSeesClose { conn });
            }
        }
        let back = self.rng.range(1_000_000, 6_000_000);
        self.after(back, Event::Restart(i));
    }

    fn cut_link(&mut self, a: usize, b: usize) {
        if self.cut.insert((a, b)) {
            self.cut.insert((b, a));
            self.checker.outage(a, Some(b), self.now);
            self.break_link(a, b);
        }
    }

    fn nemesis(&mut self) {
        let n = self.cfg.servers;
        match self.rng.below(10) {
            0 => {
                let i = self.rng.below(n as u64) as usize;
                self.count("crash");
                self.crash(i);
            }
            1 => {
                if let Some(l) = self.leader() {
                    self.count("crash-leader");
                    self.crash(l);
                }
            }
            2 => {
                self.count("partition");
                let side: Vec<bool> = (0..n).map(|_| self.rng.chance(0.5)).collect();
                for a in 0..n {
                    for b in a + 1..n {
                        if side[a] != side[b] {
                            self.cut_link(a, b);
                        }
                    }
                }
                let heal = self.rng.range(1_000_000, 6_000_000);
                self.after(heal, Event::Heal);
            }
            3 => {
                if let Some(l) = self.leader() {
                    self.count("isolate-leader");
                    for b in (0..n).filter(|&b| b != l) {
                        self.cut_link(l, b);
                    }
                    let heal = self.rng.range(1_000_000, 6_000_000);
                    self.after(heal, Event::Heal);
                }
            }
            4 => {
                let i = match self.leader() {
                    Some(l) if self.rng.chance(0.7) => l,
                    _ => self.rng.below(n as u64) as usize,
                };
                self.count("wall-clock-step");
                let step = if self.rng.chance(0.5) {
                    HOUR_MS
                } else {
                    -HOUR_MS
                };
                self.servers[i].wall_offset_ms += step;
            }
            5 => self.silence_client(false),
            6 => self.silence_client(true),
            7 => {
                let c = self.rng.below(self.cfg.clients as u64) as usize;
                self.count("client-crash");
                let actions = self.clients[c].drop_connections();
                self.client_actions(c, actions);
                // It comes back as a new process: a new session.
                self.clients[c].session = None;
            }
            8 => {
                let c = self.rng.below(self.cfg.clients as u64) as usize;
                let to = self.rng.below(n as u64) as usize;
                self.count("client-move");
                self.clients[c].move_session(to);
            }
            _ => {
                let c = self.rng.below(self.cfg.clients as u64) as usize;
                if self.client_life[c] == ClientLife::Active {
                    self.count("client-bounce");
                    let actions = self.clients[c].bounce(self.now, &mut self.next_conn);
                    self.client_actions(c, actions);
                }
            }
        }
    }

    /// Cuts a client off (its connections stay open, its bytes vanish) or
    /// pauses it, for between a third of its timeout and twice it.
    fn silence_client(&mut self, pause: bool) {
        let c = self.rng.below(self.cfg.clients as u64) as usize;
        if self.client_life[c] != ClientLife::Active {
            return;
        }
        let timeout = u64::from(self.clients[c].requested_timeout_ms) * 1000;
        let until = self.now + self.rng.range(timeout / 3, timeout * 2);
        if pause {
            self.count("client-pause");
            self.client_life[c] = ClientLife::Paused(until);
        } else {
            self.count("client-cut");
            self.client_life[c] = ClientLife::Cut(until);
            self.blackhole(c, true);
        }
        self.schedule(until, Event::ClientBack(c));
    }

    fn blackhole(&mut self, c: usize, on: bool) {
        for l in self.links.values_mut().filter(|l| l.client == c) {
            if on {
                l.blackholed = true;
            }
        }
    }

    /// Heals partitions (and, once chaos is over, everything): restarts
    /// crashed servers, reconnects cut links, and at the end of chaos puts
    /// two clients to permanent silence for the liveness check.
    fn heal(&mut self) {
        let chaos_over = self.now >= self.cfg.chaos_ms * 1000;
        let links: Vec<(usize, usize)> = self.cut.drain().collect();
        for (a, b) in links {
            if a < b {
                self.checker.outage_over(a, Some(b), self.now);
            }
        }
        if !chaos_over || self.calm {
            return;
        }
        self.calm = true;
        for i in 0..self.cfg.servers {
            if self.servers[i].core.is_none() {
                self.boot(i);
            }
        }
        for c in 0..self.cfg.clients {
            self.client_life[c] = ClientLife::Active;
        }
        // The leader's wall clock jumps, then two clients fall silent for
        // good: one cut off, one paused. Their sessions must end on time.
        if let Some(l) = self.leader() {
            let step = if self.rng.chance(0.5) {
                HOUR_MS
            } else {
                -HOUR_MS
            };
            self.servers[l].wall_offset_ms += step;
        }
        let forever = u64::MAX / 2;
        let a = self.rng.below(self.cfg.clients as u64) as usize;
        let b = (a + 1) % self.cfg.clients;
        self.client_life[a] = ClientLife::Cut(forever);
        self.blackhole(a, true);
        self.client_life[b] = ClientLife::Paused(forever);
    }

    /// The end-of-run checks: sessions whose clients went silent ended on
    /// time, and servers that applied the same zxid agree on the state.
    fn finish(&mut self) -> Option<String> {
        let live: HashSet<u64> = self
            .clients
            .iter()
            .zip(&self.client_life)
            .filter(|(_, life)| **life == ClientLife::Active)
            .filter_map(|(c, _)| c.session.map(|s| s.id))
            .collect();
        let calm_from = self.cfg.chaos_ms * 1000;
        if let Some(v) = self.checker.late(self.now, calm_from, &live) {
            return Some(v);
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
