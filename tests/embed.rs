//! The server inside a host's own mio loop, beside the host's sockets; and the
//! `embed_mio` demo driven as a program.

mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ftpdlib::{Config, DummyAuthorizer, FtpServer};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use util::{Client, TempDir};

#[test]
fn host_loop_runs_ftp_and_its_own_service() {
    util::init();
    let root = TempDir::new("embed");
    std::fs::write(root.join("hello.txt"), b"hello from the host loop").unwrap();
    let mut auth = DummyAuthorizer::new();
    auth.add_anonymous(root.path(), "elr").unwrap();
    let mut ftp = FtpServer::bind("127.0.0.1:0", Config::new(Arc::new(auth))).unwrap();
    let ftp_addr = ftp.local_addrs()[0];
    let stop = ftp.stop_handle();

    let mut poll = Poll::new().unwrap();
    let mut own = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let own_addr = own.local_addr().unwrap();
    poll.registry()
        .register(&mut own, Token(7), Interest::READABLE)
        .unwrap();
    ftp.register(poll.registry(), Token(1000)).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let done2 = Arc::clone(&done);

    let host = std::thread::spawn(move || {
        let mut events = Events::with_capacity(64);
        let mut own_accepted = 0;
        let mut ftp_events = 0;
        let end = Instant::now() + Duration::from_secs(60);
        while !done2.load(Ordering::SeqCst) && Instant::now() < end {
            let mut timeout = ftp
                .next_timeout()
                .map(|d| d.saturating_duration_since(Instant::now()));
            timeout = Some(timeout.map_or(Duration::from_millis(100), |t| {
                t.min(Duration::from_millis(100))
            }));
            poll.poll(&mut events, timeout).unwrap();
            let now = Instant::now();
            for ev in events.iter() {
                if ftp.owns(ev.token()) {
                    ftp_events += 1;
                    ftp.handle_event(ev, now);
                } else {
                    assert_eq!(
                        ev.token(),
                        Token(7),
                        "the server never uses the host's tokens"
                    );
                    while let Ok((mut s, _)) = own.accept() {
                        own_accepted += 1;
                        let _ = s.write(b"host service\n");
                    }
                }
            }
            ftp.handle_timeouts(Instant::now());
        }
        (ftp, own_accepted, ftp_events)
    });

    // Both services answer from the one thread.
    let mut c = Client::connect(ftp_addr);
    c.login("anonymous", "x@y");
    assert_eq!(c.retr("RETR hello.txt"), b"hello from the host loop");
    let mut s = TcpStream::connect(own_addr).unwrap();
    let mut line = String::new();
    BufReader::new(&mut s).read_line(&mut line).unwrap();
    assert_eq!(line, "host service\n");
    c.cmd("QUIT", 221);

    // Stopping from another thread closes the FTP side only.
    stop.close_all();
    let mut refused = false;
    for _ in 0..100 {
        if TcpStream::connect(ftp_addr).is_err() {
            refused = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(refused, "the FTP listener is still open after close_all");
    TcpStream::connect(own_addr).expect("the host's own service still runs");
    done.store(true, Ordering::SeqCst);
    let (ftp, own_accepted, ftp_events) = host.join().unwrap();
    assert!(own_accepted >= 2 && ftp_events > 0);
    assert_eq!(ftp.channel_count(), 0);
    assert_eq!(ftp.timer_count(), 0);
}

/// The demo binary, built by `cargo test` along with the examples.
fn demo_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap().to_path_buf();
    let bin = dir.join("examples/embed_mio");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "--example", "embed_mio"])
            .status()
            .unwrap();
        assert!(st.success());
    }
    bin
}

#[test]
fn embed_mio_demo_serves_both_and_shuts_down() {
    let root = TempDir::new("embed-demo");
    std::fs::write(root.join("f"), b"demo file").unwrap();
    let mut child = Command::new(demo_binary())
        .args(["127.0.0.1:0", "127.0.0.1:0"])
        .arg(root.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let (ftp, echo) = first.trim().split_once(' ').expect("ftp=... echo=...");
    let ftp = ftp.strip_prefix("ftp=").unwrap().parse().unwrap();
    let echo: std::net::SocketAddr = echo.strip_prefix("echo=").unwrap().parse().unwrap();

    let mut c = Client::connect(ftp);
    c.login("anonymous", "x");
    assert_eq!(c.retr("RETR f"), b"demo file");
    let mut e = TcpStream::connect(echo).unwrap();
    e.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    e.write_all(b"ping\n").unwrap();
    let mut buf = [0u8; 5];
    e.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping\n");
    e.write_all(b"shutdown\n").unwrap();

    let end = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < end, "demo did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert_eq!(rest.trim(), "stopped");
    // The FTP session was closed by the shutdown.
    assert!(c.closed_by_server());
}
