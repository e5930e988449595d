//! Uploads through [`Running`] over a real loopback connection into real files: which way
//! the bytes take (splice(2) or a buffer), and that the file holds exactly what was sent.

use std::io::Write;
use std::net::{Shutdown, TcpListener};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::transfer::{Running, Step};
use crate::control::session::{Direction, Transfer, TransferError};
use crate::filesystem::{Filesystem, WriteMode};
use crate::stats::{ServerStats, TransferGauge};
use crate::testutil::TempDir;
use crate::tls::Stream;
use crate::OsFilesystem;

/// Bytes that show a misplaced or repeated piece.
fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 4099) as u8).collect()
}

struct Upload {
    /// Bytes moved per step that returned [`Step::Budget`].
    budget_steps: Vec<u64>,
    spliced: bool,
    result: Result<(), TransferError>,
    bytes: u64,
}

/// Sends `data` from a client thread (then its FIN, unless `cut`, which resets instead),
/// into `name` opened with `mode`, stepping with `budget`.
fn upload(
    dir: &Path,
    name: &str,
    mode: WriteMode,
    ascii: bool,
    data: Vec<u8>,
    budget: usize,
    cut: bool,
) -> Upload {
    upload_from(dir, name, mode, ascii, budget, move |mut c| {
        let _ = c.write_all(&data);
        if cut {
            // A reset: SO_LINGER 0, then close.
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: sets an option on the socket `c` owns, from a local of the right size.
            unsafe {
                libc::setsockopt(
                    c.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&linger as *const libc::linger).cast(),
                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                );
            }
        } else {
            let _ = c.shutdown(Shutdown::Write);
        }
    })
}

/// An upload into `name` opened with `mode`, stepping with `budget`, of what `client`
/// sends on its connection from a thread of its own.
fn upload_from(
    dir: &Path,
    name: &str,
    mode: WriteMode,
    ascii: bool,
    budget: usize,
    client: impl FnOnce(std::net::TcpStream) + Send + 'static,
) -> Upload {
    let fs = OsFilesystem::new(dir).expect("the test directory opens");
    let file = fs
        .open_write(Path::new(&format!("/{name}")), mode)
        .expect("the file opens");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind on loopback");
    let addr = listener.local_addr().expect("a bound address");
    let client = std::thread::spawn(move || {
        client(std::net::TcpStream::connect(addr).expect("connect"));
    });
    let (sock, _) = listener.accept().expect("accept");
    sock.set_nonblocking(true).expect("non-blocking");
    let mut stream = Stream::Plain(mio::net::TcpStream::from_std(sock));
    let transfer = Transfer {
        direction: Direction::Receive(file),
        ascii,
        use_sendfile: !ascii,
        tls: false,
    };
    let stats = Arc::new(ServerStats::default());
    let mut r = Running::new(transfer, 65536, 65536, TransferGauge::new(&stats));
    let mut budget_steps = Vec::new();
    let mut upload_buf = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let result = loop {
        assert!(Instant::now() < deadline, "the upload ends");
        let before = r.bytes();
        match r.step(&mut stream, budget, &mut upload_buf) {
            Step::Done(result) => break result,
            Step::Budget => budget_steps.push(r.bytes() - before),
            Step::Blocked => std::thread::sleep(Duration::from_millis(1)),
            Step::NeedChunk => panic!("an upload has no listing"),
        }
    };
    client.join().expect("the client thread");
    Upload {
        budget_steps,
        spliced: r.is_spliced(),
        result,
        bytes: r.bytes(),
    }
}

