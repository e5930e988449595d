//! The `ftpdlib` command: serve a directory over FTP, like `python -m pyftpdlib`.
//!
//! ```text
//! ftpdlib                      # anonymous, read-only, current directory, port 2121
//! ftpdlib -w -d /srv/ftp -u user -P secret
//! ftpdlib --users users.txt --anonymous
//! ftpdlib --config /etc/ftpdlib/ftpdlib.toml            # every option, and accounts
//! ftpdlib --system-users --rejected-users root,daemon -w   # as root
//! echo secret | ftpdlib hash-password                     # a hash for --users
//! ftpdlib -u user -P secret --tls-cert cert.pem --tls-key key.pem --tls-control-required
//! ```
//!
//! SIGINT and SIGTERM stop it gracefully (`--shutdown-grace`), SIGHUP reloads `--config`,
//! `--users` and the TLS certificate and reopens `--log-file`.
//!
//! The daemon sits on top of the library and reaches into nothing below its public API:
//! `args.rs` parses the command line, `config_file.rs` the `--config` file, `settings.rs`
//! turns the options into the server's settings (users file, certificate, authorizer),
//! `logging/` writes the log (standard error, a file or syslog; text or JSON), `serve.rs`
//! runs the reactors and answers the signals, `hash_password.rs` is the `hash-password`
//! subcommand; this file puts them together.

mod args;
mod config_file;
mod hash_password;
mod logging;
mod metrics;
mod seconds;
mod serve;
mod settings;
mod storage;
mod users_file;

use std::io::Write;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use ftpdlib::Limits;
use ftpdlib::{Config, ServerGroup, XferLog};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use args::{parse_args, Options, Parsed};
use hash_password::hash_password;
use serve::serve;
use settings::{perm, system_authorizer, tls_config, user_limits, virtual_authorizer};

