//! Where the daemon's log goes: standard error (the default), a file (`--log-file`,
//! reopened on SIGHUP for logrotate) or the local syslog (`--syslog`), as text or JSON
//! (`--log-format`), filtered as `-D` or `RUST_LOG` say.
//!
//! One `log::Log` serves the whole process: the reactor and the worker pool's threads.
//! Lines to a file are buffered and written out by a flusher thread every
//! [`FLUSH_EVERY`], at every warning or error, at SIGHUP and at exit, so a busy server
//! does not pay a `write(2)` per line; a crash loses at most the last
//! [`FLUSH_EVERY`] of info and debug lines. Standard error counts as a file when it is
//! one (`2>ftpd.log`, or /dev/null): it is buffered the same way. To a terminal, a pipe
//! or a socket (journald, a container's log, a supervisor reading lines) lines go out one
//! at a time, as they come; so do lines to syslog.

mod format;

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

pub(crate) use format::Format;

/// How long a line may wait in the file buffer.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// The size of the file buffer; a line that would overflow it writes it out first.
const BUFFER: usize = 64 * 1024;

/// What `--log-file`, `--syslog`, `--log-format`, `-D` and `--use-localtime` ask for.
#[derive(Debug, Default)]
pub(crate) struct LogSettings {
    pub(crate) file: Option<PathBuf>,
    /// `--syslog`, with `--syslog-socket` when given (else the usual places: /dev/log,
    /// /var/run/syslog, /var/run/log).
    pub(crate) syslog: Option<Option<PathBuf>>,
    pub(crate) format: Format,
    pub(crate) debug: bool,
    pub(crate) localtime: bool,
}

type Syslog = syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>;

enum Sink {
    Stderr,
    /// A file: `--log-file` (with its path, reopened on SIGHUP), or standard error where
    /// it is one (no path).
    File {
        path: Option<PathBuf>,
        out: BufWriter<File>,
    },
    Syslog {
        socket: Option<PathBuf>,
        out: Syslog,
    },
}

struct Logger {
    filter: env_filter::Filter,
    format: Format,
    localtime: bool,
    /// Whether lines start with their time; syslog stamps its own.
    stamp: bool,
    sink: Mutex<Sink>,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// The filter: `RUST_LOG` when set, else info for everyone and, with `-D`, debug for
/// ftpdlib's own targets (`ftpdlib`, `ftpdlib::line`, ...), not for rustls or mio.
///
/// rustls is held to errors: its warnings are about what a peer sent in a handshake
/// (an IP address as SNI, which lftp sends on every FTPS connection; alerts sent and
/// received), one line per connection that any client can ask for, and the session's own
/// line already says when a handshake fails.
fn filter(debug: bool) -> env_filter::Filter {
    let mut b = env_filter::Builder::new();
    match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => {
            b.parse(&spec);
        }
        _ if debug => {
            b.parse("info,rustls=error,ftpdlib=debug");
        }
        _ => {
            b.parse("info,rustls=error");
        }
    }
    b.build()
}

fn open_file(path: &Path) -> Result<BufWriter<File>, String> {
    OpenOptions::new()
        .append(true)
        .create(true)
        // User names and client addresses: not for everyone to read.
        .mode(0o640)
        .open(path)
        .map(|f| BufWriter::with_capacity(BUFFER, f))
        .map_err(|e| format!("can't open the log file {}: {e}", path.display()))
}

/// Standard error as a file of its own (a duplicate of descriptor 2) when it is a regular
/// file or a character device that is not a terminal (/dev/null); `None` for a terminal,
/// a pipe or a socket, whose reader wants each line as it comes.
fn stderr_file() -> Option<File> {
    use std::io::IsTerminal;
    use std::os::unix::fs::FileTypeExt;
    let err = std::io::stderr();
    if err.is_terminal() {
        return None;
    }
    let fd = std::os::fd::AsFd::as_fd(&err).try_clone_to_owned().ok()?;
    let file = File::from(fd);
    let kind = file.metadata().ok()?.file_type();
    (kind.is_file() || kind.is_char_device()).then_some(file)
}

fn open_syslog(socket: Option<&Path>) -> Result<Syslog, String> {
    let formatter = syslog::Formatter3164 {
        facility: syslog::Facility::LOG_FTP,
        hostname: None,
        process: "ftpdlib".to_string(),
        pid: std::process::id(),
    };
    match socket {
        Some(p) => syslog::unix_custom(formatter, p)
            .map_err(|e| format!("can't reach syslog at {}: {e}", p.display())),
        None => syslog::unix(formatter).map_err(|e| format!("can't reach syslog: {e}")),
    }
}

