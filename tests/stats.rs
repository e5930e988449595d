//! The server's counters (`ServerStats`) against a known workload on an embedded server:
//! sessions, logins, commands by verb, replies by code, bytes and files both ways, the
//! running-transfer gauge, throttled transfers, data connection failures, and one instance
//! shared by two servers.

mod util;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use ftpdlib::stats::{DataConnFailure, Refusal};
use ftpdlib::ServerStats;
use util::{random_bytes, wait_until, TestServer};

/// A test server with `tweak` applied, and its counters.
fn server(
    tweak: impl FnOnce(&mut ftpdlib::Config, &mut ftpdlib::FtpServer) + Send + 'static,
) -> (TestServer, Arc<ServerStats>) {
    let (tx, rx) = mpsc::channel();
    let s = TestServer::start_with(move |c, server| {
        tweak(c, server);
        tx.send(server.stats()).unwrap();
    });
    let stats = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    (s, stats)
}

fn settled(stats: &ServerStats) -> bool {
    stats.sessions_open() == 0 && stats.transfers_running() == 0
}

#[test]
fn counters_follow_a_known_workload() {
    let (s, stats) = server(|_, _| {});
    let upload = random_bytes(100_000, 7);

    let mut bad = s.client();
    bad.cmd("USER user", 331);
    bad.cmd("PASS wrong", 530);
    let mut c = s.login("user");
    assert!(wait_until(Duration::from_secs(5), || stats.sessions_open() == 2));
    assert_eq!(stats.sessions_total(), 2);
    for _ in 0..3 {
        c.cmd("NOOP", 200);
    }
    c.cmd("XYZZY", 500);
    c.cmd("TYPE I", 200);
    c.stor("STOR up.bin", &upload);
    let back = c.retr("RETR up.bin");
    assert_eq!(back, upload);
    let listing = c.retr("NLST");
    c.cmd("QUIT", 221);
    bad.cmd("QUIT", 221);
    assert!(wait_until(Duration::from_secs(5), || settled(&stats)));

    assert_eq!(stats.sessions_total(), 2);
    assert_eq!((stats.logins_succeeded(), stats.logins_failed()), (1, 1));
    assert_eq!(stats.commands("NOOP"), 3);
    assert_eq!(stats.commands("other"), 1);
    assert_eq!(stats.commands("USER"), 2);
    assert_eq!(stats.commands("PASS"), 2);
    assert_eq!(stats.commands("PASV"), 3);
    assert_eq!(stats.commands("STOR"), 1);
    assert_eq!(stats.commands("RETR"), 1);
    assert_eq!(stats.commands("NLST"), 1);
    assert_eq!(stats.commands("QUIT"), 2);
    let total: u64 = stats.commands_by_verb().map(|(_, n)| n).sum();
    assert_eq!(total, 3 + 1 + 1 + 2 + 2 + 3 + 3 + 2);
    assert_eq!(stats.bytes_received(), upload.len() as u64);
    assert_eq!(stats.bytes_sent(), (upload.len() + listing.len()) as u64);
    assert_eq!((stats.files_sent(), stats.files_received()), (1, 1));
    let replies: Vec<(u16, u64)> = stats.replies_by_code().collect();
    assert_eq!(
        replies,
        vec![
            (125, 3),
            (200, 4),
            (220, 2),
            (221, 2),
            (226, 3),
            (227, 3),
            (230, 1),
            (331, 2),
            (500, 1),
            (530, 1),
        ]
    );
    assert_eq!(stats.transfers_throttled(), 0);
    assert_eq!(stats.login_bans(), 0);
}

#[test]
fn the_running_transfer_gauge_counts_a_download_in_progress() {
    let (s, stats) = server(|_, _| {});
    let big = vec![0u8; 32 << 20];
    std::fs::write(s.root.join("big.bin"), &big).unwrap();
    let mut c = s.login("user");
    let addr = c.pasv();
    let mut data = TcpStream::connect(addr).unwrap();
    c.cmd("RETR big.bin", 125);
    // The client reads nothing yet: the socket buffers fill and the transfer waits.
    assert!(wait_until(Duration::from_secs(5), || stats
        .transfers_running()
        == 1
        && stats.bytes_sent() > 0));
    let sent_so_far = stats.bytes_sent();
    assert!(sent_so_far > 0 && sent_so_far < big.len() as u64);
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    c.expect(226);
    assert_eq!(got.len(), big.len());
    assert!(wait_until(Duration::from_secs(5), || stats
        .transfers_running()
        == 0));
    assert_eq!(stats.bytes_sent(), big.len() as u64);
    assert_eq!(stats.files_sent(), 1);
}

