//! The last resort of a ServerGroup reactor that panics: when closing its sessions panics
//! too, it drops them without calling into them. Here the second panic is real: an upload
//! in flight on the dead reactor goes to a storage whose unfinished file panics when
//! dropped ([`Mode::AbortPanics`]), so `close_all` panics as it drops that upload. The
//! dropped sessions must still give their `max_cons` and `max_cons_per_ip` slots back,
//! close their connections and leave no descriptor open, while the other reactor serves
//! on.
//!
//! With two uploads in flight, the second file panics again as the sessions are dropped,
//! and the rest must still go.
//!
//! The tests of this binary run one at a time, so the descriptor count of each sees no
//! other test's sockets.

mod util;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ftpdlib::{Filesystem, OsFilesystem};
use util::faulty::{Faulty, Mode, ABORT_PANICS};
use util::group::{
    assert_fds, assert_sessions_open, connect_retrying, knock, settled_fds, Group, PATIENCE,
};
use util::Client;

/// The group's `max_cons`.
const MAX: usize = 12;
/// The group's `max_cons_per_ip`: 127.0.0.1 fills all but one slot.
const PER_IP: usize = MAX - 1;
/// Bytes of each upload sent before the reactor dies.
const SENT: usize = 64 * 1024;

/// Held by every test: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Starts `STOR name` on `c` over PASV and sends `bytes` without ending the upload: the
/// data connection stays open.
fn upload_in_flight(c: &mut Client, name: &str, bytes: &[u8]) -> TcpStream {
    let mut data = TcpStream::connect(c.pasv()).unwrap();
    c.send(format!("STOR {name}"));
    let r = c.read_reply();
    assert!(r.code == 125 || r.code == 150, "STOR {name}: {:?}", r.lines);
    data.write_all(bytes).unwrap();
    data
}

