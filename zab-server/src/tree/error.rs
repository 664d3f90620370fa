//! The divergence an `apply` can detect (what stops the node). What a
//! rejected request answers is zab-proto's [`ErrorCode`](zab_proto::ErrorCode),
//! the one vocabulary of client-visible results.

use std::fmt;

use zab_core::Zxid;

use super::path::PathError;

/// A committed transaction that does not apply cleanly to this replica's tree.
///
/// The leader resolved and checked every transaction against the state it
/// applies to, so this can only mean the replica's tree differs from the
/// leader's (or a bug in `prepare`): the node must stop and resync rather than
/// serve from a tree that disagrees with its peers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplyError {
    pub zxid: Zxid,
    pub divergence: Divergence,
}

/// What exactly did not match, in `ApplyError`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Divergence {
    /// The zxid is not above the last applied one (a replay or reordering).
    StaleZxid {
        last_applied: Zxid,
    },
    InvalidPath {
        path: String,
        error: PathError,
    },
    NoNode {
        path: String,
    },
    NoParent {
        path: String,
    },
    NodeExists {
        path: String,
    },
    NotEmpty {
        path: String,
    },
    EphemeralParent {
        path: String,
    },
    /// The transaction's resolved version is not what this tree expects:
    /// for `SetData` the current version + 1, for `Check` the current version.
    Version {
        path: String,
        txn: i32,
        tree: i32,
    },
    /// A create's `parent_cversion` is not the parent's cversion + 1.
    ParentCversion {
        path: String,
        txn: i32,
        tree: i32,
    },
    SessionExists {
        session: u64,
    },
    NoSession {
        session: u64,
    },
    /// A structurally impossible transaction (the leader never builds one).
    Malformed {
        reason: &'static str,
    },
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "transaction {} does not apply: ", self.zxid)?;
        match &self.divergence {
            Divergence::StaleZxid { last_applied } => {
                write!(f, "the tree already applied through {last_applied}")?
            }
            Divergence::InvalidPath { path, error } => write!(f, "invalid path {path:?}: {error}")?,
            Divergence::NoNode { path } => write!(f, "{path} does not exist")?,
            Divergence::NoParent { path } => write!(f, "the parent of {path} does not exist")?,
            Divergence::NodeExists { path } => write!(f, "{path} already exists")?,
            Divergence::NotEmpty { path } => write!(f, "{path} still has children")?,
            Divergence::EphemeralParent { path } => write!(f, "the parent of {path} is ephemeral")?,
            Divergence::Version { path, txn, tree } => {
                write!(f, "{path}: transaction version {txn}, tree version {tree}")?
            }
            Divergence::ParentCversion { path, txn, tree } => write!(
                f,
                "the parent of {path}: transaction cversion {txn}, tree cversion {tree}"
            )?,
            Divergence::SessionExists { session } => {
                write!(f, "session {session:#x} is already open")?
            }
            Divergence::NoSession { session } => write!(f, "session {session:#x} is not open")?,
            Divergence::Malformed { reason } => write!(f, "{reason}")?,
        }
        write!(
            f,
            "; this replica's tree has diverged from the leader's \
             (stop, and resync this server from a snapshot)"
        )
    }
}

impl std::error::Error for ApplyError {}
