//! The driver loop: the one task that owns the protocol core. It feeds the
//! core ticks, peer messages and durability reports, and carries out its
//! actions: messages to peers, writes to the group-commit writer, DIFF and
//! SNAP streams, and delivery of committed transactions to the replicated
//! state machine.
//!
//! Transactions the core has logged but not yet delivered, and those since
//! the newest snapshot, are kept in memory (`window`): delivery and DIFF
//! streams read them from there instead of going back to disk. When a snapshot
//! is taken the window is trimmed and the core told (`Input::Compacted`), so a
//! follower further behind is sent a snapshot.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};
use zab_core::{Action, Input, Message, Node, PersistOp, Role, Zxid};

use crate::client::{ClientEvent, Frontend};
use crate::peer::Peers;
use crate::replica::Replica;
use crate::storage::group_commit::GroupCommit;

/// The replicated state machine the driver delivers committed transactions to.
pub trait Application: Send {
    /// Applies one committed transaction, in zxid order.
    fn apply(&mut self, zxid: Zxid, payload: &Bytes) -> Result<(), String>;
    /// The whole state, for a snapshot (to disk or to a lagging follower).
    fn snapshot(&self) -> Vec<u8>;
    /// Replaces the state with a snapshot's.
    fn restore(&mut self, data: &[u8]) -> Result<(), String>;
}

/// What the outside world can see of the driver (admin endpoint, tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub role: Role,
    pub applied: Zxid,
    pub last_logged: Zxid,
    pub znodes: usize,
    pub sessions: usize,
    pub connections: usize,
    pub stats: zab_core::Stats,
}

#[derive(Debug)]
pub struct Driver {
    node: Node,
    app: Replica,
    frontend: Frontend,
    gc: Arc<GroupCommit>,
    peers: Peers,
    /// Logged transactions after the newest snapshot, by zxid.
    window: BTreeMap<Zxid, Bytes>,
    applied: Zxid,
    snapshot_every: u64,
    since_snapshot: u64,
    status: watch::Sender<Status>,
}

impl Driver {
    /// `window` holds the recovered log records after the snapshot the
    /// application was restored from (`applied`).
    pub fn new(
        node: Node,
        app: Replica,
        frontend: Frontend,
        gc: Arc<GroupCommit>,
        peers: Peers,
        recovered: Vec<zab_core::Txn>,
        snapshot_every: u64,
    ) -> (Driver, watch::Receiver<Status>) {
        let applied = node.delivered();
        let status = Status {
            role: node.role(),
            applied,
            last_logged: node.history().last(),
            znodes: 0,
            sessions: 0,
            connections: 0,
            stats: node.stats(),
        };
        let (tx, rx) = watch::channel(status);
        let window = recovered.into_iter().map(|t| (t.zxid, t.payload)).collect();
        let driver = Driver {
            node,
            app,
            frontend,
            gc,
            peers,
            window,
            applied,
            snapshot_every: snapshot_every.max(1),
            since_snapshot: 0,
            status: tx,
        };
        (driver, rx)
    }