/// Whether the server closed a data connection the client only sends on (EOF or reset
/// within the patience).
fn data_closed(data: &mut TcpStream) -> bool {
    data.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match data.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// Waits until `path` holds `len` bytes: the server has written what was sent.
#[track_caller]
fn assert_written(path: &Path, len: usize) {
    assert!(
        util::wait_until(PATIENCE, || std::fs::metadata(path)
            .is_ok_and(|m| m.len() == len as u64)),
        "{} holds {:?} bytes, not {len}",
        path.display(),
        std::fs::metadata(path).map(|m| m.len())
    );
}

#[test]
fn a_reactor_whose_sessions_cannot_close_still_gives_everything_back() {
    dies_with_uploads_in_flight(1);
}

#[test]
fn dropping_the_sessions_goes_on_past_a_second_panicking_upload() {
    dies_with_uploads_in_flight(2);
}

/// A reactor panics with `uploads` uploads in flight (and a passive listener waiting) on a
/// storage whose unfinished files panic when dropped; the other reactor has an upload in
/// flight too, which goes on.
fn dies_with_uploads_in_flight(uploads: usize) {
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    util::init();
    let before = settled_fds();
    let panics_before = ABORT_PANICS.load(Ordering::SeqCst);
    {
        let mut g = Group::start(
            |c| {
                c.filesystem = Arc::new(|home: &Path| {
                    let fs = Faulty::new(OsFilesystem::new(home)?, Mode::AbortPanics);
                    Ok(Arc::new(fs) as Arc<dyn Filesystem>)
                });
            },
            |g| {
                g.max_cons = MAX;
                g.max_cons_per_ip = PER_IP;
            },
        );
        let mut boom = g.connect();
        let dead = g.reactor(&boom);
        let live = 1 - dead;
        let mut by = g.spread(uploads + 1, || g.login("user"));
        let (mut doomed, mut spared) =
            (std::mem::take(&mut by[dead]), std::mem::take(&mut by[live]));
        assert!(spared.len() >= 2);

        // On the reactor about to die: uploads in flight, and a passive listener waiting.
        let sent = util::random_bytes(SENT, 7);
        let mut doomed_data: Vec<TcpStream> = (0..uploads)
            .map(|i| upload_in_flight(&mut doomed[i], &format!("doomed{i}"), &sent))
            .collect();
        let waiting = doomed[uploads].pasv();
        // On the other one: a whole upload (its file finished, so dropped quietly), and
        // one in flight that carries on through the other reactor's death.
        spared[0].stor("STOR whole", b"abc");
        let mut spared_data = upload_in_flight(&mut spared[1], "spared", &sent);
        for i in 0..uploads {
            assert_written(&g.root.join(&format!("doomed{i}")), SENT);
        }
        assert_written(&g.root.join("spared"), SENT);
        assert!(util::wait_until(PATIENCE, || g.stats.transfers_running()
            == uploads as u64 + 1));
        assert_sessions_open(&g, (1 + doomed.len() + spared.len()) as u64);

        // boom's login panics its reactor; closing the sessions then panics on an upload's
        // file, and the reactor falls back to dropping them (meeting the other upload's
        // file, if any, on the way).
        boom.cmd("USER boom", 331);
        boom.send("PASS pass");
        assert!(boom.closed_by_server());
        assert!(util::wait_until(PATIENCE, || g.stats.reactor_panics() == 1));
        for c in &mut doomed {
            assert!(c.closed_by_server());
        }
        for (i, d) in doomed_data.iter_mut().enumerate() {
            assert!(data_closed(d), "the data connection of upload {i}");
            // What was written stays, as on a local disk when an upload is cut.
            let written = std::fs::read(g.root.join(&format!("doomed{i}"))).unwrap();
            util::assert_same(&written, &sent);
        }
        // The data socket closes before the file is dropped (the channel's fields in order):
        // wait for the files.
        let dropped = || ABORT_PANICS.load(Ordering::SeqCst) - panics_before;
        assert!(
            util::wait_until(PATIENCE, || dropped() == uploads),
            "{} of {uploads} unfinished files dropped (each panicking)",
            dropped()
        );
        // The passive listener goes too: its port refuses connections (a connection made
        // just before the listener closes is reset, so try again until refused; bounded,
        // as a listener nobody accepts on fills its backlog and then lets a connect hang).
        assert!(
            util::wait_until(PATIENCE, || {
                TcpStream::connect_timeout(&waiting, Duration::from_secs(1))
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
            }),
            "the passive listener of the dead reactor still accepts"
        );
        let dead_peers: Vec<SocketAddr> = doomed
            .iter()
            .chain([&boom])
            .map(|c| c.stream.local_addr().unwrap())
            .collect();
        let ended = g
            .spy
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, h, _)| *h == "disconnect" && dead_peers.contains(p))
            .count();
        eprintln!(
            "on_disconnect ran for {ended} of the {} dead sessions (the others were dropped)",
            dead_peers.len()
        );

        // The other reactor goes on, its upload too.
        for c in &mut spared {
            c.cmd("NOOP", 200);
        }
        spared_data.write_all(&sent).unwrap();
        spared_data.shutdown(Shutdown::Write).unwrap();
        drop(spared_data);
        spared[1].expect(226);
        util::assert_same(
            &std::fs::read(g.root.join("spared")).unwrap(),
            &[sent.as_slice(), &sent].concat(),
        );
        assert!(
            util::wait_until(PATIENCE, || g.stats.transfers_running() == 0),
            "transfers_running {}",
            g.stats.transfers_running()
        );
        assert_eq!(g.stats.reactor_panics(), 1);

        // Every slot of the dead sessions came back: 127.0.0.1 fills its PER_IP again, all
        // on the live reactor, another address takes the last slot, and then the group is
        // full.
        assert_sessions_open(&g, spared.len() as u64);
        let mut fresh = Vec::new();
        while spared.len() + fresh.len() < PER_IP {
            let c = connect_retrying(&g).unwrap_or_else(|refusal| {
                panic!(
                    "{refusal} with {} + {} sessions open; sessions_open {}, stray \
                     sessions {:?}",
                    spared.len(),
                    fresh.len(),
                    g.stats.sessions_open(),
                    g.strays()
                )
            });
            assert_eq!(g.reactor(&c), live);
            fresh.push(c);
        }
        let (inside, refused) = knock(&g, 1, None);
        assert_eq!(inside.len(), 0);
        assert_eq!(
            refused,
            ["421 Too many connections from the same IP address."]
        );
        let (mut last, refused) = knock(&g, 1, Some([127, 0, 0, 2]));
        assert_eq!((last.len(), refused), (1, vec![]), "the last slot");
        let (inside, refused) = knock(&g, 2, Some([127, 0, 0, 3]));
        assert_eq!(inside.len(), 0);
        assert_eq!(
            refused,
            ["421 Too many connections. Service temporarily unavailable."; 2]
        );
        assert_sessions_open(&g, MAX as u64);
        for c in spared.iter_mut().chain(&mut fresh).chain(&mut last) {
            c.cmd("NOOP", 200);
        }
        assert!(g.serving());
        g.handle.close_all();
        g.join().expect("one reactor still served");
        for c in spared.iter_mut().chain(&mut fresh).chain(&mut last) {
            assert!(c.closed_by_server());
        }
    }
    assert_fds(before);
}
