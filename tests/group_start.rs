//! A reactor of a ServerGroup that cannot start (no descriptor left for its poll) must
//! not leave its SO_REUSEPORT listener bound with nobody accepting on it: the kernel would
//! keep handing it a share of the connections, which would wait forever. The group stops
//! and `serve_forever` returns the error. One test in this binary, because it lowers the
//! whole process's descriptor limit.

use std::net::TcpStream;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use ftpdlib::{Config, DummyAuthorizer, ServerGroup};

/// The descriptor limit under which exactly `free` descriptors are left: a new descriptor
/// takes the lowest free number, and the limit bounds that number.
fn limit_leaving(free: u64) -> u64 {
    use std::os::fd::AsRawFd;
    // The listing's own descriptor takes the lowest free number, as this probe does; it is
    // listed, but closed by the time the limit applies.
    let listing = std::fs::File::open("/dev/null").unwrap().as_raw_fd() as u64;
    let dir = std::fs::read_dir("/proc/self/fd").unwrap();
    let open: Vec<u64> = dir
        .map(|e| e.unwrap().file_name().to_str().unwrap().parse().unwrap())
        .collect();
    let (mut limit, mut left) = (0, 0);
    while left < free {
        if !open.contains(&limit) || limit == listing {
            left += 1;
        }
        limit += 1;
    }
    limit
}

fn set_nofile(soft: u64) -> u64 {
    // SAFETY: getrlimit/setrlimit read and write a local rlimit struct.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut r), 0);
        let old = r.rlim_cur;
        r.rlim_cur = soft;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &r), 0);
        old
    }
}

#[test]
fn a_reactor_that_cannot_start_stops_the_group() {
    let dir = std::env::temp_dir();
    let mut auth = DummyAuthorizer::new();
    auth.add_anonymous(&dir, "elr").unwrap();
    let mut group = ServerGroup::bind("127.0.0.1:0", Config::new(Arc::new(auth)), 2).unwrap();
    let addr = group.local_addrs()[0];
    let handle = group.handle();
    // Each reactor takes two descriptors as it starts (its poll and a clone of its
    // registry): with three free, exactly one of the two starts.
    // `read_dir` holds one descriptor of its own while it counts.
    let old = set_nofile(limit_leaving(3));
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        let r = group.serve_forever(None);
        let _ = tx.send(r.is_err());
        group
    });
    let ended = rx.recv_timeout(Duration::from_secs(5));
    set_nofile(old);
    // Bounded either way: whatever still runs is stopped before the asserts.
    handle.close_all();
    let group = t.join().unwrap();
    assert_eq!(
        ended,
        Ok(true),
        "serve_forever should fail at once when a reactor cannot start"
    );
    // Nothing listens any more: a connection is refused, not queued for nobody.
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
    drop(group);
}
