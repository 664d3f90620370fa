//! `DataTree`: the replicated znode tree and its sessions, changed only by
//! applying committed transactions in zxid order.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use zab_core::Zxid;

use zab_proto::{ErrorCode, Stat};

use super::error::{ApplyError, Divergence};
use super::node_map::NodeMap;
use super::path::{self, ROOT};
use super::txn::Txn;
use super::znode::{open_acl, Node, NodeKind};
use crate::acl::AclRef;

/// The znode tree of one replica. Deterministic: the same transactions
/// applied in the same order give the same tree (and the same snapshot bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataTree {
    /// Every node by full path; the root is always present. Cheap to clone
    /// (see [`NodeMap`]), which is how a snapshot freezes it.
    pub(crate) nodes: NodeMap,
    /// Open sessions: id → negotiated timeout.
    pub(crate) sessions: HashMap<u64, u32>,
    /// Ephemeral paths by owning session (sessions without any are absent).
    pub(crate) ephemerals: HashMap<u64, BTreeSet<String>>,
    /// Containers and TTL nodes, the only candidates for removal by the leader.
    pub(crate) expirable: BTreeSet<String>,
    pub(crate) last_applied: Zxid,
    /// Bytes of paths, data and ACLs other than the open one
    /// ([`crate::acl::charge`]) in all nodes: what a data quota limits.
    pub(crate) data_bytes: u64,
    /// Ephemeral nodes in the tree (kept as nodes come and go, for metrics).
    pub(crate) ephemeral_count: usize,
    /// One shared allocation per distinct ACL.
    pub(crate) acls: AclInterner,
}

/// The distinct ACLs nodes hold (other than the open one, which
/// [`open_acl`] shares process-wide), so a million nodes with one ACL hold
/// one copy of it, as ZooKeeper's ACL cache does. An entry goes when the
/// last node holding it does. A cache, not state: trees compare equal
/// whatever it holds.
#[derive(Clone, Debug, Default)]
pub(crate) struct AclInterner {
    lists: HashSet<AclRef>,
    /// Entries after the last prune: the next prune is due at twice this.
    pruned_len: usize,
}

impl PartialEq for AclInterner {
    fn eq(&self, _: &AclInterner) -> bool {
        true
    }
}

impl Eq for AclInterner {}

impl AclInterner {
    /// The shared allocation for `acl`'s list.
    pub(crate) fn intern(&mut self, acl: &AclRef) -> AclRef {
        if crate::acl::is_open(acl) {
            return open_acl();
        }
        if let Some(known) = self.lists.get(&**acl) {
            return known.clone();
        }
        if self.lists.len() >= 2 * self.pruned_len.max(64) {
            self.prune();
        }
        self.lists.insert(acl.clone());
        acl.clone()
    }

    /// A node let go of `acl` (the caller holds the one other reference):
    /// drop the entry if nothing else holds it (frozen views still holding
    /// it keep it until a later prune).
    fn release(&mut self, acl: &AclRef) {
        if Arc::strong_count(acl) <= 2 {
            self.lists.remove(&**acl);
        }
    }

    /// Drops entries only the interner holds (ones a frozen view still
    /// held when their last node let go). Amortized: run when the set has
    /// doubled since the last time.
    fn prune(&mut self) {
        self.lists.retain(|acl| Arc::strong_count(acl) > 1);
        self.pruned_len = self.lists.len();
    }

    /// Distinct ACLs held (the open one not counted).
    pub(crate) fn len(&self) -> usize {
        self.lists.len()
    }
}

/// What applying one transaction did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The result to report to the client that asked (if any).
    pub outcome: Outcome,
    /// The changes, in order, for the watch manager.
    pub changes: Vec<Change>,
}

