//! workers_load: the client of demo/bench/workers.sh. It loads one FTP server on 127.0.0.1
//! from one thread (a mio event loop, non-blocking sockets, rustls for FTPS) and measures,
//! over a window after a warm-up, the aggregate rate and the CPU the server spent: user +
//! system time of the server's process and all its descendants, read from /proc at both
//! ends of the window (children that ended in between are counted through their parent's
//! cutime and cstime), in cores (1.7 = 170 % of one CPU). Its own CPU is reported too, and
//! what the rest of the machine spent meanwhile (other processes, from /proc/stat).
//!
//! Workloads (`--workload`):
//!
//! - `retr`: N sessions log in (not measured), then each RETRs `--file` again and again;
//!   the rate is the file data received in the window (MiB/s) and RETRs finished in it.
//! - `sessions`: N clients each run whole sessions one after another (connect, log in,
//!   with `--file` `--retrs` RETRs, QUIT); the rates are sessions ended, RETRs finished and
//!   file data received in the window. N = 1 without a file gives sequential logins.
//!
//! With `--tls` every session is explicit FTPS: AUTH TLS on the control connection (a full
//! handshake), PBSZ 0 and PROT P after login, TLS on every data connection, which resumes
//! the control connection's session where the server lets it (the counts are reported).
//!
//! Every phase is bounded by `--timeout`; the result is one JSON line on stdout.
//! Run `cargo run --release --example workers_load -- --help` for the flags.

mod client;
mod conn;

use client::{Counters, Load, Plan};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::process;
use std::time::{Duration, Instant};

const USAGE: &str = "\
workers_load: load one FTP server on 127.0.0.1 and measure its rate and CPU

USAGE: workers_load --port PORT --pid PID --workload retr|sessions [OPTIONS]

OPTIONS:
  --port PORT        server port on 127.0.0.1
  --pid PID          the server's process id (its CPU, with all descendants, is measured)
  --workload W       retr: N logged-in sessions RETR --file again and again;
                     sessions: N clients run whole sessions one after another
  --user USER        user name (default anonymous)
  --pass PASS        password (default workers@)
  -n, --clients N    concurrent sessions (default 200)
  --tls              explicit FTPS: AUTH TLS, PBSZ 0, PROT P
  --late-hello       start TLS on a data connection after the 150 reply (as Python's
                     ftplib does), not as soon as it is connected (as curl does)
  --file PATH        the file to RETR (needed by retr; optional for sessions)
  --retrs K          sessions: RETRs of --file per session (default 1)
  --size BYTES       its size; every RETR must return exactly that many bytes
  --warmup SECS      time before the window opens (default 1)
  --seconds SECS     length of the measured window (default 5)
  --window K         at most K sessions connected and not yet greeted (default 32)
  --timeout SECS     bound of each phase: logging in, draining, quitting (default 60)
  --label TEXT       copied into the JSON line
  -h, --help         this text
";

struct Args {
    port: u16,
    pid: u32,
    retr: bool,
    clients: usize,
    warmup: f64,
    seconds: f64,
    timeout: Duration,
    label: String,
    plan: Plan,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        port: 0,
        pid: 0,
        retr: false,
        clients: 200,
        warmup: 1.0,
        seconds: 5.0,
        timeout: Duration::from_secs(60),
        label: String::new(),
        plan: Plan {
            tls: false,
            user: "anonymous".into(),
            pass: "workers@".into(),
            file: None,
            cycle: false,
            retrs_per_session: 1,
            late_hello: false,
            window: 32,
        },
    };
    let mut workload = None;
    let (mut file, mut size) = (None, None);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or(format!("{flag} needs a value"));
        fn num<T: std::str::FromStr>(v: String) -> Result<T, String> {
            v.parse().map_err(|_| format!("bad number {v:?}"))
        }
        match flag.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                process::exit(0);
            }
            "--port" => a.port = num(val()?)?,
            "--pid" => a.pid = num(val()?)?,
            "--workload" => workload = Some(val()?),
            "--user" => a.plan.user = val()?,
            "--pass" => a.plan.pass = val()?,
            "-n" | "--clients" => a.clients = num(val()?)?,
            "--tls" => a.plan.tls = true,
            "--late-hello" => a.plan.late_hello = true,
            "--retrs" => a.plan.retrs_per_session = num(val()?)?,
            "--file" => file = Some(val()?),
            "--size" => size = Some(num::<u64>(val()?)?),
            "--warmup" => a.warmup = num(val()?)?,
            "--seconds" => a.seconds = num(val()?)?,
            "--window" => a.plan.window = num(val()?)?,
            "--timeout" => {
                a.timeout = Duration::from_secs_f64(num::<f64>(val()?)?.clamp(1.0, 3600.0))
            }
            "--label" => a.label = val()?,
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    match workload.as_deref() {
        Some("retr") => a.retr = true,
        Some("sessions") => a.plan.cycle = true,
        _ => return Err("--workload must be retr or sessions".into()),
    }
    a.plan.file = match (file, size) {
        (Some(f), Some(s)) => Some((f, s)),
        (None, None) if !a.retr => None,
        _ => return Err("retr needs --file and --size; --file and --size go together".into()),
    };
    if a.port == 0 || a.pid == 0 {
        return Err("--port and --pid are needed".into());
    }
    if a.clients == 0 || a.clients > 10_000 || a.plan.window == 0 {
        return Err("--clients must be 1 to 10000, --window at least 1".into());
    }
    if !(0.0..=600.0).contains(&a.warmup) || !(0.1..=600.0).contains(&a.seconds) {
        return Err("--warmup 0 to 600, --seconds 0.1 to 600".into());
    }
    Ok(a)
}

