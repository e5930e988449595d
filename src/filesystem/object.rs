//! [`ObjectStore`]: files in an object store (S3 and the services Apache OpenDAL speaks),
//! behind the cargo feature `opendal`. Several ftpdlib processes can serve one bucket: the
//! store holds no state of its own between calls.
//!
//! # Reading list
//! - Amazon S3 API: ListObjectsV2 (prefixes and delimiters), CreateMultipartUpload,
//!   UploadPart, CompleteMultipartUpload, AbortMultipartUpload, CopyObject, ranged GET
//!   (RFC 9110 section 14).
//! - RFC 959 section 4.1.3 (the commands), RFC 3659 (SIZE, MDTM, MLSD, REST STREAM).
//! - docs/storage.md: what each FTP command does to objects, decided here.
//!
//! # FTP over objects
//! - A directory is a prefix ending in `/`. MKD writes an empty *marker* object (`a/b/`),
//!   so that an empty directory exists; a prefix with objects under it is a directory
//!   whether or not it has a marker (trees uploaded by other S3 clients have none).
//! - RMD removes the marker of an empty directory; a prefix with anything else under it
//!   is `DirectoryNotEmpty` (550).
//! - RNFR/RNTO of a file is a server-side copy then a delete: not atomic (a reader can
//!   see both names for a moment, and a failed delete leaves both). A directory is not
//!   renamed (`Unsupported`, 550): it would be a copy of every object under it.
//! - STOR streams a multipart upload in parts of [`ObjectSettings::part_size`]; nothing is
//!   visible until the upload completes, and an upload that fails or is dropped unfinished
//!   (ABOR, a lost connection) is aborted. APPE and REST+STOR are `Unsupported` (550): S3
//!   objects cannot be appended to or written at an offset. STOU fails if the name exists.
//! - REST+RETR is a ranged read; SIZE and MDTM come from the object's metadata; listings
//!   are read a page (up to 1000 names) per request, as the client reads them.
//! - SITE CHMOD and MFMT are `Unsupported` (550): objects have neither mode bits nor a
//!   settable modification time. A server on objects should also leave MFMT out of FEAT
//!   ([`Config::disabled_commands`](crate::Config::disabled_commands)), as the daemon does.
//! - Names the store cannot hold are refused with 553: names that are not UTF-8 (object
//!   keys are), and keys over 1024 bytes.
//! - The store unreachable or failing (a gateway down, a timeout): `TimedOut`, which the
//!   session answers with 451 and goes on.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Buf;
use futures::StreamExt;
use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::{Buffer, EntryMode, ErrorKind, Metadata, Operator};

use super::{
    DirEntry, DirStream, FileKind, FileReader, FileWriter, Filesystem, Stat, StatMode, VirtualPath,
    WriteMode,
};
use crate::config::FilesystemFactory;

/// The longest object key S3 takes, in bytes.
const MAX_KEY: usize = 1024;

/// How an [`ObjectStore`] talks to an S3 service.
#[derive(Clone, Default)]
pub struct S3Settings {
    /// The bucket.
    pub bucket: String,
    /// A prefix inside the bucket under which everything is kept (`""`: the whole bucket).
    pub root: String,
    /// The service's URL (`http://127.0.0.1:7480`); `None`: AWS, or `AWS_ENDPOINT_URL`.
    pub endpoint: Option<String>,
    /// The region; `None`: `AWS_REGION` or `AWS_DEFAULT_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// The access key id; `None`: `AWS_ACCESS_KEY_ID` and the other usual places.
    pub access_key_id: Option<String>,
    /// The secret key; `None`: `AWS_SECRET_ACCESS_KEY` and the other usual places.
    pub secret_access_key: Option<String>,
    /// Bucket-in-hostname addressing (`bucket.s3.amazonaws.com`); off: path style, which
    /// Ceph's gateway, MinIO and most self-hosted services take.
    pub virtual_host_style: bool,
}

impl fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Settings")
            .field("bucket", &self.bucket)
            .field("root", &self.root)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "***"),
            )
            .field("virtual_host_style", &self.virtual_host_style)
            .finish()
    }
}

impl S3Settings {
    /// Settings for `s3://bucket/prefix` (the prefix may be empty); the rest from the
    /// environment.
    ///
    /// # Errors
    /// `InvalidInput` when `url` is not `s3://` followed by a bucket name.
    pub fn from_url(url: &str) -> io::Result<S3Settings> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| invalid(format!("{url}: not an s3://bucket/prefix URL")))?;
        let (bucket, root) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(invalid(format!("{url}: no bucket name")));
        }
        Ok(S3Settings {
            bucket: bucket.to_string(),
            root: root.trim_matches('/').to_string(),
            ..S3Settings::default()
        })
    }
}