    /// Runs until the inputs channel closes or storage fails.
    pub async fn run(
        mut self,
        mut inputs: mpsc::Receiver<Input>,
        mut clients: mpsc::Receiver<ClientEvent>,
        tick: Duration,
    ) -> Result<(), String> {
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.act()?;
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    self.publish();
                    self.node.handle(Input::Tick);
                    let more = self.frontend.on_tick(self.node.role(), &self.app);
                    self.feed(more);
                }
                input = inputs.recv() => match input {
                    Some(input) => self.node.handle(input),
                    None => return Ok(()),
                },
                event = clients.recv() => match event {
                    Some(event) => {
                        let more = self.frontend.on_event(event, &self.app, self.applied);
                        self.feed(more);
                    }
                    None => return Ok(()),
                },
            }
            self.act()?;
        }
    }

    fn feed(&mut self, inputs: Vec<Input>) {
        for input in inputs {
            self.node.handle(input);
        }
    }

    /// Carries out every pending action, in order.
    fn act(&mut self) -> Result<(), String> {
        while let Some(action) = self.node.poll_action() {
            match action {
                Action::Send { to, msg } => self.peers.send(to, msg),
                Action::Persist { seq, op } => {
                    self.track(&op)?;
                    self.gc.submit(seq, op);
                }
                Action::SendDiff {
                    to,
                    epoch,
                    after,
                    through,
                } => {
                    let range = (
                        std::ops::Bound::Excluded(after),
                        std::ops::Bound::Included(through),
                    );
                    let txns = self
                        .window
                        .range(range)
                        .map(|(&zxid, payload)| zab_core::Txn {
                            zxid,
                            payload: payload.clone(),
                        });
                    for msg in zab_core::diff_stream(epoch, after, txns) {
                        self.peers.send(to, msg);
                    }
                }
                Action::SendSnapshot {
                    to,
                    epoch,
                    join,
                    zxid,
                } => {
                    debug_assert_eq!(zxid, self.applied, "snapshot must be of the applied state");
                    let data = Bytes::from(self.app.snapshot());
                    self.peers.send(
                        to,
                        Message::Snapshot {
                            epoch,
                            join,
                            zxid,
                            data,
                        },
                    );
                }
                Action::Deliver { through } => self.deliver(through)?,
                Action::RoleChanged(role) => {
                    info!(?role, "role changed");
                    self.frontend.on_role_changed(role);
                }
                Action::SyncDone { id, zxid } => {
                    self.frontend
                        .on_sync_done(id, zxid, &self.app, self.applied)
                }
                Action::Reject { id, .. } => self.frontend.on_reject(id, &self.app, self.applied),
                Action::Relayed { payload, .. } => self.frontend.on_relayed(payload),
            }
        }
        Ok(())
    }

    /// Mirrors the core's writes into the in-memory window.
    fn track(&mut self, op: &PersistOp) -> Result<(), String> {
        match op {
            PersistOp::Append(txn) => {
                self.window.insert(txn.zxid, txn.payload.clone());
            }
            PersistOp::Truncate { to } => {
                self.window.split_off(&Zxid(to.0 + 1));
            }
            PersistOp::InstallSnapshot { zxid, data } => {
                self.app.restore(data)?;
                self.window.clear();
                self.applied = *zxid;
                self.frontend.on_state_replaced();
            }
            PersistOp::AcceptedEpoch(_) | PersistOp::CurrentEpoch(_) => {}
        }
        Ok(())
    }

    fn deliver(&mut self, through: Zxid) -> Result<(), String> {
        let from = std::ops::Bound::Excluded(self.applied);
        let to = std::ops::Bound::Included(through);
        let txns: Vec<(Zxid, Bytes)> = self
            .window
            .range((from, to))
            .map(|(z, p)| (*z, p.clone()))
            .collect();
        for (zxid, payload) in txns {
            if let Err(e) = self.app.apply(zxid, &payload) {
                error!(zxid = %zxid, error = %e, "state machine diverged; stopping");
                return Err(e);
            }
            self.applied = zxid;
            self.since_snapshot += 1;
        }
        if self.applied != through {
            return Err(format!(
                "asked to deliver through {through}, but only {} is logged",
                self.applied
            ));
        }
        let done = std::mem::take(&mut self.app.completed);
        let more = self.frontend.on_applied(done, &self.app);
        self.feed(more);
        if self.since_snapshot >= self.snapshot_every {
            self.take_snapshot();
        }
        Ok(())
    }

    /// Snapshots the applied state on a blocking thread, then trims the window.
    fn take_snapshot(&mut self) {
        self.since_snapshot = 0;
        let zxid = self.applied;
        let content = self.app.snapshot();
        let writer = self.gc.snapshot_writer();
        let gc = self.gc.clone();
        tokio::task::spawn_blocking(move || match writer.write(zxid, &content) {
            Ok(meta) => gc.adopt_snapshot(meta),
            Err(e) => warn!(zxid = %zxid, error = %e, "snapshot failed; the log is kept"),
        });
        // Followers behind this point get a snapshot instead of a DIFF.
        self.window = self.window.split_off(&Zxid(zxid.0 + 1));
        self.node.handle(Input::Compacted { through: zxid });
    }

    /// Publishes the status for the admin endpoint (once per tick: counting
    /// sessions is not free).
    fn publish(&self) {
        let status = Status {
            role: self.node.role(),
            applied: self.applied,
            last_logged: self.node.history().last(),
            znodes: self.app.tree.node_count(),
            sessions: self.app.tree.sessions().len(),
            connections: self.frontend.connections(),
            stats: self.node.stats(),
        };
        self.status.send_if_modified(|s| {
            let changed = *s != status;
            *s = status;
            changed
        });
    }
}
