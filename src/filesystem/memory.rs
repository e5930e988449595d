//! [`MemoryFilesystem`]: files and directories held in memory, for test suites and
//! throw-away servers (`ftpdlib --memory`). It has no file descriptors, so RETR and STOR take
//! the buffered path rather than sendfile(2), and its calls are cheap enough to run on the
//! reactor thread ([`Filesystem::is_inline`]).
//!
//! One [`MemoryStore`] holds every user's files; each session sees the part under its home,
//! made on first use. Everything is lost when the process ends.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use super::{
    kind_bits, DirEntry, DirStream, FileKind, FileReader, FileWriter, Filesystem, Stat, StatMode,
    VirtualPath, WriteMode,
};

/// A file's bytes, shared by the tree and the readers and writers open on it.
type Data = Arc<Mutex<Vec<u8>>>;

#[derive(Debug, Clone)]
enum Node {
    Dir { mtime: i64, mode: u32 },
    File { data: Data, mtime: i64, mode: u32 },
}

/// The shared tree: full paths (`/home/a/b`, bytes) to nodes; `/` always exists.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    tree: Arc<Mutex<BTreeMap<Vec<u8>, Node>>>,
}

fn now_secs() -> i64 {
    crate::listing::unix_secs(SystemTime::now())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data that is still consistent enough to
    // serve (at worst a half-written file), so a poisoned lock is taken over.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn not_found() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOENT)
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        let s = MemoryStore::default();
        lock(&s.tree).insert(
            b"/".to_vec(),
            Node::Dir {
                mtime: now_secs(),
                mode: 0o755,
            },
        );
        s
    }

    /// The storage of one home inside the store (`/` or `/home/user`; made if missing, with
    /// its parents).
    ///
    /// # Errors
    /// A file stands where a directory of the home should be.
    pub fn filesystem(&self, home: &Path) -> io::Result<MemoryFilesystem> {
        let mut prefix = Vec::new();
        let mut tree = lock(&self.tree);
        for part in VirtualPath::new(home).parts() {
            prefix.push(b'/');
            prefix.extend_from_slice(part);
            match tree.get(&prefix) {
                Some(Node::Dir { .. }) => {}
                Some(Node::File { .. }) => return Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
                None => {
                    tree.insert(
                        prefix.clone(),
                        Node::Dir {
                            mtime: now_secs(),
                            mode: 0o755,
                        },
                    );
                }
            }
        }
        Ok(MemoryFilesystem {
            store: self.clone(),
            prefix,
        })
    }
}

/// One home's view of a [`MemoryStore`].
#[derive(Debug, Clone)]
pub struct MemoryFilesystem {
    store: MemoryStore,
    /// The home's full path without a trailing `/` (empty for the store's root).
    prefix: Vec<u8>,
}

impl MemoryFilesystem {
    /// A store of its own, rooted at `/`.
    pub fn new() -> MemoryFilesystem {
        MemoryFilesystem {
            store: MemoryStore::new(),
            prefix: Vec::new(),
        }
    }

    fn full(&self, path: &Path) -> Vec<u8> {
        let rel = VirtualPath::new(path).relative();
        let mut k = self.prefix.clone();
        if !rel.is_empty() {
            k.push(b'/');
            k.extend_from_slice(rel);
        }
        if k.is_empty() {
            k.push(b'/');
        }
        k
    }

    fn parent_key(key: &[u8]) -> Option<Vec<u8>> {
        let i = key.iter().rposition(|&b| b == b'/')?;
        Some(if i == 0 {
            b"/".to_vec()
        } else {
            key[..i].to_vec()
        })
    }

