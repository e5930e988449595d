//! After close_all nothing is left: no file descriptor, slab entry or timer, including what
//! work still out on the worker pool brings back after the close (an open file, a directory
//! being listed, a logged-in user's storage). One test in this binary, so no other test's
//! sockets change the descriptor count.

mod util;

use std::io::Read;
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ftpdlib::{Config, DummyAuthorizer, Filesystem, FtpServer, OsFilesystem};
use util::faulty::{Faulty, Mode};
use util::{random_bytes, Client, TempDir};

/// Every storage call of user "slow", and its login, takes this long.
const SLOW: Duration = Duration::from_millis(600);

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn close_all_leaves_nothing_behind() {
    util::init();
    let root = TempDir::new("res");
    std::fs::write(root.join("big"), random_bytes(32 << 20, 4)).unwrap();

    std::fs::create_dir(root.join("slow")).unwrap();
    std::fs::write(root.join("slow/f"), b"x").unwrap();
    let before = open_fds();

    let mut auth = DummyAuthorizer::new();
    auth.add_user("user", "pass", root.path(), "elradfmw")
        .unwrap();
    auth.add_user("slow", "pass", root.join("slow"), "elradfmw")
        .unwrap();
    let mut config = Config::new(Arc::new(auth));
    config.auth_failed_timeout = Duration::from_secs(30);
    config.io_threads = 4;
    config.filesystem = Arc::new(|home: &Path| {
        let fs = OsFilesystem::new(home)?;
        if !home.ends_with("slow") {
            return Ok(Arc::new(fs) as Arc<dyn Filesystem>);
        }
        std::thread::sleep(SLOW);
        Ok(Arc::new(Faulty::new(fs, Mode::Sleep(SLOW))) as Arc<dyn Filesystem>)
    });
    let mut server = FtpServer::bind("127.0.0.1:0", config).unwrap();
    let addr = server.local_addrs()[0];
    let stop = server.stop_handle();
    let _pending = server.call_later(Duration::from_secs(3600), |_| {});
    let _tick = server.call_every(Duration::from_secs(3600), |_| {});
    let thread = std::thread::spawn(move || {
        server
            .serve_forever(Some(Duration::from_secs(1)), None)
            .unwrap();
        server
    });

    // Sessions in every state: idle, logged in with a passive listener, mid-transfer,
    // and waiting out a failed-login delay.
    let mut idle = Client::connect(addr);
    idle.cmd("NOOP", 200);
    let mut listening = Client::connect(addr);
    listening.login("user", "pass");
    listening.pasv();
    let mut busy = Client::connect(addr);
    busy.login("user", "pass");
    let data_addr = busy.pasv();
    let mut data = TcpStream::connect(data_addr).unwrap();
    busy.cmd("RETR big", 125);
    let mut buf = [0u8; 4096];
    data.read_exact(&mut buf).unwrap();
    let mut delayed = Client::connect(addr);
    delayed.cmd("USER user", 331);
    delayed.send("PASS wrong");

    // Work out on the pool when close_all comes: a STOR opening its file, a LIST opening
    // its directory, a login setting up its storage. Each comes back after the close
    // holding a descriptor, which must be released.
    let mut storing = Client::connect(addr);
    storing.cmd("USER slow", 331);
    storing.send("PASS pass");
    let mut listing = Client::connect(addr);
    listing.cmd("USER slow", 331);
    listing.send("PASS pass");
    storing.expect(230);
    listing.expect(230);
    let stor_data = TcpStream::connect(storing.pasv()).unwrap();
    let list_data = TcpStream::connect(listing.pasv()).unwrap();
    // STOR: a stat of the target, then the open; LIST: a stat, then the directory.
    storing.send("STOR up");
    listing.send("LIST");
    let mut logging_in = Client::connect(addr);
    logging_in.cmd("USER slow", 331);
    logging_in.send("PASS pass");
    std::thread::sleep(SLOW + SLOW / 3);

    stop.close_all();
    let server = thread.join().unwrap();
    assert_eq!(server.channel_count(), 0, "slab entries left");
    assert_eq!(server.timer_count(), 0, "timers left");
    assert_eq!(server.session_count(), 0);
    assert!(TcpStream::connect(addr).is_err(), "still listening");
    for c in [
        &mut idle,
        &mut listening,
        &mut busy,
        &mut delayed,
        &mut storing,
        &mut listing,
        &mut logging_in,
    ] {
        assert!(c.closed_by_server());
    }
    drop(server);
    drop(stop);
    drop((idle, listening, busy, delayed, data));
    drop((storing, listing, logging_in, stor_data, list_data));
    assert!(
        util::wait_until(Duration::from_secs(5), || open_fds() == before),
        "descriptors before {before}, after {}",
        open_fds()
    );
}
