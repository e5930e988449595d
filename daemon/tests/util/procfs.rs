//! What /proc says of a running daemon: its threads (names, ids, groups, I/O counters) and
//! its descriptors. The daemon's threads are named: `ftpdlib` (the main thread),
//! `ftpd-signals`, `ftpd-reactor-N` and `ftpdlib-worker`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One thread of a process, as its `status` file showed it in one read (the kernel writes
/// the ids and groups of one set of credentials, so they are consistent with each other).
#[derive(Debug, Clone)]
pub struct Task {
    pub tid: u32,
    pub name: String,
    /// Real, effective, saved and filesystem uid.
    pub uid: [u32; 4],
    /// Real, effective, saved and filesystem gid.
    pub gid: [u32; 4],
    /// The supplementary groups.
    pub groups: Vec<u32>,
}

fn ids(line: &str) -> [u32; 4] {
    let v: Vec<u32> = line
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    [v[0], v[1], v[2], v[3]]
}

/// The ids and groups of a `status` file's text.
pub fn parse_status(text: &str) -> ([u32; 4], [u32; 4], Vec<u32>) {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    let groups = field("Groups:")
        .split_whitespace()
        .map(|g| g.parse().unwrap())
        .collect();
    (ids(field("Uid:")), ids(field("Gid:")), groups)
}

/// The supplementary groups of the calling process (which the daemons it starts inherit).
pub fn own_groups() -> Vec<u32> {
    parse_status(&std::fs::read_to_string("/proc/self/status").unwrap()).2
}

/// Every thread of `pid` now. A thread that ends while it is read is left out.
pub fn tasks(pid: u32) -> Vec<Task> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let e = e.ok()?;
        let tid: u32 = e.file_name().to_str()?.parse().ok()?;
        let name = std::fs::read_to_string(e.path().join("comm")).ok()?;
        let status = std::fs::read_to_string(e.path().join("status")).ok()?;
        let (uid, gid, groups) = parse_status(&status);
        Some(Task {
            tid,
            name: name.trim_end().to_string(),
            uid,
            gid,
            groups,
        })
    })
    .collect()
}

/// The threads of `pid` by name, counted.
pub fn thread_names(pid: u32) -> BTreeMap<String, usize> {
    let mut names = BTreeMap::new();
    for t in tasks(pid) {
        *names.entry(t.name).or_insert(0) += 1;
    }
    names
}

/// How many `ftpd-reactor-N` threads `pid` runs. A thread a reactor has just started
/// bears the reactor's name until it has set its own: names are counted, not threads.
pub fn reactor_threads(pid: u32) -> usize {
    tasks(pid)
        .into_iter()
        .filter(|t| t.name.starts_with("ftpd-reactor-"))
        .map(|t| t.name)
        .collect::<std::collections::BTreeSet<_>>()
        .len()
}

/// Waits (bounded) until `pid` runs `n` reactor threads (they start just after the log
/// says the server is starting); the number last seen.
pub fn reactors_started(pid: u32, n: usize) -> usize {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = reactor_threads(pid);
        if seen >= n || Instant::now() >= end {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How many descriptors `pid` has open.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Waits (bounded) until `pid` has `want` descriptors open; the last count seen.
pub fn fd_count_settles(pid: u32, want: usize, limit: Duration) -> usize {
    let end = Instant::now() + limit;
    loop {
        let n = fd_count(pid);
        if n == want || Instant::now() >= end {
            return n;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The bytes each reactor thread of `pid` has written through write(2) and its kin, by
/// reactor number. Sockets are written with send(2), which this does not count: what it
/// counts is the reactor's log lines on standard error. A thread the reactor has just
/// started, which still bears its name, adds what it wrote: nothing yet.
pub fn reactor_writes(pid: u32) -> BTreeMap<usize, u64> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(name) = std::fs::read_to_string(e.path().join("comm")) else {
            continue;
        };
        let Some(n) = name.trim_end().strip_prefix("ftpd-reactor-") else {
            continue;
        };
        let Ok(io) = std::fs::read_to_string(e.path().join("io")) else {
            continue;
        };
        let wchar = io
            .lines()
            .find_map(|l| l.strip_prefix("wchar:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        *out.entry(n.parse().unwrap()).or_insert(0) += wchar;
    }
    out
}

/// Runs `f`, which must make the daemon `pid` (logging at info) log on exactly one reactor,
/// say by connecting a client, whose session is logged as opened by the reactor that
/// accepted it; returns which reactor that was, or None when no reactor or several logged
/// (another session's line at the same moment). Nothing else may log meanwhile for the
/// answer to be right: call it while the daemon is otherwise quiet.
pub fn on_reactor<T>(pid: u32, f: impl FnOnce() -> T) -> (Option<usize>, T) {
    let before = reactor_writes(pid);
    let r = f();
    // The line may be written just after the client saw the greeting.
    let end = Instant::now() + Duration::from_secs(2);
    loop {
        let after = reactor_writes(pid);
        let grew: Vec<usize> = after
            .iter()
            .filter(|(i, w)| **w > before.get(i).copied().unwrap_or(0))
            .map(|(i, _)| *i)
            .collect();
        if grew.is_empty() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        // The session's later lines (a QUIT's) come from the same reactor: let them be
        // written, so that they do not count for the next call.
        std::thread::sleep(Duration::from_millis(30));
        let last = reactor_writes(pid);
        let grew: Vec<usize> = last
            .iter()
            .filter(|(i, w)| **w > before.get(i).copied().unwrap_or(0))
            .map(|(i, _)| *i)
            .collect();
        return match grew.as_slice() {
            [one] => (Some(*one), r),
            _ => (None, r),
        };
    }
}
