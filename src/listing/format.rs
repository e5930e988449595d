//! The lines of a listing: `ls -l` lines for LIST and STAT, RFC 3659 fact lines for MLSD
//! and MLST, and the calendar arithmetic they need (pyftpdlib's `format_list` and
//! `format_mlsx`).
//!
//! A LIST line has the shape pyftpdlib and most Unix servers use, which clients parse with
//! the same heuristics as `ls -l` output:
//!
//! ```text
//! -rw-r--r--   1 owner    group        1234 Nov 24 21:40 name
//! drwxr-xr-x   2 owner    group        4096 Jan 02  2024 older-dir
//! lrwxrwxrwx   1 owner    group           6 Nov 24 21:40 link -> target
//! ```
//!
//! The time shows hours and minutes for entries modified within the last 180 days and the
//! year otherwise. Names are written as their raw bytes, so a name that is not valid UTF-8
//! on disk does not break the listing.
//!
//! This file makes the lines; `mod.rs` makes a listing of them, a piece at a time.

use std::collections::HashMap;
use std::ffi::CStr;
use std::os::unix::ffi::OsStrExt;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::filesystem::Stat;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Six months, the age at which `ls` shows the year instead of the time.
const SIX_MONTHS: i64 = 180 * 24 * 3600;

/// A broken-down calendar time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CivilTime {
    /// Full year, e.g. 2026.
    pub year: i64,
    /// 1 to 12.
    pub month: u32,
    /// 1 to 31.
    pub day: u32,
    /// 0 to 23.
    pub hour: u32,
    /// 0 to 59.
    pub minute: u32,
    /// 0 to 60.
    pub second: u32,
}

impl CivilTime {
    /// Splits seconds since the Unix epoch (UTC) into a calendar date and time.
    pub fn from_unix(secs: i64) -> CivilTime {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        // Howard Hinnant's days-to-civil algorithm.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        CivilTime {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem % 3600 / 60) as u32,
            second: (rem % 60) as u32,
        }
    }

    /// Seconds since the Unix epoch of a UTC calendar time (the inverse of
    /// [`from_unix`](Self::from_unix)).
    pub fn to_unix(&self) -> i64 {
        let y = self.year - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let m = i64::from(self.month);
        let mp = if m > 2 { m - 3 } else { m + 9 };
        let doy = (153 * mp + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }

    /// `YYYYMMDDHHMMSS`, the RFC 3659 time-val used by MDTM and MLSx.
    pub fn time_val(&self) -> String {
        format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// Seconds since the epoch of a `SystemTime`, negative before 1970.
pub fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// The calendar time of `secs` in UTC or in the server's local time zone.
pub fn civil(secs: i64, gmt: bool) -> CivilTime {
    if gmt {
        return CivilTime::from_unix(secs);
    }
    let t = secs as libc::time_t;
    // SAFETY: localtime_r writes only into `tm`, which outlives the call.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if !ok {
        return CivilTime::from_unix(secs);
    }
    CivilTime {
        year: i64::from(tm.tm_year) + 1900,
        month: (tm.tm_mon + 1) as u32,
        day: tm.tm_mday as u32,
        hour: tm.tm_hour as u32,
        minute: tm.tm_min as u32,
        second: tm.tm_sec as u32,
    }
}

/// The `drwxr-xr-x` column for a mode.
pub fn mode_string(mode: u32) -> String {
    let kind = match mode & libc::S_IFMT {
        libc::S_IFDIR => 'd',
        libc::S_IFLNK => 'l',
        libc::S_IFCHR => 'c',
        libc::S_IFBLK => 'b',
        libc::S_IFIFO => 'p',
        libc::S_IFSOCK => 's',
        _ => '-',
    };
    let mut s = String::with_capacity(10);
    s.push(kind);
    let bits = [
        (0o400, 'r'),
        (0o200, 'w'),
        (0o100, 'x'),
        (0o040, 'r'),
        (0o020, 'w'),
        (0o010, 'x'),
        (0o004, 'r'),
        (0o002, 'w'),
        (0o001, 'x'),
    ];
    for (i, (bit, c)) in bits.iter().enumerate() {
        let set = mode & bit != 0;
        let special = match i {
            2 => mode & 0o4000 != 0,
            5 => mode & 0o2000 != 0,
            8 => mode & 0o1000 != 0,
            _ => false,
        };
        s.push(match (set, special, i) {
            (true, true, 8) => 't',
            (false, true, 8) => 'T',
            (true, true, _) => 's',
            (false, true, _) => 'S',
            (true, false, _) => *c,
            (false, false, _) => '-',
        });
    }
    s
}

/// Looks up user and group names, remembering them for the length of a listing.
#[derive(Debug, Default)]
pub struct NameCache {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl NameCache {
    /// The user name of a uid, or the number when it has none.
    pub fn user(&mut self, uid: u32) -> &str {
        self.users
            .entry(uid)
            .or_insert_with(|| lookup_user(uid).unwrap_or_else(|| uid.to_string()))
    }

    /// The group name of a gid, or the number when it has none.
    pub fn group(&mut self, gid: u32) -> &str {
        self.groups
            .entry(gid)
            .or_insert_with(|| lookup_group(gid).unwrap_or_else(|| gid.to_string()))
    }
}

fn lookup_user(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: getpwuid_r fills `pwd` with pointers into `buf`, both live across the reads.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut out: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr().cast(), buf.len(), &mut out);
        if rc != 0 || out.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        Some(CStr::from_ptr(pwd.pw_name).to_string_lossy().into_owned())
    }
}