/// How transfers use the store.
#[derive(Debug, Clone, Copy)]
pub struct ObjectSettings {
    /// Bytes per part of a multipart upload, and per ranged read of a download. At least
    /// 5 MiB (S3's smallest part); default 8 MiB.
    pub part_size: usize,
    /// Parts of one transfer in flight at once; default 2. Memory per transfer is about
    /// `part_size * (concurrency + 1)` plus the server's two 1 MiB pieces.
    pub concurrency: usize,
    /// Threads of the runtime that drives the HTTP requests; default 2.
    pub threads: usize,
    /// Longest wait for one request, and for each read or write of its body, before the
    /// command fails with 451; default 30 s. A failed request is tried up to 3 times in
    /// all (temporary errors only: a refused connection, a 503).
    pub timeout: Duration,
}

impl Default for ObjectSettings {
    fn default() -> ObjectSettings {
        ObjectSettings {
            part_size: 8 << 20,
            concurrency: 2,
            threads: 2,
            timeout: Duration::from_secs(30),
        }
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// One object store shared by every session: the service's client and the runtime that
/// drives it. Cheap to clone.
#[derive(Clone)]
pub struct ObjectStore {
    inner: Arc<Inner>,
}

struct Inner {
    op: Operator,
    runtime: tokio::runtime::Runtime,
    settings: ObjectSettings,
    /// What logs and hooks call the store's root (`s3://bucket/prefix`).
    name: String,
}

impl fmt::Debug for ObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStore")
            .field("name", &self.inner.name)
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl ObjectStore {
    /// A store on S3 (or a service that speaks its API: Ceph's RADOS Gateway, MinIO).
    /// Nothing is sent yet: see [`check`](Self::check).
    ///
    /// # Errors
    /// `InvalidInput` for settings the S3 client refuses; errors starting the runtime.
    pub fn s3(s3: &S3Settings, settings: ObjectSettings) -> io::Result<ObjectStore> {
        let mut b = opendal::services::S3::default()
            .bucket(&s3.bucket)
            .root(&format!("/{}", s3.root));
        if let Some(e) = &s3.endpoint {
            b = b.endpoint(e);
        }
        let region = s3
            .region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .unwrap_or_else(|| "us-east-1".to_string());
        b = b.region(&region);
        if let Some(k) = &s3.access_key_id {
            b = b.access_key_id(k);
        }
        if let Some(k) = &s3.secret_access_key {
            b = b.secret_access_key(k);
        }
        if s3.virtual_host_style {
            b = b.enable_virtual_host_style();
        }
        let name = match s3.root.as_str() {
            "" => format!("s3://{}", s3.bucket),
            root => format!("s3://{}/{root}", s3.bucket),
        };
        let op = Operator::new(b).map_err(|e| invalid(e.to_string()))?;
        ObjectStore::new(op, name, settings)
    }

    /// A store on any service OpenDAL offers (GCS, Azure Blob, ...), from its operator;
    /// `name` is what logs call the root.
    ///
    /// # Errors
    /// Errors starting the runtime.
    pub fn new(op: Operator, name: String, settings: ObjectSettings) -> io::Result<ObjectStore> {
        // The HTTP client's TLS (https endpoints) uses rustls with the same provider as
        // FTPS; another one installed first by the program is kept.
        let _ = rustls::crypto::ring::default_provider().install_default();
        opendal_http_transport_reqwest::install_default();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(settings.threads.max(1))
            .thread_name("ftpdlib-object")
            .enable_all()
            .build()?;
        let settings = ObjectSettings {
            part_size: settings.part_size.max(5 << 20),
            concurrency: settings.concurrency.max(1),
            threads: settings.threads.max(1),
            timeout: settings.timeout.max(Duration::from_millis(100)),
        };
        let op = op
            .layer(
                TimeoutLayer::new()
                    .with_timeout(settings.timeout)
                    .with_io_timeout(settings.timeout),
            )
            .layer(
                RetryLayer::new()
                    .with_max_times(2)
                    .with_min_delay(Duration::from_millis(100))
                    .with_max_delay(Duration::from_secs(1)),
            );
        Ok(ObjectStore {
            inner: Arc::new(Inner {
                op,
                runtime,
                settings,
                name,
            }),
        })
    }

    /// Lists the root: fails when the service is unreachable, the bucket is missing or the
    /// credentials are refused, so a server can say so before it serves.
    ///
    /// # Errors
    /// The service's error, with its message.
    pub fn check(&self) -> io::Result<()> {
        let op = self.inner.op.clone();
        self.block_on(async move {
            let mut l = op.lister_with("/").limit(1).await?;
            l.next().await.transpose().map(|_| ())
        })
        .map_err(|e| io::Error::other(format!("{}: {e}", self.inner.name)))
    }

    /// The storage of one home: everything under the home's path as a prefix (`/` is the
    /// root itself, `/alice` is `alice/`).
    pub fn filesystem(&self, home: &Path) -> ObjectFilesystem {
        let mut prefix = String::new();
        for part in VirtualPath::new(home).parts() {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(&String::from_utf8_lossy(part));
        }
        ObjectFilesystem {
            store: self.clone(),
            prefix,
        }
    }

    /// A factory for [`Config::filesystem`](crate::Config::filesystem): each session's
    /// storage is [`filesystem`](Self::filesystem) of its home. Turn MFMT off beside it
    /// ([`Config::disabled_commands`](crate::Config::disabled_commands)): objects' times
    /// can't be set, and clients that find MFMT in FEAT (rclone) set the time after each
    /// upload and take the refusal for a failed upload.
    pub fn factory(&self) -> FilesystemFactory {
        let store = self.clone();
        Arc::new(move |home: &Path| Ok(Arc::new(store.filesystem(home)) as Arc<dyn Filesystem>))
    }

    fn block_on<T>(
        &self,
        f: impl std::future::Future<Output = opendal::Result<T>>,
    ) -> opendal::Result<T> {
        self.inner.runtime.block_on(f)
    }
}

/// An opendal error as an `io::Error` the session answers well (see the module docs).
fn io_error(e: opendal::Error) -> io::Error {
    let kind = match e.kind() {
        ErrorKind::NotFound => io::ErrorKind::NotFound,
        ErrorKind::PermissionDenied => io::ErrorKind::PermissionDenied,
        ErrorKind::AlreadyExists | ErrorKind::ConditionNotMatch => io::ErrorKind::AlreadyExists,
        ErrorKind::IsADirectory => io::ErrorKind::IsADirectory,
        ErrorKind::NotADirectory => io::ErrorKind::NotADirectory,
        ErrorKind::Unsupported => io::ErrorKind::Unsupported,
        ErrorKind::RangeNotSatisfied => io::ErrorKind::InvalidInput,
        _ => {
            log::warn!(target: crate::logger::LOG, "object store: {e}");
            return io::Error::new(io::ErrorKind::TimedOut, "Storage service unavailable");
        }
    };
    io::Error::new(kind, e.message().to_string())
}

fn not_found() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOENT)
}

