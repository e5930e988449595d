//! One reactor per core: [`ServerGroup`] runs N [`FtpServer`]s, each a single-threaded mio
//! loop with its own poll, slab, timer heap and worker pool, on a thread of its own.
//!
//! # How connections spread
//!
//! Every reactor binds the same addresses with `SO_REUSEPORT` (Linux 3.9 and later): the
//! kernel keeps one accept queue per listener and hands each new connection to one of them
//! by a hash of its address and port pair, so the reactors accept without sharing a queue
//! or a lock. A session stays on the reactor that accepted it, with its data connections,
//! passive listeners, timers and hooks. The balance is statistical: a few long sessions
//! may land on the same reactor while another idles. When a reactor stops (a panic), the
//! kernel stops sending it connections; those already queued at its listener are reset.
//!
//! Only processes of the same effective user can bind a port that is bound with
//! `SO_REUSEPORT`; a group of one binds without it, as a lone server does.
//!
//! # What is shared
//!
//! The limits hold for the group, not per reactor (`shared.rs`): `max_cons` and
//! `max_cons_per_ip` count the sessions of every reactor, the flood table's failed logins
//! and bans are one table, and the per-user and whole-server bandwidth buckets are one set,
//! shared as fairly as on one reactor. Passive ports are the kernel's to hand out: a
//! passive listener is bound without `SO_REUSEPORT`, so no two reactors can hold the same
//! port. The counters ([`ServerStats`]) are one instance; the session settings
//! ([`Config`]) one `Arc`, so hooks, authorizer, storage and xferlog are shared objects
//! called from every reactor thread (they are `Send + Sync`).
//!
//! # Faults
//!
//! A reactor thread that panics (a bug in an authorizer or a storage called on the
//! reactor thread, say; a hook's panic only ends its session) is caught: the panic is logged and
//! counted ([`ServerStats::reactor_panics`]), the reactor closes its sessions, which gives
//! their slots back to the shared limits, and stops; the others go on serving. Should
//! closing panic too (the same code, called again as the sessions close), the sessions
//! are dropped without calling into them; one whose drop panics as well (another upload's
//! file of the same storage, say) does not keep the others. This needs panics that unwind,
//! Rust's default: under `panic = "abort"` a panic ends the process. A reactor that fails
//! instead (its poll cannot be made, for want of descriptors, say) stops the whole group,
//! so that no listener is left bound with nobody accepting on it.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::logger;
use crate::stats::ServerStats;

use super::listen::bind_listener;
use super::{FtpServer, StopHandle};

/// N reactors on N threads serving the same addresses, with every limit shared: the
/// multi-core counterpart of [`FtpServer`] (pyftpdlib has `ThreadedFTPServer` and
/// `MultiprocessFTPServer` for the same need).
///
/// # Examples
/// Serve a directory with one reactor per core until stopped from another thread:
/// ```no_run
/// use std::sync::Arc;
/// use ftpdlib::{Config, DummyAuthorizer, ServerGroup};
/// let mut auth = DummyAuthorizer::new();
/// auth.add_anonymous("/srv/ftp", "elr").unwrap();
/// let mut group = ServerGroup::bind("127.0.0.1:2121", Config::new(Arc::new(auth)), 0).unwrap();
/// group.max_cons = 256;
/// let handle = group.handle();
/// std::thread::spawn(move || {
///     std::thread::sleep(std::time::Duration::from_secs(60));
///     handle.close_all();
/// });
/// group.serve_forever(None).unwrap();
/// ```
pub struct ServerGroup {
    /// Most sessions at once across the group, 0 for no limit (default 512); set on every
    /// reactor when the group starts serving.
    pub max_cons: usize,
    /// Most sessions from one IP address across the group, 0 for no limit (default 0).
    pub max_cons_per_ip: usize,
    servers: Vec<FtpServer>,
}

impl std::fmt::Debug for ServerGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerGroup")
            .field("reactors", &self.servers.len())
            .field("local_addrs", &self.local_addrs())
            .field("max_cons", &self.max_cons)
            .field("max_cons_per_ip", &self.max_cons_per_ip)
            .finish_non_exhaustive()
    }
}

/// The number of reactors `--workers 0` means: one per core the process may run on.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