    /// The keys of the direct children of `key`, in order.
    fn children(tree: &BTreeMap<Vec<u8>, Node>, key: &[u8]) -> Vec<Vec<u8>> {
        let mut start = key.to_vec();
        if start != b"/" {
            start.push(b'/');
        }
        tree.range(start.clone()..)
            .take_while(|(k, _)| k.starts_with(&start))
            .filter(|(k, _)| k.len() > start.len() && !k[start.len()..].contains(&b'/'))
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn check_parent(tree: &BTreeMap<Vec<u8>, Node>, key: &[u8]) -> io::Result<()> {
        match Self::parent_key(key).and_then(|p| tree.get(&p).cloned()) {
            Some(Node::Dir { .. }) => Ok(()),
            Some(Node::File { .. }) => Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
            None => Err(not_found()),
        }
    }
}

impl Default for MemoryFilesystem {
    fn default() -> Self {
        MemoryFilesystem::new()
    }
}

fn stat_of(key: &[u8], node: &Node) -> Stat {
    let (kind, size, mtime, mode) = match node {
        Node::Dir { mtime, mode } => (FileKind::Dir, 0, *mtime, *mode),
        Node::File { data, mtime, mode } => {
            (FileKind::File, lock(data).len() as u64, *mtime, *mode)
        }
    };
    // A stable number per path for the MLSx `unique` fact.
    let ino = key.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    Stat {
        kind,
        size,
        mtime,
        mode: kind_bits(kind) | mode,
        uid: 0,
        gid: 0,
        nlink: 1,
        dev: 0,
        ino,
        link_target: None,
    }
}

impl Filesystem for MemoryFilesystem {
    fn stat(&self, path: &Path) -> io::Result<Stat> {
        let key = self.full(path);
        let tree = lock(&self.store.tree);
        tree.get(&key)
            .map(|n| stat_of(&key, n))
            .ok_or_else(not_found)
    }

