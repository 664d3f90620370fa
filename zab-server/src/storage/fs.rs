//! The file operations storage needs, behind a trait so crash tests can run the
//! same code over a fault-injecting in-memory file system (`storage::sim_fs`).
//!
//! Only what the formats use: positional writes, `fdatasync`, truncation,
//! whole-file reads, atomic rename, and directory fsync (without which a newly
//! created or renamed file can vanish in a crash).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

/// A directory-level file system.
pub trait Fs: Send + Sync + std::fmt::Debug {
    /// Opens `path` for writing, creating it (empty) if missing.
    fn open(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// Creates `path` empty, replacing any file there.
    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// The whole content of `path`.
    fn read(&self, path: &Path) -> io::Result<Bytes>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// File names (not paths) in `dir`, in no particular order.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Makes creations, renames and removals in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
}

/// An open file. (`len` without `is_empty`: an empty file is not a special
/// case anywhere in storage.)
#[allow(clippy::len_without_is_empty)]
pub trait FsFile: Send + std::fmt::Debug {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// `fdatasync`: the file's data (and size) are durable when this returns Ok.
    fn sync_data(&mut self) -> io::Result<()>;
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    fn len(&self) -> io::Result<u64>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

impl RealFs {
    pub fn shared() -> Arc<dyn Fs> {
        Arc::new(RealFs)
    }
}

impl Fs for RealFs {
    fn open(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        Ok(Box::new(RealFile(file)))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(RealFile(file)))
    }

    fn read(&self, path: &Path) -> io::Result<Bytes> {
        // A plain read, not a memory map: a mapped page that cannot be read
        // (a bad sector) or allocated (a hole on a full tmpfs) kills the
        // process with SIGBUS, where read(2) returns an error we can report.
        fs::read(path).map(Bytes::from)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }
}

#[derive(Debug)]
struct RealFile(File);

impl FsFile for RealFile {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(&self.0, data, offset)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
}