/// Builds the server from the options, binds it, logs what it serves and serves until a
/// signal stops it.
fn run(o: Options, args: Vec<std::ffi::OsString>) -> Result<(), String> {
    let dir = match &o.directory {
        Some(d) => d.clone(),
        // In an object store the homes are prefixes: the whole store by default.
        None if storage::is_object(&o.storage) => std::path::PathBuf::from("/"),
        None => {
            std::env::current_dir().map_err(|e| format!("can't read the current directory: {e}"))?
        }
    };
    let dir = if storage::is_object(&o.storage) {
        // A prefix: `alice` and `/alice` are the same one.
        std::path::Path::new("/").join(&dir)
    } else {
        if !dir.is_dir() {
            return Err(format!("{}: no such directory", dir.display()));
        }
        // Absolute, so that the log says which directory a relative -d meant.
        std::path::absolute(&dir).map_err(|e| format!("can't resolve {}: {e}", dir.display()))?
    };
    let mut who = Vec::new();
    let mut config = session_config(&o, &dir, &mut who)?;
    config.io_threads = o.io_threads;
    let store = storage::install(&o.storage, &mut config)?;
    if let Some(s) = &store {
        who.push(format!("object store {}", s.url));
    }
    if o.memory {
        let store = ftpdlib::MemoryStore::new();
        config.filesystem = Arc::new(move |home: &Path| {
            Ok(Arc::new(store.filesystem(home)?) as Arc<dyn ftpdlib::Filesystem>)
        });
    }
    if let Some(file) = &o.xferlog {
        let log = XferLog::open(file).map_err(|e| format!("can't open {}: {e}", file.display()))?;
        config.hooks = Arc::new(log);
    }

    let addrs: Vec<SocketAddr> = match &o.interface {
        Some(i) if !i.is_empty() => interface_addrs(i, o.port)?,
        // All interfaces: one dual-stack IPv6 socket, or IPv4 alone where IPv6 is off.
        _ => vec![
            SocketAddr::new(IpAddr::from([0u16; 8]), o.port),
            SocketAddr::new(IpAddr::from([0u8; 4]), o.port),
        ],
    };
    let config_tls = config.tls.clone();
    let mut server = None;
    let mut last_err = None;
    for a in &addrs {
        match ServerGroup::bind(a, config.clone(), o.workers) {
            Ok(s) => {
                server = Some(s);
                break;
            }
            Err(e) => last_err = Some(format!("can't listen on {a}: {e}")),
        }
    }
    let Some(mut server) = server else {
        return Err(last_err.unwrap_or_else(|| "no address to listen on".to_string()));
    };
    if let Some(n) = o.max_cons {
        server.max_cons = n;
    }
    if let Some(n) = o.max_cons_per_ip {
        server.max_cons_per_ip = n;
    }
    let reactors = server.reactors().len();
    // Bound before the line that says the server is up: a busy port is a start-up error.
    let health = Arc::new(metrics::Health::new(reactors));
    let _metrics = match o.metrics {
        Some(addr) => Some(metrics::start(addr, server.stats(), Arc::clone(&health))?),
        None => None,
    };
    // Caught from before the line that says the server is up, so that no signal sent after
    // it meets the default action (which ends the process).
    let signals =
        Signals::new([SIGINT, SIGTERM, SIGHUP]).map_err(|e| format!("can't catch signals: {e}"))?;
    let listen = server
        .local_addrs()
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    log::info!(
        target: ftpdlib::logger::LOG,
        ">>> starting FTP server on {listen}{}, pid={}, serving {} to {}",
        match &config_tls {
            None => "",
            Some(t) if t.implicit => " (implicit FTPS)",
            Some(_) => " (FTPS with AUTH TLS)",
        },
        std::process::id(),
        dir.display(),
        who.join(", ")
    );
    // As pyftpdlib logs them at startup: what PASV replies will announce.
    if reactors == 1 {
        log::info!(target: ftpdlib::logger::LOG, "concurrency model: async");
    } else {
        log::info!(
            target: ftpdlib::logger::LOG,
            "concurrency model: async, {reactors} reactors on one port (SO_REUSEPORT)"
        );
    }
    log::info!(
        target: ftpdlib::logger::LOG,
        "masquerade (NAT) address: {}",
        o.nat_address.map_or_else(|| "none".to_string(), |a| a.to_string())
    );
    if !o.masquerade_map.is_empty() {
        let rules: Vec<String> = o
            .masquerade_map
            .iter()
            .map(|r| format!("{}/{}={}", r.network, r.prefix, r.address))
            .collect();
        log::info!(
            target: ftpdlib::logger::LOG,
            "masquerade map: {}",
            rules.join(",")
        );
    }
    if let Some(p) = &o.proxy_protocol {
        let from: Vec<String> = p.trusted.iter().map(|n| n.to_string()).collect();
        if from.is_empty() {
            // Anyone who reaches the port can then claim any client address: per-address
            // limits, bans and the PORT check act on what they claim.
            log::warn!(
                target: ftpdlib::logger::LOG,
                "PROXY protocol required, from any source: anyone who reaches this port \
                 can claim any client address; name the balancer with --proxy-trusted \
                 or firewall the port"
            );
        } else {
            log::info!(
                target: ftpdlib::logger::LOG,
                "PROXY protocol required, from {}{}",
                from.join(","),
                if p.passive {
                    "; on the passive ports too (relayed by the proxies)"
                } else {
                    ""
                }
            );
        }
    }
    log::info!(
        target: ftpdlib::logger::LOG,
        "passive ports: {}",
        o.range
            .map_or_else(|| "any".to_string(), |(a, b)| format!("{a}->{b}"))
    );
    let health = o.metrics.is_some().then_some(health);
    let served = serve(server, signals, o, &dir, args, health);
    if let Some(s) = store {
        (s.settle)();
    }
    served
}

