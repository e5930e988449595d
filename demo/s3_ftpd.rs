//! Files in an object store: users' homes are prefixes of one S3 bucket (Ceph's RADOS
//! Gateway, MinIO, AWS), served over FTP. Needs the `opendal` feature.
//!
//! ```text
//! AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... \
//!   cargo run --example s3_ftpd --features opendal -- s3://bucket/prefix http://127.0.0.1:7480
//! ```
//!
//! Serves on 127.0.0.1:2121 (`FTPD_ADDR`): "alice" and "bob" (password "12345") each in a
//! prefix of their own (`prefix/alice/`, `prefix/bob/`), read and write; anonymous
//! read-only on the whole prefix. The store is checked before serving: a wrong endpoint,
//! bucket or key stops the demo with the service's message. docs/storage.md says what each
//! FTP command does to objects.

use std::path::Path;
use std::sync::Arc;

use ftpdlib::{Config, DummyAuthorizer, FtpServer, ObjectSettings, ObjectStore, S3Settings};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or("usage: s3_ftpd s3://bucket/prefix [endpoint]")?;
    let mut s3 = S3Settings::from_url(&url)?;
    // Without one: AWS_ENDPOINT_URL, else AWS itself.
    s3.endpoint = args
        .next()
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
    let store = ObjectStore::s3(&s3, ObjectSettings::default())?;
    store.check()?;

    // Homes are prefixes in the store, not directories on this machine.
    let mut authorizer = DummyAuthorizer::new().homes_elsewhere();
    authorizer.add_user("alice", "12345", Path::new("/alice"), "elradfmw")?;
    authorizer.add_user("bob", "12345", Path::new("/bob"), "elradfmw")?;
    authorizer.add_anonymous(Path::new("/"), "elr")?;

    let mut config = Config::new(Arc::new(authorizer)).with_filesystem(store.factory());
    // Objects' times can't be set: don't offer MFMT, or clients that set times after each
    // upload (rclone) take the refusal for a failed upload.
    config.disabled_commands.push("MFMT".into());
    let addr = std::env::var("FTPD_ADDR").unwrap_or_else(|_| "127.0.0.1:2121".to_string());
    let mut server = FtpServer::bind(addr.as_str(), config)?;
    println!("serving {url} on {addr}");
    server.serve_forever(None, None)?;
    Ok(())
}