#[test]
fn throttled_transfers_and_data_failures_are_counted() {
    let (s, stats) = server(|c, _| {
        c.dtp.write_limit = 256 * 1024;
        c.dtp.accept_timeout = Duration::from_millis(300);
    });
    std::fs::write(s.root.join("f.bin"), vec![1u8; 128 * 1024]).unwrap();
    let mut c = s.login("user");
    assert_eq!(c.retr("RETR f.bin").len(), 128 * 1024);
    assert_eq!(stats.transfers_throttled(), 1);

    // PASV and nobody connects: the accept timeout.
    c.pasv();
    c.send("RETR f.bin");
    c.expect(150);
    c.expect(421);
    // PORT to a closed port: refused.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    c.send(format!("PORT 127,0,0,1,{},{}", port / 256, port % 256));
    let r = c.read_reply();
    assert!(r.code == 200 || r.code == 425, "{:?}", r.lines);
    c.cmd("QUIT", 221);
    assert!(wait_until(Duration::from_secs(5), || settled(&stats)));
    assert_eq!(stats.data_failures(DataConnFailure::AcceptTimeout), 1);
    assert_eq!(stats.data_failures(DataConnFailure::ConnectRefused), 1);
    assert_eq!(stats.data_failures(DataConnFailure::Stalled), 0);
}

#[test]
fn bans_and_refusals_are_counted() {
    let (s, stats) = server(|c, _| c.flood.max_failed_logins = 2);
    let mut a = s.client();
    a.cmd("USER user", 331);
    a.cmd("PASS no", 530);
    a.cmd("USER user", 331);
    a.cmd("PASS no", 530);
    // The address is banned now: a new connection is refused with 421.
    let mut refused = util::Client::connect_raw(s.addr);
    refused.expect(421);
    assert!(refused.closed_by_server());
    a.cmd("QUIT", 221);
    assert!(wait_until(Duration::from_secs(5), || settled(&stats)));
    assert_eq!(stats.login_bans(), 1);
    assert_eq!(stats.logins_failed(), 2);
    assert_eq!(stats.sessions_total(), 1);
    assert_eq!(stats.connections_refused(Refusal::Banned), 1);
    assert_eq!(stats.connections_refused(Refusal::MaxCons), 0);
    assert_eq!(stats.replies(421), 1);
}

#[test]
fn a_command_flood_close_is_counted() {
    let (s, stats) = server(|c, _| c.flood.max_commands_per_sec = 5);
    let mut c = s.client();
    // Sent at once, so that they land within one second.
    c.send_raw(b"NOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\n");
    for _ in 0..5 {
        c.expect(200);
    }
    c.expect(421);
    assert!(c.closed_by_server());
    assert!(wait_until(Duration::from_secs(5), || settled(&stats)));
    assert_eq!(stats.command_flood_closes(), 1);
    assert_eq!(stats.commands("NOOP"), 5);
    assert_eq!(stats.replies(421), 1);
}

#[test]
fn one_instance_shared_by_two_servers() {
    let shared = Arc::new(ServerStats::new());
    let (one, _) = server({
        let shared = Arc::clone(&shared);
        move |_, server| server.set_stats(shared)
    });
    let (two, _) = server({
        let shared = Arc::clone(&shared);
        move |_, server| server.set_stats(shared)
    });
    let mut a = one.login("user");
    let mut b = two.login("ro");
    assert!(wait_until(Duration::from_secs(5), || shared
        .sessions_open()
        == 2));
    a.cmd("NOOP", 200);
    b.cmd("NOOP", 200);
    a.cmd("QUIT", 221);
    b.cmd("QUIT", 221);
    assert!(wait_until(Duration::from_secs(5), || settled(&shared)));
    assert_eq!(shared.sessions_total(), 2);
    assert_eq!(shared.logins_succeeded(), 2);
    assert_eq!(shared.commands("NOOP"), 2);
}
