//! The `ftpdlib` command out of descriptors, under many idle sessions, and with two
//! reactors giving back every descriptor. The limits are set on the running daemon
//! (prlimit(2) on its pid), never on the test process.

mod util;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use util::*;

/// Sets the soft RLIMIT_NOFILE of process `pid` (the hard limit stays).
fn set_nofile(pid: u32, soft: u64) {
    // SAFETY: prlimit reads and writes two local rlimit structs; the pid is our child's.
    unsafe {
        let mut old: libc::rlimit = std::mem::zeroed();
        assert_eq!(
            libc::prlimit(
                pid as libc::pid_t,
                libc::RLIMIT_NOFILE,
                std::ptr::null(),
                &mut old
            ),
            0
        );
        let new = libc::rlimit {
            rlim_cur: soft.min(old.rlim_max),
            rlim_max: old.rlim_max,
        };
        assert_eq!(
            libc::prlimit(
                pid as libc::pid_t,
                libc::RLIMIT_NOFILE,
                &new,
                std::ptr::null_mut()
            ),
            0
        );
    }
}

/// The lowest descriptor number process `pid` has free: with the soft limit there, it
/// can open nothing more.
fn lowest_free_fd(pid: u32) -> u64 {
    let used: HashSet<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    (0..).find(|n| !used.contains(n)).unwrap()
}

/// Blocks the daemon from opening more than `spare` descriptors, runs `f`, then lifts the
/// limit.
fn starved<T>(pid: u32, spare: u64, f: impl FnOnce() -> T) -> T {
    // Let the daemon settle (a listener closing after an accept) before counting.
    std::thread::sleep(Duration::from_millis(200));
    set_nofile(pid, lowest_free_fd(pid) + spare);
    let r = f();
    set_nofile(pid, 4096);
    r
}

#[test]
fn out_of_descriptors_every_command_answers_and_the_server_recovers() {
    let home = TempDir::new("emfile");
    let body = random_bytes(200_000, 11);
    std::fs::write(home.join("f"), &body).unwrap();
    let mut d = Watched::start({
        let mut cmd = ftpdlib();
        cmd.args([
            "-i",
            "127.0.0.1",
            "-p",
            "0",
            "-w",
            "-u",
            "user",
            "-P",
            "pass",
            "-d",
        ])
        .arg(home.path())
        .env("RUST_LOG", "info");
        cmd
    });
    let (pid, addr) = (d.child.id(), d.addr());
    let mut c = Client::connect(addr);
    c.login("user", "pass");

    // PASV: no descriptor for the listener.
    let r = starved(pid, 0, || c.cmd("PASV", 425));
    assert_eq!(
        r.lines,
        ["425 Can't open passive connection: Too many open files."]
    );
    c.cmd("NOOP", 200);

    // RETR and STOR with their data connection up: no descriptor for the file.
    let data_addr = c.pasv();
    let data = TcpStream::connect(data_addr).unwrap();
    let r = starved(pid, 0, || c.cmd("RETR f", 451));
    assert_eq!(r.lines, ["451 Too many open files."]);
    let r = starved(pid, 0, || c.cmd("STOR g", 451));
    assert_eq!(r.lines, ["451 Too many open files."]);
    drop(data);
    c.cmd("NOOP", 200);

    // STOR with room for its file and none for the pipe it would splice(2) through: the
    // upload is read instead, whole.
    let big = random_bytes(3 << 20, 12);
    let mut data = TcpStream::connect(c.pasv()).unwrap();
    starved(pid, 1, || {
        c.cmd("STOR h", 125);
        data.write_all(&big).unwrap();
        drop(data);
        c.expect(226);
    });
    assert_same(&std::fs::read(home.join("h")).unwrap(), &big);

    // The passive accept: room for the file, none for the data connection. The transfer
    // command waiting for it is told why at once, not after the accept timeout.
    let data_addr = c.pasv();
    let r = starved(pid, 1, || {
        c.cmd("RETR f", 150);
        let _data = TcpStream::connect(data_addr).unwrap();
        c.expect(425)
    });
    assert_eq!(
        r.lines,
        ["425 Can't open data connection: Too many open files."]
    );
    c.cmd("NOOP", 200);

    // At accept: a new client waits in the backlog while no descriptor is free, and gets
    // its greeting once there is one again.
    let mut waiting = starved(pid, 0, || {
        let mut w = Client::connect_raw(addr);
        w.stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut b = [0u8; 3];
        assert!(
            w.stream.read_exact(&mut b).is_err(),
            "greeted without a descriptor"
        );
        w
    });
    waiting
        .stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    waiting.expect(220);
    waiting.login("user", "pass");

    // Everything works again, on the old session and the new one.
    assert_same(&c.retr("RETR f"), &body);
    waiting.stor("STOR g", b"back");
    assert_eq!(std::fs::read(home.join("g")).unwrap(), b"back");

    // The accept shortage is logged once, not at every retry, and so is its end.
    assert!(
        d.wait_line("accepting connections again", Duration::from_secs(5)),
        "{:?}",
        d.log
    );
    c.cmd("QUIT", 221);
    // Lines after it, if any, have come by the time the session's end is logged.
    assert!(d.wait_line("FTP session closed", Duration::from_secs(5)));
    let text = d.log.join("\n");
    assert_eq!(text.matches("] accept failed: ").count(), 1, "{text}");
    let again = text.matches("accepting connections again").count();
    assert_eq!(again, 1, "{text}");
}