    fn lstat(&self, path: &Path) -> io::Result<Stat> {
        self.stat(path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Box<dyn DirStream>> {
        let key = self.full(path);
        let tree = lock(&self.store.tree);
        match tree.get(&key) {
            Some(Node::Dir { .. }) => {}
            Some(_) => return Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
            None => return Err(not_found()),
        }
        // A snapshot of the names; metadata is read as the batches are.
        let mut names = Self::children(&tree, &key);
        names.reverse();
        Ok(Box::new(MemoryDir {
            fs: self.clone(),
            names,
        }))
    }

    fn open_read(&self, path: &Path, offset: u64) -> io::Result<Box<dyn FileReader>> {
        let key = self.full(path);
        let tree = lock(&self.store.tree);
        match tree.get(&key) {
            Some(Node::File { data, .. }) => {
                let size = lock(data).len() as u64;
                Ok(Box::new(MemoryFile {
                    data: Arc::clone(data),
                    pos: offset,
                    size,
                    append: false,
                }))
            }
            Some(Node::Dir { .. }) => Err(io::Error::from_raw_os_error(libc::EISDIR)),
            None => Err(not_found()),
        }
    }

    fn open_write(&self, path: &Path, mode: WriteMode) -> io::Result<Box<dyn FileWriter>> {
        let key = self.full(path);
        let mut tree = lock(&self.store.tree);
        Self::check_parent(&tree, &key)?;
        let data = match tree.get(&key) {
            Some(Node::Dir { .. }) => return Err(io::Error::from_raw_os_error(libc::EISDIR)),
            Some(Node::File { .. }) if mode == WriteMode::CreateNew => {
                return Err(io::Error::from_raw_os_error(libc::EEXIST))
            }
            Some(Node::File { data, .. }) => Arc::clone(data),
            None => {
                let data: Data = Arc::default();
                tree.insert(
                    key.clone(),
                    Node::File {
                        data: Arc::clone(&data),
                        mtime: now_secs(),
                        mode: 0o644,
                    },
                );
                data
            }
        };
        let pos = {
            let mut d = lock(&data);
            match mode {
                WriteMode::Truncate | WriteMode::CreateNew => d.clear(),
                WriteMode::At(n) => d.truncate(usize::try_from(n).unwrap_or(usize::MAX)),
                WriteMode::Append => {}
            }
            d.len() as u64
        };
        Ok(Box::new(MemoryFile {
            data,
            pos,
            size: 0,
            append: mode == WriteMode::Append,
        }))
    }

    fn mkdir(&self, path: &Path) -> io::Result<()> {
        let key = self.full(path);
        let mut tree = lock(&self.store.tree);
        Self::check_parent(&tree, &key)?;
        if tree.contains_key(&key) {
            return Err(io::Error::from_raw_os_error(libc::EEXIST));
        }
        tree.insert(
            key,
            Node::Dir {
                mtime: now_secs(),
                mode: 0o755,
            },
        );
        Ok(())
    }

    fn rmdir(&self, path: &Path) -> io::Result<()> {
        let key = self.full(path);
        if key == self.full(Path::new("/")) {
            return Err(io::Error::from_raw_os_error(libc::EBUSY));
        }
        let mut tree = lock(&self.store.tree);
        match tree.get(&key) {
            Some(Node::Dir { .. }) if Self::children(&tree, &key).is_empty() => {
                tree.remove(&key);
                Ok(())
            }
            Some(Node::Dir { .. }) => Err(io::Error::from_raw_os_error(libc::ENOTEMPTY)),
            Some(_) => Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
            None => Err(not_found()),
        }
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let key = self.full(path);
        let mut tree = lock(&self.store.tree);
        match tree.get(&key) {
            Some(Node::File { .. }) => {
                tree.remove(&key);
                Ok(())
            }
            Some(Node::Dir { .. }) => Err(io::Error::from_raw_os_error(libc::EISDIR)),
            None => Err(not_found()),
        }
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (src, dst) = (self.full(from), self.full(to));
        let mut tree = lock(&self.store.tree);
        Self::check_parent(&tree, &dst)?;
        let node = tree.get(&src).cloned().ok_or_else(not_found)?;
        if src == dst {
            return Ok(());
        }
        let mut sub = src.clone();
        sub.push(b'/');
        if dst.starts_with(&sub) {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        match (&node, tree.get(&dst)) {
            (Node::Dir { .. }, Some(Node::File { .. })) => {
                return Err(io::Error::from_raw_os_error(libc::ENOTDIR))
            }
            (Node::File { .. }, Some(Node::Dir { .. })) => {
                return Err(io::Error::from_raw_os_error(libc::EISDIR))
            }
            (_, Some(Node::Dir { .. })) if !Self::children(&tree, &dst).is_empty() => {
                return Err(io::Error::from_raw_os_error(libc::ENOTEMPTY))
            }
            _ => {}
        }
        // Move the node and, for a directory, everything under it.
        let moved: Vec<Vec<u8>> = tree
            .range(sub.clone()..)
            .take_while(|(k, _)| k.starts_with(&sub))
            .map(|(k, _)| k.clone())
            .collect();
        tree.remove(&src);
        tree.insert(dst.clone(), node);
        for k in moved {
            if let Some(n) = tree.remove(&k) {
                let mut nk = dst.clone();
                nk.extend_from_slice(&k[src.len()..]);
                tree.insert(nk, n);
            }
        }
        Ok(())
    }

    fn chmod(&self, path: &Path, new: u32) -> io::Result<()> {
        let key = self.full(path);
        let mut tree = lock(&self.store.tree);
        match tree.get_mut(&key) {
            Some(Node::Dir { mode, .. } | Node::File { mode, .. }) => {
                *mode = new & 0o7777;
                Ok(())
            }
            None => Err(not_found()),
        }
    }

    fn set_mtime(&self, path: &Path, secs: i64) -> io::Result<()> {
        let key = self.full(path);
        let mut tree = lock(&self.store.tree);
        match tree.get_mut(&key) {
            Some(Node::Dir { mtime, .. } | Node::File { mtime, .. }) => {
                *mtime = secs;
                Ok(())
            }
            None => Err(not_found()),
        }
    }

    fn real_path(&self, path: &Path) -> PathBuf {
        use std::os::unix::ffi::OsStrExt;
        PathBuf::from(std::ffi::OsStr::from_bytes(&self.full(path)))
    }

    fn is_inline(&self) -> bool {
        true
    }
}

/// A file open for reading or writing: the shared bytes and a position.
#[derive(Debug)]
struct MemoryFile {
    data: Data,
    pos: u64,
    size: u64,
    /// Every write goes to the end as it is then (O_APPEND): two APPEs at once keep both.
    append: bool,
}

impl Read for MemoryFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let data = lock(&self.data);
        let start = usize::try_from(self.pos)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for MemoryFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut data = lock(&self.data);
        let at = if self.append {
            data.len()
        } else {
            usize::try_from(self.pos)
                .unwrap_or(usize::MAX)
                .min(data.len())
        };
        let end = at + buf.len();
        if data.len() < end {
            data.resize(end, 0);
        }
        data[at..end].copy_from_slice(buf);
        self.pos = end as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl FileReader for MemoryFile {
    fn size(&self) -> u64 {
        self.size
    }
}

impl FileWriter for MemoryFile {}

/// A directory listing: the names taken when it was opened, last first.
#[derive(Debug)]
struct MemoryDir {
    fs: MemoryFilesystem,
    names: Vec<Vec<u8>>,
}

impl DirStream for MemoryDir {
    fn next_batch(&mut self, max: usize, mode: StatMode) -> io::Result<Vec<DirEntry>> {
        let tree = lock(&self.fs.store.tree);
        let mut out = Vec::new();
        while out.len() < max {
            let Some(key) = self.names.pop() else { break };
            let name = key[key.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1)..].to_vec();
            let stat = match mode {
                StatMode::None => None,
                _ => match tree.get(&key) {
                    Some(n) => Some(stat_of(&key, n)),
                    // Removed since the listing began.
                    None => continue,
                },
            };
            out.push(DirEntry { name, stat });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> &Path {
        Path::new(s)
    }

    #[test]
    fn files_and_directories() {
        let fs = MemoryFilesystem::new();
        fs.mkdir(p("/d")).unwrap();
        assert_eq!(
            fs.mkdir(p("/d")).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        assert_eq!(
            fs.mkdir(p("/x/y")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        let mut w = fs.open_write(p("/d/f"), WriteMode::Truncate).unwrap();
        w.write_all(b"hello world").unwrap();
        w.finish().unwrap();
        assert_eq!(fs.stat(p("/d/f")).unwrap().size, 11);
        let mut w = fs.open_write(p("/d/f"), WriteMode::At(5)).unwrap();
        w.write_all(b"!").unwrap();
        let mut w = fs.open_write(p("/d/f"), WriteMode::Append).unwrap();
        w.write_all(b"?").unwrap();
        let mut r = fs.open_read(p("/d/f"), 2).unwrap();
        assert_eq!(r.size(), 7);
        assert!(r.raw_fd().is_none());
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "llo!?");
        assert!(fs.open_read(p("/d"), 0).is_err());
        assert_eq!(
            fs.rmdir(p("/d")).unwrap_err().raw_os_error(),
            Some(libc::ENOTEMPTY)
        );
        fs.rename(p("/d"), p("/e")).unwrap();
        assert!(fs.stat(p("/e/f")).unwrap().is_file());
        assert!(fs.stat(p("/d/f")).is_err());
        fs.chmod(p("/e/f"), 0o600).unwrap();
        assert_eq!(fs.stat(p("/e/f")).unwrap().mode, libc::S_IFREG | 0o600);
        fs.set_mtime(p("/e/f"), 42).unwrap();
        assert_eq!(fs.stat(p("/e/f")).unwrap().mtime, 42);
        let mut dir = fs.read_dir(p("/e")).unwrap();
        let batch = dir.next_batch(10, StatMode::Follow).unwrap();
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].name, b"f");
        assert!(dir.next_batch(10, StatMode::Follow).unwrap().is_empty());
        fs.remove(p("/e/f")).unwrap();
        fs.rmdir(p("/e")).unwrap();
        assert!(fs.rmdir(p("/")).is_err());
    }

    #[test]
    fn homes_share_one_store() {
        let store = MemoryStore::new();
        let a = store.filesystem(p("/home/a")).unwrap();
        let root = store.filesystem(p("/")).unwrap();
        a.mkdir(p("/x")).unwrap();
        assert!(root.stat(p("/home/a/x")).unwrap().is_dir());
        assert_eq!(a.real_path(p("/x")), PathBuf::from("/home/a/x"));
        let mut d = root.read_dir(p("/home")).unwrap();
        let names: Vec<_> = d
            .next_batch(10, StatMode::None)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, vec![b"a".to_vec()]);
    }
}
