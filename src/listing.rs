//! Directory listings: `ls -l` lines for LIST and STAT, bare names for NLST, and the
//! calendar arithmetic they need (pyftpdlib's `format_list`).
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

use std::collections::{HashMap, VecDeque};
use std::ffi::CStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::authorizer::Authorizer;
use crate::filesystem::{DirEntry, DirStream, Filesystem, Stat, StatMode, VirtualPath};

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
    if (now - mtime).abs() > SIX_MONTHS {
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
    out.extend_from_slice(name);
    if let Some(target) = &meta.link_target {
        out.extend_from_slice(b" -> ");
        out.extend_from_slice(target);
    }
    out.extend_from_slice(b"\r\n");
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
    if is_dir {
        add('e', Perms::CWD);
        add('l', Perms::LIST);
        add('c', Perms::STORE);
        add('m', Perms::MKDIR);
        add('d', Perms::DELETE);
        add('f', Perms::RENAME);
        add('p', Perms::DELETE);
    } else {
        add('a', Perms::APPEND);
        add('d', Perms::DELETE);
        add('f', Perms::RENAME);
        add('r', Perms::RETR);
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
    out.extend_from_slice(name);
    out.extend_from_slice(b"\r\n");
}

/// Entries formatted per piece of a listing: a few hundred, about a millisecond of work.
pub const CHUNK_ENTRIES: usize = 256;

/// Which listing a [`Listing`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    /// `ls -l` lines (LIST, STAT with a path).
    List,
    /// Bare names (NLST).
    Nlst,
    /// RFC 3659 fact lines (MLSD).
    Mlsd,
}

/// What the MLSx `perm` fact is computed from: the user's permissions on each entry.
#[derive(Clone)]
pub struct PermContext {
    /// The authorizer to ask.
    pub authorizer: Arc<dyn Authorizer>,
    /// The user.
    pub user: String,
}

impl std::fmt::Debug for PermContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PermContext")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// LIST, NLST and STAT list a directory of at most this many entries sorted by name, as
/// pyftpdlib does; a larger one comes in the storage's order (readdir order on the local
/// disk), so that no listing is ever held whole. MLSD is never sorted (nor is it in
/// pyftpdlib).
pub const SORT_LIMIT: usize = 10_000;

#[derive(Debug)]
enum Entries {
    Dir {
        /// What is left to read; `None` once the end was seen.
        stream: Option<Box<dyn DirStream>>,
        /// Entries read ahead to sort them, served before the rest of `stream`.
        queue: VecDeque<DirEntry>,
        /// Whether the first piece still has to read ahead (up to `sort_limit` + 1).
        sort_pending: bool,
    },
    /// A listing of one file (LIST or NLST of a file name).
    One(Option<DirEntry>),
}

/// A listing being made a piece at a time ([`next_chunk`](Self::next_chunk)), so that a
/// directory of a million entries is never read or held whole: the data channel asks for
/// the next piece only when it has sent the last one.
#[derive(Debug)]
pub struct Listing {
    entries: Entries,
    format: ListFormat,
    facts: Vec<&'static str>,
    perm: Option<PermContext>,
    /// Where the listed directory lives (for per-entry permissions).
    real_dir: PathBuf,
    names: NameCache,
    now: i64,
    gmt: bool,
    /// [`SORT_LIMIT`], smaller in tests.
    sort_limit: usize,
}

