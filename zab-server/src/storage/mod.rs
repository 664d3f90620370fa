//! Durable storage: the transaction log, snapshots and epoch files, and the
//! group-commit writer that reports durability back to the protocol core.
//!
//! The file-format code is synchronous and runs over the [`fs::Fs`] trait, so
//! crash tests drive it step by step over `sim_fs::SimFs`, which can lose,
//! keep, tear or corrupt whatever was not yet fsynced.
//!
//! Directory layout (one data directory per server):
//!
//! ```text
//! acceptedEpoch, currentEpoch        epoch files (text, checksummed)
//! snap.<gen>.<zxid>                  snapshots (header + checksummed content)
//! log.<gen>.<first zxid>             log segments (checksummed records)
//! standing                           durable mark, ensemble id, recovering flag
//! *.damaged                          damaged files kept aside for the operator
//! ```

pub mod epoch_file;
pub mod error;
pub mod fs;
pub mod group_commit;
#[cfg(feature = "defects")]
pub mod power_loss_fs;
pub mod record;
#[cfg(any(test, feature = "sim-fs"))]
pub mod sim_fs;
pub mod snapshot_file;
pub mod standing_file;
pub mod store;
pub mod txn_log;

use std::path::Path;

pub use error::{Result, StorageError};
pub use fs::{Fs, FsFile, RealFs};
pub use store::{Recovery, SnapshotWriter, Store, StoreConfig};

/// Suffix of files being written; never read, removed when found at start.
pub const TEMP_SUFFIX: &str = ".tmp";

/// Writes `name` in `dir` so that after a crash it holds either its old
/// content or `content`, never a mix: temp file, fdatasync, rename, directory
/// fsync.
pub(crate) fn write_atomically(fs: &dyn Fs, dir: &Path, name: &str, content: &[u8]) -> Result<()> {
    let tmp = dir.join(format!("{name}{TEMP_SUFFIX}"));
    let target = dir.join(name);
    let mut file = fs
        .create(&tmp)
        .map_err(|e| StorageError::io("create", &tmp, e))?;
    file.write_at(0, content)
        .map_err(|e| StorageError::io("write", &tmp, e))?;
    file.sync_data()
        .map_err(|e| StorageError::io("fdatasync", &tmp, e))?;
    drop(file);
    fs.rename(&tmp, &target)
        .map_err(|e| StorageError::io("rename", &tmp, e))?;
    fs.sync_dir(dir)
        .map_err(|e| StorageError::io("fsync directory", dir, e))
}
