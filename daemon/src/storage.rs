//! `--storage`: files in an object store instead of the disk (the library's `ObjectStore`,
//! cargo feature `opendal`). The flags are keys of the config file like every other
//! (`storage = "s3://bucket/prefix"`, `s3-endpoint = "http://..."`), and the usual AWS
//! environment variables fill in what neither gives.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use ftpdlib::throttle::parse_rate;
use ftpdlib::Config;

use crate::seconds::seconds;

/// The storage flags, as clap fills them in.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct StorageArgs {
    /// Keep files in an object store instead of on the disk: s3://BUCKET/PREFIX (the
    /// prefix may be empty). -d and each user's home then name prefixes under it (/ by
    /// default), and several ftpdlib processes can serve one bucket; see docs/storage.md
    /// for what FTP commands do to objects. Needs a build with the `opendal` feature
    #[arg(long, value_name = "URL", env = "FTPDLIB_STORAGE")]
    pub(crate) storage: Option<String>,
    /// The S3 service's URL (Ceph's RADOS Gateway, MinIO...) [default: AWS]
    #[arg(long, value_name = "URL", env = "AWS_ENDPOINT_URL")]
    pub(crate) s3_endpoint: Option<String>,
    /// The S3 region [default: us-east-1]
    #[arg(long, value_name = "REGION", env = "AWS_REGION")]
    pub(crate) s3_region: Option<String>,
    /// The S3 access key id
    #[arg(
        long,
        value_name = "ID",
        env = "AWS_ACCESS_KEY_ID",
        hide_env_values = true
    )]
    pub(crate) s3_access_key_id: Option<String>,
    /// The S3 secret key (better in the environment or the config file than on a command
    /// line others can read)
    #[arg(
        long,
        value_name = "KEY",
        env = "AWS_SECRET_ACCESS_KEY",
        hide_env_values = true
    )]
    pub(crate) s3_secret_access_key: Option<String>,
    /// Bytes per part of an upload and per ranged read of a download, at least 5M
    /// [default: 8M]
    #[arg(long, value_name = "BYTES", value_parser = parse_rate)]
    pub(crate) s3_part_size: Option<u64>,
    /// Parts of one transfer in flight at once [default: 2]
    #[arg(long, value_name = "N")]
    pub(crate) s3_concurrency: Option<usize>,
    /// Longest wait for one request to the object store before the command fails with 451
    /// [default: 30]
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    pub(crate) s3_timeout: Option<Duration>,
    /// Bucket-in-hostname addressing (AWS); without it, path style (Ceph, MinIO)
    #[arg(long)]
    pub(crate) s3_virtual_host_style: bool,
}

/// Worker threads per pool with an object store when `--io-threads` does not say.
#[cfg(feature = "opendal")]
const IO_THREADS: usize = 16;

/// The config-file keys and flags of the storage, which only a restart changes.
pub(crate) const KEYS: [&str; 9] = [
    "storage",
    "s3-endpoint",
    "s3-region",
    "s3-access-key-id",
    "s3-secret-access-key",
    "s3-part-size",
    "s3-concurrency",
    "s3-timeout",
    "s3-virtual-host-style",
];

/// An object store put behind the sessions.
pub(crate) struct Installed {
    /// What the start-up line says it serves.
    pub(crate) url: String,
    /// Run once the server has stopped: waits (bounded) for the aborts of the uploads the
    /// shutdown cut, which the exit would otherwise end before they reach the store.
    pub(crate) settle: Box<dyn FnOnce()>,
}

/// Puts the object store behind `config` when `--storage` asks for one, after checking
/// that it answers (a wrong bucket, endpoint or key stops the start with the service's
/// message).
///
/// # Errors
/// A URL that is not `s3://`, a build without the `opendal` feature, a store that does not
/// answer or refuses the credentials.
#[cfg(feature = "opendal")]
pub(crate) fn install(a: &StorageArgs, config: &mut Config) -> Result<Option<Installed>, String> {
    use ftpdlib::{ObjectSettings, ObjectStore, S3Settings};

    let Some(url) = &a.storage else {
        return Ok(None);
    };
    let mut s3 = S3Settings::from_url(url).map_err(|e| format!("--storage: {e}"))?;
    s3.endpoint.clone_from(&a.s3_endpoint);
    s3.region.clone_from(&a.s3_region);
    s3.access_key_id.clone_from(&a.s3_access_key_id);
    s3.secret_access_key.clone_from(&a.s3_secret_access_key);
    s3.virtual_host_style = a.s3_virtual_host_style;
    let mut settings = ObjectSettings::default();
    if let Some(n) = a.s3_part_size {
        settings.part_size = usize::try_from(n).unwrap_or(usize::MAX);
    }
    if let Some(n) = a.s3_concurrency {
        settings.concurrency = n;
    }
    if let Some(t) = a.s3_timeout {
        settings.timeout = t;
    }
    let store = ObjectStore::s3(&s3, settings).map_err(|e| format!("--storage {url}: {e}"))?;
    store
        .check()
        .map_err(|e| format!("can't use the object store: {e}"))?;
    config.filesystem = store.factory();
    disable_what_objects_refuse(config);
    if config.io_threads == 0 {
        // The workers wait on the network, not on a CPU: 50 uploads to Ceph ran 1.58 times
        // faster with 16 than with one per core on two cores (docs/benchmarks.md, "Object
        // storage").
        config.io_threads = IO_THREADS;
    }
    let limit = settings.timeout;
    let settle = Box::new(move || {
        if !store.settle(limit) {
            log::warn!(
                target: ftpdlib::logger::LOG,
                "object store: uploads still being aborted at exit; their parts stay \
                 stored until the bucket's lifecycle rule removes them"
            );
        }
    });
    Ok(Some(Installed {
        url: url.clone(),
        settle,
    }))
}

/// Without the `opendal` feature: `--storage` is refused with the reason.
///
/// # Errors
/// Whenever `--storage` is given.
#[cfg(not(feature = "opendal"))]
pub(crate) fn install(a: &StorageArgs, _: &mut Config) -> Result<Option<Installed>, String> {
    match &a.storage {
        None => Ok(None),
        Some(url) => Err(format!(
            "--storage {url}: this ftpdlib was built without object storage \
             (cargo build --features opendal)"
        )),
    }
}

/// Whether files live in an object store, where `-d` names a prefix, not a directory.
pub(crate) fn is_object(a: &StorageArgs) -> bool {
    a.storage.is_some()
}

/// Keeps the running store's factory across a reload (its settings are restart-only).
pub(crate) fn keep(a: &StorageArgs, old: &Config, new: &mut Config) {
    if is_object(a) {
        new.filesystem = Arc::clone(&old.filesystem);
        disable_what_objects_refuse(new);
    }
}

/// MFMT is not offered: objects' times can't be set, and clients that see MFMT in FEAT
/// (rclone) set the time after each upload and count the refusal as a failed upload.
fn disable_what_objects_refuse(config: &mut Config) {
    if !config.disabled_commands.iter().any(|c| c == "MFMT") {
        config.disabled_commands.push("MFMT".into());
    }
}
