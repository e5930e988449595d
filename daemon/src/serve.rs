//! Serving until a signal says stop: the reactors on the main thread (a
//! [`ServerGroup`] of `--workers` reactors), the signals on a thread of their own that
//! reaches the reactors through the group's handle; the graceful shutdown and the SIGHUP
//! reload.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use ftpdlib::{Config, FtpServer, GroupHandle, ServerGroup, ServerStats};
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use crate::args::{parse_args, Options, Parsed};
use crate::config_file::Account;
use crate::metrics::{Health, BEAT};
use crate::session_config;

const SIGNALS: Token = Token(0);
/// How often the shutdown looks whether the last transfer has ended.
const GRACE_STEP: Duration = Duration::from_millis(50);
/// How long the signal thread waits for the reactors to carry out what it sent them; a
/// reactor that does not answer in time is stuck or gone (`/health` says which).
const ANSWER: Duration = Duration::from_secs(5);

/// Serves until SIGINT or SIGTERM.
///
/// The first SIGINT or SIGTERM closes the listeners and lets transfers in flight finish
/// for `--shutdown-grace`; the reactors then close every session, at once when the last
/// transfer has ended, or at the end of the grace period, or at a second signal. SIGHUP
/// reloads the settings from the same arguments and files ([`reload`]). The signals come
/// through a pipe (signal-hook's self-pipe) to a thread of their own, so no code runs in
/// signal context; that thread sends each reactor what to do ([`GroupHandle::call_each`])
/// and waits until every one has done it before it logs so.
///
/// With `health` (`--metrics`), each reactor turns at least every [`BEAT`] and notes each
/// turn there, so that `/health` can tell running reactors from a stuck one.
pub(crate) fn serve(
    mut group: ServerGroup,
    signals: Signals,
    o: Options,
    dir: &Path,
    args: Vec<OsString>,
    health: Option<Arc<Health>>,
) -> Result<(), String> {
    if let Some(h) = &health {
        for (i, s) in group.reactors_mut().iter_mut().enumerate() {
            let h = Arc::clone(h);
            h.beat(i, Instant::now());
            s.call_every(BEAT, move |_| h.beat(i, Instant::now()));
        }
    }
    let closed = Arc::new(AtomicUsize::new(0));
    let Some(config) = group.reactors().first().map(|s| s.config().clone()) else {
        return Err("no reactor to run".to_string());
    };
    let watcher = Watcher {
        handle: group.handle(),
        stats: group.stats(),
        config,
        o,
        dir: dir.to_path_buf(),
        args,
        health,
        closed: Arc::clone(&closed),
    };
    // The thread ends after the last signal it needs, which drops `ended_tx`. It is not
    // joined, so a group that stops on its own (every reactor panicked) does not wait for
    // a signal.
    let (ended_tx, ended) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("ftpd-signals".into())
        .spawn(move || {
            let _ended = ended_tx;
            watcher.run(signals);
        })
        .map_err(|e| format!("can't start the signal thread: {e}"))?;
    group
        .serve_forever(None)
        .map_err(|e| format!("server stopped: {e}"))?;
    // A reactor closed with no session left stops at once, before the signal thread that
    // closed it has logged the shutdown and counted the sessions it closed: returning now
    // would end the process under that thread. It has nothing left to wait for once the
    // reactors are gone; the bound is for a thread that never started a shutdown.
    let _ = ended.recv_timeout(ANSWER);
    log::info!(
        target: ftpdlib::logger::LOG,
        ">>> FTP server stopped ({} sessions closed) <<<",
        closed.load(Ordering::SeqCst)
    );
    Ok(())
}

/// The signal thread: what it needs to stop and reload the reactors.
struct Watcher {
    handle: GroupHandle,
    stats: Arc<ServerStats>,
    /// The settings the reactors run with, for the reload to build on.
    config: Config,
    o: Options,
    dir: PathBuf,
    args: Vec<OsString>,
    health: Option<Arc<Health>>,
    /// Sessions closed by the final stop, summed over the reactors.
    closed: Arc<AtomicUsize>,
}

