//! Turning a client request into a resolved transaction (sequential names,
//! version checks, errors), checked against the tree as this replica has it.
//!
//! Every replica calls [`DataTree::prepare`] at apply time, on the command
//! it is applying (`replica.rs`): the log holds commands, and all replicas
//! resolve the same commands against the same state. Within a multi, later
//! ops see earlier ones' effects through a local overlay. A leader-side
//! pipeline (resolving before proposing, which needs the effects of
//! transactions still in flight) is issue work, not code: an earlier
//! overlay for it was never used and was removed.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use zab_proto::{Acl, Perms};

use super::data_tree::DataTree;
use super::path::{self, ROOT};
use super::txn::Txn;
use super::znode::{open_acl, NodeKind, TTL_MS_MAX};
use crate::acl::{self, AclRef, Caller};
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
    /// `sequential` appends the parent's create counter to `path`. `acl`
    /// as asked (`None`: the open ACL); resolved against the caller here.
    Create {
        path: String,
        data: Bytes,
        kind: NodeKind,
        sequential: bool,
        acl: Option<Vec<Acl>>,
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
    /// Replaces the node's ACL if its aversion is `version` (or -1).
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
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

/// What validation needs to know about a node.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Meta {
    version: i32,
    cversion: i32,
    aversion: i32,
    child_creates: i32,
    num_children: usize,
    ephemeral_owner: u64,
    kind: NodeKind,
    acl: AclRef,
}

impl DataTree {
    /// [`DataTree::prepare_as`] for a caller every ACL lets through (the
    /// super user): the tree's own tests, and requests no client made.
    pub fn prepare(&self, session: u64, request: &Request) -> Result<Txn, Rejected> {
        let superuser = Caller {
            superuser: true,
            ..Caller::default()
        };
        self.prepare_as(session, &superuser, request)
    }

    /// Checks `request` from `session`, made by `caller`, against this tree
    /// (ACLs included) and resolves it into the transaction to apply. Pure.
    pub fn prepare_as(
        &self,
        session: u64,
        caller: &Caller,
        request: &Request,
    ) -> Result<Txn, Rejected> {
        let mut view = View::new(self, caller);
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
                    if matches!(op, Request::SetAcl { .. }) {
                        return Err(fail(ErrorCode::BadArguments));
                    }
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

/// The tree as the next op will find it: the tree, then (within a multi)
/// a local overlay of the earlier ops' effects.
struct View<'a> {
    tree: &'a DataTree,
    caller: &'a Caller,
    nodes: HashMap<String, Option<Meta>>,
    sessions: HashMap<u64, bool>,
}

impl<'a> View<'a> {
    fn new(tree: &'a DataTree, caller: &'a Caller) -> View<'a> {
        View {
            tree,
            caller,
            nodes: HashMap::new(),
            sessions: HashMap::new(),
        }
    }

    fn node(&self, path: &str) -> Option<Meta> {
        if let Some(local) = self.nodes.get(path) {
            return local.clone();
        }
        self.tree.nodes.get(path).map(|n| Meta {
            version: n.version,
            cversion: n.child_counters().cversion,
            aversion: n.aversion,
            child_creates: n.child_counters().child_creates,
            num_children: n.children().len(),
            ephemeral_owner: n.ephemeral_owner(),
            kind: n.kind(),
            acl: n.acl.clone(),
        })
    }

    /// NoAuth unless the node's ACL grants the caller `wanted`.
    fn allowed(&self, node: &Meta, wanted: Perms) -> Result<(), ErrorCode> {
        if self.caller.permits(&node.acl, wanted) {
            Ok(())
        } else {
            Err(ErrorCode::NoAuth)
        }
    }

    fn session_open(&self, session: u64) -> bool {
        if let Some(&open) = self.sessions.get(&session) {
            return open;
        }
        self.tree.sessions.contains_key(&session)
    }

    /// The paths `session` owns in this view.
    fn ephemerals_of(&self, session: u64) -> BTreeSet<String> {
        let tree = self.tree.ephemerals.get(&session).into_iter().flatten();
        let local = self.nodes.keys();
        tree.chain(local)
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
                acl,
            } => self.create(session, path, data, (*kind, *sequential), acl.as_deref()),
            // ZooKeeper's order: the node, DELETE on its parent, version,
            // children.
            Request::Delete { path, version } => {
                if path == ROOT {
                    return Err(ErrorCode::BadArguments);
                }
                let node = self.existing(path)?;
                if let Some((parent_path, _)) = path::split(path) {
                    let parent = self.node(parent_path).ok_or(ErrorCode::NoNode)?;
                    self.allowed(&parent, Perms::DELETE)?;
                }
                check_version(&node, *version)?;
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
                self.allowed(&node, Perms::WRITE)?;
                check_version(&node, *version)?;
                Ok(Txn::SetData {
                    path: path.clone(),
                    data: data.clone(),
                    version: node.version.wrapping_add(1),
                })
            }
            Request::Check { path, version } => {
                let node = self.existing(path)?;
                self.allowed(&node, Perms::READ)?;
                check_version(&node, *version)?;
                Ok(Txn::Check {
                    path: path.clone(),
                    version: node.version,
                })
            }
            // ZooKeeper's order: the ACL asked for, the node, ADMIN, aversion.
            Request::SetAcl { path, acl, version } => {
                let acl = acl::resolve(acl, self.caller)?;
                let node = self.existing(path)?;
                self.allowed(&node, Perms::ADMIN)?;
                if *version != ANY_VERSION && *version != node.aversion {
                    return Err(ErrorCode::BadVersion);
                }
                Ok(Txn::SetAcl {
                    path: path.clone(),
                    acl: Arc::new(acl),
                    aversion: node.aversion.wrapping_add(1),
                })
            }
            Request::CreateSession { .. }
            | Request::CloseSession
            | Request::Multi(_)
            | Request::DeleteExpired { .. } => Err(ErrorCode::BadArguments),
        }
    }

    /// ZooKeeper's order of checks (PrepRequestProcessor): arguments, path,
    /// ACL asked for, parent, CREATE on the parent, name, existence,
    /// ephemeral parent.
    fn create(
        &self,
        session: u64,
        path: &str,
        data: &Bytes,
        (kind, sequential): (NodeKind, bool),
        acl: Option<&[Acl]>,
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
        let acl = match acl {
            None => open_acl(),
            Some(asked) => Arc::new(acl::resolve(asked, self.caller)?),
        };
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
        self.allowed(&parent, Perms::CREATE)?;
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
            acl,
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
                acl,
                ..
            } => {
                let meta = Meta {
                    version: 0,
                    cversion: 0,
                    aversion: 0,
                    child_creates: 0,
                    num_children: 0,
                    ephemeral_owner: *ephemeral_owner,
                    kind: *kind,
                    acl: acl.clone(),
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
            Txn::SetAcl {
                path,
                acl,
                aversion,
            } => self.update(path, |m| {
                m.acl = acl.clone();
                m.aversion = *aversion;
            }),
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

fn check_version(node: &Meta, expected: i32) -> Result<(), ErrorCode> {
    if expected == ANY_VERSION || expected == node.version {
        Ok(())
    } else {
        Err(ErrorCode::BadVersion)
    }
}

#[cfg(test)]
mod acl_tests;
#[cfg(test)]
mod tests;
