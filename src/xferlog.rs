//! A transfer log in the xferlog format of wu-ftpd, which vsftpd and proftpd also write and
//! log analysers read: one line per file transfer, made from [`Hooks::on_transfer_end`].
//!
//! The fields, separated by single spaces (see xferlog(5)):
//!
//! ```text
//! Tue Nov 24 22:10:00 2026 1 127.0.0.1 5 /srv/ftp/a_b.txt b _ i r user ftp 0 * c
//! ```
//!
//! | field | here |
//! |---|---|
//! | current-time | local time, `DDD MMM dd hh:mm:ss YYYY` (the day padded with a space, as ctime) |
//! | transfer-time | whole seconds, rounded, at least 1 (rates are computed by dividing by it) |
//! | remote-host | the client's IP address (no reverse lookups on the reactor thread) |
//! | file-size | bytes moved over the data connection |
//! | filename | the real path; spaces and control characters become `_` |
//! | transfer-type | `a` ascii, `b` binary |
//! | special-action-flag | `_`: no compression or tar on the fly |
//! | direction | `o` outgoing (RETR), `i` incoming (STOR, APPE, STOU) |
//! | access-mode | `a` for the user `anonymous`, `r` for everyone else |
//! | username | the login name (`anonymous`: the password, an e-mail by custom, is not kept) |
//! | service-name | `ftp` |
//! | authentication-method | `0`, none |
//! | authenticated-user-id | `*`, none |
//! | completion-status | `c` complete, `i` incomplete |

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

use crate::hooks::{Hooks, SessionInfo, TransferRecord};
use crate::logger;

/// Writes an xferlog line for every file transfer; put it in `Config::hooks` (alone or in a
/// [`HookList`](crate::hooks::HookList)).
///
/// The file is opened once, when the server starts, and appended to: it stays writable
/// whatever identity a session switches to, and log rotation should copy and truncate it
/// (or restart the server).
#[derive(Debug)]
pub struct XferLog {
    out: Mutex<File>,
}

impl XferLog {
    /// Opens (creating it with mode 0640 if needed) `path` for appending.
    ///
    /// # Errors
    /// The file cannot be opened for writing.
    pub fn open(path: impl AsRef<Path>) -> io::Result<XferLog> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .open(path)?;
        Ok(XferLog {
            out: Mutex::new(file),
        })
    }
}

impl Hooks for XferLog {
    fn on_transfer_end(&self, s: SessionInfo<'_>, t: &TransferRecord<'_>) {
        let line = format_line(&local_ctime(SystemTime::now()), s, t);
        // A poisoned lock only means an earlier write panicked; the file is still usable.
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        // One write call per line, so lines from an O_APPEND file never interleave.
        if let Err(e) = out.write_all(line.as_bytes()) {
            logger::logerror(&format!("can't write the xferlog: {e}"));
        }
    }
}

/// One xferlog line, newline included, for a transfer that ended at `time`.
pub fn format_line(time: &str, s: SessionInfo<'_>, t: &TransferRecord<'_>) -> String {
    let seconds = (t.seconds.round() as u64).max(1);
    let filename: String = t
        .path
        .to_string_lossy()
        .chars()
        .map(|c| {
            if c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let direction = if t.verb == "RETR" { 'o' } else { 'i' };
    let anonymous = s.username == crate::DummyAuthorizer::ANONYMOUS;
    let username: String = s
        .username
        .chars()
        .map(|c| {
            if c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    format!(
        "{time} {seconds} {host} {bytes} {filename} {kind} _ {direction} {mode} {username} ftp 0 * {status}\n",
        host = s.peer.ip(),
        bytes = t.bytes,
        kind = if t.ascii { 'a' } else { 'b' },
        mode = if anonymous { 'a' } else { 'r' },
        status = if t.completed { 'c' } else { 'i' },
    )
}

/// `time` in local time as ctime(3) shows it, without the newline:
/// `Tue Nov  4 22:10:00 2026`.
pub fn local_ctime(time: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as libc::time_t;
    // SAFETY: an all-zero tm is a valid value for localtime_r to overwrite.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; localtime_r is thread-safe.
    if unsafe { libc::localtime_r(&secs, &mut tm) }.is_null() {
        return "Thu Jan  1 00:00:00 1970".to_string();
    }
    format!(
        "{} {} {:>2} {:02}:{:02}:{:02} {}",
        DAYS[tm.tm_wday.rem_euclid(7) as usize],
        MONTHS[tm.tm_mon.rem_euclid(12) as usize],
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        i64::from(tm.tm_year) + 1900
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn line_fields() {
        let path = PathBuf::from("/srv/ftp/a b\tc.txt");
        let s = SessionInfo {
            peer: "127.0.0.1:50000".parse().unwrap(),
            username: "user",
        };
        let t = TransferRecord {
            verb: "STOR",
            ftp_path: "/a b\tc.txt",
            path: &path,
            bytes: 5,
            seconds: 0.2,
            ascii: false,
            completed: true,
        };
        assert_eq!(
            format_line("Tue Nov 24 22:10:00 2026", s, &t),
            "Tue Nov 24 22:10:00 2026 1 127.0.0.1 5 /srv/ftp/a_b_c.txt b _ i r user ftp 0 * c\n"
        );
        let anon = SessionInfo {
            username: "anonymous",
            ..s
        };
        let t = TransferRecord {
            verb: "RETR",
            seconds: 2.6,
            ascii: true,
            completed: false,
            ..t
        };
        let line = format_line("Tue Nov 24 22:10:00 2026", anon, &t);
        assert!(
            line.ends_with(" 3 127.0.0.1 5 /srv/ftp/a_b_c.txt a _ o a anonymous ftp 0 * i\n"),
            "{line}"
        );
    }

    #[test]
    fn ctime_shape() {
        let s = local_ctime(SystemTime::now());
        let words: Vec<&str> = s.split_whitespace().collect();
        assert_eq!(words.len(), 5, "{s}");
        assert_eq!(s.len(), 24, "{s}");
    }
}
