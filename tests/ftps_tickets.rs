//! FTPS session tickets over a long session: a client that uses each TLS 1.3 ticket once
//! (rustls does, as RFC 8446 section 8.1 and appendix C.4 advise) resumes every data
//! connection, however many, under `data_session_reuse_required`: passive and active, with
//! its ClientHello sent as soon as the data connection is up (curl's order) or after the
//! 150 (Python's ftplib's), and with PROT P given after EPSV. The control connection sends
//! 8 tickets; each download or listing brings a fresh one, each upload none (docs/ftps.md
//! says why), so a session of many downloads never runs out.
#![cfg(feature = "tls")]

mod ftps_client;
mod util;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::{
    ClientSessionMemoryCache, ClientSessionStore, Resumption, Tls12ClientSessionValue,
    Tls13ClientSessionValue,
};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, HandshakeKind, NamedGroup};

use ftps_client::{client_config_for, with_tls, Ftps};
use util::{assert_same, random_bytes};

/// rustls' own session cache, counting the TLS 1.3 tickets the server sends.
#[derive(Debug)]
struct CountingStore {
    inner: ClientSessionMemoryCache,
    tls13_tickets: AtomicUsize,
}

impl CountingStore {
    fn tickets(&self) -> usize {
        self.tls13_tickets.load(Ordering::SeqCst)
    }
}

impl ClientSessionStore for CountingStore {
    fn set_kx_hint(&self, name: ServerName<'static>, group: NamedGroup) {
        self.inner.set_kx_hint(name, group)
    }

    fn kx_hint(&self, name: &ServerName<'_>) -> Option<NamedGroup> {
        self.inner.kx_hint(name)
    }

    fn set_tls12_session(&self, name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.inner.set_tls12_session(name, value)
    }

    fn tls12_session(&self, name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.inner.tls12_session(name)
    }

    fn remove_tls12_session(&self, name: &ServerName<'static>) {
        self.inner.remove_tls12_session(name)
    }

    fn insert_tls13_ticket(&self, name: ServerName<'static>, value: Tls13ClientSessionValue) {
        self.tls13_tickets.fetch_add(1, Ordering::SeqCst);
        self.inner.insert_tls13_ticket(name, value)
    }

    fn take_tls13_ticket(&self, name: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        self.inner.take_tls13_ticket(name)
    }
}

