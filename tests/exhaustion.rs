//! Running out of resources: a full disk (a real tmpfs, as root), an exceeded allocation
//! (EDQUOT and EFBIG through the storage seam), and one address taking every session. Each
//! ends in RFC 959's reply for it, and the session, or the server, goes on.
//! (Descriptors and memory are tested against the real binary: daemon/tests/resources.rs.)

mod util;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ftpdlib::{DummyAuthorizer, Filesystem, Hooks, OsFilesystem, SessionInfo, TransferRecord};
use util::faulty::{Faulty, Mode};
use util::*;

/// A tmpfs of a given size mounted on a fresh directory, unmounted when dropped (also when
/// the test panics: drops run while unwinding).
struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    fn mount(options: &str) -> Tmpfs {
        let dir = TempDir::new("tmpfs");
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", options])
            .args(["tmpfs".as_ref(), dir.path().as_os_str()]));
        Tmpfs { dir }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let plain = Command::new("umount").arg(self.dir.path()).status();
        if !plain.map(|s| s.success()).unwrap_or(false) {
            // Something still holds it (a server thread not yet gone): detach it now, the
            // kernel frees it when the last user goes.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// Records how each upload ended, as an xferlog line would.
#[derive(Default)]
struct Ends(Mutex<Vec<(String, bool, u64)>>);

impl Hooks for Ends {
    fn on_transfer_end(&self, _s: SessionInfo<'_>, t: &TransferRecord<'_>) {
        let name = t.ftp_path.rsplit('/').next().unwrap_or("").to_string();
        self.0.lock().unwrap().push((name, t.completed, t.bytes));
    }
}

/// A server whose user "user" has the tmpfs at `home` as its home.
fn server_on(home: PathBuf, ends: Arc<Ends>) -> TestServer {
    TestServer::start_with(move |c, _| {
        let mut auth = DummyAuthorizer::new();
        auth.add_user("user", "pass", &home, "elradfmwMT").unwrap();
        c.authorizer = Arc::new(auth);
        c.hooks = ends;
    })
}

const BIG: usize = 5 << 20;

/// After a failed upload of `name`: the session answers, the partial file is there (some
/// bytes, no more than the disk holds) and can be deleted, and a small upload works.
fn session_goes_on(s: &TestServer, c: &mut Client, home: &Path, name: &str) {
    c.cmd("NOOP", 200);
    let kept = std::fs::metadata(home.join(name)).unwrap().len();
    assert!(kept > 0 && kept <= 2 << 20, "{name}: {kept} bytes kept");
    c.cmd(format!("DELE {name}"), 250);
    let small = random_bytes(10_000, 9);
    c.stor("STOR small", &small);
    assert_same(&std::fs::read(home.join("small")).unwrap(), &small);
    c.cmd("DELE small", 250);
    let _ = s;
}

/// The upload that did not fit is reported incomplete to the hooks (and so to the
/// xferlog), with the bytes that came over the data connection.
fn reported_incomplete(ends: &Ends, name: &str) {
    let ends = ends.0.lock().unwrap();
    let (_, completed, bytes) = ends
        .iter()
        .find(|(n, _, _)| n == name)
        .unwrap_or_else(|| panic!("no end reported for {name}: {ends:?}"));
    assert!(!completed, "{name} reported complete");
    assert!(*bytes > 0, "{name}: {bytes} bytes");
}

#[test]
fn a_full_disk_answers_452_and_the_session_goes_on() {
    if !util::accounts::require_root() {
        return;
    }
    // 2 MiB and 64 inodes: room for a third of the upload, and a directory count that
    // runs out soon.
    let fs = Tmpfs::mount("size=2m,nr_inodes=64");
    let home = fs.dir.path().to_path_buf();
    let ends = Arc::new(Ends::default());
    let s = server_on(home.clone(), ends.clone());
    let body = random_bytes(BIG, 7);

    // A raw client: the whole 5 MiB is taken (read and dropped past the 2 MiB that fit),
    // the data connection ends with a clean FIN, not a reset, and then comes the 452.
    let mut c = s.login("user");
    let data_addr = c.pasv();
    let mut data = TcpStream::connect(data_addr).unwrap();
    c.send("STOR raw");
    assert_eq!(c.read_reply().code, 125);
    data.write_all(&body).expect("the upload is taken whole");
    data.shutdown(Shutdown::Write).unwrap();
    data.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut rest = Vec::new();
    data.read_to_end(&mut rest)
        .expect("the data connection closes cleanly");
    let r = c.expect(452);
    assert!(
        r.text().starts_with("452 Insufficient storage space"),
        "{:?}",
        r.lines
    );
    reported_incomplete(&ends, "raw");
    session_goes_on(&s, &mut c, &home, "raw");

    // Python's ftplib: storbinary sends everything, then reads the reply as error_temp.
    if require("python3") {
        let script = format!(
            r#"
import ftplib, io
f = ftplib.FTP()
f.connect("127.0.0.1", {port}, timeout=30)
f.login("user", "pass")
try:
    f.storbinary("STOR ftplib", io.BytesIO(b"x" * {BIG}))
    print("stored")
except ftplib.error_temp as e:
    print(str(e))
print(f.voidcmd("NOOP"))
f.quit()
"#,
            port = s.addr.port()
        );
        let out = run(Command::new("python3").arg("-c").arg(script));
        let out = String::from_utf8_lossy(&out.stdout).to_string();
        let mut lines = out.lines();
        assert!(
            lines
                .next()
                .unwrap_or("")
                .starts_with("452 Insufficient storage space"),
            "{out}"
        );
        assert!(lines.next().unwrap_or("").starts_with("200"), "{out}");
        reported_incomplete(&ends, "ftplib");
        let mut c = s.login("user");
        session_goes_on(&s, &mut c, &home, "ftplib");
    }

    // curl: the upload fails with the server's 452 ("server did not report OK, got 452").
    if require("curl") {
        let src = TempDir::new("src");
        std::fs::write(src.join("big"), &body).unwrap();
        let out = curl()
            .arg("-T")
            .arg(src.join("big"))
            .arg(s.url("user", "curl"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(err.contains("got 452"), "{err}");
        reported_incomplete(&ends, "curl");
        let mut c = s.login("user");
        session_goes_on(&s, &mut c, &home, "curl");
    }

    // On the worker side: MKD on a filesystem without a free inode gets 452 too.
    let mut c = s.login("user");
    let mut n = 0;
    let code = loop {
        c.send(format!("MKD d{n}"));
        let r = c.read_reply();
        if r.code != 257 {
            break r.code;
        }
        n += 1;
        assert!(n < 100, "a tmpfs of 64 inodes took {n} directories");
    };
    assert_eq!(code, 452);
    c.cmd("NOOP", 200);
    drop(c);
    drop(s);
}

fn faulty_server(mode: Mode) -> TestServer {
    TestServer::start_with(move |c, _| {
        c.filesystem = Arc::new(move |home: &Path| {
            Ok(Arc::new(Faulty::new(OsFilesystem::new(home)?, mode)) as Arc<dyn Filesystem>)
        });
    })
}

/// Runs an upload command that fails after its 150: the client sends all of `body`, the
/// data connection closes cleanly, and the reply is `code`.
fn upload_fails(c: &mut Client, line: &str, body: &[u8], code: u16) -> Reply {
    let data_addr = c.pasv();
    let mut data = TcpStream::connect(data_addr).unwrap();
    c.send(line);
    let r = c.read_reply();
    assert!(r.code == 125 || r.code == 150, "{line}: {:?}", r.lines);
    data.write_all(body).expect("the upload is taken whole");
    data.shutdown(Shutdown::Write).unwrap();
    data.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    data.read_to_end(&mut Vec::new()).expect("a clean close");
    c.expect(code)
}

#[test]
fn an_exceeded_quota_answers_552_for_every_command_that_writes() {
    // A real EDQUOT needs a quota-enabled filesystem (a loop-mounted ext4 with usrquota),
    // which containers seldom allow; the error comes through the storage seam instead,
    // where a real back-end's would.
    let s = faulty_server(Mode::Exhausted {
        after: 1 << 20,
        errno: libc::EDQUOT,
    });
    let body = random_bytes(3 << 20, 3);
    let mut c = s.login("user");
    let r = upload_fails(&mut c, "STOR q", &body, 552);
    assert!(
        r.text().starts_with("552 Exceeded storage allocation"),
        "{:?}",
        r.lines
    );
    assert_eq!(std::fs::metadata(s.root.join("q")).unwrap().len(), 1 << 20);
    upload_fails(&mut c, "APPE q", &body, 552);
    c.cmd("TYPE A", 200);
    upload_fails(&mut c, "STOU", &body, 552);
    c.cmd("TYPE I", 200);
    let r = c.cmd("MKD d", 552);
    assert!(r.text().contains("Disk quota exceeded"), "{:?}", r.lines);
    c.cmd("RNFR q", 350);
    c.cmd("RNTO r", 552);
    c.cmd("NOOP", 200);
    // Within the allocation all is well.
    c.stor("STOR small", b"fits");
    c.cmd("DELE q", 250);
}

#[test]
fn a_file_size_limit_answers_552_and_no_space_452() {
    let s = faulty_server(Mode::Exhausted {
        after: 100_000,
        errno: libc::EFBIG,
    });
    let mut c = s.login("user");
    upload_fails(&mut c, "STOR big", &random_bytes(300_000, 4), 552);
    c.cmd("NOOP", 200);
    drop(c);
    drop(s);

    // ENOSPC through the seam: the same 452 as the tmpfs test, without root.
    let s = faulty_server(Mode::Exhausted {
        after: 100_000,
        errno: libc::ENOSPC,
    });
    let mut c = s.login("user");
    upload_fails(&mut c, "STOR full", &random_bytes(300_000, 5), 452);
    c.cmd("MKD d", 452);
    c.cmd("NOOP", 200);
}

#[test]
fn one_address_cannot_take_every_session() {
    let s = TestServer::start_with(|_, srv| {
        srv.max_cons = 20;
        srv.max_cons_per_ip = 5;
    });
    // Twenty connections from 127.0.0.1: five sessions, fifteen refusals.
    let mut conns: Vec<Client> = (0..20).map(|_| Client::connect_raw(s.addr)).collect();
    let codes: Vec<u16> = conns.iter_mut().map(|c| c.read_reply().code).collect();
    assert_eq!(codes.iter().filter(|&&c| c == 220).count(), 5, "{codes:?}");
    assert_eq!(codes.iter().filter(|&&c| c == 421).count(), 15, "{codes:?}");
    // Another address still gets in, and so do five sessions from it.
    for _ in 0..5 {
        let mut other = Client::from_stream(connect_from([127, 0, 0, 2], s.addr));
        assert_eq!(other.read_reply().code, 220);
        conns.push(other);
    }
    let mut sixth = Client::from_stream(connect_from([127, 0, 0, 2], s.addr));
    assert_eq!(sixth.read_reply().code, 421);
}
