//! After close_all nothing is left: no file descriptor, slab entry or timer. One test in
//! this binary, so no other test's sockets change the descriptor count.

mod util;

use std::io::Read;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use ftpdlib::{Config, DummyAuthorizer, FtpServer};
use util::{random_bytes, Client, TempDir};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn close_all_leaves_nothing_behind() {
    util::init();
    let root = TempDir::new("res");
    std::fs::write(root.join("big"), random_bytes(32 << 20, 4)).unwrap();
    let before = open_fds();

    let mut auth = DummyAuthorizer::new();
    auth.add_user("user", "pass", root.path(), "elradfmw")
        .unwrap();
    let mut config = Config::new(Arc::new(auth));
    config.auth_failed_timeout = Duration::from_secs(30);
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

    stop.close_all();
    let server = thread.join().unwrap();
    assert_eq!(server.channel_count(), 0, "slab entries left");
    assert_eq!(server.timer_count(), 0, "timers left");
    assert_eq!(server.session_count(), 0);
    assert!(TcpStream::connect(addr).is_err(), "still listening");
    for c in [&mut idle, &mut listening, &mut busy, &mut delayed] {
        assert!(c.closed_by_server());
    }
    drop(server);
    drop(stop);
    drop((idle, listening, busy, delayed, data));
    assert!(
        util::wait_until(Duration::from_secs(5), || open_fds() == before),
        "descriptors before {before}, after {}",
        open_fds()
    );
}
