//! The server as one sans-IO state machine: the protocol [`Node`], the
//! replicated tree ([`Replica`]), and the client side ([`Frontend`]:
//! connections, sessions, watches, reply queues).
//!
//! The shell hands in [`ServerInput`]s, each with the [`Clock`] it read, and
//! carries out the [`ServerOutput`]s it polls. Nothing in here reads a
//! clock, draws randomness, spawns or touches a socket or file: a session's
//! id and password come from [`Entropy`] handed in with its handshake, and
//! every timeout runs on the monotonic reading of the clock (the wall clock
//! only stamps ctime/mtime and judges TTLs). The tokio shell
//! ([`crate::server`]) and the whole-server simulator drive it the same way.
//!
//! ```text
//!   shell ── handle(clock, input) ──▶ ServerCore ── poll() ──▶ outputs
//!            Tick | Peer(Input)        Node ◀──▶ Replica        Peer / Persist
//!            ClientOpened | Hello      Frontend (sessions,      ToClient / Close
//!            ClientFrame | Closed        replies, watches)      WriteSnapshot
//! ```

mod catch_up;
mod frontend;
mod identity;
mod limits;
mod liveness;
mod reads;
mod replies;
mod report;
mod snapshot_policy;
#[cfg(test)]
mod tests;
mod window;

use std::collections::VecDeque;

use bytes::Bytes;
use tracing::{error, info};
use zab_core::{Action, Input, Message, Node, PeerId, PersistOp, PersistSeq, Role, Zxid};
use zab_proto::{ConnectRequest, RequestFrame};

pub use frontend::{ClientOutput, Defects, Frontend, OUTSTANDING_MAX};
#[cfg(test)]
pub use report::report_example;
pub use report::{Report, ReportKind, REPORT_ENTRIES_MAX};

use crate::replica::{FrozenState, Replica};
use crate::server::Application;

/// A client connection, as the shell numbers them (never reused).
pub type ConnId = u64;

/// Time as the shell read it for one input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Clock {
    /// Monotonic microseconds from any origin: every timeout runs on this.
    pub mono_us: u64,
    /// The wall clock, ms since the Unix epoch: only ctime/mtime and TTLs.
    pub wall_ms: i64,
}

/// Fresh random bytes for one handshake: a new session's id and password.
/// A CSPRNG in production, the seed in the simulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entropy(pub [u8; 24]);

/// What the server grants a client connection: its session's timeout
/// bounds, how long it may take to complete its handshake, and the largest
/// frame it may send or be sent (a client asking more gets this).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLimits {
    pub min_timeout_ms: u32,
    pub max_timeout_ms: u32,
    pub handshake_timeout_ms: u32,
    pub frame_bytes_max: u32,
    /// Watches a session, and this server in all, may hold.
    pub watches: crate::watches::WatchLimits,
    /// Bytes of paths and data the tree may hold before this server refuses
    /// its clients' writes that would add more (`QuotaExceeded`).
    pub data_bytes_max: u64,
}

impl SessionLimits {
    /// The timeout granted for a request of `requested_ms`.
    pub fn negotiate(&self, requested_ms: u32) -> u32 {
        zab_proto::negotiate_timeout_ms(requested_ms, self.min_timeout_ms, self.max_timeout_ms)
    }
}

/// The default data quota: 8 GiB of paths and data, about what a server
/// with 16 GiB of memory holds with room for its snapshots.
pub const DATA_BYTES_QUOTA_DEFAULT: u64 = 8 << 30;

impl Default for SessionLimits {
    /// 2 s to 60 s, as ZooKeeper's defaults allow with its 2 s tick (whose
    /// bounds are 2 and 20 ticks); 10 s for a handshake; 1 MiB frames.
    fn default() -> SessionLimits {
        SessionLimits {
            min_timeout_ms: 2_000,
            max_timeout_ms: 60_000,
            handshake_timeout_ms: 10_000,
            frame_bytes_max: zab_proto::FRAME_BYTES_DEFAULT,
            watches: crate::watches::WatchLimits::default(),
            data_bytes_max: DATA_BYTES_QUOTA_DEFAULT,
        }
    }
}

/// Payload bytes applied after which a snapshot is due anyway, whatever
/// the tree's size: bounds the log a restart replays.
pub const SNAPSHOT_EVERY_BYTES_DEFAULT: usize = 256 << 20;

/// Transactions the in-memory window keeps for DIFFs by default (its count
/// bound): a follower further behind gets a snapshot.
pub const DIFF_WINDOW_TXNS_DEFAULT: usize = 50_000;

/// The window's bound in payload bytes by default (large writes would
/// otherwise pile up there).
pub const DIFF_WINDOW_BYTES_DEFAULT: usize = 64 << 20;