/// The daemon's resident memory, KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// An idle logged-in session costs little: 500 of them grow the daemon by less than
/// 16 KiB each (9,900 took about 2.9 KiB each in release: docs/benchmarks.md, measured
/// with demo/bench/idle_sessions.sh; the bound leaves room for a debug build and noise).
#[test]
fn idle_sessions_cost_little_memory() {
    const N: usize = 500;
    const BOUND: u64 = 16 * 1024;
    let home = TempDir::new("idle");
    let (d, port) = serve_daemon(&[
        "-d",
        home.path().to_str().unwrap(),
        "-u",
        "user",
        "-P",
        "pass",
        "--max-cons",
        "0",
    ]);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let pid = d.0.id();
    // One session first, so what every session shares (the worker pool, the user's
    // storage) is in the baseline.
    let mut first = Client::connect(addr);
    first.login("user", "pass");
    first.cmd("NOOP", 200);
    let before = rss_kib(pid);
    let sessions: Vec<Client> = (0..N)
        .map(|_| {
            let mut c = Client::connect(addr);
            c.login("user", "pass");
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let after = rss_kib(pid);
    let per_session = after.saturating_sub(before) * 1024 / N as u64;
    eprintln!("{N} idle sessions: VmRSS {before} -> {after} KiB, {per_session} bytes each");
    assert!(
        per_session < BOUND,
        "{per_session} bytes per idle session (VmRSS {before} -> {after} KiB)"
    );
    // They are alive, not merely counted.
    for mut c in sessions.into_iter().step_by(50) {
        c.cmd("NOOP", 200);
    }
}

/// One session's worth of load, shaped by `i`: a whole visit, a passive listener left
/// behind, a download or an upload dropped half-way, a client gone before logging in.
fn visit(addr: SocketAddr, i: usize, body: &[u8]) {
    let mut c = Client::connect(addr);
    if i % 5 == 3 {
        return;
    }
    c.login("user", "pass");
    c.cmd("TYPE I", 200);
    match i % 5 {
        0 => {
            assert_same(&c.retr("RETR f"), body);
            c.stor(format!("STOR up-{i}"), &body[..1000 + i]);
            c.retr("LIST");
            c.cmd("QUIT", 221);
            assert!(c.closed_by_server());
        }
        1 => {
            c.pasv();
        }
        2 => {
            let mut data = TcpStream::connect(c.pasv()).unwrap();
            c.send("RETR f");
            let r = c.read_reply();
            assert!(r.code == 125 || r.code == 150, "{:?}", r.lines);
            let mut some = [0u8; 1000];
            data.read_exact(&mut some).unwrap();
        }
        _ => {
            let mut data = TcpStream::connect(c.pasv()).unwrap();
            c.send(format!("STOR part-{i}"));
            let r = c.read_reply();
            assert!(r.code == 125 || r.code == 150, "{:?}", r.lines);
            std::io::Write::write_all(&mut data, &body[..5000]).unwrap();
        }
    }
}

/// With two reactors, many sessions (transfers, listings, passive listeners left open,
/// transfers and sessions dropped half-way) leave nothing behind: the daemon's descriptor
/// and thread counts come back to their idle values, and SIGTERM then ends it at once.
#[test]
fn two_reactors_give_back_every_descriptor() {
    let home = TempDir::new("fds-two");
    let body = random_bytes(300_000, 12);
    std::fs::write(home.join("f"), &body).unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ftpdlib"));
    cmd.args(["-i", "127.0.0.1", "-p", "0", "-w", "--workers", "2"])
        .args([
            "-d",
            home.path().to_str().unwrap(),
            "-u",
            "user",
            "-P",
            "pass",
        ])
        .env("RUST_LOG", "info");
    let mut d = Watched::start(cmd);
    let (pid, addr) = (d.child.id(), d.addr());
    assert_eq!(procfs::reactors_started(pid, 2), 2);
    // Warm up both reactors (each starts its worker pool on first use), then count.
    let mut warm = [false; 2];
    for _ in 0..40 {
        if warm.iter().all(|w| *w) {
            break;
        }
        let (r, ()) = procfs::on_reactor(pid, || visit(addr, 0, &body));
        if let Some(r) = r {
            warm[r] = true;
        }
    }
    assert_eq!(warm, [true; 2]);
    std::thread::sleep(Duration::from_millis(200));
    let (idle_fds, idle_threads) = (procfs::fd_count(pid), procfs::tasks(pid).len());

    let before = procfs::reactor_writes(pid);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let peak = {
        let done = std::sync::Arc::clone(&done);
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                peak = peak.max(procfs::fd_count(pid));
                std::thread::sleep(Duration::from_millis(2));
            }
            peak
        })
    };
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let body = body.clone();
            std::thread::spawn(move || {
                for i in (t * 10)..(t * 10 + 10) {
                    visit(addr, i, &body);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let peak = peak.join().unwrap();
    eprintln!("descriptors: {idle_fds} idle, {peak} at the most under load");
    // Four clients at a time, each with a control and a data connection and a file.
    assert!(peak >= idle_fds + 4, "{peak} descriptors at the most");
    let after = procfs::reactor_writes(pid);
    assert!(
        (0..2).all(|r| after[&r] > before[&r]),
        "both reactors served: {before:?} -> {after:?}"
    );
    let fds = procfs::fd_count_settles(pid, idle_fds, Duration::from_secs(10));
    assert_eq!(
        fds, idle_fds,
        "descriptors: idle {idle_fds}, after the load {fds}"
    );
    assert_eq!(procfs::tasks(pid).len(), idle_threads);
    for i in (0..40).filter(|i| i % 5 == 0) {
        assert_eq!(
            std::fs::read(home.join(&format!("up-{i}"))).unwrap(),
            &body[..1000 + i]
        );
    }

    let start = std::time::Instant::now();
    d.signal(libc::SIGTERM);
    let status = d.wait_exit(Duration::from_secs(5));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}
