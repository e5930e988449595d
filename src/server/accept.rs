//! Admission: the listeners, accepting connections, refusing those over the limits
//! (`max_cons`, `max_cons_per_ip`, banned addresses, the token range), starting a session's
//! control channel, and counting it out when it ends.

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::Interest;

use crate::control::session::Session;
use crate::control::ControlChannel;
use crate::logger;
#[cfg(feature = "proxy-protocol")]
use crate::proxy::{HeaderWait, Step};
use crate::stats::Refusal;

use super::{Channel, Entry, FtpServer, ListenerEntry};

/// Pause before accepting again after running out of file descriptors.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// Errors after which accepting again at once would fail the same way.
fn resource_exhausted(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

pub(super) use crate::sockopt::enable as enable_option;

/// Keeps TCP urgent data in the normal stream. Clients such as ftplib send ABOR with
/// MSG_OOB (RFC 959's Synch), which makes its last byte urgent; without this option the
/// kernel takes that byte out of the stream and the line never ends.
fn set_oob_inline(stream: &TcpStream) {
    if let Err(e) = enable_option(stream, libc::SOL_SOCKET, libc::SO_OOBINLINE) {
        logger::logerror(&format!("SO_OOBINLINE: {e}"));
    }
}

/// What a listener knows of every connection it accepts, so that each costs fewer system
/// calls.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Inherited {
    /// The local address, when the listener is bound to one address (not a wildcard):
    /// known without a getsockname(2) per connection.
    local: Option<SocketAddr>,
    /// TCP_NODELAY and SO_OOBINLINE were set on the listener before it listened (the
    /// server bound it: [`bind_listener`](super::listen::bind_listener)), so the kernel
    /// copied them into every socket it accepts: no setsockopt(2) per connection.
    options: bool,
}

impl Inherited {
    /// What the connections of `sock` inherit; `options` if the server set them on it
    /// before it listened.
    fn from_listener(sock: &TcpListener, options: bool) -> Inherited {
        let local = sock.local_addr().ok().filter(|a| !a.ip().is_unspecified());
        Inherited { local, options }
    }
}

/// The text of the 421 a refused connection gets (a session refused its login over a ban
/// gets the same).
pub(super) fn refusal_text(why: Refusal) -> &'static str {
    match why {
        Refusal::Banned => "Too many failed logins; try again later.",
        Refusal::MaxCons => "Too many connections. Service temporarily unavailable.",
        Refusal::MaxConsPerIp => "Too many connections from the same IP address.",
        Refusal::Busy => "Server busy.",
    }
}

impl FtpServer {
    /// Adds a listener; `inherits` if its connections inherit the control connection's
    /// socket options ([`Inherited`]).
    pub(super) fn insert_listener(
        &mut self,
        mut sock: TcpListener,
        inherits: bool,
    ) -> io::Result<()> {
        let (key, token) = self.next_token()?;
        let inherited = Inherited::from_listener(&sock, inherits);
        let entry = self.channels.vacant_entry();
        if let Some(reg) = &self.registry {
            reg.register(&mut sock, token, Interest::READABLE)?;
        }
        entry.insert(Entry {
            chan: Channel::Listener(ListenerEntry {
                sock,
                retry_at: None,
                failing: false,
                inherited,
            }),
            timer: None,
        });
        // Connections may already be waiting in the backlog.
        self.enqueue(key);
        Ok(())
    }

    pub(super) fn accept(&mut self, key: usize, now: Instant) {
        let mut failures = 0;
        loop {
            let Some(Entry {
                chan: Channel::Listener(l),
                ..
            }) = self.channels.get_mut(key)
            else {
                return;
            };
            if l.retry_at.is_some() {
                return;
            }
            let result = l.sock.accept();
            let inherited = l.inherited;
            // Out of the shortage: a connection accepted, or none waiting (Linux takes the
            // descriptor before it looks at the queue, so an empty queue fails too).
            if l.failing && (result.is_ok() || result.as_ref().is_err_and(would_block)) {
                l.failing = false;
                log::info!(target: logger::LOG, "accepting connections again");
            }
            match result {
                Ok((stream, peer)) => self.new_session(stream, peer, inherited, now),
                Err(e) if would_block(&e) => break,
                Err(e) if resource_exhausted(&e) => {
                    if !l.failing {
                        l.failing = true;
                        logger::logerror(&format!(
                            "accept failed: {e}; retrying every {ACCEPT_RETRY:?}"
                        ));
                    }
                    l.retry_at = Some(now + ACCEPT_RETRY);
                    break;
                }
                Err(e) => {
                    // ECONNABORTED, EINTR, EPROTO: that connection is gone, the next may not be.
                    failures += 1;
                    if failures > 64 {
                        logger::logerror(&format!("accept keeps failing: {e}"));
                        l.retry_at = Some(now + ACCEPT_RETRY);
                        break;
                    }
                }
            }
        }
        self.sync_timer(key, now);
    }