pub use snapshot_policy::SNAPSHOT_LOG_PERCENT_DEFAULT;

/// What the shell hands the core.
#[derive(Debug)]
pub enum ServerInput {
    /// One tick of the shell's timer.
    Tick,
    /// A peer message, a peer link's loss, or a durability report: anything
    /// for the protocol node that the shell's transport or storage produced.
    Protocol(Input),
    /// A client connection was accepted from `ip` (the `ip` ACL scheme),
    /// with the subject of its verified TLS client certificate, if any (the
    /// `x509` scheme).
    ClientOpened {
        conn: ConnId,
        ip: Option<core::net::IpAddr>,
        x509: Option<String>,
    },
    /// Its handshake, with entropy for a new session.
    ClientHello {
        conn: ConnId,
        hello: ConnectRequest,
        entropy: Entropy,
    },
    /// One request frame, decoded at the socket.
    ClientFrame { conn: ConnId, frame: RequestFrame },
    /// The client closed the connection (or sent something unreadable).
    ClientClosed { conn: ConnId },
}

/// What the core asks of the shell, in order.
#[derive(Debug)]
pub enum ServerOutput {
    /// Send to a peer (FIFO per peer).
    Peer { to: PeerId, msg: Message },
    /// Make `op` durable, in `seq` order, then hand in `Input::Persisted`.
    Persist { seq: PersistSeq, op: PersistOp },
    /// Bytes for, or the closing of, a client connection.
    Client(ClientOutput),
    /// Send `to` a snapshot of `state` (the applied state through `zxid`),
    /// in order with the messages before and after it: the shell encodes it
    /// off the driver's thread (a large tree takes a while) and sends
    /// `Message::Snapshot { epoch, join, zxid, data }`.
    PeerSnapshot {
        to: PeerId,
        epoch: zab_core::Epoch,
        join: u64,
        zxid: Zxid,
        state: FrozenState,
    },
    /// Encode this snapshot of the applied state through `zxid` and write
    /// it to disk, off the driver's thread; the log before it is no longer
    /// needed.
    WriteSnapshot { zxid: Zxid, state: FrozenState },
}

/// Why the core cannot go on: the node must stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fatal(pub String);

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the admin endpoint and tests can see.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    pub role: Role,
    pub applied: Zxid,
    pub last_logged: Zxid,
    pub znodes: usize,
    pub ephemerals: usize,
    /// What the tree's paths, data and ACLs take (`max_data_bytes` bounds it).
    pub data_bytes: u64,
    /// Writes, syncs and session changes (handshakes, closes) of this
    /// server's clients waiting for the quorum.
    pub outstanding: usize,
    /// Leader only: its learners.
    pub learners: Vec<zab_core::LearnerView>,
    /// Watches armed on this server, all sessions.
    pub watches: usize,
    /// Recent changes held for resuming watches, and the zxid above which
    /// they are complete (a watcher that saw it or later resumes).
    pub watch_resume_changes: usize,
    pub watch_resume_floor: Zxid,
    /// Payload bytes of the recent transactions kept in memory for DIFFs.
    pub window_bytes: usize,
    pub sessions: usize,
    pub connections: usize,
    pub stats: zab_core::Stats,
}

#[derive(Debug)]
pub struct ServerCore {
    node: Node,
    replica: Replica,
    frontend: Frontend,
    /// The newest logged transactions, by zxid: delivery and DIFF streams
    /// read them from here instead of going back to disk.
    window: window::Window,
    applied: Zxid,
    snapshots: snapshot_policy::SnapshotPolicy,
    out: VecDeque<ServerOutput>,
}

impl ServerCore {
    /// `replica` restored from the newest snapshot, `recovered` the log
    /// records after it.
    pub fn new(
        node: Node,
        replica: Replica,
        mut frontend: Frontend,
        recovered: Vec<zab_core::Txn>,
        snapshot_every: u64,
    ) -> ServerCore {
        let applied = node.delivered();
        // Watchers can be replayed what this server applies from here on.
        let start = replica.tree.last_applied_zxid();
        frontend.watches.recent.start_at(start.0);
        // Until told otherwise, the window keeps what one snapshot period
        // would have: the behaviour from before the window had bounds of
        // its own.
        let window = window::Window::new(
            recovered.into_iter().map(|t| (t.zxid, t.payload)),
            usize::try_from(snapshot_every).unwrap_or(usize::MAX),
            SNAPSHOT_EVERY_BYTES_DEFAULT,
        );
        let snapshots = snapshot_policy::SnapshotPolicy::new(
            node.id().0,
            snapshot_every,
            SNAPSHOT_EVERY_BYTES_DEFAULT as u64,
        );
        ServerCore {
            node,
            replica,
            frontend,
            window,
            applied,
            snapshots,
            out: VecDeque::new(),
        }
    }

