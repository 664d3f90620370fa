//! Storage errors. Every one is fatal to the node: the server stops with the
//! message rather than serve from a history it cannot trust.

use std::fmt;
use std::io;
use std::path::PathBuf;

use zab_core::Zxid;

#[derive(Debug)]
pub enum StorageError {
    /// An operating-system call failed.
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// A file's content fails a check: a damaged record, header or checksum.
    Corrupt {
        file: PathBuf,
        offset: u64,
        reason: String,
    },
    /// The log skips zxids or goes backwards (a missing segment, for one).
    Gap {
        file: PathBuf,
        last: Zxid,
        next: Zxid,
    },
    /// An epoch file is missing while the directory holds other state.
    MissingEpoch { file: PathBuf },
    /// A write or fsync failed earlier; nothing more is written, because the
    /// state of the failed write is unknown (an fsync is never retried).
    Failed { cause: String },
}

impl StorageError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
        source: io::Error,
    ) -> StorageError {
        StorageError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(
        file: impl Into<PathBuf>,
        offset: u64,
        reason: impl Into<String>,
    ) -> StorageError {
        StorageError::Corrupt {
            file: file.into(),
            offset,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::Io { op, path, source } => {
                write!(f, "{op} {} failed: {source}", path.display())
            }
            StorageError::Corrupt {
                file,
                offset,
                reason,
            } => write!(
                f,
                "{} is damaged at byte offset {offset}: {reason}; refusing to serve from it \
                 (restore the file or wipe this server's data directory and let it resync)",
                file.display()
            ),
            StorageError::Gap { file, last, next } => write!(
                f,
                "{}: zxid {next} follows {last}, leaving a gap (is a log segment missing?)",
                file.display()
            ),
            StorageError::MissingEpoch { file } => write!(
                f,
                "{} is missing although the data directory holds a log or snapshot; \
                 refusing to assume epoch 0",
                file.display()
            ),
            StorageError::Failed { cause } => {
                write!(f, "storage stopped after an earlier failure: {cause}")
            }
        }
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StorageError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, StorageError>;