/// The session settings of the options: the authorizer, the TLS certificate, the limits
/// and the data-connection rules. SIGHUP builds them again from the reloaded options; the
/// storage, the xferlog and the worker pool stay those of the start.
pub(crate) fn session_config(
    o: &Options,
    dir: &Path,
    who: &mut Vec<String>,
) -> Result<Config, String> {
    let perm = perm(o);
    let authorizer: Arc<dyn ftpdlib::Authorizer> = if o.system_users {
        if storage::is_object(&o.storage) {
            // System users' homes are directories here, and their ids guard the disk.
            return Err("--system-users serves the disk: it does not go with --storage".into());
        }
        Arc::new(system_authorizer(o, dir, perm, who)?)
    } else {
        Arc::new(virtual_authorizer(o, dir, perm, who)?)
    };
    let mut config = Config::new(authorizer);
    if let Some(b) = &o.banner {
        config.banner = b.clone();
    }
    if let Some(t) = o.timeout {
        config.timeout = (!t.is_zero()).then_some(t);
    }
    if let Some(d) = o.auth_failed_delay {
        config.auth_failed_timeout = d;
    }
    if let Some(t) = o.login_timeout {
        config.login_timeout = (!t.is_zero()).then_some(t);
    }
    config.dtp.read_limit = o.read_limit;
    config.dtp.write_limit = o.write_limit;
    config.max_rate = Limits::new(o.max_rate, o.max_rate);
    config.flood.max_failed_logins = o.max_login_failures;
    if let Some(t) = o.ban_time {
        config.flood.ban_duration = t;
    }
    config.flood.max_commands_per_sec = o.max_cmds_per_sec;
    config.masquerade_address = o.nat_address;
    if let (Some(cert), Some(key)) = (&o.tls_cert, &o.tls_key) {
        config.tls = Some(tls_config(o, cert, key)?);
    }
    config.masquerade_map = o.masquerade_map.clone();
    config.permit_foreign_addresses = o.permit_foreign_addresses;
    config.permit_privileged_ports = o.permit_privileged_ports;
    if let Some(n) = o.max_login_attempts {
        config.max_login_attempts = n;
    }
    if let Some(n) = o.max_unknown_commands {
        config.max_unknown_commands_before_login = n;
    }
    config.use_gmt_times = !o.use_localtime;
    config.use_sendfile = !o.disable_sendfile;
    config.passive_ports = o.range.map(|(a, b)| a..=b);
    config.proxy_protocol = o.proxy_protocol.clone();
    config.user_limits = user_limits(o);
    Ok(config)
}

/// `-i`: an address (IPv6 in brackets or not), or a host name resolved to its addresses,
/// tried in the resolver's order.
fn interface_addrs(i: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    if let Ok(ip) = i.trim_matches(|c| c == '[' || c == ']').parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs: Vec<SocketAddr> = (i, port)
        .to_socket_addrs()
        .map_err(|e| format!("can't resolve interface {i:?}: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("can't resolve interface {i:?}: no address"));
    }
    Ok(addrs)
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let opts = match parse_args(args.clone()) {
        Ok(Parsed::Run(o)) => o,
        Ok(Parsed::HashPassword(method)) => {
            return match hash_password(method) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ftpdlib: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Ok(Parsed::Exit(text)) => {
            // A closed pipe (`ftpdlib --help | head`) is no error worth a panic.
            let _ = writeln!(std::io::stdout(), "{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("ftpdlib: {e}");
            return ExitCode::from(2);
        }
    };
    let log = logging::LogSettings {
        file: opts.log_file.clone(),
        syslog: opts.syslog.clone(),
        format: opts.log_format,
        debug: opts.debug,
        localtime: opts.use_localtime,
    };
    if let Err(e) = logging::init(&log) {
        eprintln!("ftpdlib: {e}");
        return ExitCode::FAILURE;
    }
    let logs_elsewhere = log.file.is_some() || log.syslog.is_some();
    let code = match run(*opts, args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Standard error for whoever started it; the log for whoever reads it later.
            if logs_elsewhere {
                log::error!(target: ftpdlib::logger::LOG, "{e}");
            }
            // After the log lines still buffered for standard error, not before them.
            log::logger().flush();
            eprintln!("ftpdlib: {e}");
            ExitCode::FAILURE
        }
    };
    log::logger().flush();
    code
}
