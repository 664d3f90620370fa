//! A test-only file system that keeps written data in process memory until
//! `sync_data`, so `kill -9` of the server behaves like a power cut: what was
//! not fsynced is gone. (With the real file system the kernel keeps unsynced
//! writes of a killed process, which hides durability bugs.)
//!
//! Enabled only in builds with the `defects` feature, by `ZAB_TEST_POWER_LOSS=1`.
//! Namespace operations (create, rename, remove) go to disk at once, as our
//! storage fsyncs the directory after each of them anyway.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::fs::{Fs, FsFile, RealFs};

/// Unsynced writes per file: (offset, bytes), in write order.
type Writes = HashMap<PathBuf, Vec<(u64, Vec<u8>)>>;
type Pending = Arc<Mutex<Writes>>;

#[derive(Debug, Default, Clone)]
pub struct PowerLossFs {
    pending: Pending,
}

impl PowerLossFs {
    pub fn shared() -> Arc<dyn Fs> {
        Arc::new(PowerLossFs::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Writes> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn overlay(data: &mut Vec<u8>, writes: &[(u64, Vec<u8>)]) {
    for (offset, bytes) in writes {
        let start = *offset as usize;
        let end = start + bytes.len();
        if data.len() < end {
            data.resize(end, 0);
        }
        data[start..end].copy_from_slice(bytes);
    }
}

impl Fs for PowerLossFs {
    fn open(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let real = RealFs.open(path)?;
        Ok(Box::new(LossyFile {
            path: path.to_path_buf(),
            real,
            pending: self.pending.clone(),
        }))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        self.lock().remove(path);
        let real = RealFs.create(path)?;
        Ok(Box::new(LossyFile {
            path: path.to_path_buf(),
            real,
            pending: self.pending.clone(),
        }))
    }

    fn read(&self, path: &Path) -> io::Result<Bytes> {
        let mut data = std::fs::read(path)?;
        if let Some(writes) = self.lock().get(path) {
            overlay(&mut data, writes);
        }
        Ok(Bytes::from(data))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        RealFs.rename(from, to)?;
        let mut p = self.lock();
        p.remove(to);
        if let Some(w) = p.remove(from) {
            p.insert(to.to_path_buf(), w);
        }
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.lock().remove(path);
        RealFs.remove(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        RealFs.list(dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        RealFs.sync_dir(dir)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        RealFs.create_dir_all(dir)
    }
}

#[derive(Debug)]
struct LossyFile {
    path: PathBuf,
    real: Box<dyn FsFile>,
    pending: Pending,
}

impl LossyFile {
    /// Writes what is pending for this file to the real file.
    fn flush(&mut self) -> io::Result<()> {
        let writes = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.path)
            .unwrap_or_default();
        for (offset, bytes) in writes {
            self.real.write_at(offset, &bytes)?;
        }
        Ok(())
    }
}

impl FsFile for LossyFile {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(self.path.clone())
            .or_default()
            .push((offset, data.to_vec()));
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.flush()?;
        self.real.sync_data()
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.flush()?;
        self.real.set_len(len)
    }

    fn len(&self) -> io::Result<u64> {
        let real = self.real.len()?;
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let end = pending
            .get(&self.path)
            .into_iter()
            .flatten()
            .map(|(o, b)| o + b.len() as u64)
            .max()
            .unwrap_or(0);
        Ok(real.max(end))
    }
}