#[test]
fn binary_uploads_splice_and_the_file_holds_every_byte() {
    let dir = TempDir::new("upload-splice");
    let data = body(5 << 20);
    let u = upload(
        &dir,
        "f",
        WriteMode::Truncate,
        false,
        data.clone(),
        4 << 20,
        false,
    );
    assert!(u.result.is_ok(), "{:?}", u.result);
    assert_eq!(u.spliced, cfg!(target_os = "linux"));
    assert_eq!(u.bytes, data.len() as u64);
    assert!(
        std::fs::read(dir.join("f")).unwrap() == data,
        "the file differs"
    );

    // REST 1000 then STOR: the pipe writes at the descriptor's position.
    let more = body(300_000);
    let u = upload(
        &dir,
        "f",
        WriteMode::At(1000),
        false,
        more.clone(),
        4 << 20,
        false,
    );
    assert!(u.result.is_ok(), "{:?}", u.result);
    let mut want = data[..1000].to_vec();
    want.extend_from_slice(&more);
    assert!(
        std::fs::read(dir.join("f")).unwrap() == want,
        "the resumed file differs"
    );

    // APPE: O_APPEND, which splice(2) refuses: read, and the bytes still all land.
    let u = upload(
        &dir,
        "f",
        WriteMode::Append,
        false,
        more.clone(),
        4 << 20,
        false,
    );
    assert!(u.result.is_ok() && !u.spliced, "{:?}", u.result);
    want.extend_from_slice(&more);
    assert!(
        std::fs::read(dir.join("f")).unwrap() == want,
        "the appended file differs"
    );
}

#[test]
fn a_budget_bounds_every_splice_and_ascii_is_read() {
    let dir = TempDir::new("upload-budget");
    let data = body(2 << 20);
    let u = upload(
        &dir,
        "t",
        WriteMode::Truncate,
        false,
        data.clone(),
        100_000,
        false,
    );
    assert!(u.result.is_ok(), "{:?}", u.result);
    assert!(!u.budget_steps.is_empty());
    assert!(
        u.budget_steps.iter().all(|&n| n <= 100_000),
        "{:?}",
        u.budget_steps
    );
    assert!(
        std::fs::read(dir.join("t")).unwrap() == data,
        "the file differs"
    );

    // TYPE A: converted through the buffer, CRLF to LF, across read boundaries.
    let text: Vec<u8> = b"line\r\n".repeat(400_000);
    let u = upload(&dir, "a", WriteMode::Truncate, true, text, 4 << 20, false);
    assert!(u.result.is_ok() && !u.spliced, "{:?}", u.result);
    assert!(std::fs::read(dir.join("a")).unwrap() == b"line\n".repeat(400_000));
}

#[test]
fn a_cut_upload_leaves_exactly_the_bytes_received() {
    let dir = TempDir::new("upload-cut");
    let u = upload(
        &dir,
        "c",
        WriteMode::Truncate,
        false,
        body(3 << 20),
        4 << 20,
        true,
    );
    let kept = std::fs::metadata(dir.join("c")).unwrap().len();
    // The reset may come before or after the last bytes: whatever came is in the file.
    assert_eq!(kept, u.bytes);
    let full = body(3 << 20);
    assert!(std::fs::read(dir.join("c")).unwrap() == full[..kept as usize]);
    if u.bytes < full.len() as u64 {
        assert!(u.result.is_err(), "a cut upload is not complete");
    }
}

/// A byte sent as TCP urgent data in the middle of an upload (MSG_OOB): splice(2) stops
/// at the urgent mark and moves nothing more, where a read steps over the byte. The
/// upload goes on past it, as it does when read, and is not cut short at the mark.
#[test]
fn an_urgent_byte_does_not_cut_a_spliced_upload_short() {
    let dir = TempDir::new("upload-urgent");
    let (before, after) = (body(300_000), body(200_000));
    let sent = (before.clone(), after.clone());
    let u = upload_from(
        &dir,
        "u",
        WriteMode::Truncate,
        false,
        4 << 20,
        move |mut c| {
            let _ = c.write_all(&sent.0);
            std::thread::sleep(Duration::from_millis(50));
            // SAFETY: sends one byte from a static on the socket `c` owns.
            let n = unsafe { libc::send(c.as_raw_fd(), b"U".as_ptr().cast(), 1, libc::MSG_OOB) };
            assert_eq!(n, 1, "{}", std::io::Error::last_os_error());
            let _ = c.write_all(&sent.1);
            let _ = c.shutdown(Shutdown::Write);
        },
    );
    assert!(u.result.is_ok(), "{:?}", u.result);
    // The urgent byte goes out of band, as a read without SO_OOBINLINE takes it.
    let mut want = before;
    want.extend_from_slice(&after);
    let got = std::fs::read(dir.join("u")).unwrap();
    assert_eq!(
        got.len(),
        want.len(),
        "the file holds every byte but the urgent one"
    );
    assert!(got == want, "the file differs");
}
