//! Storage behind the seam: the memory back-end from the command line with real clients,
//! and test back-ends that are slow, fail every call or panic, showing that no storage call
//! holds the reactor and that every failure becomes a reply with the session going on.

mod util;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ftpdlib::{Filesystem, OsFilesystem};
use util::faulty::{Faulty, Mode};
use util::*;

fn faulty_server(mode: Mode) -> TestServer {
    TestServer::start_with(move |c, _| {
        c.filesystem = Arc::new(move |home: &Path| {
            Ok(Arc::new(Faulty::new(OsFilesystem::new(home)?, mode)) as Arc<dyn Filesystem>)
        });
    })
}

#[test]
fn a_slow_storage_call_does_not_hold_other_sessions() {
    let s = faulty_server(Mode::Sleep(Duration::from_millis(300)));
    std::fs::write(s.root.join("f"), b"12345").unwrap();
    let mut a = s.login("user");
    let mut b = s.login("user");
    // A's SIZE takes at least 300 ms in storage; B's NOOPs go on meanwhile.
    a.send("SIZE f");
    let start = Instant::now();
    let mut noops = 0;
    while start.elapsed() < Duration::from_millis(250) {
        b.cmd("NOOP", 200);
        noops += 1;
    }
    assert_eq!(a.expect(213).text(), "213 5");
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "the slow call returned early"
    );
    // A held reactor would have let none through while the call ran.
    assert!(
        noops >= 5,
        "only {noops} NOOPs answered during a slow storage call"
    );
    // ABOR is heard while a RETR waits for its file: 426, then 226.
    a.pasv();
    a.send("RETR f");
    a.send("ABOR");
    a.expect(426);
    a.expect(226);
    a.cmd("NOOP", 200);
}

#[test]
fn a_slow_listing_and_login_leave_noop_fast() {
    let s = faulty_server(Mode::Sleep(Duration::from_millis(50)));
    for i in 0..600 {
        std::fs::write(s.root.join(&format!("file-{i:04}")), b"").unwrap();
    }
    let mut b = s.login("user");
    let addr = s.addr;
    let lister = std::thread::spawn(move || {
        let mut a = Client::connect(addr);
        a.login("user", "pass");
        let listing = a.retr("LIST");
        String::from_utf8(listing).unwrap().lines().count()
    });
    let start = Instant::now();
    let mut worst = Duration::ZERO;
    while !lister.is_finished() && start.elapsed() < Duration::from_secs(20) {
        let t = Instant::now();
        b.cmd("NOOP", 200);
        worst = worst.max(t.elapsed());
    }
    assert_eq!(lister.join().unwrap(), 600);
    // Every piece of the listing took 50 ms in storage; not one of them held the loop
    // for that long.
    assert!(worst < Duration::from_millis(45), "worst NOOP {worst:?}");
}

#[test]
fn every_failing_call_is_a_reply_and_the_session_goes_on() {
    for mode in [Mode::Fail, Mode::Panic] {
        let s = faulty_server(mode);
        std::fs::write(s.root.join("f"), b"x").unwrap();
        let mut c = s.login("user");
        let code = if matches!(mode, Mode::Fail) { 550 } else { 451 };
        for line in [
            "CWD /", "MKD d", "RMD f", "DELE f", "SIZE f", "MDTM f", "MLST f",
        ] {
            c.cmd(line, code);
        }
        c.cmd("RNFR f", if matches!(mode, Mode::Fail) { 550 } else { 451 });
        c.cmd("MFMT 20200101000000 f", code);
        c.cmd("SITE CHMOD 644 f", code);
        c.cmd("STAT /", code);
        for line in ["RETR f", "LIST", "NLST", "MLSD", "STOR g"] {
            c.pasv();
            c.cmd(line, code);
        }
        c.cmd("NOOP", 200);
        c.cmd("QUIT", 221);
    }
}

#[test]
fn the_memory_backend_from_the_command_line() {
    if !require("curl") || !require("python3") {
        return;
    }
    let dir = TempDir::new("memory-home");
    let (_d, port) = serve_daemon(&[
        "--memory",
        "-w",
        "-d",
        dir.path().to_str().unwrap(),
        "-u",
        "user",
        "-P",
        "secret",
    ]);
    let body = random_bytes(3 << 20, 77);
    let local = TempDir::new("memory-local");
    std::fs::write(local.join("up.bin"), &body).unwrap();
    let url = format!("ftp://user:secret@127.0.0.1:{port}/up.bin");
    run(curl().arg("-T").arg(local.join("up.bin")).arg(&url));
    let out = run(curl().arg(&url));
    assert_same(&out.stdout, &body);
    // Nothing reached the disk.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    let script = format!(
        r#"
import ftplib, io
f = ftplib.FTP()
f.connect("127.0.0.1", {port}, timeout=30)
f.login("user", "secret")
f.mkd("d")
f.cwd("d")
f.storbinary("STOR a.txt", io.BytesIO(b"hello memory"))
f.rename("a.txt", "b.txt")
assert f.nlst() == ["b.txt"], f.nlst()
# SIZE is refused in ASCII mode (as pyftpdlib refuses it), and NLST left ASCII on.
f.voidcmd("TYPE I")
assert f.size("b.txt") == 12
buf = io.BytesIO()
f.retrbinary("RETR b.txt", buf.write)
assert buf.getvalue() == b"hello memory"
f.cwd("/")
lines = []
f.retrlines("LIST", lines.append)
assert any(l.endswith(" d") and l.startswith("d") for l in lines), lines
f.delete("d/b.txt")
f.rmd("d")
f.quit()
print("ok")
"#
    );
    let out = run(Command::new("python3").arg("-c").arg(&script));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}
