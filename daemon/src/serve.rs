//! Serving until a signal says stop: one mio poll carrying the server and the signals, the
//! graceful shutdown and the SIGHUP reload.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use ftpdlib::{Config, FtpServer};
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use crate::args::{parse_args, Options, Parsed};
use crate::config_file::Account;
use crate::metrics::{Health, BEAT};
use crate::session_config;

/// The token of the signal source; the server takes the [`ftpdlib::TOKEN_SPAN`] tokens from
/// `FTP_TOKENS` up.
const SIGNALS: Token = Token(0);
const FTP_TOKENS: Token = Token(1);

/// Serves until SIGINT or SIGTERM, on one poll that carries the server and the signals.
///
/// The first SIGINT or SIGTERM closes the listeners and lets open data connections finish
/// for `--shutdown-grace`; the server then closes every session, at once when the last
/// transfer has ended, or at the end of the grace period, or at a second signal. SIGHUP
/// reloads the settings from the same arguments and files ([`reload`]). The signals come through a pipe
/// (signal-hook's self-pipe), so the reactor sees them as one more readable source and no
/// code runs in signal context here.
///
/// With `health` (`--metrics`), the loop turns at least every [`BEAT`] and notes each turn
/// there, so that `/health` can tell a running reactor from a stuck one.
pub(crate) fn serve(
    mut server: FtpServer,
    mut signals: Signals,
    mut o: Options,
    dir: &Path,
    args: Vec<OsString>,
    health: Option<Arc<Health>>,
) -> Result<(), String> {
    let mut poll = Poll::new().map_err(|e| format!("can't make a poll: {e}"))?;
    poll.registry()
        .register(&mut signals, SIGNALS, Interest::READABLE)
        .map_err(|e| format!("can't watch signals: {e}"))?;
    server
        .register(poll.registry(), FTP_TOKENS)
        .map_err(|e| format!("can't register the server: {e}"))?;
    let mut events = Events::with_capacity(256);
    // Set by the first SIGINT/SIGTERM: when the grace period ends.
    let mut grace_end: Option<Instant> = None;
    loop {
        let deadline = match (server.next_timeout(), grace_end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if let Some(h) = &health {
            h.beat(Instant::now());
            timeout = Some(timeout.map_or(BEAT, |t| t.min(BEAT)));
        }
        match poll.poll(&mut events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("server stopped: {e}")),
        }
        let now = Instant::now();
        let mut caught = Vec::new();
        for event in events.iter() {
            if server.owns(event.token()) {
                server.handle_event(event, now);
            } else if event.token() == SIGNALS {
                caught.extend(signals.pending());
            }
        }
        server.handle_timeouts(Instant::now());
        for signal in caught {
            if signal == SIGHUP {
                reopen_log();
                reload(&mut server, &mut o, dir, &args);
            } else if grace_end.is_some() {
                log::info!(
                    target: ftpdlib::logger::LOG,
                    ">>> second {} during shutdown: closing {} sessions now <<<",
                    signal_name(signal),
                    server.session_count()
                );
                return stop(server, &poll);
            } else {
                if let Some(h) = &health {
                    h.stopping();
                }
                server.close();
                log::info!(
                    target: ftpdlib::logger::LOG,
                    ">>> shutting down FTP server ({} sessions) <<<",
                    server.session_count()
                );
                grace_end = Some(ftpdlib::ioloop::deadline(Instant::now(), o.shutdown_grace));
            }
        }
        if let Some(end) = grace_end {
            let transfers = transfer_count(&server);
            if transfers == 0 {
                return stop(server, &poll);
            }
            if Instant::now() >= end {
                log::info!(
                    target: ftpdlib::logger::LOG,
                    ">>> shutdown grace period over: cutting {transfers} transfers <<<"
                );
                return stop(server, &poll);
            }
        }
    }
}

/// Data connections open or awaited. Once the listeners are closed the server's channels
/// are its sessions and their data channels.
fn transfer_count(server: &FtpServer) -> usize {
    server
        .channel_count()
        .saturating_sub(server.session_count())
}

/// Closes every session and leaves nothing registered.
fn stop(mut server: FtpServer, poll: &Poll) -> Result<(), String> {
    let sessions = server.session_count();
    server.deregister(poll.registry());
    log::info!(
        target: ftpdlib::logger::LOG,
        ">>> FTP server stopped ({sessions} sessions closed) <<<"
    );
    Ok(())
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
/// pool, the xferlog, the logger and the connection counts are set up once, at the start.
/// A reload that changes one logs it as needing a restart and keeps the running value.
const RESTART_ONLY: [&str; 14] = [
    "interface",
    "port",
    "directory",
    "memory",
    "io-threads",
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
        .filter(|k| new.settings.get(*k) != old.settings.get(*k))
        .collect();
    for k in RESTART_ONLY {
        match old.settings.get(k) {
            Some(v) => new.settings.insert(k.to_string(), v.clone()),
            None => new.settings.remove(k),
        };
    }
    new.interface.clone_from(&old.interface);
    new.port = old.port;
    new.directory.clone_from(&old.directory);
    new.memory = old.memory;
    new.io_threads = old.io_threads;
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

/// SIGHUP: parses the same arguments again, which reads the `--config` file, the `--users`
/// file and the `--tls-cert`/`--tls-key` files anew, and hands the result to the server
/// for the sessions that start from now on; running sessions keep what they logged in
/// with. Everything is loaded before anything is changed: a file that fails to load leaves
/// the old settings whole. The [`RESTART_ONLY`] options keep their running values.
fn reload(server: &mut FtpServer, o: &mut Options, dir: &Path, args: &[OsString]) {
    if o.config.is_none() && o.users.is_none() && o.tls_cert.is_none() {
        log::info!(
            target: ftpdlib::logger::LOG,
            ">>> SIGHUP: nothing to reload (no --config, --users or --tls-cert given) <<<"
        );
        return;
    }
    match reloaded(server.config(), o, dir, args) {
        Ok((config, new, what)) => {
            server.set_config(config);
            let changed = changes(o, &new);
            *o = new;
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
        Err(e) => log::warn!(
            target: ftpdlib::logger::LOG,
            ">>> SIGHUP: reload refused, keeping the old settings: {e} <<<"
        ),
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
    config.filesystem = old.filesystem.clone();
    config.hooks = old.hooks.clone();
    config.io_threads = old.io_threads;
    let mut what = Vec::new();
    if let Some(cert) = &new.tls_cert {
        what.push(format!("TLS certificate {}", cert.display()));
    }
    what.extend(who);
    Ok((config, new, what.join(", ")))
}
