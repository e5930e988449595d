//! Logs: the xferlog hook beside other hooks in a HookList, and the session lines of the
//! `ftpdlib` target with their key-value fields.

mod util;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use ftpdlib::{HookList, Hooks, SessionInfo, TransferRecord, XferLog};
use util::{wait_until, TempDir, TestServer};

#[derive(Default)]
struct Count(AtomicUsize);

impl Hooks for Count {
    fn on_file_received(&self, _s: SessionInfo<'_>, _path: &Path) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn on_transfer_end(&self, _s: SessionInfo<'_>, _t: &TransferRecord<'_>) {
        self.0.fetch_add(10, Ordering::SeqCst);
    }
}

#[test]
fn xferlog_lines_for_uploads_and_downloads() {
    // Whichever test of this binary runs first installs the logger.
    captured();
    let logs = TempDir::new("xferlog");
    let file = logs.join("xferlog");
    let xferlog = Arc::new(XferLog::open(&file).unwrap());
    let count = Arc::new(Count::default());
    let hooks = HookList(vec![xferlog, Arc::clone(&count) as Arc<dyn Hooks>]);
    let server = TestServer::start_with(move |config, _| config.hooks = Arc::new(hooks));
    let mut c = server.login("user");
    c.stor("STOR my file.bin", b"0123456789");
    c.cmd("TYPE A", 200);
    assert_eq!(c.retr("RETR my file.bin"), b"0123456789");
    let mut anon = server.login("anonymous");
    assert_eq!(anon.retr("RETR my file.bin"), b"0123456789");
    assert!(wait_until(std::time::Duration::from_secs(5), || {
        count.0.load(Ordering::SeqCst) == 31
    }));

    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let path = server.root.join("my_file.bin");
    let path = path.display();
    let fields: Vec<&str> = lines[0].split(' ').collect();
    // current-time is five words: DDD MMM dd hh:mm:ss YYYY (dd may be space-padded).
    let rest: Vec<&str> = lines[0].split_whitespace().skip(5).collect();
    // transfer-time: whole seconds, at least 1 (a slow machine may take longer).
    assert!(rest[0].parse::<u64>().unwrap() >= 1, "{}", lines[0]);
    assert_eq!(
        rest[1..],
        [
            "127.0.0.1",
            "10",
            &path.to_string(),
            "b",
            "_",
            "i",
            "r",
            "user",
            "ftp",
            "0",
            "*",
            "c"
        ],
        "{}",
        lines[0]
    );
    assert!(fields[0].len() == 3 && fields[1].len() == 3, "{}", lines[0]);
    assert!(
        lines[1].ends_with(&format!(" 10 {path} a _ o r user ftp 0 * c")),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].ends_with(&format!(" 10 {path} b _ o a anonymous ftp 0 * c")),
        "{}",
        lines[2]
    );
}

/// One log record as a `log::Log` received it: target, message and its key-values.
#[derive(Debug, Clone)]
struct Line {
    target: String,
    text: String,
    fields: Vec<(String, String)>,
}

impl Line {
    fn field(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A logger that keeps every record of the `ftpdlib` targets.
struct Capture(Mutex<Vec<Line>>);

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.target().starts_with("ftpdlib")
    }

    fn log(&self, r: &log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        struct Collect(Vec<(String, String)>);
        impl<'kvs> log::kv::VisitSource<'kvs> for Collect {
            fn visit_pair(
                &mut self,
                k: log::kv::Key<'kvs>,
                v: log::kv::Value<'kvs>,
            ) -> Result<(), log::kv::Error> {
                self.0.push((k.to_string(), v.to_string()));
                Ok(())
            }
        }
        let mut fields = Collect(Vec::new());
        r.key_values().visit(&mut fields).unwrap();
        self.0.lock().unwrap().push(Line {
            target: r.target().to_string(),
            text: r.args().to_string(),
            fields: fields.0,
        });
    }