fn lookup_group(gid: u32) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: getgrgid_r fills `grp` with pointers into `buf`, both live across the reads.
    unsafe {
        let mut grp: libc::group = std::mem::zeroed();
        let mut out: *mut libc::group = std::ptr::null_mut();
        let rc = libc::getgrgid_r(gid, &mut grp, buf.as_mut_ptr().cast(), buf.len(), &mut out);
        if rc != 0 || out.is_null() || grp.gr_name.is_null() {
            return None;
        }
        Some(CStr::from_ptr(grp.gr_name).to_string_lossy().into_owned())
    }
}

/// The date column of a LIST line: `Nov 24 21:40`, or `Nov 24  2025` when the time is
/// more than six months away from `now`.
pub fn ls_time(mtime: i64, now: i64, gmt: bool) -> String {
    let t = civil(mtime, gmt);
    let month = MONTHS[(t.month as usize).saturating_sub(1).min(11)];
    // Any two times: a file's mtime is whatever the storage says.
    if now.abs_diff(mtime) > SIX_MONTHS.unsigned_abs() {
        format!("{month} {:02}  {}", t.day, t.year)
    } else {
        format!("{month} {:02} {:02}:{:02}", t.day, t.hour, t.minute)
    }
}

/// Appends one LIST line for `name` with metadata `meta` (not following links) to `out`;
/// a link's target ([`Stat::link_target`]) is shown after `->`.
pub fn push_list_line(
    out: &mut Vec<u8>,
    name: &[u8],
    meta: &Stat,
    names: &mut NameCache,
    now: i64,
    gmt: bool,
) {
    let head = format!(
        "{} {:>3} {:<8} {:<8} {:>8} {} ",
        mode_string(meta.mode),
        meta.nlink,
        names.user(meta.uid).to_string(),
        names.group(meta.gid),
        meta.size,
        ls_time(meta.mtime, now, gmt),
    );
    out.extend_from_slice(head.as_bytes());
    push_name(out, name);
    if let Some(target) = &meta.link_target {
        out.extend_from_slice(b" -> ");
        push_name(out, target);
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends a name to a listing line, with each CR or LF in it shown as `?`.
///
/// A listing is lines ended by CRLF (RFC 959 section 4.1.3, RFC 3659 section 7.2), and a
/// name is any bytes but `/` and NUL: a local user may well make `a\nb`. Written as it is,
/// such a name would end its line early and forge a line of its own in the client's view
/// of the directory (a file that is not there, or a fake size or owner). `ls` shows these
/// bytes as `?` on a terminal; so does every listing here (LIST, NLST, MLSD, MLST, STAT).
/// Every other byte goes as it is, so the names a client can ask for are listed unchanged.
pub fn push_name(out: &mut Vec<u8>, name: &[u8]) {
    out.extend(
        name.iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b'?' } else { b }),
    );
}

/// Raw bytes of a file name.
pub fn name_bytes(name: &std::ffi::OsStr) -> &[u8] {
    name.as_bytes()
}

/// The RFC 3659 facts MLSD and MLST can show, in the order FEAT lists them (pyftpdlib's).
pub const MLSX_FACTS: [&str; 8] = [
    "type",
    "perm",
    "size",
    "modify",
    "unique",
    "unix.mode",
    "unix.uid",
    "unix.gid",
];

/// The same facts in the order each MLSD/MLST line writes them: by name, as pyftpdlib
/// writes them (RFC 3659 allows any order).
const MLSX_LINE_ORDER: [&str; 8] = [
    "modify",
    "perm",
    "size",
    "type",
    "unique",
    "unix.gid",
    "unix.mode",
    "unix.uid",
];

/// Facts shown until the client picks others with `OPTS MLST`.
pub const MLSX_DEFAULT_FACTS: [&str; 5] = ["type", "perm", "size", "modify", "unique"];

/// The `perm` fact for an entry (RFC 3659 section 7.5.5), from the permissions the user
/// holds on it.
pub fn mlsx_perm(is_dir: bool, has: impl Fn(crate::Perms) -> bool) -> String {
    use crate::Perms;
    let mut p = String::new();
    let mut add = |c: char, perm: Perms| {
        if has(perm) {
            p.push(c);
        }
    };
    // In pyftpdlib's order (its own M and T letters left out: RFC 3659 has none).
    if is_dir {
        add('e', Perms::CWD);
        add('l', Perms::LIST);
        add('d', Perms::DELETE);
        add('f', Perms::RENAME);
        add('m', Perms::MKDIR);
        add('c', Perms::STORE);
        add('p', Perms::DELETE);
    } else {
        add('r', Perms::RETR);
        add('a', Perms::APPEND);
        add('d', Perms::DELETE);
        add('f', Perms::RENAME);
        add('w', Perms::STORE);
    }
    p
}

