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
//!   keys are), keys over 1024 bytes (the store's root included), and paths OpenDAL would
//!   change (white space at either end, which it trims) or S3 refuses (a NUL).
//! - The store unreachable or failing (a gateway down, a timeout): `TimedOut`, which the
//!   session answers with 451 and goes on.

mod files;
mod streams;

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::{ErrorKind, Operator};

use super::{Filesystem, VirtualPath};
use crate::config::FilesystemFactory;

pub use files::ObjectFilesystem;

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
    /// Bytes the operator's root adds in front of every key (`site1/`: 6), which count
    /// towards [`MAX_KEY`] too.
    root_len: usize,
    /// Uploads begun and neither completed nor aborted yet (see [`ObjectStore::settle`]).
    uploads: Arc<AtomicUsize>,
}

/// One upload counted in [`Inner::uploads`] until dropped: when it completes, or when
/// its abort has run (or been dropped with the runtime).
pub(super) struct OpenUpload(Arc<AtomicUsize>);

impl OpenUpload {
    fn new(count: &Arc<AtomicUsize>) -> OpenUpload {
        count.fetch_add(1, Ordering::SeqCst);
        OpenUpload(Arc::clone(count))
    }
}

impl Drop for OpenUpload {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
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
        let root_len = op.info().root().trim_start_matches('/').len();
        Ok(ObjectStore {
            inner: Arc::new(Inner {
                op,
                runtime,
                settings,
                name,
                root_len,
                uploads: Arc::new(AtomicUsize::new(0)),
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
        .map_err(|e| io::Error::other(format!("{}: {}", self.inner.name, with_causes(&e))))
    }

    /// Waits, `limit` at most, until no upload is left open: uploads dropped unfinished
    /// (ABOR, a lost connection, sessions cut at shutdown) are aborted on the store's
    /// runtime, which a process that exits right after its server stops would end before
    /// the AbortMultipartUpload is sent, leaving the parts stored. Call it once the server
    /// has stopped. Returns whether every upload was completed or aborted.
    pub fn settle(&self, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        loop {
            if self.inner.uploads.load(Ordering::SeqCst) == 0 {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// An upload begins: counted until the guard is dropped.
    pub(super) fn open_upload(&self) -> OpenUpload {
        OpenUpload::new(&self.inner.uploads)
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

/// The error and the causes beneath it: opendal's text names only the first
/// ("error sending request"), not why (a refused connection, TLS spoken to a plain HTTP
/// port), which is what a wrong endpoint needs to say.
fn with_causes(e: &opendal::Error) -> String {
    let mut out = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
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
            log::warn!(target: crate::logger::LOG, "object store: {}", with_causes(&e));
            return io::Error::new(io::ErrorKind::TimedOut, "Storage service unavailable");
        }
    };
    io::Error::new(kind, e.message().to_string())
}

fn not_found() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOENT)
}
