//! One reactor per core: a [`ServerGroup`] serves one port from several threads, with the
//! connection limits, the failed-login bans and the bandwidth limits shared by all of
//! them. pyftpdlib's equivalent is `serve_forever(worker_processes=N)` (its pre-fork
//! model) or `MultiprocessFTPServer`.
//!
//! ```text
//! cargo run --example multicore_ftpd
//! ```
//!
//! Serves `FTPD_DIR` (default `ftpdlib-demo` in the temporary directory) on 127.0.0.1:2121
//! with `FTPD_WORKERS` reactors (default: one per core): user "user" with password "12345"
//! may read and write, anonymous may read. Every ten seconds it prints the group's
//! counters; `FTPD_EXIT_AFTER=N` stops the group after N sessions have come and gone.

#[path = "common.rs"]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ftpdlib::hooks::{Hooks, SessionInfo};
use ftpdlib::{Config, DummyAuthorizer, GroupHandle, ServerGroup};

/// Says which reactor thread served a session, and stops the group after a given number
/// of sessions. Hooks run on the reactor that owns the session; this one keeps its state
/// in atomics, as anything a hook shares across reactors must be `Send + Sync`.
struct Watch {
    done: AtomicUsize,
    exit_after: usize,
    stop: std::sync::OnceLock<GroupHandle>,
}

impl Hooks for Watch {
    fn on_login(&self, s: SessionInfo<'_>) {
        let thread = std::thread::current();
        println!(
            "{} logged in on {}",
            s.username,
            thread.name().unwrap_or("?")
        );
    }

    fn on_disconnect(&self, _s: SessionInfo<'_>) {
        let n = self.done.fetch_add(1, Ordering::SeqCst) + 1;
        if self.exit_after > 0 && n >= self.exit_after {
            if let Some(h) = self.stop.get() {
                h.close_all();
            }
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cwd = common::served_dir()?;
    let mut authorizer = DummyAuthorizer::new();
    authorizer.add_user("user", "12345", &cwd, "elradfmwMT")?;
    authorizer.add_anonymous(&cwd, "elr")?;

    let watch = Arc::new(Watch {
        done: AtomicUsize::new(0),
        exit_after: std::env::var("FTPD_EXIT_AFTER")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        stop: std::sync::OnceLock::new(),
    });
    let mut config = Config::new(Arc::new(authorizer));
    config.hooks = Arc::clone(&watch) as Arc<dyn Hooks>;
    // Shared by every reactor: three failed logins ban an address from all of them.
    config.flood.max_failed_logins = 3;

    let workers = std::env::var("FTPD_WORKERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let addr = std::env::var("FTPD_ADDR").unwrap_or_else(|_| "127.0.0.1:2121".to_string());
    let mut group = ServerGroup::bind(addr.as_str(), config, workers)?;
    // Limits of the whole group, not of each reactor.
    group.max_cons = 256;
    group.max_cons_per_ip = 5;
    let _ = watch.stop.set(group.handle());

    // A callback on the first reactor prints the counters every reactor adds to.
    let stats = group.stats();
    group.reactors_mut()[0].call_every(Duration::from_secs(10), move |_| {
        println!(
            "{} sessions open, {} bytes sent, {} lock waits",
            stats.sessions_open(),
            stats.bytes_sent(),
            stats.lock_waits()
        );
    });

    let at = group.local_addrs()[0];
    println!(
        "serving {} with {} reactors on {at}",
        cwd.display(),
        group.reactors().len()
    );
    group.serve_forever(None)?;
    println!(
        "stopped after {} sessions",
        watch.done.load(Ordering::SeqCst)
    );
    Ok(())
}