/// One home's view of an [`ObjectStore`].
#[derive(Clone)]
pub struct ObjectFilesystem {
    store: ObjectStore,
    /// The home's key under the store's root, without a final `/`: `""` or `alice`.
    prefix: String,
}

impl fmt::Debug for ObjectFilesystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectFilesystem")
            .field("store", &self.store.inner.name)
            .field("prefix", &self.prefix)
            .finish()
    }
}

fn secs(m: &Metadata) -> i64 {
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

fn file_stat(m: &Metadata, key: &str) -> Stat {
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

fn dir_stat(mtime: i64, key: &str) -> Stat {
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
    /// 553 material: a name that is not UTF-8 (`EILSEQ`) or a key over 1024 bytes
    /// (`ENAMETOOLONG`).
    fn key(&self, path: &Path) -> io::Result<String> {
        let rel = VirtualPath::new(path).relative();
        let rel =
            std::str::from_utf8(rel).map_err(|_| io::Error::from_raw_os_error(libc::EILSEQ))?;
        let key = match (self.prefix.is_empty(), rel.is_empty()) {
            (true, _) => rel.to_string(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}/{rel}", self.prefix),
        };
        // A directory's marker adds a '/'.
        if key.len() + 1 > MAX_KEY {
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
            WriteMode::Truncate | WriteMode::CreateNew => {}
            WriteMode::Append | WriteMode::At(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "Objects can't be appended to or written at an offset",
                ))
            }
        }
        match self.stat_key(&key) {
            Ok(s) if s.is_dir() => return Err(io::Error::from_raw_os_error(libc::EISDIR)),
            Ok(_) if mode == WriteMode::CreateNew => {
                return Err(io::Error::from_raw_os_error(libc::EEXIST))
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.check_parent(&key)?;
        let s = self.store.inner.settings;
        let op = self.op().clone();
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
        }))
    }

    fn mkdir(&self, path: &Path) -> io::Result<()> {
        let key = self.key(path)?;
        match self.stat_key(&key) {
            Ok(_) => return Err(io::Error::from_raw_os_error(libc::EEXIST)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
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
        match self.stat_key(&to) {
            Ok(s) if s.is_dir() => return Err(io::Error::from_raw_os_error(libc::EISDIR)),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
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

/// A listing being read a page at a time.
struct ObjectDir {
    store: ObjectStore,
    lister: Pin<Box<opendal::Lister>>,
    /// The listed prefix (`a/b/`), whose own marker is not an entry.
    dir: String,
}

impl fmt::Debug for ObjectDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectDir").field("dir", &self.dir).finish()
    }
}

impl DirStream for ObjectDir {
    fn next_batch(&mut self, max: usize, mode: StatMode) -> io::Result<Vec<DirEntry>> {
        loop {
            let lister = &mut self.lister;
            let entries = self
                .store
                .block_on(async move {
                    let mut out = Vec::new();
                    while out.len() < max.max(1) {
                        match lister.next().await {
                            Some(e) => out.push(e?),
                            None => break,
                        }
                    }
                    Ok(out)
                })
                .map_err(io_error)?;
            if entries.is_empty() {
                return Ok(Vec::new());
            }
            let batch = self.entries(entries, mode);
            // A page of only the directory's own marker is not the end: read on.
            if !batch.is_empty() {
                return Ok(batch);
            }
        }
    }
}

impl ObjectDir {
    /// The names under the listed prefix, with their metadata as `mode` asks.
    fn entries(&self, entries: Vec<opendal::Entry>, mode: StatMode) -> Vec<DirEntry> {
        let dir = self.dir.as_str();
        let mut batch = Vec::with_capacity(entries.len());
        for e in entries {
            let path = e.path().trim_start_matches('/');
            let name = path.strip_prefix(dir).unwrap_or(path).trim_end_matches('/');
            if name.is_empty() {
                // The directory's own marker.
                continue;
            }
            let m = e.metadata();
            let stat = match mode {
                StatMode::None => None,
                _ if m.is_dir() => Some(dir_stat(secs(m), path.trim_end_matches('/'))),
                _ => Some(file_stat(m, path)),
            };
            batch.push(DirEntry {
                name: name.as_bytes().to_vec(),
                stat,
            });
        }
        batch
    }
}

/// A download: the object's bytes from the offset, read ahead in parts by the runtime.
struct ObjectReader {
    store: ObjectStore,
    stream: Pin<Box<opendal::BufferStream>>,
    current: Buffer,
    size: u64,
}

impl fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectReader")
            .field("size", &self.size)
            .finish()
    }
}

