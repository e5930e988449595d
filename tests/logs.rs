//! Transfer logs: the xferlog hook, beside other hooks in a HookList.

mod util;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

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