/// The result of one transaction, or of one op of a multi.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    SessionCreated,
    SessionClosed,
    /// `path` is the final name (sequential suffix included).
    Created {
        path: String,
        stat: Stat,
    },
    Deleted,
    DataSet {
        stat: Stat,
    },
    AclSet {
        stat: Stat,
    },
    Checked,
    /// One outcome per op. A failed multi gives only `Error`s: `Ok` before the
    /// failing op, its code, then `RuntimeInconsistency`.
    Multi(Vec<Outcome>),
    Error(ErrorCode),
    Noop,
}

/// One change to one path, as a watch manager needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub path: String,
    pub kind: ChangeKind,
    /// The ACL of the node that changed (of the node as it was, for a
    /// deletion): a recursive watch reports the change only to a watcher
    /// that may read it.
    pub acl: AclRef,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    Created,
    Deleted,
    DataChanged,
    ChildrenChanged,
}

pub type ApplyResult = Result<Applied, ApplyError>;

impl Default for DataTree {
    fn default() -> DataTree {
        DataTree::new()
    }
}

impl DataTree {
    /// A tree with only the root, before any transaction.
    pub fn new() -> DataTree {
        let mut nodes = NodeMap::new();
        nodes.insert(ROOT, Node::root());
        DataTree {
            nodes,
            sessions: HashMap::new(),
            ephemerals: HashMap::new(),
            expirable: BTreeSet::new(),
            last_applied: Zxid::ZERO,
            data_bytes: 1,
            ephemeral_count: 0,
            acls: AclInterner::default(),
        }
    }

    // ---- reads ----

    /// The node's data and stat.
    pub fn get(&self, path: &str) -> Option<(&[u8], Stat)> {
        self.nodes.get(path).map(|n| (&*n.data, n.stat()))
    }

    /// The node's ACL and stat.
    pub fn acl(&self, path: &str) -> Option<(&AclRef, Stat)> {
        self.nodes.get(path).map(|n| (&n.acl, n.stat()))
    }

    /// Distinct ACLs the tree's nodes hold, besides the open one.
    pub fn distinct_acls(&self) -> usize {
        self.acls.len()
    }

    /// The node's child names (last segments), sorted, and its stat.
    pub fn children(&self, path: &str) -> Option<(Vec<String>, Stat)> {
        let node = self.nodes.get(path)?;
        let names = node.children().iter().map(String::from).collect();
        Some((names, node.stat()))
    }

    /// One page of the node's child names, in order, after the name
    /// `after` ("" for the first page): at most `max` names (0: any number)
    /// whose encoded size (4 + length each) stays within `budget` bytes,
    /// but at least one if any follow. Also the stat, and whether more
    /// names follow.
    pub fn children_page(
        &self,
        path: &str,
        after: &str,
        max: usize,
        budget: usize,
    ) -> Option<(Vec<String>, Stat, bool)> {
        let node = self.nodes.get(path)?;
        let max = if max == 0 { usize::MAX } else { max };
        let mut names = Vec::new();
        let mut used = 0usize;
        let mut rest = node.children().after(after);
        let mut more = false;
        for name in rest.by_ref() {
            let cost = 4 + name.len();
            if names.len() == max || (!names.is_empty() && used + cost > budget) {
                more = true;
                break;
            }
            used += cost;
            names.push(String::from(name));
        }
        Some((names, node.stat(), more))
    }

    /// The node's stat, if it exists.
    pub fn exists(&self, path: &str) -> Option<Stat> {
        self.nodes.get(path).map(Node::stat)
    }

    /// The node's kind, if it exists.
    pub fn kind(&self, path: &str) -> Option<NodeKind> {
        self.nodes.get(path).map(Node::kind)
    }

    /// Ephemeral nodes in the tree, all sessions.
    pub fn ephemeral_count(&self) -> usize {
        self.ephemeral_count
    }