/// A client configuration for `versions` whose session cache counts TLS 1.3 tickets.
fn counting_config(
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> (Arc<ClientConfig>, Arc<CountingStore>) {
    let store = Arc::new(CountingStore {
        inner: ClientSessionMemoryCache::new(64),
        tls13_tickets: AtomicUsize::new(0),
    });
    let mut config = (*client_config_for(versions)).clone();
    config.resumption = Resumption::store(Arc::clone(&store) as Arc<dyn ClientSessionStore>);
    (Arc::new(config), store)
}

/// How a data connection is made.
#[derive(Debug, Clone, Copy)]
struct Way {
    /// EPRT (the server connects) rather than EPSV.
    active: bool,
    /// The client finishes its handshake before it sends the transfer command (curl), not
    /// after the 150 (ftplib).
    early: bool,
    /// PROT C until the connection is up, PROT P just before the transfer command.
    prot_after_connect: bool,
}

const WAYS: [Way; 5] = [
    Way {
        active: false,
        early: true,
        prot_after_connect: false,
    },
    Way {
        active: false,
        early: false,
        prot_after_connect: false,
    },
    Way {
        active: true,
        early: true,
        prot_after_connect: false,
    },
    Way {
        active: true,
        early: false,
        prot_after_connect: false,
    },
    Way {
        active: false,
        early: false,
        prot_after_connect: true,
    },
];

/// A new data connection of `c`, made `way`.
fn connect(c: &mut Ftps, way: Way) -> TcpStream {
    if way.prot_after_connect {
        c.cmd("PROT C", 200);
    }
    let tcp = if way.active {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        c.cmd(&format!("EPRT |1|127.0.0.1|{port}|"), 200);
        l.accept().unwrap().0
    } else {
        TcpStream::connect(c.pasv()).unwrap()
    };
    if way.prot_after_connect {
        c.cmd("PROT P", 200);
    }
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    tcp
}

/// Runs `line` on a new data connection made `way`: sends `upload` if given, then reads
/// what the server sends (a download, or the tickets of an upload's connection) to its
/// end. Returns what was read and whether the data connection's handshake resumed.
fn transfer(c: &mut Ftps, way: Way, line: &str, upload: Option<&[u8]>) -> (Vec<u8>, bool) {
    let tcp = connect(c, way);
    let mut data = c.data(tcp);
    if way.early {
        while data.conn.is_handshaking() {
            data.conn
                .complete_io(&mut data.sock)
                .unwrap_or_else(|e| panic!("{line} ({way:?}): handshake: {e}"));
        }
    }
    c.send(line);
    let (code, text) = c.reply();
    assert!(code == 125 || code == 150, "{line} ({way:?}): {text}");
    let mut got = Vec::new();
    match upload {
        Some(body) => {
            data.write_all(body).unwrap();
            data.conn.send_close_notify();
            data.flush().unwrap();
            // Shut down, not closed: whatever the server sends is still read below.
            data.sock.shutdown(Shutdown::Write).unwrap();
            // The server may end an upload's connection without a close_notify.
            let _ = data.read_to_end(&mut got);
        }
        None => {
            if let Err(e) = data.read_to_end(&mut got) {
                let (_, text) = c.reply();
                panic!("{line} ({way:?}): data connection: {e}; control: {text}");
            }
        }
    }
    let (code, text) = c.reply();
    assert_eq!(code, 226, "{line} ({way:?}): {text}");
    let resumed = data.conn.handshake_kind() == Some(HandshakeKind::Resumed);
    (got, resumed)
}

#[test]
fn a_client_that_uses_each_ticket_once_resumes_every_data_connection() {
    let s = with_tls(|_| {}); // data_session_reuse_required
    let body = random_bytes(3000, 91);
    std::fs::write(s.root.join("f.bin"), &body).unwrap();
    let (config, store) = counting_config(&[&rustls::version::TLS13]);
    let mut c = Ftps::explicit_with(s.addr, config);
    c.login_private("user");
    assert!(store.tickets() > 0, "the control connection sends tickets");

    // Far more data connections than the control connection's tickets.
    let mut fresh = Vec::new();
    for i in 0..25 {
        let way = WAYS[i % WAYS.len()];
        let line = if i % 6 == 5 { "LIST" } else { "RETR f.bin" };
        let before = store.tickets();
        let (got, resumed) = transfer(&mut c, way, line, None);
        assert!(resumed, "transfer {i} ({line}, {way:?}) did not resume");
        if line == "LIST" {
            assert!(String::from_utf8_lossy(&got).contains("f.bin"));
        } else {
            assert_same(&got, &body);
        }
        fresh.push(store.tickets() - before);
    }
    assert_eq!(fresh, [1; 25], "tickets each download brought");

    // Uploads resume with the tickets the downloads brought, and send none: a client that
    // closes without reading would have its upload cut by the reset.
    for (i, way) in WAYS.into_iter().enumerate() {
        let name = format!("up{i}.bin");
        let before = store.tickets();
        let (_, resumed) = transfer(&mut c, way, &format!("STOR {name}"), Some(&body));
        assert!(resumed, "upload {i} ({way:?}) did not resume");
        assert_eq!(
            store.tickets(),
            before,
            "upload {i} ({way:?}) sent a ticket"
        );
        assert_same(&std::fs::read(s.root.join(&name)).unwrap(), &body);
    }
    // And downloads still bring theirs.
    for way in WAYS {
        let (got, resumed) = transfer(&mut c, way, "RETR f.bin", None);
        assert!(resumed, "{way:?}");
        assert_same(&got, &body);
    }
}

#[test]
fn tls12_data_connections_resume_started_early_or_late() {
    // TLS 1.2 tickets are part of the handshake: nothing is held back, and every data
    // connection resumes, downloads and uploads alike.
    let s = with_tls(|_| {});
    let body = random_bytes(3000, 92);
    std::fs::write(s.root.join("f.bin"), &body).unwrap();
    let (config, _) = counting_config(&[&rustls::version::TLS12]);
    let mut c = Ftps::explicit_with(s.addr, config);
    c.login_private("user");
    for i in 0..12 {
        let way = WAYS[i % WAYS.len()];
        let (got, resumed) = transfer(&mut c, way, "RETR f.bin", None);
        assert!(resumed, "download {i} ({way:?}) did not resume");
        assert_same(&got, &body);
        let name = format!("up{i}.bin");
        let (_, resumed) = transfer(&mut c, way, &format!("STOR {name}"), Some(&body));
        assert!(resumed, "upload {i} ({way:?}) did not resume");
        assert_same(&std::fs::read(s.root.join(&name)).unwrap(), &body);
    }
}
