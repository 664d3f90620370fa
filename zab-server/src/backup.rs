//! Online backups and restores.
//!
//! A backup is the applied state frozen at one zxid, taken from a running
//! server without stopping it (the admin port's `GET /snapshot`): the
//! driver hands over a copy-on-write view between two inputs, and the view
//! is encoded on another thread. The file has the layout of a snapshot file
//! (`storage::snapshot_file`: magic, zxid, length, checksums), so damage is
//! found before anything is restored.
//!
//! `zab-server restore` turns a backup into the data directory of a server
//! of a new ensemble (every server gets the same one): the state installed
//! as the history's base, and both epoch files at the backup's epoch, so
//! the new ensemble's first leader starts a later epoch and its zxids
//! continue above the backup's. The restored state has no sessions: each
//! ended, its ephemeral nodes deleted, as if it had expired (one zxid
//! each, after the backup's, in its epoch). A client of
//! the old ensemble that resumed its session on the restored one would see
//! a state older than what it had seen, without being told; ending the
//! sessions tells it (SessionExpired). Every node is compared by
//! [`TreeDigest`]: `restore` prints the digest of what it restored, which
//! the new ensemble's `/digest` shows until its first write.
//!
//! A backup holds every node whatever its ACL, and the sessions' passwords:
//! keep it as carefully as the data directory (the admin port serves it
//! only with `admin_backups = true`).

use std::fmt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tokio::sync::oneshot;
use zab_core::{PersistOp, Zxid};

use crate::replica::{FrozenState, Replica};
use crate::server::Application;
use crate::storage::{snapshot_file, RealFs, StorageError, Store, StoreConfig};
use crate::tree::TreeDigest;

/// A request to the driver for the applied state and its zxid.
pub type FreezeRequest = oneshot::Sender<(Zxid, FrozenState)>;

/// What a backup holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    pub zxid: Zxid,
    pub znodes: usize,
    pub digest: TreeDigest,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "zxid {} ({} znodes), tree digest {}",
            self.zxid, self.znodes, self.digest
        )
    }
}

/// Why a backup could not be read or restored.
#[derive(Debug)]
pub enum BackupError {
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The file is damaged or not a backup.
    Damaged(StorageError),
    /// The checksums agree but the state does not load.
    BadState {
        path: PathBuf,
        reason: String,
    },
    /// A restore only writes into an empty or new directory.
    NotEmpty(PathBuf),
    Storage(StorageError),
}

impl fmt::Display for BackupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackupError::Read { path, error } => {
                write!(f, "cannot read {}: {error}", path.display())
            }
            BackupError::Damaged(e) => write!(f, "not an intact backup: {e}"),
            BackupError::BadState { path, reason } => {
                write!(
                    f,
                    "{} does not hold a loadable state: {reason}",
                    path.display()
                )
            }
            BackupError::NotEmpty(dir) => write!(
                f,
                "{} is not empty: restore into a new, empty data directory",
                dir.display()
            ),
            BackupError::Storage(e) => write!(f, "writing the data directory failed: {e}"),
        }
    }
}

impl std::error::Error for BackupError {}

/// The bytes of a backup of `state`, the applied state through `zxid`.
pub fn encode(zxid: Zxid, state: &FrozenState) -> Vec<u8> {
    snapshot_file::encode(0, zxid, &state.encode())
}

/// Reads and checks the backup at `path`: its checksums, and that its state
/// loads; returns what it holds and its state's bytes.
pub fn verify(path: &Path) -> Result<(Summary, Bytes), BackupError> {
    let data = std::fs::read(path).map_err(|error| BackupError::Read {
        path: path.to_owned(),
        error,
    })?;
    let (_, zxid, content) =
        snapshot_file::decode(path, Bytes::from(data)).map_err(BackupError::Damaged)?;
    let mut replica = Replica::new();
    replica
        .restore(&content)
        .map_err(|reason| BackupError::BadState {
            path: path.to_owned(),
            reason,
        })?;
    let frozen = replica.freeze();
    let summary = Summary {
        zxid,
        znodes: frozen.node_count(),
        digest: frozen.digest(),
    };
    Ok((summary, content))
}

/// Makes `data_dir` (new or empty) the data directory of a server of a new
/// ensemble restored from the backup at `from`; what it holds (sessions
/// ended, see the module documentation).
pub fn restore(from: &Path, data_dir: &Path) -> Result<Summary, BackupError> {
    let (backup, content) = verify(from)?;
    let bad = |reason| BackupError::BadState {
        path: from.to_owned(),
        reason,
    };
    let mut replica = Replica::new();
    replica.restore(&content).map_err(bad)?;
    let zxid = replica.end_every_session(backup.zxid).map_err(bad)?;
    let frozen = replica.freeze();
    let content = Bytes::from(frozen.encode());
    let summary = Summary {
        zxid,
        znodes: frozen.node_count(),
        digest: frozen.digest(),
    };
    match std::fs::read_dir(data_dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(BackupError::NotEmpty(data_dir.to_owned()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(BackupError::Read {
                path: data_dir.to_owned(),
                error,
            })
        }
    }
    let (mut store, _) = Store::open(RealFs::shared(), data_dir, StoreConfig::default())
        .map_err(BackupError::Storage)?;
    let epoch = summary.zxid.epoch();
    let ops = [
        PersistOp::InstallSnapshot {
            zxid: summary.zxid,
            data: content,
        },
        PersistOp::AcceptedEpoch(epoch),
        PersistOp::CurrentEpoch(epoch),
    ];
    for op in &ops {
        store.apply(op).map_err(BackupError::Storage)?;
    }
    store.sync().map_err(BackupError::Storage)?;
    Ok(summary)
}

#[cfg(test)]
mod tests;