impl io::Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while !self.current.has_remaining() {
            let stream = &mut self.stream;
            let next = self
                .store
                .block_on(async move { stream.next().await.transpose() })
                .map_err(io_error)?;
            match next {
                Some(b) => self.current = b,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.remaining());
        self.current.copy_to_slice(&mut buf[..n]);
        Ok(n)
    }
}

impl FileReader for ObjectReader {
    fn size(&self) -> u64 {
        self.size
    }

    fn is_inline(&self) -> bool {
        false
    }
}

/// An upload: a multipart upload that completes at [`FileWriter::finish`] and is aborted
/// if dropped before.
struct ObjectWriter {
    store: ObjectStore,
    /// `None` once finished.
    writer: Option<opendal::Writer>,
}

impl fmt::Debug for ObjectWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectWriter")
            .field("finished", &self.writer.is_none())
            .finish()
    }
}

impl io::Write for ObjectWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(w) = self.writer.as_mut() else {
            return Err(io::Error::other("the upload is complete"));
        };
        let data = Buffer::from(buf.to_vec());
        self.store
            .block_on(async move { w.write(data).await })
            .map_err(io_error)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl FileWriter for ObjectWriter {
    fn finish(&mut self) -> io::Result<()> {
        let Some(mut w) = self.writer.take() else {
            return Ok(());
        };
        let result = self.store.block_on(async move {
            let r = w.close().await;
            if r.is_err() {
                let _ = w.abort().await;
            }
            r
        });
        result.map(|_| ()).map_err(io_error)
    }

    fn is_inline(&self) -> bool {
        false
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        // Unfinished: abort the upload so no part stays stored. Dropped anywhere (the
        // reactor thread too), so the abort runs on the store's runtime, not here.
        if let Some(mut w) = self.writer.take() {
            self.store.inner.runtime.spawn(async move {
                if let Err(e) = w.abort().await {
                    log::warn!(target: crate::logger::LOG, "object store: abort: {e}");
                }
            });
        }
    }
}
