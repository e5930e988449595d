//! Hooks: fired in order with the right arguments by a real client; cancelled uploads are
//! incomplete, never received; a panicking hook ends only its own session.

mod util;

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ftpdlib::{Hooks, SessionInfo, TransferRecord};
use util::{require, TestServer};

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<String>>,
    root: Mutex<String>,
}

impl Recorder {
    fn push(&self, e: String) {
        self.events.lock().unwrap().push(e);
    }
    fn rel(&self, p: &Path) -> String {
        let root = self.root.lock().unwrap().clone();
        p.to_string_lossy()
            .strip_prefix(root.as_str())
            .unwrap_or("?")
            .to_string()
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.events.lock().unwrap())
    }
}

struct Shared(Arc<Recorder>);

impl Hooks for Shared {
    fn on_connect(&self, _s: SessionInfo<'_>) {
        self.0.push("connect".into());
    }
    fn on_disconnect(&self, s: SessionInfo<'_>) {
        self.0.push(format!("disconnect {}", s.username));
    }
    fn on_login(&self, s: SessionInfo<'_>) {
        self.0.push(format!("login {}", s.username));
    }
    fn on_login_failed(&self, _s: SessionInfo<'_>, username: &str) {
        self.0.push(format!("login_failed {username}"));
    }
    fn on_logout(&self, s: SessionInfo<'_>) {
        self.0.push(format!("logout {}", s.username));
    }
    fn on_file_sent(&self, _s: SessionInfo<'_>, p: &Path) {
        self.0.push(format!("sent {}", self.0.rel(p)));
    }
    fn on_file_received(&self, _s: SessionInfo<'_>, p: &Path) {
        self.0.push(format!("received {}", self.0.rel(p)));
    }
    fn on_incomplete_file_sent(&self, _s: SessionInfo<'_>, p: &Path) {
        self.0.push(format!("incomplete_sent {}", self.0.rel(p)));
    }
    fn on_incomplete_file_received(&self, _s: SessionInfo<'_>, p: &Path) {
        self.0
            .push(format!("incomplete_received {}", self.0.rel(p)));
    }
    fn on_transfer_end(&self, _s: SessionInfo<'_>, t: &TransferRecord<'_>) {
        self.0.push(format!(
            "transfer {} {} bytes={} completed={}",
            t.verb, t.ftp_path, t.bytes, t.completed
        ));
    }
    fn on_file_deleted(&self, _s: SessionInfo<'_>, p: &Path) {
        self.0.push(format!("deleted {}", self.0.rel(p)));
        if p.ends_with("boom") {
            panic!("hook failure on purpose");
        }
    }
    fn on_file_renamed(&self, _s: SessionInfo<'_>, from: &Path, to: &Path) {
        self.0
            .push(format!("renamed {} {}", self.0.rel(from), self.0.rel(to)));
    }
    fn on_dir_created(&self, _s: SessionInfo<'_>, p: &Path) {
        self.0.push(format!("mkdir {}", self.0.rel(p)));
    }
    fn on_dir_removed(&self, _s: SessionInfo<'_>, p: &Path) {
        self.0.push(format!("rmdir {}", self.0.rel(p)));
    }
}

fn server() -> (TestServer, Arc<Recorder>) {
    let rec = Arc::new(Recorder::default());
    let hooks = Shared(Arc::clone(&rec));
    let s = TestServer::start_with(move |c, _| c.hooks = Arc::new(hooks));
    *rec.root.lock().unwrap() = s.root.path().to_string_lossy().into_owned();
    (s, rec)
}

/// Waits for the server to report the session's end, then returns every event.
fn events_after_disconnect(rec: &Recorder) -> Vec<String> {
    assert!(util::wait_until(Duration::from_secs(10), || rec
        .events
        .lock()
        .unwrap()
        .iter()
        .any(|e| e.starts_with("disconnect"))));
    rec.take()
}

#[test]
fn ftplib_session_fires_hooks_in_order() {
    if !require("python3") {
        return;
    }
    let (s, rec) = server();
    std::fs::write(s.root.join("down.txt"), b"0123456789").unwrap();
    let script = format!(
        r#"
import ftplib, io
f = ftplib.FTP()
f.connect("127.0.0.1", {port}, timeout=30)
try:
    f.login("user", "wrong")
except ftplib.error_perm:
    pass
f.login("user", "pass")
f.retrbinary("RETR down.txt", io.BytesIO().write)
f.storbinary("STOR up.txt", io.BytesIO(b"abc"))
f.mkd("d")
f.rename("up.txt", "d/moved.txt")
f.delete("d/moved.txt")
f.rmd("d")
f.quit()
"#,
        port = s.addr.port()
    );
    let st = Command::new("python3")
        .arg("-c")
        .arg(script)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(
        events_after_disconnect(&rec),
        [
            "connect",
            "login_failed user",
            "login user",
            "sent /down.txt",
            "transfer RETR /down.txt bytes=10 completed=true",
            "received /up.txt",
            "transfer STOR /up.txt bytes=3 completed=true",
            "mkdir /d",
            "renamed /up.txt /d/moved.txt",
            "deleted /d/moved.txt",
            "rmdir /d",
            "logout user",
            "disconnect user",
        ]
    );
}

#[test]
fn cancelled_uploads_are_incomplete_not_received() {
    let (s, rec) = server();
    // ABOR during an upload.
    let mut c = s.login("user");
    let addr = c.pasv();
    let mut data = TcpStream::connect(addr).unwrap();
    c.cmd("STOR aborted", 125);
    data.write_all(&[7u8; 1000]).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    c.send("ABOR");
    let r = c.read_reply();
    assert!(r.code == 426 || r.code == 225, "{:?}", r.lines);
    if r.code == 426 {
        c.expect(226);
    }
    drop(data);
    // A dropped connection during an upload.
    let addr = c.pasv();
    let mut data = TcpStream::connect(addr).unwrap();
    c.cmd("STOR dropped", 125);
    data.write_all(&[7u8; 1000]).unwrap();
    // The control connection goes first and the server must see it go before the data
    // socket closes: a data close alone is how a complete upload ends in stream mode.
    drop(c);
    let events = events_after_disconnect(&rec);
    drop(data);
    assert!(
        events.iter().all(|e| !e.starts_with("received")),
        "{events:?}"
    );
    assert!(
        events.contains(&"incomplete_received /aborted".to_string()),
        "{events:?}"
    );
    assert!(
        events.contains(&"incomplete_received /dropped".to_string()),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("transfer STOR /aborted bytes=")
                && e.ends_with("completed=false")),
        "{events:?}"
    );
}

#[test]
fn a_panicking_hook_ends_only_its_session() {
    let (s, rec) = server();
    std::fs::write(s.root.join("boom"), b"").unwrap();
    let mut other = s.login("user");
    let mut c = s.login("user");
    c.cmd("DELE boom", 250);
    c.expect(421);
    assert!(c.closed_by_server());
    other.cmd("NOOP", 200);
    let mut again = s.login("user");
    again.cmd("PWD", 257);
    assert!(rec.take().contains(&"deleted /boom".to_string()));
}