    /// Takes a snapshot once `bytes` of transactions were applied since the
    /// last one, whatever their count or the tree's size (default
    /// [`SNAPSHOT_EVERY_BYTES_DEFAULT`]).
    pub fn with_snapshot_every_bytes(mut self, bytes: usize) -> ServerCore {
        self.snapshots = self.snapshots.with_every_bytes(bytes as u64);
        self
    }

    /// Defers a snapshot until the log since the last one holds `percent`
    /// of the snapshot's estimated size (default
    /// [`SNAPSHOT_LOG_PERCENT_DEFAULT`]; 0: by count and bytes alone).
    pub fn with_snapshot_log_percent(mut self, percent: u64) -> ServerCore {
        self.snapshots = self.snapshots.with_log_percent(percent);
        self
    }

    /// Bounds the in-memory window of recent transactions kept for DIFFs
    /// (defaults: [`DIFF_WINDOW_TXNS_DEFAULT`], [`DIFF_WINDOW_BYTES_DEFAULT`]
    /// from the config; one snapshot period without it).
    pub fn with_diff_window(mut self, txns: usize, bytes: usize) -> ServerCore {
        self.window.set_bounds(txns, bytes);
        self
    }

    /// Carries out what the node wants at start (its first actions).
    pub fn start(&mut self, clock: Clock) -> Result<(), Fatal> {
        self.frontend.clock = clock;
        self.act()
    }

    /// Handles one input read at `clock`. An error means the node must stop
    /// (its state machine diverged or its log has a gap).
    pub fn handle(&mut self, clock: Clock, input: ServerInput) -> Result<(), Fatal> {
        // The monotonic clock never goes back, whatever the shell reads.
        let mono_us = clock.mono_us.max(self.frontend.clock.mono_us);
        self.frontend.clock = Clock { mono_us, ..clock };
        let applied = self.applied;
        match input {
            ServerInput::Tick => {
                self.node.handle(Input::Tick);
                let more = self.frontend.on_tick(self.node.role(), &self.replica);
                self.feed(more);
            }
            ServerInput::Protocol(input) => self.node.handle(input),
            ServerInput::ClientOpened { conn, ip, x509 } => self.frontend.on_opened(conn, ip, x509),
            ServerInput::ClientHello {
                conn,
                hello,
                entropy,
            } => {
                let more = self
                    .frontend
                    .on_hello(conn, hello, entropy, &self.replica, applied);
                self.feed(more);
            }
            ServerInput::ClientFrame { conn, frame } => {
                let more = self.frontend.on_frame(conn, frame, &self.replica, applied);
                self.feed(more);
            }
            ServerInput::ClientClosed { conn } => self.frontend.on_closed(conn),
        }
        self.act()
    }

    /// The next output, in order.
    pub fn poll(&mut self) -> Option<ServerOutput> {
        if let Some(o) = self.out.pop_front() {
            return Some(o);
        }
        self.frontend.poll_output().map(ServerOutput::Client)
    }

    pub fn status(&self) -> Status {
        Status {
            role: self.node.role(),
            applied: self.applied,
            last_logged: self.node.history().last(),
            znodes: self.replica.tree.node_count(),
            ephemerals: self.replica.tree.ephemeral_count(),
            data_bytes: self.replica.tree.data_bytes(),
            outstanding: self.frontend.outstanding(),
            learners: self.node.learners(),
            watches: self.frontend.watches.total(),
            watch_resume_changes: self.frontend.watches.recent.held(),
            watch_resume_floor: Zxid(self.frontend.watches.recent.floor()),
            window_bytes: self.window.bytes(),
            sessions: self.replica.tree.session_count(),
            connections: self.frontend.connections(),
            stats: self.node.stats(),
        }
    }

    /// An inspection report (the admin port's `/cons`, `/wchs`, `/dump`)
    /// at `clock`.
    pub fn report(&self, kind: ReportKind, clock: Clock) -> Report {
        report::build(kind, &self.frontend, &self.replica.tree, clock.mono_us)
    }

    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// Whether at least `n` logged transactions are not applied yet: the
    /// next delivery may then take a while (a restart's log replay, a DIFF
    /// a follower received). O(1) within an epoch, at most `n` steps across
    /// epochs.
    pub fn backlog_at_least(&self, n: u64) -> bool {
        let last = self.node.history().last();
        if last <= self.applied {
            return false;
        }
        if last.epoch() == self.applied.epoch() {
            return u64::from(last.counter() - self.applied.counter()) >= n;
        }
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        self.window.range(self.applied, last).take(n).count() >= n
    }

