//! Serving until a signal says stop: one mio poll carrying the server and the signals, the
//! graceful shutdown and the SIGHUP reload.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use ftpdlib::{Config, FtpServer};
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use crate::args::Options;
use crate::metrics::{Health, BEAT};
use crate::settings::{perm, tls_config, virtual_authorizer};

/// The token of the signal source; the server takes the [`ftpdlib::TOKEN_SPAN`] tokens from
/// `FTP_TOKENS` up.
const SIGNALS: Token = Token(0);
const FTP_TOKENS: Token = Token(1);

/// Serves until SIGINT or SIGTERM, on one poll that carries the server and the signals.
///
/// The first SIGINT or SIGTERM closes the listeners and lets open data connections finish
/// for `--shutdown-grace`; the server then closes every session, at once when the last
/// transfer has ended, or at the end of the grace period, or at a second signal. SIGHUP
/// reloads the settings read from files ([`reload`]). The signals come through a pipe
/// (signal-hook's self-pipe), so the reactor sees them as one more readable source and no
/// code runs in signal context here.
///
/// With `health` (`--metrics`), the loop turns at least every [`BEAT`] and notes each turn
/// there, so that `/health` can tell a running reactor from a stuck one.
pub(crate) fn serve(
    mut server: FtpServer,
    mut signals: Signals,
    o: &Options,
    dir: &Path,
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
                reload(&mut server, o, dir);
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
                grace_end = Some(Instant::now() + o.shutdown_grace);
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

/// SIGHUP: reads the `--users` file and the `--tls-cert`/`--tls-key` files again and hands
/// the result to the server for the sessions that start from now on; running sessions keep
/// what they logged in with. Everything is loaded before anything is changed: a file that
/// fails to load leaves the old settings whole.
fn reload(server: &mut FtpServer, o: &Options, dir: &Path) {
    if o.users.is_none() && o.tls_cert.is_none() {
        log::info!(
            target: ftpdlib::logger::LOG,
            ">>> SIGHUP: nothing to reload (no --users or --tls-cert given) <<<"
        );
        return;
    }
    match reloaded(server.config(), o, dir) {
        Ok((config, what)) => {
            server.set_config(config);
            log::info!(
                target: ftpdlib::logger::LOG,
                ">>> SIGHUP: reloaded {what} for new sessions <<<"
            );
        }
        Err(e) => log::warn!(
            target: ftpdlib::logger::LOG,
            ">>> SIGHUP: reload refused, keeping the old settings: {e} <<<"
        ),
    }
}

/// A copy of `old` with the authorizer and TLS settings read anew, and what was read.
fn reloaded(old: &Config, o: &Options, dir: &Path) -> Result<(Config, String), String> {
    let mut config = old.clone();
    let mut what = Vec::new();
    if o.users.is_some() {
        let mut who = Vec::new();
        config.authorizer = Arc::new(virtual_authorizer(o, dir, perm(o), &mut who)?);
        what.extend(who);
    }
    if let (Some(cert), Some(key)) = (&o.tls_cert, &o.tls_key) {
        config.tls = Some(tls_config(o, cert, key)?);
        what.push(format!("TLS certificate {}", cert.display()));
    }
    Ok((config, what.join(", ")))
}