impl Watcher {
    fn run(mut self, mut signals: Signals) {
        let mut poll = match Poll::new().and_then(|p| {
            p.registry()
                .register(&mut signals, SIGNALS, Interest::READABLE)
                .map(|()| p)
        }) {
            Ok(p) => p,
            Err(e) => {
                log::error!(target: ftpdlib::logger::LOG, "can't watch signals: {e}; stopping");
                return self.stop_now();
            }
        };
        let mut events = Events::with_capacity(8);
        // Set by the first SIGINT/SIGTERM: when the grace period ends.
        let mut grace_end: Option<Instant> = None;
        loop {
            match poll.poll(&mut events, grace_end.map(|_| GRACE_STEP)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::error!(target: ftpdlib::logger::LOG, "signal poll failed: {e}; stopping");
                    return self.stop_now();
                }
            }
            let caught: Vec<i32> = if events.is_empty() {
                Vec::new()
            } else {
                signals.pending().collect()
            };
            for signal in caught {
                if signal == SIGHUP {
                    reopen_log();
                    self.reload();
                } else if grace_end.is_some() {
                    log::info!(
                        target: ftpdlib::logger::LOG,
                        ">>> second {} during shutdown: closing {} sessions now <<<",
                        signal_name(signal),
                        self.stats.sessions_open()
                    );
                    return self.stop_now();
                } else {
                    if let Some(h) = &self.health {
                        h.stopping();
                    }
                    let sessions: usize = self.on_every_reactor(|s| {
                        s.close();
                        s.session_count()
                    });
                    log::info!(
                        target: ftpdlib::logger::LOG,
                        ">>> shutting down FTP server ({sessions} sessions) <<<"
                    );
                    grace_end = Some(ftpdlib::ioloop::deadline(
                        Instant::now(),
                        self.o.shutdown_grace,
                    ));
                }
            }
            if let Some(end) = grace_end {
                let transfers = self.stats.transfers_running();
                if transfers == 0 {
                    return self.stop_now();
                }
                if Instant::now() >= end {
                    log::info!(
                        target: ftpdlib::logger::LOG,
                        ">>> shutdown grace period over: cutting {transfers} transfers <<<"
                    );
                    return self.stop_now();
                }
            }
        }
    }

    /// Runs `f` on every reactor that is still running and sums what they answer, waiting
    /// at most [`ANSWER`] for them.
    fn on_every_reactor(
        &self,
        f: impl Fn(&mut FtpServer) -> usize + Send + Sync + 'static,
    ) -> usize {
        let (tx, rx) = mpsc::channel();
        self.handle.call_each(move |_, s| {
            let _ = tx.send(f(s));
        });
        let end = Instant::now() + ANSWER;
        let mut sum = 0;
        loop {
            match rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
                Ok(n) => sum += n,
                // Every reactor has run `f` or stopped (a stopped reactor's mailbox drops
                // what is sent to it): the last sender is gone.
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    log::warn!(
                        target: ftpdlib::logger::LOG,
                        "a reactor did not answer within {ANSWER:?}"
                    );
                    break;
                }
            }
        }
        sum
    }

    /// Closes every session of every reactor, which ends [`ServerGroup::serve_forever`].
    fn stop_now(self) {
        let closed = Arc::clone(&self.closed);
        let n = self.on_every_reactor(|s| {
            let n = s.session_count();
            s.close_all();
            n
        });
        closed.store(n, Ordering::SeqCst);
        // A reactor that stopped on its own before this (closed, and its last session
        // gone) no longer reads its mailbox: the handle makes sure of every one.
        self.handle.close_all();
    }
}
fn signal_name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP",
        _ => "signal",
    }
}

/// The options only a restart can change: the listening sockets, the storage, the worker
/// pool, the reactors, the xferlog, the logger and the connection counts are set up once,
/// at the start. A reload that changes one logs it as needing a restart and keeps the
/// running value.
const RESTART_ONLY: [&str; 16] = [
    "interface",
    "port",
    "directory",
    "memory",
    "io-threads",
    "workers",
    "concurrency",
    "xferlog",
    "debug",
    "system-users",
    "max-cons",
    "max-cons-per-ip",
    "log-file",
    "log-format",
    "syslog",
    "syslog-socket",
];

/// Puts back into `new` the [`RESTART_ONLY`] options of `old`; returns the names of those
/// that differed.
fn keep_restart_only(new: &mut Options, old: &Options) -> Vec<&'static str> {
    let changed = RESTART_ONLY
        .into_iter()
        .chain(crate::storage::KEYS)
        .filter(|k| new.settings.get(*k) != old.settings.get(*k))
        .collect();
    for k in RESTART_ONLY.into_iter().chain(crate::storage::KEYS) {
        match old.settings.get(k) {
            Some(v) => new.settings.insert(k.to_string(), v.clone()),
            None => new.settings.remove(k),
        };
    }
    new.interface.clone_from(&old.interface);
    new.port = old.port;
    new.directory.clone_from(&old.directory);
    new.memory = old.memory;
    new.storage.clone_from(&old.storage);
    new.io_threads = old.io_threads;
    new.workers = old.workers;
    new.xferlog.clone_from(&old.xferlog);
    new.debug = old.debug;
    new.system_users = old.system_users;
    new.max_cons = old.max_cons;
    new.max_cons_per_ip = old.max_cons_per_ip;
    new.log_file.clone_from(&old.log_file);
    new.log_format = old.log_format;
    new.syslog.clone_from(&old.syslog);
    changed
}