    fn flush(&self) {}
}

/// The records logged so far by every test of this binary, the capturing logger installed
/// on the first call (before any server starts, so env_logger never gets in first).
fn captured() -> Vec<Line> {
    static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();
    let c = CAPTURE.get_or_init(|| {
        let c: &'static Capture = Box::leak(Box::new(Capture(Mutex::new(Vec::new()))));
        log::set_logger(c).expect("the first logger of this test binary");
        log::set_max_level(log::LevelFilter::Info);
        c
    });
    c.0.lock().unwrap().clone()
}

/// Waits up to 5 s for a record whose message contains `text`.
fn find(text: &str) -> Line {
    let mut found = None;
    wait_until(std::time::Duration::from_secs(5), || {
        found = captured().into_iter().find(|l| l.text.contains(text));
        found.is_some()
    });
    found.unwrap_or_else(|| panic!("no log line with {text:?} in {:#?}", captured()))
}

#[test]
fn refused_operations_are_logged_with_the_reason() {
    captured();
    let server = TestServer::start();
    std::fs::create_dir(server.root.join("sub")).unwrap();
    std::fs::write(server.root.join("sub/kept.txt"), b"x").unwrap();
    let mut c = server.login("user");
    // A missing file: pyftpdlib's `log_cmd` line, the reply quoted as Python's repr().
    c.cmd("DELE missing.txt", 550);
    let dele = find("DELE /missing.txt 550 'No such file or directory.'");
    assert_eq!(dele.target, "ftpdlib");
    assert!(dele.text.starts_with("127.0.0.1:"), "{dele:?}");
    assert!(dele.text.contains("-[user] DELE"), "{dele:?}");
    assert_eq!(dele.field("event"), Some("refused"), "{dele:?}");
    assert_eq!(dele.field("command"), Some("DELE"));
    assert_eq!(dele.field("path"), Some("/missing.txt"));
    assert_eq!(dele.field("code"), Some("550"));
    assert_eq!(dele.field("reason"), Some("No such file or directory."));
    assert_eq!(dele.field("user"), Some("user"));
    assert_eq!(
        dele.field("client"),
        Some(c.stream.local_addr().unwrap().to_string().as_str())
    );
    assert!(dele.field("session").unwrap().parse::<u64>().unwrap() >= 1);
    // RMD of a directory that is not empty, and CWD into a missing one.
    c.cmd("RMD sub", 550);
    let rmd = find("RMD /sub 550 ");
    assert_eq!(rmd.field("event"), Some("refused"));
    c.cmd("CWD nowhere", 550);
    find("CWD /nowhere 550 'No such file or directory.'");
    // A download of a missing file.
    c.pasv();
    c.cmd("RETR absent.bin", 550);
    find("RETR /absent.bin 550 'No such file or directory.'");
    // A permission refusal, for a read-only user, with pyftpdlib's wording.
    let mut ro = server.login("ro");
    ro.cmd("MKD newdir", 550);
    let mkd = find("-[ro] MKD /newdir 550 'Not enough privileges.'");
    assert_eq!(mkd.field("reason"), Some("Not enough privileges."));
    assert_eq!(mkd.field("user"), Some("ro"));
    ro.pasv();
    ro.cmd("STOR up.bin", 550);
    find("-[ro] STOR /up.bin 550 'Not enough privileges.'");
    // A successful command is logged as before, with its fields.
    c.cmd("MKD made", 257);
    let made = find("MKD /made 257");
    assert_eq!(made.field("event"), Some("command"));
    assert_eq!(made.field("code"), Some("257"));
    // A probe (SIZE of a missing file) is answered but not logged as a refusal.
    c.cmd("TYPE I", 200);
    c.cmd("SIZE missing.txt", 550);
    c.cmd("NOOP", 200);
    assert!(
        !captured()
            .iter()
            .any(|l| l.text.contains("SIZE /missing.txt")),
        "{:#?}",
        captured()
    );
}