    /// The ephemeral paths `session` owns, sorted.
    pub fn ephemerals(&self, session: u64) -> Vec<String> {
        self.ephemerals
            .get(&session)
            .map(|paths| paths.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The ephemeral paths `session` owns that start with `prefix` (as a
    /// string), sorted.
    pub fn ephemerals_with_prefix(&self, session: u64, prefix: &str) -> Vec<String> {
        use std::ops::Bound::{Included, Unbounded};
        let Some(paths) = self.ephemerals.get(&session) else {
            return Vec::new();
        };
        paths
            .range::<str, _>((Included(prefix), Unbounded))
            .take_while(|p| p.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// How many nodes lie below `path` at any depth (not counting it), or
    /// None if it does not exist. O(1): kept as nodes come and go.
    pub fn descendant_count(&self, path: &str) -> Option<u64> {
        self.nodes.get(path).map(Node::descendants)
    }

    /// The open sessions and their timeouts, by session id.
    pub fn sessions(&self) -> Vec<(u64, u32)> {
        let mut out: Vec<(u64, u32)> = self.sessions.iter().map(|(&s, &t)| (s, t)).collect();
        out.sort_unstable();
        out
    }

    /// Open sessions, counted in O(1).
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// The session's timeout, if it is open.
    pub fn session_timeout_ms(&self, session: u64) -> Option<u32> {
        self.sessions.get(&session).copied()
    }

    /// Nodes in the tree, the root included.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Bytes of paths and data in all nodes (the root's path included).
    pub fn data_bytes(&self) -> u64 {
        self.data_bytes
    }

    /// About what a snapshot of this tree takes, in bytes, counted in O(1):
    /// what the snapshot policy weighs the log against.
    pub fn snapshot_bytes_estimate(&self) -> u64 {
        super::snapshot::encoded_bytes_estimate(
            self.node_count(),
            self.data_bytes,
            self.sessions.len(),
        )
    }

    /// The zxid of the last applied transaction (zero for a new tree).
    pub fn last_applied_zxid(&self) -> Zxid {
        self.last_applied
    }

    /// Containers whose last child is gone (they had at least one, so their
    /// cversion is positive, as ZooKeeper's ContainerManager requires) and TTL
    /// nodes with no children and unmodified for longer than their TTL, sorted. The leader
    /// turns each into a `Request::DeleteExpired`, which re-checks it against
    /// changes in flight.
    pub fn expired_candidates(&self, now_ms: i64) -> Vec<String> {
        self.expirable
            .iter()
            .filter(|path| {
                self.nodes.get(path.as_str()).is_some_and(|node| {
                    if !node.children().is_empty() {
                        return false;
                    }
                    match node.kind() {
                        NodeKind::Container => node.child_counters().cversion > 0,
                        NodeKind::Ttl { ttl_ms } => {
                            let idle_ms = i128::from(now_ms) - i128::from(node.mtime_ms);
                            idle_ms > i128::from(ttl_ms)
                        }
                        NodeKind::Persistent | NodeKind::Ephemeral => false,
                    }
                })
            })
            .cloned()
            .collect()
    }

    // ---- apply ----

    /// Applies the committed transaction `txn` at `zxid`, stamped `time_ms`
    /// by the leader. Total: an `Err` means this replica's tree differs from
    /// the one the leader checked the transaction against, and the node must
    /// stop. After an `Err` the tree may hold part of a multi: discard it (a
    /// restart rebuilds it from the snapshot and the log).
    pub fn apply(&mut self, zxid: Zxid, time_ms: i64, txn: &Txn) -> ApplyResult {
        if zxid <= self.last_applied {
            return Err(ApplyError {
                zxid,
                divergence: Divergence::StaleZxid {
                    last_applied: self.last_applied,
                },
            });
        }
        let mut changes = Vec::new();
        let mut at = At {
            zxid,
            time_ms,
            changes: &mut changes,
        };
        let outcome = self
            .apply_txn(&mut at, txn)
            .map_err(|divergence| ApplyError { zxid, divergence })?;
        self.last_applied = zxid;
        Ok(Applied { outcome, changes })
    }

    fn apply_txn(&mut self, at: &mut At<'_>, txn: &Txn) -> Result<Outcome, Divergence> {
        match txn {
            Txn::CreateSession {
                session,
                timeout_ms,
            } => {
                if *session == 0 {
                    return Err(Divergence::Malformed {
                        reason: "session id 0",
                    });
                }
                if self.sessions.contains_key(session) {
                    return Err(Divergence::SessionExists { session: *session });
                }
                self.sessions.insert(*session, *timeout_ms);
                Ok(Outcome::SessionCreated)
            }
            Txn::CloseSession { session } => {
                if self.sessions.remove(session).is_none() {
                    return Err(Divergence::NoSession { session: *session });
                }
                // Sorted order, so every replica reports the same changes.
                for path in self.ephemerals.remove(session).unwrap_or_default() {
                    self.delete(at, &path)?;
                }
                Ok(Outcome::SessionClosed)
            }
            Txn::Multi(ops) => self.apply_multi(at, ops),
            op => self.apply_op(at, op),
        }
    }

    fn apply_multi(&mut self, at: &mut At<'_>, ops: &[Txn]) -> Result<Outcome, Divergence> {
        let errors = ops
            .iter()
            .filter(|op| matches!(op, Txn::Error { .. }))
            .count();
        if errors > 0 {
            // A failed multi: nothing applies, the codes are the results.
            let outcomes = ops.iter().map(|op| match op {
                Txn::Error { code } => Some(Outcome::Error(*code)),
                _ => None,
            });
            return match outcomes.collect::<Option<Vec<_>>>() {
                Some(outcomes) => Ok(Outcome::Multi(outcomes)),
                None => Err(Divergence::Malformed {
                    reason: "a multi mixes error results and operations",
                }),
            };
        }
        let mut outcomes = Vec::with_capacity(ops.len());
        for op in ops {
            if !op.is_multi_op() {
                return Err(Divergence::Malformed {
                    reason: "transaction not allowed inside a multi",
                });
            }
            outcomes.push(self.apply_op(at, op)?);
        }
        Ok(Outcome::Multi(outcomes))
    }

    /// One op: anything but the session transactions and `Multi`.
    fn apply_op(&mut self, at: &mut At<'_>, op: &Txn) -> Result<Outcome, Divergence> {
        match op {
            Txn::Create {
                path,
                data,
                ephemeral_owner,
                kind,
                parent_cversion,
                acl,
            } => {
                let stat = self.create(
                    at,
                    path,
                    data,
                    (*ephemeral_owner, *kind),
                    *parent_cversion,
                    acl,
                )?;
                Ok(Outcome::Created {
                    path: path.clone(),
                    stat,
                })
            }
            Txn::Delete { path } => {
                valid_path(path)?;
                self.delete(at, path)?;
                Ok(Outcome::Deleted)
            }
            Txn::SetData {
                path,
                data,
                version,
            } => {
                let node = self.existing(path)?;
                let expected = node.version.wrapping_add(1);
                if *version != expected {
                    return Err(Divergence::Version {
                        path: path.clone(),
                        txn: *version,
                        tree: node.version,
                    });
                }
                let node = self.node_mut(path).ok_or_else(|| no_node(path))?;
                let old = node.data.len() as u64;
                node.data = owned(data);
                self.data_bytes = self.data_bytes - old + data.len() as u64;
                let node = self.node_mut(path).ok_or_else(|| no_node(path))?;
                node.version = *version;
                node.mzxid = at.zxid;
                node.mtime_ms = at.time_ms;
                let stat = node.stat();
                let acl = node.acl.clone();
                at.change(path, ChangeKind::DataChanged, acl);
                Ok(Outcome::DataSet { stat })
            }
            Txn::SetAcl {
                path,
                acl,
                aversion,
            } => {
                let node = self.existing(path)?;
                if *aversion != node.aversion.wrapping_add(1) {
                    return Err(Divergence::Version {
                        path: path.clone(),
                        txn: *aversion,
                        tree: node.aversion,
                    });
                }
                let acl = self.acls.intern(acl);
                let added = crate::acl::charge(&acl);
                let node = self.node_mut(path).ok_or_else(|| no_node(path))?;
                node.aversion = *aversion;
                let old = std::mem::replace(&mut node.acl, acl);
                let stat = node.stat();
                self.data_bytes = self.data_bytes - crate::acl::charge(&old) + added;
                self.acls.release(&old);
                Ok(Outcome::AclSet { stat })
            }
            Txn::Check { path, version } => {
                let node = self.existing(path)?;
                if node.version != *version {
                    return Err(Divergence::Version {
                        path: path.clone(),
                        txn: *version,
                        tree: node.version,
                    });
                }
                Ok(Outcome::Checked)
            }
            Txn::Error { code } => Ok(Outcome::Error(*code)),
            Txn::Noop => Ok(Outcome::Noop),
            Txn::CreateSession { .. } | Txn::CloseSession { .. } | Txn::Multi(_) => {
                Err(Divergence::Malformed {
                    reason: "transaction not allowed inside a multi",
                })
            }
        }
    }

    fn create(
        &mut self,
        at: &mut At<'_>,
        path: &str,
        data: &Bytes,
        (ephemeral_owner, kind): (u64, NodeKind),
        parent_cversion: i32,
        acl: &AclRef,
    ) -> Result<Stat, Divergence> {
        valid_path(path)?;
        let (parent_path, name) =
            path::split(path).ok_or_else(|| Divergence::NodeExists { path: ROOT.into() })?;
        self.check_kind(kind, ephemeral_owner)?;
        if self.nodes.contains_key(path) {
            return Err(Divergence::NodeExists { path: path.into() });
        }
        let parent = self
            .node_mut(parent_path)
            .ok_or_else(|| Divergence::NoParent { path: path.into() })?;
        if parent.is_ephemeral() {
            return Err(Divergence::EphemeralParent { path: path.into() });
        }
        let cversion = parent.child_counters().cversion;
        if parent_cversion != cversion.wrapping_add(1) {
            return Err(Divergence::ParentCversion {
                path: path.into(),
                txn: parent_cversion,
                tree: cversion,
            });
        }
        parent.add_child(name, at.zxid, parent_cversion);
        let parent_acl = parent.acl.clone();
        self.count_descendant(parent_path, true);

        let acl = self.acls.intern(acl);
        let node = Node::new(
            kind,
            ephemeral_owner,
            owned(data),
            at.zxid,
            at.time_ms,
            acl.clone(),
        );
        let stat = node.stat();
        if node.is_expirable() {
            self.expirable.insert(path.to_owned());
        }
        if ephemeral_owner != 0 {
            self.ephemeral_count += 1;
            self.ephemerals
                .entry(ephemeral_owner)
                .or_default()
                .insert(path.to_owned());
        }
        self.nodes.insert(path, node);
        self.data_bytes += (path.len() + data.len()) as u64 + crate::acl::charge(&acl);
        at.change(path, ChangeKind::Created, acl);
        at.change(parent_path, ChangeKind::ChildrenChanged, parent_acl);
        Ok(stat)
    }

    /// The kind and owner of a create agree, and the owner is open.
    fn check_kind(&self, kind: NodeKind, ephemeral_owner: u64) -> Result<(), Divergence> {
        let malformed = |reason| Err(Divergence::Malformed { reason });
        match kind {
            NodeKind::Ephemeral if ephemeral_owner == 0 => {
                malformed("an ephemeral create without an owner")
            }
            NodeKind::Ephemeral if !self.sessions.contains_key(&ephemeral_owner) => {
                Err(Divergence::NoSession {
                    session: ephemeral_owner,
                })
            }
            NodeKind::Ephemeral => Ok(()),
            _ if ephemeral_owner != 0 => malformed("an owner on a node that is not ephemeral"),
            NodeKind::Ttl { ttl_ms: 0 } => malformed("a TTL node with a zero TTL"),
            _ => Ok(()),
        }
    }

    /// Removes a childless non-root node; moves its parent's cversion and pzxid.
    fn delete(&mut self, at: &mut At<'_>, path: &str) -> Result<(), Divergence> {
        let (parent_path, name) = path::split(path).ok_or(Divergence::Malformed {
            reason: "a delete of the root",
        })?;
        let node = self.existing(path)?;
        if !node.children().is_empty() {
            return Err(Divergence::NotEmpty { path: path.into() });
        }
        let parent = self
            .node_mut(parent_path)
            .ok_or_else(|| Divergence::NoParent { path: path.into() })?;
        parent.remove_child(name, at.zxid);
        let parent_acl = parent.acl.clone();
        self.count_descendant(parent_path, false);
        let node = self.nodes.remove(path).ok_or_else(|| no_node(path))?;
        self.data_bytes -= (path.len() + node.data.len()) as u64 + crate::acl::charge(&node.acl);
        if node.is_expirable() {
            self.expirable.remove(path);
        }
        let owner = node.ephemeral_owner();
        if owner != 0 {
            self.ephemeral_count -= 1;
            if let Some(paths) = self.ephemerals.get_mut(&owner) {
                paths.remove(path);
                if paths.is_empty() {
                    self.ephemerals.remove(&owner);
                }
            }
        }
        let acl = node.acl.clone();
        drop(node);
        self.acls.release(&acl);
        at.change(path, ChangeKind::Deleted, acl);
        at.change(parent_path, ChangeKind::ChildrenChanged, parent_acl);
        Ok(())
    }

    fn existing(&self, path: &str) -> Result<&Node, Divergence> {
        self.nodes.get(path).ok_or_else(|| no_node(path))
    }

    /// Counts a node created or deleted below `parent` in `parent` and each
    /// of its ancestors (each copied first if a frozen view shares it, as
    /// the parent already is for its child list). One lookup per level:
    /// hashing the paths of every ancestor, which at the deepest legal path
    /// (4,096 bytes of one-letter segments) is a few MB, about what
    /// replicating and syncing one maximal node costs.
    pub(crate) fn count_descendant(&mut self, parent: &str, created: bool) {
        let mut at = Some(parent);
        while let Some(path) = at {
            if let Some(node) = self.nodes.get_mut(path) {
                node.count_descendant(created);
            }
            at = path::split(path).map(|(up, _)| up);
        }
    }

    /// The node at `path` to change in place, copied first if a frozen view
    /// (a snapshot being written) still shares it.
    pub(crate) fn node_mut(&mut self, path: &str) -> Option<&mut Node> {
        self.nodes.get_mut(path)
    }
}

/// The zxid and time a transaction applies at, and the changes it made so far.
struct At<'a> {
    zxid: Zxid,
    time_ms: i64,
    changes: &'a mut Vec<Change>,
}

impl At<'_> {
    fn change(&mut self, path: &str, kind: ChangeKind, acl: AclRef) {
        self.changes.push(Change {
            path: path.to_owned(),
            kind,
            acl,
        });
    }
}

/// A node's data in an allocation of its own. What a transaction carries is
/// a slice of a larger buffer (a command, a peer connection's read buffer);
/// a long-lived node holding such a slice would keep the whole buffer alive.
fn owned(data: &Bytes) -> Box<[u8]> {
    Box::from(&data[..])
}

fn valid_path(path: &str) -> Result<(), Divergence> {
    path::validate(path).map_err(|error| Divergence::InvalidPath {
        path: path.into(),
        error,
    })
}

fn no_node(path: &str) -> Divergence {
    Divergence::NoNode { path: path.into() }
}

#[cfg(test)]
mod tests;