/// What differs between two sets of options, by option name, with the accounts named.
fn changes(old: &Options, new: &Options) -> Vec<String> {
    let keys: BTreeSet<&String> = old.settings.keys().chain(new.settings.keys()).collect();
    let mut out: Vec<String> = keys
        .into_iter()
        .filter(|k| old.settings.get(*k) != new.settings.get(*k))
        .map(|k| k.to_string())
        .collect();
    let users = account_changes(&old.accounts, &new.accounts);
    if !users.is_empty() {
        out.push(format!("[[users]] ({users})"));
    }
    if old.anonymous_settings != new.anonymous_settings {
        out.push("[anonymous]".to_string());
    }
    out
}

/// "added bob, removed carol, changed alice".
fn account_changes(old: &[Account], new: &[Account]) -> String {
    let find = |list: &[Account], name: &str| list.iter().find(|a| a.name == name).cloned();
    let mut parts = Vec::new();
    for a in new {
        match find(old, &a.name) {
            None => parts.push(format!("added {}", a.name)),
            Some(o) if o != *a => parts.push(format!("changed {}", a.name)),
            Some(_) => {}
        }
    }
    for a in old {
        if find(new, &a.name).is_none() {
            parts.push(format!("removed {}", a.name));
        }
    }
    parts.join(", ")
}

/// SIGHUP: a new log file where logrotate moved the old one away. A file that can't be
/// opened leaves the old one in use, and the reason in it.
fn reopen_log() {
    match crate::logging::reopen() {
        Ok(Some(what)) => log::info!(
            target: ftpdlib::logger::LOG,
            ">>> SIGHUP: reopened {what} <<<"
        ),
        Ok(None) => {}
        Err(e) => log::warn!(
            target: ftpdlib::logger::LOG,
            ">>> SIGHUP: {e}; logging on to the old file <<<"
        ),
    }
}

impl Watcher {
    /// SIGHUP: parses the same arguments again, which reads the `--config` file, the
    /// `--users` file and the `--tls-cert`/`--tls-key` files anew, and hands the result to
    /// every reactor for the sessions that start from now on; running sessions keep what
    /// they logged in with. Everything is loaded before anything is changed: a file that
    /// fails to load leaves the old settings whole. The [`RESTART_ONLY`] options keep
    /// their running values. The reload is logged once every reactor has the new settings.
    fn reload(&mut self) {
        let o = &mut self.o;
        if o.config.is_none() && o.users.is_none() && o.tls_cert.is_none() {
            log::info!(
                target: ftpdlib::logger::LOG,
                ">>> SIGHUP: nothing to reload (no --config, --users or --tls-cert given) <<<"
            );
            return;
        }
        let (config, new, what) = match reloaded(&self.config, o, &self.dir, &self.args) {
            Ok(r) => r,
            Err(e) => {
                log::warn!(
                    target: ftpdlib::logger::LOG,
                    ">>> SIGHUP: reload refused, keeping the old settings: {e} <<<"
                );
                return;
            }
        };
        self.config = config.clone();
        self.on_every_reactor(move |s| {
            s.set_config(config.clone());
            0
        });
        let changed = changes(&self.o, &new);
        self.o = new;
        log::info!(
            target: ftpdlib::logger::LOG,
            ">>> SIGHUP: reloaded {what} for new sessions; {} <<<",
            if changed.is_empty() {
                "no option changed".to_string()
            } else {
                format!("changed: {}", changed.join(", "))
            }
        );
    }
}

/// The options parsed anew, the session settings made from them on the storage, hooks
/// and worker pool of `old`, and what was read.
fn reloaded(
    old: &Config,
    o: &Options,
    dir: &Path,
    args: &[OsString],
) -> Result<(Config, Options, String), String> {
    let mut new = match parse_args(args.to_vec())? {
        Parsed::Run(new) => *new,
        // The same arguments as at the start, which ran the server.
        Parsed::HashPassword(_) | Parsed::Exit(_) => {
            return Err("the arguments no longer start the server".to_string())
        }
    };
    for key in keep_restart_only(&mut new, o) {
        log::warn!(
            target: ftpdlib::logger::LOG,
            ">>> SIGHUP: {key} changed: needs a restart, keeping the running value <<<"
        );
    }
    let mut who = Vec::new();
    let mut config = session_config(&new, dir, &mut who)?;
    // The in-memory store is the data itself: kept. The disk's factory is made anew, so
    // the homes it holds open are opened again from the reloaded users' paths.
    if o.memory {
        config.filesystem = old.filesystem.clone();
    }
    crate::storage::keep(&o.storage, old, &mut config);
    config.hooks = old.hooks.clone();
    config.io_threads = old.io_threads;
    let mut what = Vec::new();
    if let Some(cert) = &new.tls_cert {
        what.push(format!("TLS certificate {}", cert.display()));
    }
    what.extend(who);
    Ok((config, new, what.join(", ")))
}
