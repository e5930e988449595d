//! Storage behind the seam: test back-ends that are slow, fail every call or panic, showing
//! that no storage call holds the reactor and that every failure becomes a reply with the
//! session going on. (The `--memory` back-end of the command: daemon/tests/storage.rs.)

mod util;

use std::path::Path;
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
