//! A storage back-end of your own: every filesystem call of [`OsFilesystem`] wrapped in a
//! fixed delay, as a network or object store would add (with pyftpdlib one subclasses
//! `AbstractedFS` for the same purpose).
//!
//! ```text
//! cargo run --release --example slow_ftpd -- --delay-ms 50 --dir /srv/ftp
//! ```
//!
//! Serves `--dir` (default `FTPD_DIR`, else `ftpdlib-demo` in the temporary directory) on
//! 127.0.0.1:2121 (`--port`, `--addr`) to `--user` (default "user") with `--password`
//! (default "12345"), full permissions, and anonymous read-only. Every storage call sleeps
//! `--delay-ms` milliseconds (default 50) before doing its work. The calls run on the
//! server's worker threads (`--io-threads`, default the number of cores and at least 2), so
//! a slow back-end costs throughput, not the other sessions' replies:
//! `demo/bench/blocking.sh` measures exactly that with it.

#[path = "common.rs"]
mod common;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ftpdlib::filesystem::{DirStream, FileReader, FileWriter, Stat, StatMode, WriteMode};
use ftpdlib::{Config, DummyAuthorizer, Filesystem, FtpServer, OsFilesystem};

/// [`OsFilesystem`] with `delay` added to each call, and to each batch of directory entries.
#[derive(Debug)]
struct SlowFilesystem {
    inner: OsFilesystem,
    delay: Duration,
}

impl SlowFilesystem {
    fn call<T>(&self, f: impl FnOnce(&OsFilesystem) -> io::Result<T>) -> io::Result<T> {
        std::thread::sleep(self.delay);
        f(&self.inner)
    }
}

/// A directory stream that sleeps before each batch, as a paged object listing would.
#[derive(Debug)]
struct SlowDir {
    inner: Box<dyn DirStream>,
    delay: Duration,
}

impl DirStream for SlowDir {
    fn next_batch(
        &mut self,
        max: usize,
        mode: StatMode,
    ) -> io::Result<Vec<ftpdlib::filesystem::DirEntry>> {
        std::thread::sleep(self.delay);
        self.inner.next_batch(max, mode)
    }
}

impl Filesystem for SlowFilesystem {
    fn stat(&self, path: &Path) -> io::Result<Stat> {
        self.call(|fs| fs.stat(path))
    }
    fn lstat(&self, path: &Path) -> io::Result<Stat> {
        self.call(|fs| fs.lstat(path))
    }
    fn read_dir(&self, path: &Path) -> io::Result<Box<dyn DirStream>> {
        let inner = self.call(|fs| fs.read_dir(path))?;
        Ok(Box::new(SlowDir {
            inner,
            delay: self.delay,
        }))
    }
    fn open_read(&self, path: &Path, offset: u64) -> io::Result<Box<dyn FileReader>> {
        self.call(|fs| fs.open_read(path, offset))
    }
    fn open_write(&self, path: &Path, mode: WriteMode) -> io::Result<Box<dyn FileWriter>> {
        self.call(|fs| fs.open_write(path, mode))
    }
    fn mkdir(&self, path: &Path) -> io::Result<()> {
        self.call(|fs| fs.mkdir(path))
    }
    fn rmdir(&self, path: &Path) -> io::Result<()> {
        self.call(|fs| fs.rmdir(path))
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.call(|fs| fs.remove(path))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.call(|fs| fs.rename(from, to))
    }
    fn chmod(&self, path: &Path, mode: u32) -> io::Result<()> {
        self.call(|fs| fs.chmod(path, mode))
    }
    fn set_mtime(&self, path: &Path, secs: i64) -> io::Result<()> {
        self.call(|fs| fs.set_mtime(path, secs))
    }
    fn real_path(&self, path: &Path) -> PathBuf {
        self.inner.real_path(path)
    }
    // `is_inline` keeps its default, false: every call goes to a worker thread.
}

struct Args {
    addr: String,
    dir: PathBuf,
    user: String,
    password: String,
    delay: Duration,
    io_threads: usize,
}

const USAGE: &str = "usage: slow_ftpd [--delay-ms MS] [--addr IP] [--port PORT] [--dir DIR] \
                     [--user NAME] [--password PASS] [--io-threads N]";

fn parse_args() -> Result<Args, String> {
    let mut ip = "127.0.0.1".to_string();
    let mut port = "2121".to_string();
    let mut a = Args {
        addr: String::new(),
        dir: common::served_dir().map_err(|e| format!("demo directory: {e}"))?,
        user: "user".to_string(),
        password: "12345".to_string(),
        delay: Duration::from_millis(50),
        io_threads: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.to_string());
        }
        let value = args
            .next()
            .ok_or(format!("{flag} needs a value\n{USAGE}"))?;
        let number = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--delay-ms" => a.delay = Duration::from_millis(number(&value)?),
            "--addr" => ip = value,
            "--port" => port = value,
            "--dir" => a.dir = PathBuf::from(value),
            "--user" => a.user = value,
            "--password" => a.password = value,
            "--io-threads" => a.io_threads = number(&value)? as usize,
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    a.addr = if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    };
    Ok(a)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };

    let mut authorizer = DummyAuthorizer::new();
    authorizer.add_user(&args.user, &args.password, &args.dir, "elradfmwMT")?;
    authorizer.add_anonymous(&args.dir, "elr")?;
    let mut config = Config::new(Arc::new(authorizer));
    let delay = args.delay;
    // The factory runs at each login with the user's home directory.
    config.filesystem = Arc::new(move |home: &Path| {
        Ok(Arc::new(SlowFilesystem {
            inner: OsFilesystem::new(home)?,
            delay,
        }) as Arc<dyn Filesystem>)
    });
    config.io_threads = args.io_threads;

    let mut server = FtpServer::bind(args.addr.as_str(), config)?;
    server.max_cons = 0;
    println!(
        "serving {} on {} with {} ms per storage call",
        args.dir.display(),
        args.addr,
        delay.as_millis()
    );
    server.serve_forever(None, None)?;
    Ok(())
}