    /// A connection was accepted from `peer`: with the PROXY protocol on, its header is read
    /// first; otherwise the session starts now.
    /// A connection accepted from `peer`, with what it has from its listener.
    pub(super) fn new_session(
        &mut self,
        stream: TcpStream,
        peer: SocketAddr,
        inherited: Inherited,
        now: Instant,
    ) {
        #[cfg(feature = "proxy-protocol")]
        if let Some(p) = &self.config.proxy_protocol {
            let (trusted, timeout) = (p.trusts(peer.ip()), p.header_timeout);
            self.await_header(stream, peer, trusted, timeout, now);
            return;
        }
        self.admit(stream, peer, inherited, now);
    }

    /// Starts reading the PROXY header of a connection from `peer`, the proxy. Only the
    /// limits that do not depend on the client are checked here; the rest wait for the
    /// header to name it.
    #[cfg(feature = "proxy-protocol")]
    fn await_header(
        &mut self,
        stream: TcpStream,
        peer: SocketAddr,
        trusted: bool,
        timeout: Duration,
        now: Instant,
    ) {
        if !trusted {
            log::warn!(target: logger::LOG, "{peer} refused: not a trusted PROXY protocol source");
            return;
        }
        // Through the proxy the 421 reaches the client, like any reply.
        let counted = match self.refusal(None, now) {
            Some(why) => Err(why),
            None => {
                let mut admission = self.shared.admission.lock(&self.stats);
                admission.enter_header(self.max_cons)
            }
        };
        if let Err(why) = counted {
            return self.refuse(stream, peer, why);
        }
        let entry = self.channels.vacant_entry();
        let key = entry.key();
        let mut wait = Box::new(HeaderWait::new(stream, peer, now, timeout));
        let registered = match (self.tokens.token(key), &self.registry) {
            // Checked free by `refusal`.
            (None, _) => Err(io::Error::other("token range exhausted")),
            // Nothing is written before the header is in: readable is all it waits for.
            (Some(token), Some(reg)) => reg.register(wait.stream_mut(), token, Interest::READABLE),
            (Some(_), None) => Ok(()),
        };
        if let Err(e) = registered {
            logger::logerror(&format!("{peer} register failed: {e}"));
            self.shared.admission.lock(&self.stats).leave_header();
            return;
        }
        entry.insert(Entry {
            chan: Channel::Header(wait),
            timer: None,
        });
        self.headers += 1;
        self.drive_header(key, now);
    }

    /// Reads what has come of a PROXY header; once it is complete, the connection becomes
    /// a session of the client it names.
    #[cfg(feature = "proxy-protocol")]
    pub(super) fn drive_header(&mut self, key: usize, now: Instant) {
        let Some(Entry {
            chan: Channel::Header(h),
            ..
        }) = self.channels.get_mut(key)
        else {
            return;
        };
        let proxy = h.peer();
        match h.read() {
            Step::Wait => self.sync_timer(key, now),
            Step::Fail(why) => {
                log::warn!(target: logger::LOG, "{proxy} closed: {why}");
                self.remove(key);
            }
            Step::Done(client) => {
                // The entry is the header wait just read: take its socket out of the slab
                // (deregistered, timer cancelled); the session gets an entry of its own.
                let entry = self.channels.remove(key);
                if let Some(id) = entry.timer {
                    self.timers.cancel(id);
                }
                self.headers -= 1;
                self.shared.admission.lock(&self.stats).leave_header();
                // Always a header wait: it was matched as one above, with no change since.
                let Channel::Header(mut h) = entry.chan else {
                    return;
                };
                if let Some(reg) = &self.registry {
                    let _ = reg.deregister(h.stream_mut());
                }
                let client = client.unwrap_or(proxy);
                log::info!(target: logger::LOG, "{proxy} PROXY header: client {client}");
                self.admit(h.into_stream(), client, Inherited::default(), now);
            }
        }
    }

    /// Why a new connection is refused before it is counted, if it is: `client` is the
    /// address bans apply to (None while a PROXY header has yet to name it). The connection
    /// limits come after, counted in the shared [`Admission`](super::shared::Admission)
    /// under one lock, so that reactors admitting at once cannot overshoot them.
    fn refusal(&self, client: Option<IpAddr>, now: Instant) -> Option<Refusal> {
        if client.is_some_and(|ip| self.is_banned(ip, now)) {
            Some(Refusal::Banned)
        } else if self.tokens.token(self.channels.vacant_key() + 1).is_none() {
            Some(Refusal::Busy)
        } else {
            None
        }
    }

    /// Answers a refused connection with its 421, counts and logs it, and drops it.
    fn refuse(&mut self, mut stream: TcpStream, peer: SocketAddr, why: Refusal) {
        let msg = format!("421 {}\r\n", refusal_text(why));
        self.stats.refused(why);
        self.stats.reply(421);
        log::warn!(target: logger::LOG, "{peer} refused: {}", msg.trim_end());
        // Best effort: the socket is fresh, so a short reply fits its buffer.
        let _ = stream.write(msg.as_bytes());
    }