impl ServerGroup {
    /// Binds `reactors` servers on every address `addr` resolves to (0 for one per core,
    /// [`cores`]). With port 0 the kernel picks one port, which every reactor then shares.
    ///
    /// # Errors
    /// Resolution or binding errors, e.g. `AddrInUse`, and the errors of
    /// [`FtpServer::from_listeners`].
    pub fn bind(
        addr: impl ToSocketAddrs,
        config: Config,
        reactors: usize,
    ) -> io::Result<ServerGroup> {
        let reactors = if reactors == 0 { cores() } else { reactors };
        if reactors == 1 {
            return Ok(ServerGroup::from_servers(vec![FtpServer::bind(
                addr, config,
            )?]));
        }
        let wanted: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
        if wanted.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no address to listen on",
            ));
        }
        let mut servers = Vec::with_capacity(reactors);
        // The first reactor's addresses, with the ports the kernel chose for port 0.
        let mut bound = wanted;
        for i in 0..reactors {
            let listeners = bound
                .iter()
                .map(|a| bind_listener(*a, true))
                .collect::<io::Result<Vec<_>>>()?;
            let server = FtpServer::from_own_listeners(listeners, config.clone())?;
            if i == 0 {
                bound = server.local_addrs().to_vec();
            }
            servers.push(server);
        }
        Ok(ServerGroup::from_servers(servers))
    }

    /// Makes a group of servers the caller made (say on listeners bound with options of its
    /// own, `SO_REUSEPORT` among them): from now on they share the first one's limits,
    /// flood table, bandwidth buckets and counters. Call it before they accept connections.
    ///
    /// # Panics
    /// When `servers` is empty.
    pub fn from_servers(mut servers: Vec<FtpServer>) -> ServerGroup {
        assert!(!servers.is_empty(), "a server group needs a server");
        let (first, rest) = servers.split_at_mut(1);
        let first = &first[0];
        for s in rest {
            s.shared = Arc::clone(&first.shared);
            s.stats = Arc::clone(&first.stats);
        }
        ServerGroup {
            max_cons: first.max_cons,
            max_cons_per_ip: first.max_cons_per_ip,
            servers,
        }
    }

    /// The addresses the group listens on (with the port the kernel chose for port 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        self.servers
            .first()
            .map_or(&[], |s: &FtpServer| s.local_addrs())
    }

    /// The reactors, in order.
    pub fn reactors(&self) -> &[FtpServer] {
        &self.servers
    }

    /// The reactors, to set up before [`serve_forever`](Self::serve_forever) (callbacks,
    /// [`set_stats`](FtpServer::set_stats) on every one of them, ...).
    pub fn reactors_mut(&mut self) -> &mut [FtpServer] {
        &mut self.servers
    }

    /// The counters of the whole group ([`ServerStats`]).
    pub fn stats(&self) -> Arc<ServerStats> {
        self.servers
            .first()
            .map_or_else(|| Arc::new(ServerStats::new()), FtpServer::stats)
    }

    /// A handle that stops or reaches every reactor from any thread.
    pub fn handle(&self) -> GroupHandle {
        GroupHandle {
            stops: self.servers.iter().map(FtpServer::stop_handle).collect(),
        }
    }

    /// Runs every reactor on a thread of its own (named `ftpd-reactor-N`) until each has
    /// stopped: after [`GroupHandle::close_all`], or after [`GroupHandle::close`] once its
    /// last session ended, or after a panic, which is logged and closes that reactor's
    /// sessions while the others go on. `timeout` caps each reactor's poll wait, as in
    /// [`FtpServer::serve_forever`].
    ///
    /// # Errors
    /// A thread that could not be started (the reactors already started are stopped
    /// first), a poll error (a reactor that cannot make its poll, say for want of
    /// descriptors, or whose poll fails: the other reactors are stopped too), or every
    /// reactor stopped by a panic.
    pub fn serve_forever(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let (max_cons, max_per_ip) = (self.max_cons, self.max_cons_per_ip);
        let handle = self.handle();
        let results: Vec<io::Result<Ending>> = std::thread::scope(|scope| {
            let mut threads = Vec::new();
            for (i, server) in self.servers.iter_mut().enumerate() {
                server.max_cons = max_cons;
                server.max_cons_per_ip = max_per_ip;
                let started = std::thread::Builder::new()
                    .name(format!("ftpd-reactor-{i}"))
                    .spawn_scoped(scope, {
                        let group = handle.clone();
                        move || run_reactor(i, server, timeout, &group)
                    });
                match started {
                    Ok(t) => threads.push(t),
                    Err(e) => {
                        handle.close_all();
                        threads.clear();
                        return vec![Err(e)];
                    }
                }
            }
            threads
                .into_iter()
                .map(|t| {
                    t.join()
                        .unwrap_or_else(|_| Err(io::Error::other("reactor thread panicked")))
                })
                .collect()
        });
        let mut panicked = 0;
        for r in &results {
            match r {
                Ok(Ending::Panicked) => panicked += 1,
                Ok(Ending::Stopped) => {}
                Err(e) => return Err(io::Error::new(e.kind(), e.to_string())),
            }
        }
        if panicked == results.len() {
            return Err(io::Error::other("every reactor of the group panicked"));
        }
        Ok(())
    }
}