    pub fn node(&self) -> &Node {
        &self.node
    }

    fn feed(&mut self, inputs: Vec<Input>) {
        for input in inputs {
            self.node.handle(input);
        }
    }

    /// Carries out every pending action of the node, in order. This is the
    /// one action executor: every environment (the tokio shell, the
    /// simulator) sees the node only through these outputs.
    fn act(&mut self) -> Result<(), Fatal> {
        while let Some(action) = self.node.poll_action() {
            match action {
                Action::Send { to, msg } => self.out.push_back(ServerOutput::Peer { to, msg }),
                Action::Persist { seq, op } => {
                    self.track(&op)?;
                    self.out.push_back(ServerOutput::Persist { seq, op });
                }
                Action::SendDiff {
                    to,
                    epoch,
                    after,
                    through,
                } => {
                    // The node chooses a DIFF from its history, which the
                    // window mirrors: a gap here would be a bug, and a DIFF
                    // with a gap would corrupt the follower.
                    if !self.window.holds_after(after) {
                        return Err(Fatal(format!(
                            "asked to DIFF after {after}, but the window no longer holds it"
                        )));
                    }
                    let txns =
                        self.window
                            .range(after, through)
                            .map(|(zxid, payload)| zab_core::Txn {
                                zxid,
                                payload: payload.clone(),
                            });
                    for msg in zab_core::diff_stream(epoch, after, txns) {
                        self.out.push_back(ServerOutput::Peer { to, msg });
                    }
                }
                Action::SendSnapshot {
                    to,
                    epoch,
                    join,
                    zxid,
                } => {
                    debug_assert_eq!(zxid, self.applied, "snapshot must be of the applied state");
                    self.out.push_back(ServerOutput::PeerSnapshot {
                        to,
                        epoch,
                        join,
                        zxid,
                        state: self.replica.freeze(),
                    });
                }
                Action::Deliver { through } => self.deliver(through)?,
                Action::RoleChanged(role) => {
                    info!(?role, "role changed");
                    self.frontend.on_role_changed(role);
                }
                Action::SyncDone { id, zxid } => {
                    self.frontend
                        .on_sync_done(id, zxid, &self.replica, self.applied)
                }
                Action::Reject { id, .. } => {
                    self.frontend.on_reject(id, &self.replica, self.applied)
                }
                Action::Relayed { payload, .. } => self.frontend.on_relayed(payload),
            }
        }
        // Only once every action is carried out: a DIFF the node decided on
        // before this trim has been read from the window already. Followers
        // behind what it keeps now get a snapshot instead.
        if let Some(through) = self.window.trim_to_bounds(self.applied) {
            self.node.handle(Input::Compacted { through });
        }
        Ok(())
    }

    /// Mirrors the node's writes into the in-memory window.
    fn track(&mut self, op: &PersistOp) -> Result<(), Fatal> {
        match op {
            PersistOp::Append(txn) => {
                self.window.insert(txn.zxid, txn.payload.clone());
            }
            PersistOp::Truncate { to } => {
                self.window.truncate_after(*to);
            }
            PersistOp::InstallSnapshot { zxid, data } => {
                self.replica.restore(data).map_err(Fatal)?;
                self.window.clear(*zxid);
                self.applied = *zxid;
                self.frontend.on_state_replaced(*zxid);
            }
            PersistOp::AcceptedEpoch(_) | PersistOp::CurrentEpoch(_) | PersistOp::Intact { .. } => {
            }
        }
        Ok(())
    }

    fn deliver(&mut self, through: Zxid) -> Result<(), Fatal> {
        let txns: Vec<(Zxid, Bytes)> = self
            .window
            .range(self.applied, through)
            .map(|(z, p)| (z, p.clone()))
            .collect();
        for (zxid, payload) in txns {
            if let Err(e) = self.replica.apply(zxid, &payload) {
                error!(zxid = %zxid, error = %e, "state machine diverged; stopping");
                return Err(Fatal(e));
            }
            self.applied = zxid;
            self.snapshots.applied(payload.len());
        }
        if self.applied != through {
            return Err(Fatal(format!(
                "asked to deliver through {through}, but only {} is logged",
                self.applied
            )));
        }
        let done = std::mem::take(&mut self.replica.completed);
        self.frontend.on_applied(done, &self.replica);
        if self
            .snapshots
            .due(self.replica.tree.snapshot_bytes_estimate())
        {
            self.snapshots.taken();
            let (zxid, state) = (self.applied, self.replica.freeze());
            self.out
                .push_back(ServerOutput::WriteSnapshot { zxid, state });
        }
        Ok(())
    }
}
