//! What throttled transfers cost while they wait: runs an FTP server in a child process,
//! starts 100 downloads throttled at 10 KiB/s each, and reads the server's CPU time from
//! /proc over 10 seconds.
//!
//! ```text
//! cargo run --release --example throttle_cpu            # or demo/bench/throttle_cpu.sh
//! cargo run --release --example throttle_cpu -- 200 20K 15   # transfers, rate, seconds
//! cargo run --release --example throttle_cpu -- 1 10M 20 up  # uploads instead
//! ```
//!
//! Prints the server's CPU use as a share of one core, and the rate each transfer got over
//! the measured window (after a second of start-up), which is how the long-run accuracy of
//! the limits in docs/throttling.md was measured.
//! Linux only (it reads /proc/PID/stat). Everything stays on 127.0.0.1.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ftpdlib::throttle::parse_rate;
use ftpdlib::{Config, DummyAuthorizer, FtpServer};

/// The child: serve `dir` to user "bench" with per-transfer limits, print the port.
fn serve(dir: &str, rate: u64) -> Result<(), Box<dyn std::error::Error>> {
    let mut auth = DummyAuthorizer::new();
    auth.add_user("bench", "bench", dir, "elrw")?;
    let mut config = Config::new(Arc::new(auth));
    config.dtp.write_limit = rate;
    config.dtp.read_limit = rate;
    let mut server = FtpServer::bind("127.0.0.1:0", config)?;
    server.max_cons = 0;
    println!("{}", server.local_addrs()[0].port());
    std::io::stdout().flush()?;
    server.serve_forever(None, None)?;
    Ok(())
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
    let ticks: u64 = f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / hz
}

fn reply(r: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    r.read_line(&mut line).expect("reply");
    line
}

/// One transfer: log in, PASV, RETR (or STOR), then read (or write) until told to stop.
fn transfer(
    port: u16,
    upload: bool,
    moved: Arc<AtomicU64>,
    started: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    let ctrl = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut w = ctrl.try_clone().unwrap();
    let mut r = BufReader::new(ctrl);
    reply(&mut r);
    w.write_all(b"USER bench\r\n").unwrap();
    reply(&mut r);
    w.write_all(b"PASS bench\r\n").unwrap();
    reply(&mut r);
    w.write_all(b"PASV\r\n").unwrap();
    let pasv = reply(&mut r);
    let inner = &pasv[pasv.find('(').unwrap() + 1..pasv.find(')').unwrap()];
    let n: Vec<u16> = inner.split(',').map(|x| x.parse().unwrap()).collect();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, n[4] * 256 + n[5]));
    let mut data = TcpStream::connect(addr).expect("data connect");
    static N: AtomicU64 = AtomicU64::new(0);
    let cmd = if upload {
        format!("STOR up-{}\r\n", N.fetch_add(1, Ordering::SeqCst))
    } else {
        "RETR big\r\n".to_string()
    };
    w.write_all(cmd.as_bytes()).unwrap();
    reply(&mut r);
    started.fetch_add(1, Ordering::SeqCst);
    if upload {
        data.set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let buf = vec![0u8; 256 * 1024];
        while !stop.load(Ordering::SeqCst) {
            // A timed-out write may have sent part of the buffer; count what went.
            match data.write(&buf) {
                Ok(k) => {
                    moved.fetch_add(k as u64, Ordering::Relaxed);
                }
                Err(_) => continue,
            }
        }
        return;
    }
    data.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    while !stop.load(Ordering::SeqCst) {
        match data.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => {
                moved.fetch_add(k as u64, Ordering::Relaxed);
            }
            Err(_) => continue,
        }
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve") {
        return serve(&args[1], args[2].parse()?);
    }
    let transfers: usize = args.first().map_or(Ok(100), |a| a.parse())?;
    let rate = parse_rate(args.get(1).map_or("10K", String::as_str))?;
    let seconds: u64 = args.get(2).map_or(Ok(10), |a| a.parse())?;
    let upload = args.get(3).map(String::as_str) == Some("up");

    let dir = std::env::temp_dir().join(format!("ftpdlib-throttle-cpu-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    // Sparse, and longer than the run: every download is still going when it ends.
    std::fs::File::create(dir.join("big"))?.set_len(rate * (seconds + 30))?;

    let mut child = Server(
        Command::new(std::env::current_exe()?)
            .args([
                "serve",
                dir.to_str().ok_or("temp dir name")?,
                &rate.to_string(),
            ])
            .stdout(Stdio::piped())
            .spawn()?,
    );
    let mut port = String::new();
    BufReader::new(child.0.stdout.take().ok_or("child stdout")?).read_line(&mut port)?;
    let port: u16 = port.trim().parse()?;
    let pid = child.0.id();

    let moved = Arc::new(AtomicU64::new(0));
    let started = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..transfers)
        .map(|_| {
            let (m, s, st) = (Arc::clone(&moved), Arc::clone(&started), Arc::clone(&stop));
            std::thread::spawn(move || transfer(port, upload, m, s, st))
        })
        .collect();
    while started.load(Ordering::SeqCst) < transfers as u64 {
        std::thread::sleep(Duration::from_millis(10));
    }
    // Let the start-up (logins, first bursts) pass before measuring.
    std::thread::sleep(Duration::from_secs(1));

    let cpu0 = cpu_seconds(pid);
    let bytes0 = moved.load(Ordering::SeqCst);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let cpu = cpu_seconds(pid) - cpu0;
    let bytes = moved.load(Ordering::SeqCst) - bytes0;
    let wall = t0.elapsed().as_secs_f64();

    stop.store(true, Ordering::SeqCst);
    for t in threads {
        let _ = t.join();
    }
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);

    let per = bytes as f64 / wall / transfers as f64;
    println!(
        "{transfers} {} at {rate} B/s each for {wall:.1} s: server CPU {cpu:.3} s = {:.2}% of one core; \
         each got {per:.0} B/s ({:+.1}% off the limit)",
        if upload { "uploads" } else { "downloads" },
        cpu / wall * 100.0,
        (per - rate as f64) / rate as f64 * 100.0
    );
    Ok(())
}
