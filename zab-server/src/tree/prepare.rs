//! Turning a client request into a resolved transaction, checked against
//! the tree *plus* the transactions proposed but not yet applied
//! (`PendingChanges`, ZooKeeper's `outstandingChanges`).
//!
//! In production every replica calls [`DataTree::prepare`] at apply time
//! with an empty overlay (see `replica.rs`); the overlay is unused outside
//! tests, kept for a leader-side pipeline. The driving loop such a leader
//! would run:
//!
//! ```text
//! match tree.prepare(&pending, session, &request) {
//!     Ok(txn) => { pending.push(&tree, &txn); propose(txn) }
//!     Err(rejected) => { pending.push(&tree, &rejected.to_txn()); propose(rejected.to_txn()) }
//!                       // or answer at once when the session has nothing in flight
//! }
//! on every committed transaction this leader proposed, in order:
//!     tree.apply(zxid, time_ms, &txn); pending.retire_oldest();
//! on any role change: pending.clear()
//! ```
//!
//! Invariants the caller keeps: every transaction the leader proposes is
//! pushed, in proposal order, and retired once applied; a new leader applies
//! its whole initial history before its first `prepare`.

use std::collections::{BTreeSet, HashMap, VecDeque};

use bytes::Bytes;

use super::data_tree::DataTree;
use super::path::{self, ROOT};
use super::txn::Txn;
use super::znode::{NodeKind, TTL_MS_MAX};
use zab_proto::ErrorCode;

/// The largest node data accepted, in bytes (ZooKeeper's default
/// `jute.maxbuffer` is about this; the frame limit bounds it too).
pub const DATA_BYTES_MAX: usize = 1024 * 1024;

/// The expected version that matches any version.
pub const ANY_VERSION: i32 = -1;

/// A write as a client (or the leader itself) asks for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Opens the session given to `prepare` (its id chosen by the leader).
    CreateSession {
        timeout_ms: u32,
    },
    /// Closes the session given to `prepare`, removing its ephemerals.
    CloseSession,
    /// `kind: Ephemeral` makes the node owned by the requesting session.
    /// `sequential` appends the parent's create counter to `path`.
    Create {
        path: String,
        data: Bytes,
        kind: NodeKind,
        sequential: bool,
    },
    Delete {
        path: String,
        version: i32,
    },
    SetData {
        path: String,
        data: Bytes,
        version: i32,
    },
    /// Fails with BadVersion unless the node's version is `version` (or it is -1).
    Check {
        path: String,
        version: i32,
    },
    /// All or nothing, at one zxid; ops: Create, Delete, SetData, Check.
    Multi(Vec<Request>),
    /// The leader's removal of a candidate from `expired_candidates`.
    /// Refused if anything about the node is in flight (it will be looked at
    /// again on the next sweep). Not tied to a session.
    DeleteExpired {
        path: String,
    },
}

/// Why `prepare` refused a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// A single request (or a whole multi, e.g. for an expired session).
    Op(ErrorCode),
    /// The op at `failed_op` of a multi of `op_count` ops failed with `code`.
    Multi {
        failed_op: usize,
        code: ErrorCode,
        op_count: usize,
    },
}

impl Rejected {
    /// The error to report for the request as a whole.
    pub fn code(&self) -> ErrorCode {
        match self {
            Rejected::Op(code) | Rejected::Multi { code, .. } => *code,
        }
    }

    /// The per-op results of a failed multi (REFERENCE §3): `Ok` before the
    /// failing op, its own code, `RuntimeInconsistency` after it. For a single
    /// request, its code alone.
    pub fn op_results(&self) -> Vec<ErrorCode> {
        match *self {
            Rejected::Op(code) => vec![code],
            Rejected::Multi {
                failed_op,
                code,
                op_count,
            } => (0..op_count)
                .map(|i| match i.cmp(&failed_op) {
                    std::cmp::Ordering::Less => ErrorCode::Ok,
                    std::cmp::Ordering::Equal => code,
                    std::cmp::Ordering::Greater => ErrorCode::RuntimeInconsistency,
                })
                .collect(),
        }
    }

    /// The transaction that orders this failure after the session's earlier
    /// writes, if the leader chooses to propose it (ZooKeeper always does):
    /// `Error`, or a `Multi` of `Error`s that applies as exactly `op_results`.
    pub fn to_txn(&self) -> Txn {
        match self {
            Rejected::Op(code) => Txn::Error { code: *code },
            Rejected::Multi { .. } => Txn::Multi(
                self.op_results()
                    .into_iter()
                    .map(|code| Txn::Error { code })
                    .collect(),
            ),
        }
    }
}