impl Listing {
    /// Opens a listing of `path` (a virtual path) in `fs`: a directory's entries, or the one
    /// entry of a file (not for MLSD, which names directories only: `NotADirectory`).
    /// `facts` and `perm` are MLSD's; `now` and `gmt` LIST's time column.
    ///
    /// # Errors
    /// The path cannot be read.
    pub fn open(
        fs: &dyn Filesystem,
        path: &Path,
        format: ListFormat,
        facts: Vec<&'static str>,
        perm: Option<PermContext>,
        now: i64,
        gmt: bool,
    ) -> io::Result<Listing> {
        let meta = fs.stat(path)?;
        let (entries, real_dir) = if meta.is_dir() {
            let entries = Entries::Dir {
                stream: Some(fs.read_dir(path)?),
                queue: VecDeque::new(),
                sort_pending: format != ListFormat::Mlsd,
            };
            (entries, fs.real_path(path))
        } else if format == ListFormat::Mlsd {
            // RFC 3659 section 7.2.1: MLSD names a directory; a file is a 501.
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "Not a directory",
            ));
        } else {
            let vp = VirtualPath::new(path);
            let (dir, name) = vp.split_last().unwrap_or((b"", b""));
            let stat = match format {
                ListFormat::Nlst => None,
                _ => Some(fs.lstat(path)?),
            };
            let dir = Path::new(std::ffi::OsStr::from_bytes(dir));
            (
                Entries::One(Some(DirEntry {
                    name: name.to_vec(),
                    stat,
                })),
                fs.real_path(&Path::new("/").join(dir)),
            )
        };
        Ok(Listing {
            entries,
            format,
            facts,
            perm,
            real_dir,
            names: NameCache::default(),
            now,
            gmt,
            sort_limit: SORT_LIMIT,
        })
    }

    /// A listing with nothing in it (a placeholder).
    pub(crate) fn empty() -> Listing {
        Listing {
            entries: Entries::One(None),
            format: ListFormat::Nlst,
            facts: Vec::new(),
            perm: None,
            real_dir: PathBuf::new(),
            names: NameCache::default(),
            now: 0,
            gmt: true,
            sort_limit: SORT_LIMIT,
        }
    }

    /// Whether the listing is known to have nothing more, without reading further: a
    /// directory read to its end ahead of sorting and served, or the one file served. The
    /// data channel then ends after the last piece instead of asking for an empty one.
    pub fn is_done(&self) -> bool {
        match &self.entries {
            Entries::Dir { stream, queue, .. } => stream.is_none() && queue.is_empty(),
            Entries::One(e) => e.is_none(),
        }
    }

    /// The next piece of the listing, at most `max` entries' lines; `None` at the end.
    ///
    /// # Errors
    /// Reading the directory failed.
    pub fn next_chunk(&mut self, max: usize) -> io::Result<Option<Vec<u8>>> {
        let mode = match self.format {
            ListFormat::List => StatMode::Link,
            ListFormat::Nlst => StatMode::None,
            ListFormat::Mlsd => StatMode::Follow,
        };
        let batch = self.next_entries(max.max(1), mode)?;
        if batch.is_empty() {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(batch.len() * 64);
        for e in batch {
            match self.format {
                ListFormat::Nlst => {
                    out.extend_from_slice(&e.name);
                    out.extend_from_slice(b"\r\n");
                }
                // An entry that vanished or cannot be read is left out rather than failing
                // the whole listing.
                ListFormat::List => {
                    if let Some(st) = &e.stat {
                        push_list_line(&mut out, &e.name, st, &mut self.names, self.now, self.gmt);
                    }
                }
                ListFormat::Mlsd => {
                    let Some(st) = &e.stat else { continue };
                    let perm = match &self.perm {
                        Some(p) => {
                            let real = self.real_dir.join(std::ffi::OsStr::from_bytes(&e.name));
                            mlsx_perm(st.is_dir(), |x| p.authorizer.has_perm(&p.user, x, &real))
                        }
                        None => String::new(),
                    };
                    push_mlsx_line(&mut out, &e.name, st, &self.facts, &perm);
                }
            }
        }
        Ok(Some(out))
    }

    /// Up to `max` entries: first those read ahead (sorted when the directory ended within
    /// the limit), then the rest of the directory; empty at the end.
    fn next_entries(&mut self, max: usize, mode: StatMode) -> io::Result<Vec<DirEntry>> {
        let (stream, queue, sort_pending) = match &mut self.entries {
            Entries::One(e) => return Ok(e.take().into_iter().collect()),
            Entries::Dir {
                stream,
                queue,
                sort_pending,
            } => (stream, queue, sort_pending),
        };
        if std::mem::take(sort_pending) {
            let mut ended = false;
            if let Some(s) = stream.as_mut() {
                while queue.len() <= self.sort_limit {
                    let batch = s.next_batch(self.sort_limit + 1 - queue.len(), mode)?;
                    if batch.is_empty() {
                        ended = true;
                        break;
                    }
                    queue.extend(batch);
                }
            }
            if ended {
                *stream = None;
                queue
                    .make_contiguous()
                    .sort_unstable_by(|a, b| a.name.cmp(&b.name));
            }
        }
        if !queue.is_empty() {
            let n = max.min(queue.len());
            return Ok(queue.drain(..n).collect());
        }
        let Some(s) = stream.as_mut() else {
            return Ok(Vec::new());
        };
        let batch = s.next_batch(max, mode)?;
        if batch.is_empty() {
            *stream = None;
        }
        Ok(batch)
    }

    /// The whole listing at once (STAT with a path: the reply is one message).
    ///
    /// # Errors
    /// As [`next_chunk`](Self::next_chunk).
    pub fn collect_all(mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(chunk) = self.next_chunk(CHUNK_ENTRIES)? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(mlsx_perm(true, |_| true), "elcmdfp");
        assert_eq!(mlsx_perm(false, |p| p == crate::Perms::RETR), "r");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A directory that gives `names` in this order, `batch` at a time.
    #[derive(Debug)]
    struct Fixed {
        names: VecDeque<&'static str>,
        batch: usize,
    }

    impl DirStream for Fixed {
        fn next_batch(&mut self, max: usize, _: StatMode) -> io::Result<Vec<DirEntry>> {
            let n = max.min(self.batch).min(self.names.len());
            Ok(self
                .names
                .drain(..n)
                .map(|name| DirEntry {
                    name: name.as_bytes().to_vec(),
                    stat: Some(Stat {
                        kind: crate::filesystem::FileKind::File,
                        size: 0,
                        mtime: 0,
                        mode: 0o100644,
                        uid: 0,
                        gid: 0,
                        nlink: 1,
                        dev: 0,
                        ino: 0,
                        link_target: None,
                    }),
                })
                .collect())
        }
    }

    /// The names a listing of `names` gives, in the order given, with `sort_limit`.
    fn listed(names: &[&'static str], format: ListFormat, sort_limit: usize) -> Vec<String> {
        let mut l = Listing::empty();
        l.format = format;
        l.facts = vec!["type"];
        l.sort_limit = sort_limit;
        l.entries = Entries::Dir {
            stream: Some(Box::new(Fixed {
                names: names.iter().copied().collect(),
                batch: 2,
            })),
            queue: VecDeque::new(),
            sort_pending: format != ListFormat::Mlsd,
        };
        let mut out = Vec::new();
        while let Some(chunk) = l.next_chunk(3).unwrap() {
            out.extend_from_slice(&chunk);
        }
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|line| line.rsplit([' ', ';']).next().unwrap().to_string())
            .collect()
    }

    #[test]
    fn a_listing_read_ahead_knows_its_end() {
        let fixed = |limit: usize| {
            let mut l = Listing::empty();
            l.sort_limit = limit;
            l.entries = Entries::Dir {
                stream: Some(Box::new(Fixed {
                    names: ["b", "a", "c"].into_iter().collect(),
                    batch: 2,
                })),
                queue: VecDeque::new(),
                sort_pending: true,
            };
            l
        };
        // Sorted: the whole directory was read ahead, so the last piece says it is the last.
        let mut l = fixed(100);
        assert!(!l.is_done());
        assert_eq!(l.next_chunk(2).unwrap().unwrap(), b"a\r\nb\r\n");
        assert!(!l.is_done());
        assert_eq!(l.next_chunk(2).unwrap().unwrap(), b"c\r\n");
        assert!(l.is_done());
        // Streamed: the end is known only from the empty batch.
        let mut l = fixed(0);
        while l.next_chunk(2).unwrap().is_some() {}
        assert!(l.is_done());
        assert!(Listing::empty().is_done());
    }

    #[test]
    fn small_directories_are_sorted_for_list_and_nlst_only() {
        let names = ["zeta", "Beta", "alpha", "b", "a.txt", "delta", "é"];
        let sorted = ["Beta", "a.txt", "alpha", "b", "delta", "zeta", "é"];
        for format in [ListFormat::List, ListFormat::Nlst] {
            // Within the limit (equal to it too): sorted by name, bytewise as pyftpdlib's
            // sort of str (UTF-8 byte order is code point order).
            assert_eq!(listed(&names, format, 100), sorted, "{format:?}");
            assert_eq!(listed(&names, format, names.len()), sorted, "{format:?}");
            // Past it: every entry once, in the storage's order.
            assert_eq!(listed(&names, format, names.len() - 1), names, "{format:?}");
            assert_eq!(listed(&names, format, 0), names, "{format:?}");
        }
        assert_eq!(listed(&names, ListFormat::Mlsd, 100), names);
        assert!(listed(&[], ListFormat::Nlst, 100).is_empty());
    }

    #[test]
    fn listings_come_in_pieces() {
        use crate::filesystem::{MemoryFilesystem, WriteMode};
        let fs = MemoryFilesystem::new();
        fs.mkdir(Path::new("/d")).unwrap();
        for i in 0..1000 {
            fs.open_write(Path::new(&format!("/d/f{i:04}")), WriteMode::Truncate)
                .unwrap();
        }
        let mut l = Listing::open(
            &fs,
            Path::new("/d"),
            ListFormat::Nlst,
            vec![],
            None,
            0,
            true,
        )
        .unwrap();
        let mut lines = 0;
        let mut pieces = 0;
        while let Some(chunk) = l.next_chunk(100).unwrap() {
            pieces += 1;
            lines += chunk
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .count();
        }
        assert_eq!((pieces, lines), (10, 1000));
        let one = Listing::open(
            &fs,
            Path::new("/d/f0001"),
            ListFormat::List,
            vec![],
            None,
            0,
            true,
        )
        .unwrap()
        .collect_all()
        .unwrap();
        let one = String::from_utf8(one).unwrap();
        assert!(one.starts_with("-rw-r--r--"), "{one}");
        assert!(one.ends_with(" f0001\r\n"), "{one}");
        let err = Listing::open(
            &fs,
            Path::new("/d/f0001"),
            ListFormat::Mlsd,
            vec![],
            None,
            0,
            true,
        )
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotADirectory);
    }

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
