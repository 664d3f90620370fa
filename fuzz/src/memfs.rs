//! An in-memory [`Fs`] for the storage targets: files are shared buffers
//! (like inodes), so a handle opened before a rename or removal keeps
//! writing to the file it opened, as on a real file system. Every
//! operation succeeds; durability is not modelled (the targets only read
//! what storage recovers).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use zab_server::storage::{Fs, FsFile};

type Inode = Arc<Mutex<Vec<u8>>>;

/// A directory tree of files held in memory. Cloning shares it.
#[derive(Clone, Debug, Default)]
pub struct MemFs {
    files: Arc<Mutex<BTreeMap<PathBuf, Inode>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, path.display().to_string())
}

impl MemFs {
    pub fn new() -> MemFs {
        MemFs::default()
    }

    /// The same file system as a trait object, as storage takes it.
    pub fn shared(&self) -> Arc<dyn Fs> {
        Arc::new(self.clone())
    }

    /// Creates or replaces `path` with `content`.
    pub fn put(&self, path: &Path, content: &[u8]) {
        lock(&self.files).insert(path.to_path_buf(), Arc::new(Mutex::new(content.to_vec())));
    }

    /// Every file, by path.
    pub fn snapshot(&self) -> Vec<(PathBuf, Vec<u8>)> {
        lock(&self.files)
            .iter()
            .map(|(p, f)| (p.clone(), lock(f).clone()))
            .collect()
    }
}

#[derive(Debug)]
struct MemFile(Inode);

impl FsFile for MemFile {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let offset = usize::try_from(offset).map_err(io::Error::other)?;
        let end = offset
            .checked_add(data.len())
            .ok_or_else(|| io::Error::other("write past usize::MAX"))?;
        let mut f = lock(&self.0);
        if f.len() < end {
            f.resize(end, 0);
        }
        f[offset..end].copy_from_slice(data);
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        // Storage only ever sizes files to what it wrote or preallocated.
        let len = usize::try_from(len).map_err(io::Error::other)?;
        if len > 1 << 30 {
            return Err(io::Error::other("file too large for the in-memory fs"));
        }
        lock(&self.0).resize(len, 0);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(lock(&self.0).len() as u64)
    }
}

impl Fs for MemFs {
    fn open(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let mut files = lock(&self.files);
        let inode = files.entry(path.to_path_buf()).or_default().clone();
        Ok(Box::new(MemFile(inode)))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let inode = Inode::default();
        lock(&self.files).insert(path.to_path_buf(), inode.clone());
        Ok(Box::new(MemFile(inode)))
    }

    fn read(&self, path: &Path) -> io::Result<Bytes> {
        let files = lock(&self.files);
        let inode = files.get(path).ok_or_else(|| not_found(path))?;
        let data = lock(inode).clone();
        Ok(Bytes::from(data))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut files = lock(&self.files);
        let inode = files.remove(from).ok_or_else(|| not_found(from))?;
        files.insert(to.to_path_buf(), inode);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        lock(&self.files)
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| not_found(path))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        Ok(lock(&self.files)
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect())
    }

    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }

    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }
}