/// The effects of transactions proposed but not yet applied: for each path
/// they touch, the node's state after the latest of them (or its absence),
/// and likewise for sessions. A small overlay the size of the pipeline.
#[derive(Clone, Debug, Default)]
pub struct PendingChanges {
    nodes: HashMap<String, Slot<Option<Meta>>>,
    sessions: HashMap<u64, Slot<bool>>,
    queue: VecDeque<Entry>,
    next_id: u64,
}

impl PendingChanges {
    pub fn new() -> PendingChanges {
        PendingChanges::default()
    }

    /// Transactions pushed and not yet retired.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Forgets everything in flight (on a role change: the new leader's
    /// history decides what becomes of it).
    pub fn clear(&mut self) {
        *self = PendingChanges::default();
    }

    /// Records `txn`, just proposed, as the newest transaction in flight.
    /// `tree` must be the tree `txn` was prepared against (its applied
    /// transactions already retired from here).
    pub fn push(&mut self, tree: &DataTree, txn: &Txn) {
        let id = self.next_id;
        self.next_id += 1;
        let mut view = View::new(tree, self);
        view.effect(txn);
        let View {
            nodes, sessions, ..
        } = view;
        let mut entry = Entry {
            id,
            paths: Vec::with_capacity(nodes.len()),
            sessions: Vec::with_capacity(sessions.len()),
        };
        for (path, value) in nodes {
            entry.paths.push(path.clone());
            self.nodes.insert(path, Slot { writer: id, value });
        }
        for (session, open) in sessions {
            entry.sessions.push(session);
            self.sessions.insert(
                session,
                Slot {
                    writer: id,
                    value: open,
                },
            );
        }
        self.queue.push_back(entry);
    }

    /// Drops the oldest transaction in flight, which the tree has just
    /// applied. Its effects stay visible where a later one overwrote them.
    /// Returns false if nothing was in flight (a caller bug worth a log line).
    pub fn retire_oldest(&mut self) -> bool {
        let Some(entry) = self.queue.pop_front() else {
            return false;
        };
        for path in entry.paths {
            if self
                .nodes
                .get(&path)
                .is_some_and(|slot| slot.writer == entry.id)
            {
                self.nodes.remove(&path);
            }
        }
        for session in entry.sessions {
            if self
                .sessions
                .get(&session)
                .is_some_and(|slot| slot.writer == entry.id)
            {
                self.sessions.remove(&session);
            }
        }
        true
    }
}

#[derive(Clone, Debug)]
struct Slot<T> {
    /// The id of the newest pending transaction that set this value.
    writer: u64,
    value: T,
}

#[derive(Clone, Debug)]
struct Entry {
    id: u64,
    paths: Vec<String>,
    sessions: Vec<u64>,
}

/// What validation needs to know about a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Meta {
    version: i32,
    cversion: i32,
    child_creates: i32,
    num_children: usize,
    ephemeral_owner: u64,
    kind: NodeKind,
}

impl DataTree {
    /// Checks `request` from `session` against this tree and the changes in
    /// flight, and resolves it into the transaction to propose. Pure: record
    /// the result with `PendingChanges::push` once it is proposed.
    pub fn prepare(
        &self,
        pending: &PendingChanges,
        session: u64,
        request: &Request,
    ) -> Result<Txn, Rejected> {
        let mut view = View::new(self, pending);
        match request {
            Request::CreateSession { timeout_ms } => {
                if session == 0 || view.session_open(session) {
                    return Err(Rejected::Op(ErrorCode::BadArguments));
                }
                Ok(Txn::CreateSession {
                    session,
                    timeout_ms: *timeout_ms,
                })
            }
            Request::CloseSession => {
                if !view.session_open(session) {
                    return Err(Rejected::Op(ErrorCode::SessionExpired));
                }
                Ok(Txn::CloseSession { session })
            }
            Request::DeleteExpired { path } => view.delete_expired(path).map_err(Rejected::Op),
            Request::Multi(ops) => {
                if !view.session_open(session) {
                    return Err(Rejected::Op(ErrorCode::SessionExpired));
                }
                let mut txns = Vec::with_capacity(ops.len());
                for (i, op) in ops.iter().enumerate() {
                    let fail = |code| Rejected::Multi {
                        failed_op: i,
                        code,
                        op_count: ops.len(),
                    };
                    let txn = view.op(session, op).map_err(fail)?;
                    // Later ops see this one's effects.
                    view.effect(&txn);
                    txns.push(txn);
                }
                Ok(Txn::Multi(txns))
            }
            op => {
                if !view.session_open(session) {
                    return Err(Rejected::Op(ErrorCode::SessionExpired));
                }
                view.op(session, op).map_err(Rejected::Op)
            }
        }
    }
}