/// Installs the logger. Errors (a log file that can't be opened, no syslog socket) are
/// one line for the caller to print.
pub(crate) fn init(s: &LogSettings) -> Result<(), String> {
    let sink = if let Some(path) = &s.file {
        Sink::File {
            path: Some(path.clone()),
            out: open_file(path)?,
        }
    } else if let Some(socket) = &s.syslog {
        Sink::Syslog {
            socket: socket.clone(),
            out: open_syslog(socket.as_deref())?,
        }
    } else if let Some(file) = stderr_file() {
        Sink::File {
            path: None,
            out: BufWriter::with_capacity(BUFFER, file),
        }
    } else {
        Sink::Stderr
    };
    let buffered = matches!(sink, Sink::File { .. });
    let logger = Logger {
        filter: filter(s.debug),
        format: s.format,
        localtime: s.localtime,
        stamp: !matches!(sink, Sink::Syslog { .. }),
        sink: Mutex::new(sink),
    };
    let max = logger.filter.filter();
    let logger = LOGGER.get_or_init(|| logger);
    log::set_logger(logger).map_err(|e| format!("can't install the logger: {e}"))?;
    log::set_max_level(max);
    if buffered {
        std::thread::Builder::new()
            .name("log-flush".to_string())
            .spawn(|| loop {
                std::thread::sleep(FLUSH_EVERY);
                log::logger().flush();
            })
            .map_err(|e| format!("can't start the log flusher: {e}"))?;
    }
    Ok(())
}

/// SIGHUP: opens the log file (or the syslog socket) again, so that a file renamed by
/// logrotate is left behind and a new one started at the same path. Returns what was
/// reopened, or `None` for standard error. On an error the old file stays in use.
pub(crate) fn reopen() -> Result<Option<String>, String> {
    let Some(logger) = LOGGER.get() else {
        return Ok(None);
    };
    let mut sink = logger.lock();
    match &mut *sink {
        Sink::Stderr => Ok(None),
        // Standard error as a file can't be reopened, but SIGHUP still writes out what
        // waits, as for a log file.
        Sink::File { path: None, out } => {
            let _ = out.flush();
            Ok(None)
        }
        Sink::File {
            path: Some(path),
            out,
        } => {
            let new = open_file(path)?;
            // What the old file still holds goes to it, not to the new one.
            let _ = out.flush();
            *out = new;
            Ok(Some(path.display().to_string()))
        }
        Sink::Syslog { socket, out } => {
            *out = open_syslog(socket.as_deref())?;
            Ok(Some("the syslog socket".to_string()))
        }
    }
}

impl Logger {
    /// The sink; a thread that panicked while holding it left it usable (a line half
    /// written at worst).
    fn lock(&self) -> MutexGuard<'_, Sink> {
        self.sink.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.filter.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.filter.matches(record) {
            return;
        }
        let mut line = String::with_capacity(160);
        format::line(&mut line, self.format, self.localtime, self.stamp, record);
        let mut sink = self.lock();
        // A line that can't be written has nowhere to be reported: it is dropped.
        match &mut *sink {
            Sink::Stderr => {
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
            Sink::File { out, .. } => {
                let _ = out.write_all(line.as_bytes());
                if record.level() <= log::Level::Warn {
                    let _ = out.flush();
                }
            }
            Sink::Syslog { socket, out } => {
                let text = line.trim_end();
                if send(out, record.level(), text).is_err() {
                    // syslogd or journald restarted: connect again, once.
                    if let Ok(again) = open_syslog(socket.as_deref()) {
                        *out = again;
                        let _ = send(out, record.level(), text);
                    }
                }
            }
        }
    }

    fn flush(&self) {
        if let Sink::File { out, .. } = &mut *self.lock() {
            let _ = out.flush();
        }
    }
}

/// One line to syslog at the severity matching `level`.
fn send(out: &mut Syslog, level: log::Level, text: &str) -> Result<(), syslog::Error> {
    match level {
        log::Level::Error => out.err(text),
        log::Level::Warn => out.warning(text),
        log::Level::Info => out.info(text),
        log::Level::Debug | log::Level::Trace => out.debug(text),
    }
}
