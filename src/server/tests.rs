//! The server's own tests: callbacks, idle timeouts and bans on a made-up clock, with
//! real sockets.

use std::io::{BufRead, BufReader};
use std::net::TcpStream as StdTcpStream;

use mio::{Events, Poll};

use super::*;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A server on 127.0.0.1 registered in a poll of its own, driven by hand.
fn server(config: Config) -> (FtpServer, Poll) {
    let mut s = FtpServer::bind("127.0.0.1:0", config).unwrap();
    let poll = Poll::new().unwrap();
    s.register(poll.registry(), Token(0)).unwrap();
    (s, poll)
}

/// One loop iteration with the clock at `now`: the real sockets' events, made-up time.
fn step(s: &mut FtpServer, poll: &mut Poll, now: Instant) {
    let mut events = Events::with_capacity(64);
    poll.poll(&mut events, Some(Duration::from_millis(200)))
        .unwrap();
    for ev in events.iter() {
        assert!(s.owns(ev.token()));
        s.handle_event(ev, now);
    }
    s.handle_timeouts(now);
}

fn connect(s: &FtpServer) -> BufReader<StdTcpStream> {
    let c = StdTcpStream::connect(s.local_addrs()[0]).unwrap();
    c.set_read_timeout(Some(secs(5))).unwrap();
    BufReader::new(c)
}

fn reply(c: &mut BufReader<StdTcpStream>) -> String {
    let mut line = String::new();
    c.read_line(&mut line).unwrap();
    line
}

#[test]
fn callbacks_fire_on_the_clock_passed_in() {
    let (mut s, _poll) = server(Config::default());
    s.call_later(secs(10), |s| s.max_cons = 7);
    s.handle_timeouts(Instant::now());
    assert_eq!(s.max_cons, 512);
    s.handle_timeouts(Instant::now() + secs(10));
    assert_eq!(s.max_cons, 7);
    assert_eq!(s.timer_count(), 0);
}

#[test]
fn an_idle_session_times_out_on_the_made_up_clock() {
    let config = Config {
        timeout: Some(secs(60)),
        ..Config::default()
    };
    let (mut s, mut poll) = server(config);
    let mut c = connect(&s);
    let t0 = Instant::now();
    while s.session_count() == 0 {
        step(&mut s, &mut poll, t0);
    }
    assert!(reply(&mut c).starts_with("220 "));
    // The session's one timer is its idle timeout, counted from the made-up t0.
    assert_eq!(s.next_timeout(), Some(t0 + secs(60)));
    step(&mut s, &mut poll, t0 + secs(59));
    assert_eq!(s.session_count(), 1);
    step(&mut s, &mut poll, t0 + secs(60));
    assert_eq!(reply(&mut c), "421 Control connection timed out.\r\n");
    assert_eq!(s.session_count(), 0);
    assert_eq!(s.timer_count(), 0);
}

#[test]
fn a_ban_refuses_connections_until_the_sweep_on_the_made_up_clock() {
    let mut config = Config::default();
    config.flood.max_failed_logins = 2;
    config.flood.failed_login_window = secs(60);
    config.flood.ban_duration = secs(300);
    let (mut s, mut poll) = server(config);
    let t0 = Instant::now();
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
    s.record_failed_login(ip, t0);
    s.record_failed_login(ip, t0 + secs(1));
    let ban_end = t0 + secs(301);
    assert!(s.is_banned(ip, t0 + secs(1)));
    assert_eq!(s.timer_count(), 1, "one sweep timer");

    let mut c = connect(&s);
    step(&mut s, &mut poll, t0 + secs(10));
    assert_eq!(
        reply(&mut c),
        "421 Too many failed logins; try again later.\r\n"
    );
    assert_eq!(s.session_count(), 0);

    // The sweep timer fires at the end of the ban and empties the table.
    step(&mut s, &mut poll, ban_end - secs(1));
    assert_eq!(s.flood_table_len(), 1);
    step(&mut s, &mut poll, ban_end);
    assert_eq!(s.flood_table_len(), 0);
    assert_eq!(s.timer_count(), 0);

    let mut c = connect(&s);
    while s.session_count() == 0 {
        step(&mut s, &mut poll, ban_end);
    }
    assert!(reply(&mut c).starts_with("220 "));
}