    /// Admits a session of the client at `peer`, or refuses it over the limits.
    fn admit(&mut self, stream: TcpStream, peer: SocketAddr, inherited: Inherited, now: Instant) {
        let ip = peer.ip().to_canonical();
        let counted = match self.refusal(Some(ip), now) {
            Some(why) => Err(why),
            None => {
                let mut admission = self.shared.admission.lock(&self.stats);
                admission.enter(ip, self.max_cons, self.max_cons_per_ip)
            }
        };
        if let Err(why) = counted {
            return self.refuse(stream, peer, why);
        }
        self.start_session(stream, peer, inherited, ip, now);
    }

    /// Gives back the slot `admit` counted for a session of `ip` (that ended, or never
    /// started). Called before the socket closes, so a client that sees the close and
    /// connects again finds its slot free on any reactor.
    pub(super) fn unadmit(&mut self, ip: IpAddr) {
        self.shared.admission.lock(&self.stats).leave(ip);
    }

    /// Starts the control channel of an admitted session of `ip`.
    fn start_session(
        &mut self,
        stream: TcpStream,
        peer: SocketAddr,
        inherited: Inherited,
        ip: IpAddr,
        now: Instant,
    ) {
        if !inherited.options {
            // Replies are small and often followed by nothing: do not let Nagle hold them
            // back.
            let _ = stream.set_nodelay(true);
            set_oob_inline(&stream);
        }
        let local = match inherited.local.map_or_else(|| stream.local_addr(), Ok) {
            Ok(a) => a,
            Err(e) => {
                logger::logerror(&format!("{peer} local_addr failed: {e}"));
                self.unadmit(ip);
                return;
            }
        };
        let stats = Some(Arc::clone(&self.stats));
        let session = Session::counted(Arc::clone(&self.config), peer, local, now, stats);
        let entry = self.channels.vacant_entry();
        let key = entry.key();
        let Some(token) = self.tokens.token(key) else {
            self.unadmit(ip);
            return;
        };
        let mut chan = Box::new(ControlChannel::new(
            stream,
            session,
            peer,
            self.config.tls.clone(),
            now,
            Arc::clone(&self.stats),
        ));
        if let Some(reg) = &self.registry {
            if let Err(e) = chan.register(reg, token) {
                logger::logerror(&format!("{peer} register failed: {e}"));
                chan.handle_closed(now, None);
                self.unadmit(ip);
                return;
            }
        }
        entry.insert(Entry {
            chan: Channel::Control(chan),
            timer: None,
        });
        self.sessions += 1;
        self.drive_control(key, now);
    }

    pub(super) fn remove_control(&mut self, key: usize, now: Instant) {
        let Some(c) = self.control_mut(key) else {
            return;
        };
        let data = c.take_data();
        let ip = c.peer_ip();
        let bytes = data.and_then(|d| self.data_bytes(d));
        if let Some(c) = self.control_mut(key) {
            c.handle_closed(now, bytes);
        }
        if let Some(d) = data {
            self.remove(d);
        }
        // The slot goes back before the socket closes: a client that sees its connection
        // end may connect again at once, and another reactor of the group may take that
        // connection before this one gets any further.
        self.sessions -= 1;
        self.unadmit(ip);
        self.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of a boolean socket option.
    fn option(sock: &impl std::os::fd::AsRawFd, level: libc::c_int, name: libc::c_int) -> bool {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `v`, a live local of that size,
        // on an open socket.
        let rc = unsafe {
            libc::getsockopt(
                sock.as_raw_fd(),
                level,
                name,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
        v != 0
    }

    /// What `start_session` leaves out where the listener says its connections inherit it
    /// must really be on them, from the first connection on: the options are set before
    /// the listener listens, and a client may connect at once.
    #[test]
    fn accepted_sockets_inherit_nodelay_and_oobinline_and_the_address() {
        let sock =
            super::super::listen::bind_listener("127.0.0.1:0".parse().unwrap(), false).unwrap();
        // Connected before anything else is done with the listener.
        let _client = std::net::TcpStream::connect(sock.local_addr().unwrap()).unwrap();
        let inherited = Inherited::from_listener(&sock, super::super::listen::INHERITS);
        assert_eq!(inherited.local, Some(sock.local_addr().unwrap()));
        let end = Instant::now() + std::time::Duration::from_secs(5);
        let (accepted, _) = loop {
            match sock.accept() {
                Ok(a) => break a,
                Err(e) if would_block(&e) && Instant::now() < end => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(inherited.local, Some(accepted.local_addr().unwrap()));
        // Linux sockets inherit both.
        assert_eq!(inherited.options, cfg!(target_os = "linux"));
        if inherited.options {
            assert!(option(&accepted, libc::IPPROTO_TCP, libc::TCP_NODELAY));
            assert!(option(&accepted, libc::SOL_SOCKET, libc::SO_OOBINLINE));
        }
        let wild = TcpListener::bind("0.0.0.0:0".parse().unwrap()).unwrap();
        assert_eq!(Inherited::from_listener(&wild, false).local, None);
    }
}