/// The tree as the next transaction will find it: the tree, then the pending
/// overlay, then (within a multi, or while pushing) a local overlay.
struct View<'a> {
    tree: &'a DataTree,
    pending: &'a PendingChanges,
    nodes: HashMap<String, Option<Meta>>,
    sessions: HashMap<u64, bool>,
}

impl<'a> View<'a> {
    fn new(tree: &'a DataTree, pending: &'a PendingChanges) -> View<'a> {
        View {
            tree,
            pending,
            nodes: HashMap::new(),
            sessions: HashMap::new(),
        }
    }

    fn node(&self, path: &str) -> Option<Meta> {
        if let Some(local) = self.nodes.get(path) {
            return *local;
        }
        if let Some(slot) = self.pending.nodes.get(path) {
            return slot.value;
        }
        self.tree.nodes.get(path).map(|n| Meta {
            version: n.version,
            cversion: n.cversion,
            child_creates: n.child_creates,
            num_children: n.children.len(),
            ephemeral_owner: n.ephemeral_owner(),
            kind: n.kind(),
        })
    }

    fn session_open(&self, session: u64) -> bool {
        if let Some(&open) = self.sessions.get(&session) {
            return open;
        }
        if let Some(slot) = self.pending.sessions.get(&session) {
            return slot.value;
        }
        self.tree.sessions.contains_key(&session)
    }

    /// The paths `session` owns in this view.
    fn ephemerals_of(&self, session: u64) -> BTreeSet<String> {
        let tree = self.tree.ephemerals.get(&session).into_iter().flatten();
        let pending = self.pending.nodes.keys();
        let local = self.nodes.keys();
        tree.chain(pending)
            .chain(local)
            .filter(|p| self.node(p).is_some_and(|m| m.ephemeral_owner == session))
            .cloned()
            .collect()
    }

    // ---- validation, one op ----

    fn op(&self, session: u64, op: &Request) -> Result<Txn, ErrorCode> {
        match op {
            Request::Create {
                path,
                data,
                kind,
                sequential,
            } => self.create(session, path, data, *kind, *sequential),
            Request::Delete { path, version } => {
                if path == ROOT {
                    return Err(ErrorCode::BadArguments);
                }
                let node = self.existing(path)?;
                check_version(node, *version)?;
                if node.num_children > 0 {
                    return Err(ErrorCode::NotEmpty);
                }
                Ok(Txn::Delete { path: path.clone() })
            }
            Request::SetData {
                path,
                data,
                version,
            } => {
                if data.len() > DATA_BYTES_MAX {
                    return Err(ErrorCode::BadArguments);
                }
                let node = self.existing(path)?;
                check_version(node, *version)?;
                Ok(Txn::SetData {
                    path: path.clone(),
                    data: data.clone(),
                    version: node.version.wrapping_add(1),
                })
            }
            Request::Check { path, version } => {
                let node = self.existing(path)?;
                check_version(node, *version)?;
                Ok(Txn::Check {
                    path: path.clone(),
                    version: node.version,
                })
            }
            Request::CreateSession { .. }
            | Request::CloseSession
            | Request::Multi(_)
            | Request::DeleteExpired { .. } => Err(ErrorCode::BadArguments),
        }
    }

    /// ZooKeeper's order of checks (PrepRequestProcessor): arguments, path,
    /// parent, name, existence, ephemeral parent.
    fn create(
        &self,
        session: u64,
        path: &str,
        data: &Bytes,
        kind: NodeKind,
        sequential: bool,
    ) -> Result<Txn, ErrorCode> {
        let kind_ok = match kind {
            NodeKind::Ttl { ttl_ms } => (1..=TTL_MS_MAX).contains(&ttl_ms),
            NodeKind::Container => !sequential,
            NodeKind::Ephemeral => session != 0,
            NodeKind::Persistent => true,
        };
        if !kind_ok || data.len() > DATA_BYTES_MAX {
            return Err(ErrorCode::BadArguments);
        }
        let valid = if sequential {
            path::validate_sequential_prefix(path)
        } else {
            path::validate(path)
        };
        valid.map_err(|_| ErrorCode::BadArguments)?;
        if !sequential && path == ROOT {
            return Err(ErrorCode::NodeExists);
        }
        // The parent of the final name (for a sequential prefix such as `/`
        // or `/queue/`, everything before the last slash).
        let parent_path = match path.rfind('/') {
            Some(0) => ROOT,
            Some(slash) => &path[..slash],
            None => return Err(ErrorCode::BadArguments),
        };
        let parent = self.node(parent_path).ok_or(ErrorCode::NoNode)?;
        let path = if sequential {
            if parent.child_creates < 0 {
                // The 32-bit counter wrapped: refuse rather than hand out
                // names that sort before every earlier one.
                return Err(ErrorCode::BadArguments);
            }
            format!(
                "{path}{:0width$}",
                parent.child_creates,
                width = path::SEQUENCE_DIGITS
            )
        } else {
            path.to_owned()
        };
        if self.node(&path).is_some() {
            return Err(ErrorCode::NodeExists);
        }
        if parent.kind == NodeKind::Ephemeral {
            return Err(ErrorCode::NoChildrenForEphemerals);
        }
        Ok(Txn::Create {
            path,
            data: data.clone(),
            ephemeral_owner: if kind == NodeKind::Ephemeral {
                session
            } else {
                0
            },
            kind,
            parent_cversion: parent.cversion.wrapping_add(1),
        })
    }

    fn delete_expired(&self, path: &str) -> Result<Txn, ErrorCode> {
        let node = self.existing(path)?;
        if !matches!(node.kind, NodeKind::Container | NodeKind::Ttl { .. }) {
            return Err(ErrorCode::BadArguments);
        }
        if node.num_children > 0 {
            return Err(ErrorCode::NotEmpty);
        }
        if self.pending.nodes.contains_key(path) {
            // Created, changed or given a child since the sweep looked.
            return Err(ErrorCode::BadVersion);
        }
        Ok(Txn::Delete {
            path: path.to_owned(),
        })
    }

    fn existing(&self, path: &str) -> Result<Meta, ErrorCode> {
        path::validate(path).map_err(|_| ErrorCode::BadArguments)?;
        self.node(path).ok_or(ErrorCode::NoNode)
    }

    // ---- effects ----

    /// Records in the local overlay what `txn` does, as `DataTree::apply`
    /// will. `txn` was prepared against this view, so it fits; if it does not,
    /// this does what it can (no panics).
    fn effect(&mut self, txn: &Txn) {
        match txn {
            Txn::CreateSession { session, .. } => {
                self.sessions.insert(*session, true);
            }
            Txn::CloseSession { session } => {
                for path in self.ephemerals_of(*session) {
                    self.remove(&path);
                }
                self.sessions.insert(*session, false);
            }
            Txn::Create {
                path,
                ephemeral_owner,
                kind,
                parent_cversion,
                ..
            } => {
                let meta = Meta {
                    version: 0,
                    cversion: 0,
                    child_creates: 0,
                    num_children: 0,
                    ephemeral_owner: *ephemeral_owner,
                    kind: *kind,
                };
                self.nodes.insert(path.clone(), Some(meta));
                if let Some((parent_path, _)) = path::split(path) {
                    self.update(parent_path, |p| {
                        p.cversion = *parent_cversion;
                        p.child_creates = p.child_creates.wrapping_add(1);
                        p.num_children += 1;
                    });
                }
            }
            Txn::Delete { path } => self.remove(path),
            Txn::SetData { path, version, .. } => self.update(path, |m| m.version = *version),
            Txn::Multi(ops) => {
                for op in ops {
                    self.effect(op);
                }
            }
            Txn::Check { .. } | Txn::Error { .. } | Txn::Noop => {}
        }
    }

    fn remove(&mut self, path: &str) {
        self.nodes.insert(path.to_owned(), None);
        if let Some((parent_path, _)) = path::split(path) {
            self.update(parent_path, |p| {
                p.cversion = p.cversion.wrapping_add(1);
                p.num_children = p.num_children.saturating_sub(1);
            });
        }
    }

    fn update(&mut self, path: &str, f: impl FnOnce(&mut Meta)) {
        if let Some(mut meta) = self.node(path) {
            f(&mut meta);
            self.nodes.insert(path.to_owned(), Some(meta));
        }
    }
}

fn check_version(node: Meta, expected: i32) -> Result<(), ErrorCode> {
    if expected == ANY_VERSION || expected == node.version {
        Ok(())
    } else {
        Err(ErrorCode::BadVersion)
    }
}

#[cfg(test)]
mod tests;
