//! Running out of file descriptors while accepting (EMFILE) must not stop the loop: the
//! server pauses accepting, keeps serving its sessions, and accepts again once descriptors
//! are free. One test in this binary, because it lowers the whole process's limit.

mod util;

use std::process::{Command, Stdio};
use std::time::Duration;

use util::{require, TestServer};

/// Whether a new connection gets its 220 within a second.
fn gets_greeting(addr: std::net::SocketAddr) -> bool {
    use std::io::Read;
    let Ok(mut c) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = c.set_read_timeout(Some(Duration::from_secs(1)));
    let mut buf = [0u8; 3];
    c.read_exact(&mut buf).is_ok() && &buf == b"220"
}

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
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
fn emfile_pauses_accepting_without_stopping_the_loop() {
    if !require("python3") {
        return;
    }
    let s = TestServer::start();
    let mut existing = s.login("user");
    // Room for a few more descriptors only.
    let old = set_nofile(open_fds() + 4);
    // Thirty clients in another process (it raises its own limit again), each waiting for
    // a greeting with a short timeout, then all closed together.
    let script = format!(
        r#"
import resource, socket, time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
socks = [socket.create_connection(("127.0.0.1", {port}), timeout=5) for _ in range(30)]
greeted = 0
for s in socks:
    s.settimeout(0.2)
    try:
        if s.recv(100).startswith(b"220"):
            greeted += 1
    except OSError:
        pass
print(greeted)
for s in socks:
    s.close()
"#,
        port = s.addr.port()
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success());
    let greeted: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(greeted < 30, "the limit did not bite ({greeted} greeted)");
    // The existing session was served throughout.
    existing.cmd("NOOP", 200);
    set_nofile(old);
    // Accepting resumes once descriptors are free again.
    assert!(util::wait_until(Duration::from_secs(10), || gets_greeting(
        s.addr
    )));
    existing.cmd("NOOP", 200);
}
