//! The replicated znode tree: a pure, deterministic state machine (no IO,
//! clocks or randomness) with two halves.
//!
//! - **Every replica** decodes each committed payload (`Txn::decode`) and
//!   applies it, strictly in zxid order: `DataTree::apply(zxid, time_ms, &txn)`.
//!   The zxid comes from the log record, not the payload (the core assigns it
//!   after the payload is built). `apply` returns the client's result and the
//!   ordered `Change`s for the watch manager. An `Err` is a divergence: stop.
//! - **Resolving a request.** `DataTree::prepare` turns a client request into
//!   a fully resolved transaction (sequential names, version checks, errors).
//!   Every replica calls it at apply time, on the command it applies, against
//!   its own tree (`replica.rs`): the log holds commands, not resolved
//!   transactions (docs/design.md).
//!
//! Semantics follow REFERENCE §3 and ZooKeeper, with these deliberate choices:
//! - `cversion` counts child creates *and* deletes (ephemeral removals
//!   included), as REFERENCE §3 says. ZooKeeper's code only counts creates
//!   (its `DataTree.deleteNode` moves pzxid, not cversion) and uses cversion as
//!   the sequential counter. We keep that counter separately
//!   (`child_creates`), so sequential names are exactly ZooKeeper's: the
//!   number of children ever created under the parent, never going back.
//! - Containers and TTL nodes report `ephemeral_owner == 0`; ZooKeeper encodes
//!   them as magic owner values. Use `DataTree::kind` to tell them apart.
//! - ACLs are ZooKeeper's (`crate::acl`); writes are checked in `prepare`
//!   against the caller the command records, so every replica agrees.
//! - Versions and cversions wrap at i32 like Java's; a sequential create
//!   under a parent whose 32-bit create counter wrapped is refused
//!   (BadArguments) rather than handed a name that sorts first.
//! - `apply` re-checks what the leader resolved (each new cversion and version
//!   is the old one plus one, nodes and sessions exist or do not) so a replica
//!   that diverged stops instead of silently drifting. A single transaction
//!   that fails a check changes nothing; a multi may be half-applied (discard
//!   the tree).

mod children;
mod data_tree;
mod digest;
mod error;
mod node_map;
pub mod path;
mod prepare;
mod snapshot;
mod txn;
mod wire;
mod znode;

#[cfg(test)]
mod replay_tests;

pub use data_tree::{Applied, ApplyResult, Change, ChangeKind, DataTree, Outcome};
pub use digest::TreeDigest;
pub use error::{ApplyError, Divergence};
pub use path::{PathError, PATH_BYTES_MAX};
pub use prepare::{Rejected, Request, ANY_VERSION, DATA_BYTES_MAX};
pub use snapshot::{FrozenTree, SnapshotDecodeError, SNAPSHOT_FORMAT_VERSION};
pub use txn::{Txn, TxnDecodeError, TxnHeader, TXN_FORMAT_VERSION};
pub use znode::{open_acl, NodeKind, TTL_MS_MAX};