/// Appends one MLSx line: the enabled `facts`, then a space and `name`, then CRLF. `meta`
/// follows symbolic links, as the entry a client would get is the target; `perm` is the
/// computed `perm` fact.
pub fn push_mlsx_line(out: &mut Vec<u8>, name: &[u8], meta: &Stat, facts: &[&str], perm: &str) {
    let mut line = String::new();
    for fact in MLSX_LINE_ORDER.iter().filter(|f| facts.contains(f)) {
        let value = match *fact {
            "type" => if meta.is_dir() {
                "dir"
            } else if meta.is_file() {
                "file"
            } else {
                "OS.unix=special"
            }
            .to_string(),
            "size" => meta.size.to_string(),
            // RFC 3659 times are always UTC.
            "modify" => CivilTime::from_unix(meta.mtime).time_val(),
            "perm" => perm.to_string(),
            "unique" => format!("{:x}g{:x}", meta.dev, meta.ino),
            "unix.mode" => format!("{:04o}", meta.mode & 0o7777),
            "unix.uid" => meta.uid.to_string(),
            "unix.gid" => meta.gid.to_string(),
            _ => continue,
        };
        line.push_str(fact);
        line.push('=');
        line.push_str(&value);
        line.push(';');
    }
    out.extend_from_slice(line.as_bytes());
    out.push(b' ');
    push_name(out, name);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// fuzz target `listing`: `now - mtime` overflowed for far-apart times; any mtime the
    /// storage reports lists.
    #[test]
    fn ls_time_takes_any_two_times() {
        for (m, n) in [(i64::MIN, i64::MAX), (i64::MAX, i64::MIN), (0, i64::MIN)] {
            let t = ls_time(m, n, true);
            assert!(t.len() >= 12, "{t:?}");
        }
    }
    use crate::filesystem::Filesystem;
    use std::path::Path;

    #[test]
    fn civil_round_trips() {
        for secs in [
            0i64,
            951_782_400,
            1_700_000_000,
            4_102_444_800,
            -86_400,
            1_709_164_800,
        ] {
            assert_eq!(CivilTime::from_unix(secs).to_unix(), secs, "secs {secs}");
        }
        let t = CivilTime::from_unix(1_700_000_000);
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.minute, t.second),
            (2023, 11, 14, 22, 13, 20)
        );
        assert_eq!(t.time_val(), "20231114221320");
        // 2000-02-29, a leap day in a century year.
        let leap = CivilTime::from_unix(951_782_400);
        assert_eq!((leap.year, leap.month, leap.day), (2000, 2, 29));
    }

    #[test]
    fn ls_time_switches_to_year_after_six_months() {
        let now = 1_700_000_000;
        assert_eq!(ls_time(now - 3600, now, true), "Nov 14 21:13");
        assert_eq!(ls_time(now - 400 * 86_400, now, true), "Oct 10  2022");
        // Far in the future also shows the year, as ls does.
        assert_eq!(ls_time(now + 400 * 86_400, now, true), "Dec 18  2024");
    }

    #[test]
    fn mlsx_lines() {
        let dir = crate::testutil::TempDir::new("mlsx");
        let f = dir.join("f");
        std::fs::write(&f, b"12345").unwrap();
        let fs = crate::filesystem::OsFilesystem::new(&dir).unwrap();
        let meta = fs.stat(Path::new("/f")).unwrap();
        let mut out = Vec::new();
        push_mlsx_line(&mut out, b"f", &meta, &MLSX_DEFAULT_FACTS, "adfrw");
        let line = String::from_utf8(out).unwrap();
        assert!(line.starts_with("modify="), "{line}");
        assert!(
            line.contains(";perm=adfrw;size=5;type=file;unique="),
            "{line}"
        );
        assert!(line.ends_with("; f\r\n"), "{line}");
        let mut out = Vec::new();
        push_mlsx_line(&mut out, b"f", &meta, &["unix.mode", "type"], "");
        assert!(String::from_utf8(out)
            .unwrap()
            .starts_with("type=file;unix.mode=0"));
        assert_eq!(mlsx_perm(true, |_| true), "eldfmcp");
        assert_eq!(mlsx_perm(false, |_| true), "radfw");
        assert_eq!(mlsx_perm(false, |p| p == crate::Perms::RETR), "r");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A directory that gives `names` in this order, `batch` at a time.
    #[test]
    fn mode_strings() {
        assert_eq!(mode_string(libc::S_IFREG | 0o644), "-rw-r--r--");
        assert_eq!(mode_string(libc::S_IFDIR | 0o755), "drwxr-xr-x");
        assert_eq!(mode_string(libc::S_IFLNK | 0o777), "lrwxrwxrwx");
        assert_eq!(mode_string(libc::S_IFREG | 0o4755), "-rwsr-xr-x");
        assert_eq!(mode_string(libc::S_IFDIR | 0o1777), "drwxrwxrwt");
        assert_eq!(mode_string(libc::S_IFREG | 0o2644), "-rw-r-Sr--");
    }
}
