//! Configured durations too long to add to an instant (`Duration::MAX`) mean "never" and
//! never panic.

use super::*;

#[test]
fn duration_max_timeouts_mean_never() {
    let far = crate::ioloop::FAR_FUTURE;
    let mut h = Harness::new("duration-max-login-timeout", |c| {
        c.timeout = None;
        c.login_timeout = Some(Duration::MAX);
    });
    let t0 = h.now;
    assert_eq!(h.s.poll_timeout(), Some(t0 + far));
    h.now += Duration::from_secs(365 * 86_400);
    expect!(h, "NOOP", "200");
    h.s.handle_timeout(h.now);
    assert!(!h.s.is_closed());
    h.s.handle_timeout(t0 + far);
    assert_eq!(h.take(), "421 Login timed out.\r\n");

    let mut h = Harness::new("duration-max", |c| {
        c.timeout = Some(Duration::MAX);
        c.auth_failed_timeout = Duration::MAX;
    });
    assert_eq!(h.s.poll_timeout(), Some(h.now + far));
    h.now += Duration::from_secs(86_400);
    expect!(h, "USER user", "331");
    // The failed-login reply waits "forever", and time passing does not release it early.
    assert_eq!(h.send("PASS nope"), "");
    assert_eq!(h.s.poll_timeout(), Some(h.now + far));
    h.s.handle_timeout(h.now + Duration::from_secs(365 * 86_400));
    assert_eq!(h.take(), "");
    assert!(!h.s.is_closed());
    h.s.handle_timeout(h.now + far);
    assert_eq!(h.take(), "530 Authentication failed.\r\n");

    // Logged in: commands and a transfer push the idle deadline without overflowing.
    let mut h = Harness::new("duration-max-login", |c| {
        c.timeout = Some(Duration::MAX);
        c.login_timeout = Some(Duration::MAX);
    });
    h.login("user");
    h.send("PASV");
    h.actions();
    h.s.handle_passive_ready(h.now, Ok("127.0.0.1:5001".parse().unwrap()), false);
    h.take();
    expect!(h, "RETR file.txt", "150");
    h.s.handle_data_connected(h.now);
    h.s.handle_transfer_done(h.now, 6, Ok(()));
    assert_eq!(h.take(), "226 Transfer complete.\r\n");
    assert_eq!(h.s.poll_timeout(), Some(h.now + far));
    h.s.handle_timeout(h.now + Duration::from_secs(365 * 86_400));
    assert!(!h.s.is_closed());
    expect!(h, "NOOP", "200");
}
