//! [`ObjectFilesystem`]: one home's view of an [`ObjectStore`], the FTP operations on keys
//! (see the parent module for what each does to objects).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use futures::StreamExt;
use opendal::{Buffer, EntryMode, ErrorKind, Metadata, Operator};

use super::streams::{ObjectDir, ObjectReader, ObjectWriter};
use super::{io_error, not_found, ObjectStore, MAX_KEY};
use crate::filesystem::{
    DirStream, FileKind, FileReader, FileWriter, Filesystem, Stat, VirtualPath, WriteMode,
};

/// One home's view of an [`ObjectStore`].
#[derive(Clone)]
pub struct ObjectFilesystem {
    pub(super) store: ObjectStore,
    /// The home's key under the store's root, without a final `/`: `""` or `alice`.
    pub(super) prefix: String,
}

impl fmt::Debug for ObjectFilesystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectFilesystem")
            .field("store", &self.store.inner.name)
            .field("prefix", &self.prefix)
            .finish()
    }
}

pub(super) fn secs(m: &Metadata) -> i64 {
    m.last_modified()
        .map(SystemTime::from)
        .map_or(0, crate::listing::unix_secs)
}

/// A number for the MLSx `unique` fact: FNV-1a of the object's key.
fn unique(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

pub(super) fn file_stat(m: &Metadata, key: &str) -> Stat {
    Stat {
        kind: FileKind::File,
        size: m.content_length(),
        mtime: secs(m),
        mode: 0o100644,
        uid: 0,
        gid: 0,
        nlink: 1,
        dev: 1,
        ino: unique(key),
        link_target: None,
    }
}

pub(super) fn dir_stat(mtime: i64, key: &str) -> Stat {
    Stat {
        kind: FileKind::Dir,
        size: 0,
        mtime,
        mode: 0o040755,
        uid: 0,
        gid: 0,
        nlink: 2,
        dev: 1,
        ino: unique(key),
        link_target: None,
    }
}

impl ObjectFilesystem {
    /// The object key of a virtual path (no leading `/`; the home's own key for the home).
    ///
    /// # Errors
    /// 553 material: a name that is not UTF-8 or that the store would not keep as given
    /// (`EILSEQ`), or a key over 1024 bytes with the store's root (`ENAMETOOLONG`).
    fn key(&self, path: &Path) -> io::Result<String> {
        let rel = VirtualPath::new(path).relative();
        let rel =
            std::str::from_utf8(rel).map_err(|_| io::Error::from_raw_os_error(libc::EILSEQ))?;
        let key = match (self.prefix.is_empty(), rel.is_empty()) {
            (true, _) => rel.to_string(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}/{rel}", self.prefix),
        };
        // OpenDAL trims white space off both ends of every path, so `a ` would be stored,
        // read and deleted as the object `a`, another name's; and S3 services refuse a NUL
        // in a key (Ceph's gateway with a 400 that reads like an outage, 451).
        if key.trim() != key || key.contains('\0') {
            return Err(io::Error::from_raw_os_error(libc::EILSEQ));
        }
        // The store's root is part of the key S3 sees; a directory's marker adds a '/'.
        if self.store.inner.root_len + key.len() + 1 > MAX_KEY {
            return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
        }
        Ok(key)
    }

    /// Whether `key` is the home itself, which always exists.
    fn is_home(&self, key: &str) -> bool {
        key == self.prefix
    }

    /// The prefix the entries of directory `key` have: `key/`, or `""` for the root.
    fn dir_prefix(key: &str) -> String {
        if key.is_empty() {
            String::new()
        } else {
            format!("{key}/")
        }
    }

    fn op(&self) -> &Operator {
        &self.store.inner.op
    }

    /// Whether `key` is a directory: the home, a marker, or anything under the prefix.
    /// Returns its marker's time when it has one.
    fn dir_exists(&self, key: &str) -> io::Result<Option<i64>> {
        if self.is_home(key) {
            return Ok(Some(0));
        }
        let op = self.op().clone();
        let dir = format!("{key}/");
        self.store
            .block_on(async move {
                let mut l = op.lister_with(&dir).limit(2).await?;
                match l.next().await {
                    Some(Ok(e)) => Ok(Some(secs(e.metadata()))),
                    Some(Err(e)) if e.kind() == ErrorKind::NotFound => Ok(None),
                    Some(Err(e)) => Err(e),
                    None => Ok(None),
                }
            })
            .map_err(io_error)
    }

    /// [`stat_key`](Self::stat_key), with `None` for a key that is neither a file nor a
    /// directory: for the calls that make one.
    fn find(&self, key: &str) -> io::Result<Option<Stat>> {
        match self.stat_key(key) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn stat_key(&self, key: &str) -> io::Result<Stat> {
        if self.is_home(key) {
            return Ok(dir_stat(0, key));
        }
        let op = self.op().clone();
        let k = key.to_string();
        match self.store.block_on(async move { op.stat(&k).await }) {
            Ok(m) if m.mode() == EntryMode::FILE => return Ok(file_stat(&m, key)),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(e)),
        }
        match self.dir_exists(key)? {
            Some(t) => Ok(dir_stat(t, key)),
            None => Err(not_found()),
        }
    }

    /// The parent of `key` must be a directory (FTP's STOR, MKD and RNTO into a missing
    /// directory fail, as on a disk).
    fn check_parent(&self, key: &str) -> io::Result<()> {
        let Some(i) = key.rfind('/').filter(|&i| i > self.prefix.len()) else {
            // In the home, which always exists.
            return Ok(());
        };
        match self.stat_key(&key[..i])? {
            s if s.is_dir() => Ok(()),
            _ => Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
        }
    }
}

impl Filesystem for ObjectFilesystem {
    fn stat(&self, path: &Path) -> io::Result<Stat> {
        self.stat_key(&self.key(path)?)
    }

    fn lstat(&self, path: &Path) -> io::Result<Stat> {
        self.stat(path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Box<dyn DirStream>> {
        let key = self.key(path)?;
        if !self.stat_key(&key)?.is_dir() {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        let dir = Self::dir_prefix(&key);
        let op = self.op().clone();
        let d = if dir.is_empty() {
            "/".to_string()
        } else {
            dir.clone()
        };
        let lister = self
            .store
            .block_on(async move { op.lister_with(&d).await })
            .map_err(io_error)?;
        Ok(Box::new(ObjectDir {
            store: self.store.clone(),
            lister: Box::pin(lister),
            dir,
        }))
    }

    fn open_read(&self, path: &Path, offset: u64) -> io::Result<Box<dyn FileReader>> {
        let key = self.key(path)?;
        let st = self.stat_key(&key)?;
        if st.is_dir() {
            return Err(io::Error::from_raw_os_error(libc::EISDIR));
        }
        let s = self.store.inner.settings;
        let op = self.op().clone();
        let size = st.size;
        let stream = self
            .store
            .block_on(async move {
                let r = op
                    .reader_with(&key)
                    .chunk(s.part_size)
                    .concurrent(s.concurrency)
                    .await?;
                r.into_stream(offset.min(size)..size).await
            })
            .map_err(io_error)?;
        Ok(Box::new(ObjectReader {
            store: self.store.clone(),
            stream: Box::pin(stream),
            current: Buffer::new(),
            size,
        }))
    }

    fn open_write(&self, path: &Path, mode: WriteMode) -> io::Result<Box<dyn FileWriter>> {
        let key = self.key(path)?;
        match mode {
            // REST 0 then STOR is a whole upload.
            WriteMode::Truncate | WriteMode::CreateNew | WriteMode::At(0) => {}
            WriteMode::Append | WriteMode::At(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "Objects can't be appended to or written at an offset",
                ))
            }
        }
        match self.find(&key)? {
            Some(s) if s.is_dir() => return Err(io::Error::from_raw_os_error(libc::EISDIR)),
            Some(_) if mode == WriteMode::CreateNew => {
                return Err(io::Error::from_raw_os_error(libc::EEXIST))
            }
            _ => {}
        }
        self.check_parent(&key)?;
        let s = self.store.inner.settings;
        let op = self.op().clone();
        // Counted from before the upload is created, so that one being created is waited
        // for too.
        let open = self.store.open_upload();
        let writer = self
            .store
            .block_on(async move {
                op.writer_with(&key)
                    .chunk(s.part_size)
                    .concurrent(s.concurrency)
                    .await
            })
            .map_err(io_error)?;
        Ok(Box::new(ObjectWriter {
            store: self.store.clone(),
            writer: Some(writer),
            open: Some(open),
        }))
    }

    fn mkdir(&self, path: &Path) -> io::Result<()> {
        let key = self.key(path)?;
        if self.find(&key)?.is_some() {
            return Err(io::Error::from_raw_os_error(libc::EEXIST));
        }
        self.check_parent(&key)?;
        let op = self.op().clone();
        self.store
            .block_on(async move { op.create_dir(&format!("{key}/")).await })
            .map_err(io_error)
    }

    fn rmdir(&self, path: &Path) -> io::Result<()> {
        let key = self.key(path)?;
        if self.is_home(&key) {
            return Err(io::Error::from_raw_os_error(libc::EBUSY));
        }
        if !self.stat_key(&key)?.is_dir() {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        let dir = format!("{key}/");
        let op = self.op().clone();
        let d = dir.clone();
        let other = self
            .store
            .block_on(async move {
                let mut l = op.lister_with(&d).limit(3).await?;
                while let Some(e) = l.next().await {
                    if e?.path() != d {
                        return Ok(true);
                    }
                }
                Ok(false)
            })
            .map_err(io_error)?;
        if other {
            return Err(io::Error::from_raw_os_error(libc::ENOTEMPTY));
        }
        let op = self.op().clone();
        self.store
            .block_on(async move { op.delete(&dir).await })
            .map_err(io_error)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let key = self.key(path)?;
        if self.stat_key(&key)?.is_dir() {
            return Err(io::Error::from_raw_os_error(libc::EISDIR));
        }
        let op = self.op().clone();
        self.store
            .block_on(async move { op.delete(&key).await })
            .map_err(io_error)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (from, to) = (self.key(from)?, self.key(to)?);
        if self.stat_key(&from)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "Directories can't be renamed in an object store",
            ));
        }
        if self.find(&to)?.is_some_and(|s| s.is_dir()) {
            return Err(io::Error::from_raw_os_error(libc::EISDIR));
        }
        self.check_parent(&to)?;
        if from == to {
            return Ok(());
        }
        let op = self.op().clone();
        self.store
            .block_on(async move {
                op.copy(&from, &to).await?;
                op.delete(&from).await
            })
            .map_err(io_error)
    }

    fn chmod(&self, _: &Path, _: u32) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "Objects have no permission bits",
        ))
    }

    fn set_mtime(&self, _: &Path, _: i64) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "Objects' modification times can't be set",
        ))
    }

    fn real_path(&self, path: &Path) -> PathBuf {
        let rel = String::from_utf8_lossy(VirtualPath::new(path).relative()).into_owned();
        let mut p = self.store.inner.name.clone();
        for part in [self.prefix.as_str(), rel.as_str()] {
            if !part.is_empty() {
                p.push('/');
                p.push_str(part);
            }
        }
        PathBuf::from(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filesystem::object::{ObjectSettings, S3Settings};

    /// A store under `s3://b/site1`; nothing is sent to its endpoint by `key`.
    fn store() -> ObjectStore {
        let s3 = S3Settings {
            endpoint: Some("http://127.0.0.1:9".into()),
            ..S3Settings::from_url("s3://b/site1").unwrap()
        };
        ObjectStore::s3(&s3, ObjectSettings::default()).unwrap()
    }

    fn errno(r: io::Result<String>) -> Option<i32> {
        r.err().and_then(|e| e.raw_os_error())
    }

    #[test]
    fn keys_are_the_prefix_and_the_path() {
        let alice = store().filesystem(Path::new("/alice"));
        assert_eq!(alice.key(Path::new("/")).unwrap(), "alice");
        assert_eq!(
            alice.key(Path::new("/a b/c.txt")).unwrap(),
            "alice/a b/c.txt"
        );
        assert_eq!(alice.key(Path::new("/ lead")).unwrap(), "alice/ lead");
        let root = store().filesystem(Path::new("/"));
        assert_eq!(root.key(Path::new("/")).unwrap(), "");
        assert_eq!(root.key(Path::new("/x")).unwrap(), "x");
    }

    #[test]
    fn names_the_store_would_change_are_refused() {
        let alice = store().filesystem(Path::new("/alice"));
        let root = store().filesystem(Path::new("/"));
        for (fs, name) in [
            (&alice, "/trail "),
            (&alice, "/tab\t"),
            (&alice, "/nbsp\u{a0}"),
            (&alice, "/dir/vt\u{b}"),
            (&alice, "/ "),
            (&root, "/ lead"),
            (&alice, "/nul\0x"),
        ] {
            assert_eq!(
                errno(fs.key(Path::new(name))),
                Some(libc::EILSEQ),
                "{name:?}"
            );
        }
    }

    #[test]
    fn the_longest_key_counts_the_store_root() {
        // "site1/" + "alice/" + name + a marker's "/" <= 1024.
        let alice = store().filesystem(Path::new("/alice"));
        let longest = format!("/{}", "n".repeat(MAX_KEY - 6 - 6 - 1));
        assert!(alice.key(Path::new(&longest)).is_ok());
        let over = format!("{longest}n");
        assert_eq!(errno(alice.key(Path::new(&over))), Some(libc::ENAMETOOLONG));
    }
}