/// How a reactor thread ended.
enum Ending {
    Stopped,
    Panicked,
}

/// Runs one reactor until it stops, catching a panic: logged and counted, and then its
/// sessions closed, so the limits the group shares get their slots back. A reactor that
/// fails (its poll cannot be made, or fails) stops the whole `group`: left alone, its
/// listener would stay bound, and the kernel would go on handing it a share of the new
/// connections that nobody accepts.
fn run_reactor(
    i: usize,
    server: &mut FtpServer,
    timeout: Option<Duration>,
    group: &GroupHandle,
) -> io::Result<Ending> {
    let run = panic::catch_unwind(AssertUnwindSafe(|| server.serve_forever(timeout, None)));
    let payload = match run {
        Ok(Ok(())) => return Ok(Ending::Stopped),
        Ok(Err(e)) => {
            logger::logerror(&format!("reactor {i} failed: {e}; stopping the group"));
            group.close_all();
            close_or_abandon(i, server);
            return Err(e);
        }
        Err(payload) => payload,
    };
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_string());
    server.stats.reactor_panicked();
    logger::logerror(&format!(
        "reactor {i} panicked ({what}); closing its {} sessions, the other reactors go on",
        server.session_count()
    ));
    close_or_abandon(i, server);
    Ok(Ending::Panicked)
}

/// Closes the listeners and sessions of a reactor that stopped serving, giving their
/// slots back; should closing panic (the same code, called again as the sessions close),
/// drops them without calling into them.
fn close_or_abandon(i: usize, server: &mut FtpServer) {
    if panic::catch_unwind(AssertUnwindSafe(|| server.close_all())).is_err()
        && panic::catch_unwind(AssertUnwindSafe(|| server.abandon())).is_err()
    {
        logger::logerror(&format!(
            "reactor {i} could not close its sessions; they close when the group is dropped"
        ));
    }
}

/// Stops or reaches every reactor of a [`ServerGroup`] from any thread.
#[derive(Debug, Clone)]
pub struct GroupHandle {
    stops: Vec<StopHandle>,
}

impl GroupHandle {
    /// Stops listening on every reactor; sessions carry on (pyftpdlib's `close()`).
    pub fn close(&self) {
        self.stops.iter().for_each(StopHandle::close);
    }

    /// Stops listening and drops every session of every reactor (pyftpdlib's
    /// `close_all()`).
    pub fn close_all(&self) {
        self.stops.iter().for_each(StopHandle::close_all);
    }

    /// Runs `f` on every reactor's thread, each at its next wake-up
    /// ([`StopHandle::call`]); `f` gets the reactor's index and server.
    pub fn call_each(&self, f: impl Fn(usize, &mut FtpServer) + Send + Sync + 'static) {
        let f = Arc::new(f);
        for (i, stop) in self.stops.iter().enumerate() {
            let f = Arc::clone(&f);
            stop.call(move |s| f(i, s));
        }
    }

    /// The reactors' own handles, in order.
    pub fn reactors(&self) -> &[StopHandle] {
        &self.stops
    }
}
