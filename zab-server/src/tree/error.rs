//! The tree's errors: ZooKeeper's client error codes (what a rejected request
//! answers) and the divergence an `apply` can detect (what stops the node).

use std::fmt;

use zab_core::Zxid;

use super::path::PathError;

/// A client-visible result code, numbered exactly as ZooKeeper's
/// `KeeperException.Code`, so replies and logs read the same as ZooKeeper's.
///
/// The client protocol crate (`zab-proto`) defines the same codes; the two
/// enums are to be unified into that crate once it lands. Until then keep the
/// numbers here and there identical.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Success. Appears only as the per-op result of the ops *before* the
    /// failing one in a failed multi (ZooKeeper reports them the same way).
    Ok = 0,
    SystemError = -1,
    /// Per-op result of the ops *after* the failing one in a failed multi.
    RuntimeInconsistency = -2,
    DataInconsistency = -3,
    ConnectionLoss = -4,
    MarshallingError = -5,
    Unimplemented = -6,
    OperationTimeout = -7,
    BadArguments = -8,
    UnknownSession = -12,
    NewConfigNoQuorum = -13,
    ReconfigInProgress = -14,
    ApiError = -100,
    NoNode = -101,
    NoAuth = -102,
    BadVersion = -103,
    NoChildrenForEphemerals = -108,
    NodeExists = -110,
    NotEmpty = -111,
    SessionExpired = -112,
    InvalidCallback = -113,
    InvalidAcl = -114,
    AuthFailed = -115,
    SessionMoved = -118,
    NotReadOnly = -119,
    EphemeralOnLocalSession = -120,
    NoWatcher = -121,
    RequestTimeout = -122,
    ReconfigDisabled = -123,
    SessionClosedRequireSaslAuth = -124,
    QuotaExceeded = -125,
    Throttled = -127,
}

impl ErrorCode {
    /// Every code, for lookups and tests.
    pub const ALL: [ErrorCode; 32] = [
        ErrorCode::Ok,
        ErrorCode::SystemError,
        ErrorCode::RuntimeInconsistency,
        ErrorCode::DataInconsistency,
        ErrorCode::ConnectionLoss,
        ErrorCode::MarshallingError,
        ErrorCode::Unimplemented,
        ErrorCode::OperationTimeout,
        ErrorCode::BadArguments,
        ErrorCode::UnknownSession,
        ErrorCode::NewConfigNoQuorum,
        ErrorCode::ReconfigInProgress,
        ErrorCode::ApiError,
        ErrorCode::NoNode,
        ErrorCode::NoAuth,
        ErrorCode::BadVersion,
        ErrorCode::NoChildrenForEphemerals,
        ErrorCode::NodeExists,
        ErrorCode::NotEmpty,
        ErrorCode::SessionExpired,
        ErrorCode::InvalidCallback,
        ErrorCode::InvalidAcl,
        ErrorCode::AuthFailed,
        ErrorCode::SessionMoved,
        ErrorCode::NotReadOnly,
        ErrorCode::EphemeralOnLocalSession,
        ErrorCode::NoWatcher,
        ErrorCode::RequestTimeout,
        ErrorCode::ReconfigDisabled,
        ErrorCode::SessionClosedRequireSaslAuth,
        ErrorCode::QuotaExceeded,
        ErrorCode::Throttled,
    ];

    /// The wire number (ZooKeeper's).
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The code with wire number `code`, if it is one we know.
    pub fn from_code(code: i32) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.code() == code)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?} ({})", self.code())
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_zookeepers() {
        let expected = [
            (ErrorCode::Ok, 0),
            (ErrorCode::RuntimeInconsistency, -2),
            (ErrorCode::BadArguments, -8),
            (ErrorCode::NoNode, -101),
            (ErrorCode::BadVersion, -103),
            (ErrorCode::NoChildrenForEphemerals, -108),
            (ErrorCode::NodeExists, -110),
            (ErrorCode::NotEmpty, -111),
            (ErrorCode::SessionExpired, -112),
            (ErrorCode::SessionMoved, -118),
            (ErrorCode::QuotaExceeded, -125),
            (ErrorCode::Throttled, -127),
        ];
        for (code, number) in expected {
            assert_eq!(code.code(), number, "{code:?}");
        }
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_code(code.code()), Some(code));
        }
        assert_eq!(ErrorCode::from_code(-126), None);
        assert_eq!(ErrorCode::from_code(1), None);
    }
}
