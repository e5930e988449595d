//! `ftpdlib --workers N` and `--concurrency pre-fork`: how many reactors run, and the
//! limits that hold for all of them together (`--max-cons`, the failed-login ban), with
//! `/metrics` and `/health` over two reactors.
//!
//! Which reactor serves a connection is the kernel's choice (`SO_REUSEPORT` hashes the
//! address pair); the tests learn it from /proc: the reactor that accepts a connection logs
//! it, and its thread's write count grows (`util::procfs::on_reactor`).

mod util;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use util::procfs::{on_reactor, reactor_threads, reactors_started};
use util::{connect_from, require, run, Client, TempDir, Watched};

/// The command on a loopback port of the kernel's choice with `args`, logging at info.
fn start(args: &[&str]) -> Watched {
    start_cmd(
        Command::new(env!("CARGO_BIN_EXE_ftpdlib")),
        &["-i", "127.0.0.1", "-p", "0"],
        args,
    )
}

/// The address of `/metrics` and `/health` the start-up log names (`--metrics
/// 127.0.0.1:0` lets the kernel choose the port, so no other test can take it first).
fn metrics_addr(d: &Watched) -> String {
    let line = d
        .log
        .iter()
        .find_map(|l| l.split("metrics on http://").nth(1))
        .unwrap_or_else(|| panic!("no metrics address: {:?}", d.log));
    line[..line.find('/').unwrap()].to_string()
}

fn start_cmd(mut cmd: Command, first: &[&str], args: &[&str]) -> Watched {
    cmd.args(first).args(args).env("RUST_LOG", "info");
    Watched::start(cmd)
}

/// The "concurrency model" line of the start-up log, from its message on.
fn concurrency_line(d: &mut Watched) -> String {
    assert!(
        d.wait_line("concurrency model", Duration::from_secs(5)),
        "{:?}",
        d.log
    );
    let line = d
        .log
        .iter()
        .find(|l| l.contains("concurrency model"))
        .unwrap();
    line[line.find("concurrency model").unwrap()..].to_string()
}

/// What the log says of `n` reactors.
fn model(n: usize) -> String {
    if n == 1 {
        "concurrency model: async".to_string()
    } else {
        format!("concurrency model: async, {n} reactors on one port (SO_REUSEPORT)")
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Starts the daemon with `args`, checks its log line and its reactor threads against `n`,
/// and that it serves.
fn serves_with_reactors(args: &[&str], n: usize) {
    let dir = TempDir::new("workers-count");
    let mut all = vec!["-d", dir.path().to_str().unwrap()];
    all.extend_from_slice(args);
    let mut d = start(&all);
    assert_eq!(concurrency_line(&mut d), model(n), "{args:?}");
    assert_eq!(reactors_started(d.child.id(), n), n, "{args:?}");
    Client::connect(d.addr()).login("anonymous", "x@y");
    assert_eq!(reactor_threads(d.child.id()), n, "{args:?}");
}

#[test]
fn the_number_of_reactors_follows_workers_and_pre_fork() {
    let n = cores();
    serves_with_reactors(&["--concurrency", "pre-fork"], n);
    serves_with_reactors(&["--workers", "0"], n);
    serves_with_reactors(&["--workers", "2"], 2);
    serves_with_reactors(&["--workers", "3"], 3);
    serves_with_reactors(&[], 1);
    serves_with_reactors(&["--workers", "1"], 1);
    // --workers wins over the model's count.
    serves_with_reactors(&["--concurrency", "pre-fork", "--workers", "2"], 2);
}

/// The first CPU this process may run on.
fn first_cpu() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim();
    list.split([',', '-']).next().unwrap().to_string()
}

#[test]
fn pre_fork_on_one_core_runs_one_reactor() {
    if !require("taskset") {
        return;
    }
    let dir = TempDir::new("workers-one-core");
    for args in [["--concurrency", "pre-fork"], ["--workers", "0"]] {
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", &first_cpu(), env!("CARGO_BIN_EXE_ftpdlib")]);
        let mut d = start_cmd(
            cmd,
            &["-i", "127.0.0.1", "-p", "0", "-d"],
            &[dir.path().to_str().unwrap(), args[0], args[1]],
        );
        assert_eq!(concurrency_line(&mut d), model(1), "{args:?}");
        assert_eq!(reactors_started(d.child.id(), 1), 1);
        Client::connect(d.addr()).login("anonymous", "x@y");
        assert_eq!(reactor_threads(d.child.id()), 1);
    }
}

/// GETs `path` from the metrics server with curl: (status, body).
fn http_get(metrics: &str, path: &str) -> (u16, String) {
    let out = run(util::curl()
        .args(["--max-time", "10", "-w", "\n%{http_code}"])
        .arg(format!("http://{metrics}{path}")));
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_string())
}