/// Raises the soft open-file limit to `want` (or the hard limit).
fn raise_nofile(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed in.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < want {
            lim.rlim_cur = lim.rlim_max.min(want);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// CPU seconds (user + system) of this process.
fn own_cpu() -> f64 {
    // SAFETY: an all-zero rusage is a valid value for getrusage to fill in.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes only into `ru`.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// CPU seconds of `root` and all its descendants (utime + stime + cutime + cstime, so that
/// reaped children count through their parent), and how many processes that is; None when
/// `root` is gone.
fn tree_cpu(root: u32) -> Option<(f64, usize)> {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut kids: HashMap<u32, Vec<u32>> = HashMap::new();
    let mut ticks: HashMap<u32, u64> = HashMap::new();
    for ent in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = ent.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command may hold spaces and parentheses: the fields start after the last ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let field = |k: usize| f.get(k).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
        // After the ')': state ppid ... utime(11) stime(12) cutime(13) cstime(14).
        kids.entry(field(1) as u32).or_default().push(pid);
        ticks.insert(pid, field(11) + field(12) + field(13) + field(14));
    }
    let mut total = *ticks.get(&root)?;
    let (mut n, mut todo) = (1, kids.get(&root).cloned().unwrap_or_default());
    while let Some(p) = todo.pop() {
        total += ticks.get(&p).copied().unwrap_or(0);
        n += 1;
        if n > 100_000 {
            break;
        }
        todo.extend(kids.get(&p).into_iter().flatten());
    }
    Some((total as f64 / hz, n))
}

/// CPU seconds of each thread of `pid` by name, summed over threads of the same name
/// except for ftpdlib's reactors (`ftpd-reactor-N`), each of which has a name of its own.
fn thread_cpu(pid: u32) -> Vec<(String, f64)> {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut out: Vec<(String, f64)> = Vec::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for ent in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(ent.path().join("stat")) else {
            continue;
        };
        let (Some((head, rest)), Some(open)) = (stat.rsplit_once(')'), stat.find('(')) else {
            continue;
        };
        let name = head.get(open + 1..).unwrap_or("?").to_string();
        let f: Vec<&str> = rest.split_whitespace().collect();
        let t = |k: usize| f.get(k).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
        let secs = (t(11) + t(12)) as f64 / hz;
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some(e) => e.1 += secs,
            None => out.push((name, secs)),
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// CPU seconds the whole machine spent busy (every CPU: user, nice, system, irq, softirq,
/// steal), from the first line of /proc/stat.
fn machine_cpu() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy: u64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&k| f.get(k)).sum();
    busy as f64 / hz
}

struct Mark {
    t: Instant,
    c: Counters,
    server: f64,
    procs: usize,
    own: f64,
    machine: f64,
    threads: Vec<(String, f64)>,
}

fn mark(load: &Load, pid: u32) -> Result<Mark, String> {
    let t = Instant::now();
    let (server, procs) = tree_cpu(pid).ok_or(format!("server process {pid} is gone"))?;
    Ok(Mark {
        t,
        c: load.c,
        server,
        procs,
        own: own_cpu(),
        machine: machine_cpu(),
        threads: thread_cpu(pid),
    })
}

/// Turns the loop for the warm-up and the window; returns the marks at both ends.
fn measure(load: &mut Load, a: &Args) -> Result<(Mark, Mark), String> {
    let start = Instant::now();
    let open = start + Duration::from_secs_f64(a.warmup);
    let mut first = None;
    let mut end = open + Duration::from_secs_f64(a.seconds);
    loop {
        let now = Instant::now();
        if first.is_none() && now >= open {
            let m = mark(load, a.pid)?;
            end = m.t + Duration::from_secs_f64(a.seconds);
            first = Some(m);
        }
        if let Some(f) = first.take() {
            if now >= end {
                return Ok((f, mark(load, a.pid)?));
            }
            first = Some(f);
        }
        let next = if first.is_some() { end } else { open };
        load.turn(
            next.saturating_duration_since(now)
                .min(Duration::from_millis(50)),
        )?;
    }
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn run(a: &Args) -> Result<String, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], a.port));
    let mut load = Load::new(addr, a.plan.clone(), a.clients)?;
    let phase = || Instant::now() + a.timeout;
    if a.retr {
        load.connect_all();
        load.run_while(|l| l.logging_in() > 0, phase())
            .map_err(|e| format!("logging in: {e}"))?;
        if load.idle() != a.clients {
            return Err(format!(
                "{} of {} sessions logged in; first error: {}",
                load.idle(),
                a.clients,
                load.first_error.as_deref().unwrap_or("?")
            ));
        }
        load.running = true;
        load.kick_idle();
    } else {
        load.running = true;
        load.connect_all();
    }
    let (m0, m1) = measure(&mut load, a)?;
    load.running = false;
    load.drop_queue();
    let mut tail = Vec::new();
    if a.retr {
        if let Err(e) = load.run_while(|l| l.transferring() > 0, phase()) {
            tail.push(format!("the last RETRs: {e}"));
        }
        load.quit_idle();
    }
    if let Err(e) = load.run_while(|l| l.open() > 0, phase()) {
        tail.push(format!("the last sessions: {e}"));
    }
    load.close_all();
    let secs = m1.t.duration_since(m0.t).as_secs_f64();
    let d = |f: fn(&Counters) -> u64| f(&m1.c) - f(&m0.c);
    let bytes = d(|c| c.bytes);
    let (retrs, sessions, logins) = (d(|c| c.retrs), d(|c| c.sessions), d(|c| c.logins));
    let server_cpu = m1.server - m0.server;
    let mut j = format!(
        "{{\"label\":{},\"workload\":{},\"tls\":{},\"clients\":{},\"size\":{},\
         \"window_s\":{secs:.4},\"bytes\":{bytes},\"mib_per_s\":{:.3},\"retrs\":{retrs},\
         \"retrs_per_s\":{:.3},\"sessions\":{sessions},\"sessions_per_s\":{:.3},\
         \"logins\":{logins},\"logins_per_s\":{:.3},\"server_cpu_s\":{server_cpu:.3},\
         \"server_cores\":{:.4},\"client_cores\":{:.4},\"others_cores\":{:.4},\
         \"server_procs\":{},\
         \"errors\":{},\"errors_in_window\":{},\"ctrl_full\":{},\"ctrl_resumed\":{},\
         \"data_full\":{},\"data_resumed\":{}",
        json_str(&a.label),
        json_str(if a.retr { "retr" } else { "sessions" }),
        a.plan.tls,
        a.clients,
        a.plan.file.as_ref().map_or(0, |f| f.1),
        bytes as f64 / 1048576.0 / secs,
        retrs as f64 / secs,
        sessions as f64 / secs,
        logins as f64 / secs,
        server_cpu / secs,
        (m1.own - m0.own) / secs,
        ((m1.machine - m0.machine) - server_cpu - (m1.own - m0.own)).max(0.0) / secs,
        m1.procs.max(m0.procs),
        load.c.errors,
        d(|c| c.errors),
        load.c.ctrl_full,
        load.c.ctrl_resumed,
        load.c.data_full,
        load.c.data_resumed,
    );
    // Where the server's CPU went, per thread name, when it has several threads (the two
    // reactors of ftpdlib --workers 2 show how evenly the kernel spread the sessions).
    if m1.threads.len() > 1 {
        let per: Vec<String> = m1
            .threads
            .iter()
            .map(|(name, end)| {
                let start = m0
                    .threads
                    .iter()
                    .find(|(n, _)| n == name)
                    .map_or(0.0, |t| t.1);
                format!("{}:{:.4}", json_str(name), (end - start) / secs)
            })
            .collect();
        j.push_str(&format!(",\"thread_cores\":{{{}}}", per.join(",")));
    }
    if let Some(t) = &load.tls_desc {
        j.push_str(&format!(",\"tls_suite\":{}", json_str(t)));
    }
    let mut errs: Vec<String> = load.first_error.iter().cloned().collect();
    errs.extend(tail);
    if !errs.is_empty() {
        j.push_str(&format!(",\"first_error\":{}", json_str(&errs.join("; "))));
    }
    j.push('}');
    Ok(j)
}

fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("workers_load: {e}");
            process::exit(2);
        }
    };
    raise_nofile(a.clients as u64 * 2 + 256);
    match run(&a) {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("workers_load: {e}");
            println!(
                "{{\"label\":{},\"error\":{}}}",
                json_str(&a.label),
                json_str(&e)
            );
            process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::client::{parse_pasv, take_reply};

    #[test]
    fn replies() {
        let mut b = b"220 hi\r\n230-a\r\n b\r\n230 c\r\n".to_vec();
        assert_eq!(take_reply(&mut b).unwrap().0, 220);
        let (c, t) = take_reply(&mut b).unwrap();
        assert_eq!(c, 230);
        assert!(t.ends_with("230 c"));
        assert!(b.is_empty());
        let mut p = b"150 partial".to_vec();
        assert!(take_reply(&mut p).is_none());
    }

    #[test]
    fn pasv() {
        let r = parse_pasv("227 Entering Passive Mode (127,0,0,1,195,80).");
        assert_eq!(r.unwrap(), 50000);
        assert!(parse_pasv("227 nothing").is_err());
    }
}