/// Scrapes `/metrics`: every sample line as `name{labels}` -> value.
fn scrape(metrics: &str) -> HashMap<String, u64> {
    let (code, body) = http_get(metrics, "/metrics");
    assert_eq!(code, 200, "{body}");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap();
            (name.to_string(), value.parse().unwrap())
        })
        .collect()
}

fn get(m: &HashMap<String, u64>, name: &str) -> u64 {
    *m.get(name)
        .unwrap_or_else(|| panic!("{name} missing from the scrape: {m:?}"))
}

/// Waits (bounded) until a scrape satisfies `f`; returns that scrape.
fn scrape_until(metrics: &str, f: impl Fn(&HashMap<String, u64>) -> bool) -> HashMap<String, u64> {
    let end = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let m = scrape(metrics);
        if f(&m) || std::time::Instant::now() > end {
            return m;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The first reply line a new connection gets ("220 ..." or "421 ...").
fn first_line(stream: &TcpStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    line.trim_end().to_string()
}

const TOO_MANY: &str = "421 Too many connections. Service temporarily unavailable.";

#[test]
fn max_cons_holds_across_two_reactors_with_metrics_and_health() {
    if !require("curl") {
        return;
    }
    let dir = TempDir::new("workers-max-cons");
    let mut d = start(&[
        "-d",
        dir.path().to_str().unwrap(),
        "--workers",
        "2",
        "--max-cons",
        "4",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let metrics = metrics_addr(&d);
    assert_eq!(concurrency_line(&mut d), model(2));
    let (pid, addr) = (d.child.id(), d.addr());
    assert_eq!(reactors_started(pid, 2), 2);
    assert_eq!(http_get(&metrics, "/health"), (200, "OK\n".to_string()));

    // One at a time, each reactor known: four greeted, then every other one refused, on
    // both reactors. A reactor refusing while it holds fewer than four sessions of its
    // own shows the count is the group's.
    let mut held = Vec::new();
    let mut refused_on = [0usize; 2];
    for _ in 0..4 {
        let (r, s) = on_reactor(pid, || {
            let s = TcpStream::connect(addr).unwrap();
            let line = first_line(&s);
            assert!(line.starts_with("220 "), "{line}");
            s
        });
        assert!(r.is_some(), "no reactor logged the session");
        held.push(s);
    }
    for _ in 0..40 {
        if refused_on.iter().all(|n| *n > 0) {
            break;
        }
        let (r, line) = on_reactor(pid, || first_line(&TcpStream::connect(addr).unwrap()));
        assert_eq!(line, TOO_MANY);
        if let Some(r) = r {
            refused_on[r] += 1;
        }
    }
    assert!(
        refused_on.iter().all(|n| *n > 0),
        "refusals by reactor: {refused_on:?}"
    );
    let refused: usize = refused_on.iter().sum();
    drop(held);
    scrape_until(&metrics, |m| m.get("ftpdlib_sessions_open") == Some(&0));

    // Eight at once, from eight threads: exactly four greeted.
    for round in 0..3 {
        let threads: Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(move || {
                    let s = TcpStream::connect(addr).unwrap();
                    let line = first_line(&s);
                    (s, line)
                })
            })
            .collect();
        let got: Vec<(TcpStream, String)> =
            threads.into_iter().map(|t| t.join().unwrap()).collect();
        let greeted = got.iter().filter(|(_, l)| l.starts_with("220 ")).count();
        let lines: Vec<&String> = got.iter().map(|(_, l)| l).collect();
        assert_eq!(greeted, 4, "round {round}: {lines:?}");
        assert!(
            got.iter()
                .all(|(_, l)| l.starts_with("220 ") || l == TOO_MANY),
            "{lines:?}"
        );
        drop(got);
        let m = scrape_until(&metrics, |m| m.get("ftpdlib_sessions_open") == Some(&0));
        assert_eq!(get(&m, "ftpdlib_sessions_open"), 0);
    }

    let m = scrape(&metrics);
    assert_eq!(get(&m, "ftpdlib_sessions_total"), 4 + 3 * 4);
    assert_eq!(
        get(&m, "ftpdlib_connections_refused_total{reason=\"max_cons\"}"),
        (refused + 3 * 4) as u64
    );
    assert_eq!(get(&m, "ftpdlib_reactor_panics_total"), 0);
    // Sharing the counts costs a lock at each accept and each session's end; a wait on it
    // is counted, and with two reactors accepting at once a few may happen, never more
    // than one per lock taken.
    let waits = get(&m, "ftpdlib_lock_waits_total");
    assert!(waits <= 2 * (4 + 40 + 3 * 8), "{waits} lock waits");
    assert_eq!(http_get(&metrics, "/health"), (200, "OK\n".to_string()));
    // A new session gets in again.
    Client::connect(addr).login("anonymous", "x@y");
}

#[test]
fn a_login_ban_holds_on_every_reactor() {
    if !require("curl") {
        return;
    }
    let dir = TempDir::new("workers-ban");
    let mut d = start(&[
        "-d",
        dir.path().to_str().unwrap(),
        "-u",
        "user",
        "-P",
        "pass",
        "--workers",
        "2",
        "--max-login-failures",
        "3",
        "--ban-time",
        "60",
        "--auth-failed-delay",
        "0",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let metrics = metrics_addr(&d);
    assert_eq!(concurrency_line(&mut d), model(2));
    let (pid, addr) = (d.child.id(), d.addr());
    assert_eq!(reactors_started(pid, 2), 2);

    // Three failed logins, all on one reactor.
    let (failed_on, mut c) = on_reactor(pid, || Client::connect(addr));
    let failed_on = failed_on.expect("no reactor logged the session");
    for _ in 0..3 {
        c.cmd("USER user", 331);
        c.cmd("PASS wrong", 530);
    }
    drop(c);
    let m = scrape_until(&metrics, |m| m.get("ftpdlib_login_bans_total") == Some(&1));
    assert_eq!(get(&m, "ftpdlib_login_bans_total"), 1);

    // Every later connection from that address is refused, on the other reactor too.
    let mut refused_on = [0usize; 2];
    for _ in 0..40 {
        if refused_on.iter().all(|n| *n > 0) {
            break;
        }
        let (r, line) = on_reactor(pid, || first_line(&TcpStream::connect(addr).unwrap()));
        assert_eq!(line, "421 Too many failed logins; try again later.");
        if let Some(r) = r {
            refused_on[r] += 1;
        }
    }
    assert!(
        refused_on[1 - failed_on] > 0,
        "the ban was earned on reactor {failed_on}; refusals by reactor: {refused_on:?}"
    );
    assert!(refused_on[failed_on] > 0, "{refused_on:?}");

    // Another address is not banned, on either reactor.
    let mut served_on = [0usize; 2];
    for _ in 0..40 {
        if served_on.iter().all(|n| *n > 0) {
            break;
        }
        let (r, ()) = on_reactor(pid, || {
            let mut c = Client::from_stream(connect_from([127, 0, 0, 2], addr));
            c.expect(220);
            c.login("user", "pass");
            c.cmd("QUIT", 221);
            assert!(c.closed_by_server());
        });
        if let Some(r) = r {
            served_on[r] += 1;
        }
    }
    assert!(served_on.iter().all(|n| *n > 0), "{served_on:?}");
    let m = scrape(&metrics);
    assert_eq!(get(&m, "ftpdlib_login_bans_total"), 1);
    assert_eq!(get(&m, "ftpdlib_reactor_panics_total"), 0);
    assert_eq!(http_get(&metrics, "/health"), (200, "OK\n".to_string()));
}
