//! Admission: the listeners, accepting connections, refusing those over the limits
//! (`max_cons`, `max_cons_per_ip`, banned addresses, the token range), starting a session's
//! control channel, and counting it out when it ends.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::Interest;

use crate::control::session::Session;
use crate::control::ControlChannel;
use crate::logger;
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

/// Keeps TCP urgent data in the normal stream. Clients such as ftplib send ABOR with
/// MSG_OOB (RFC 959's Synch), which makes its last byte urgent; without this option the
/// kernel takes that byte out of the stream and the line never ends.
fn set_oob_inline(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads `on` (a live local of the stated size) on an open socket.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_OOBINLINE,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        logger::logerror(&format!("SO_OOBINLINE: {}", io::Error::last_os_error()));
    }
}

impl FtpServer {
    pub(super) fn insert_listener(&mut self, mut sock: TcpListener) -> io::Result<()> {
        let (key, token) = self.next_token()?;
        let entry = self.channels.vacant_entry();
        if let Some(reg) = &self.registry {
            reg.register(&mut sock, token, Interest::READABLE)?;
        }
        entry.insert(Entry {
            chan: Channel::Listener(ListenerEntry {
                sock,
                retry_at: None,
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
            match l.sock.accept() {
                Ok((stream, peer)) => self.new_session(stream, peer, now),
                Err(e) if would_block(&e) => break,
                Err(e) if resource_exhausted(&e) => {
                    logger::logerror(&format!("accept failed: {e}; retrying in {ACCEPT_RETRY:?}"));
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

    pub(super) fn new_session(&mut self, mut stream: TcpStream, peer: SocketAddr, now: Instant) {
        let ip = peer.ip().to_canonical();
        let refuse = if self.is_banned(ip, now) {
            Some((
                Refusal::Banned,
                "421 Too many failed logins; try again later.\r\n",
            ))
        } else if self.max_cons > 0 && self.sessions >= self.max_cons {
            Some((
                Refusal::MaxCons,
                "421 Too many connections. Service temporarily unavailable.\r\n",
            ))
        } else if self.max_cons_per_ip > 0
            && self.per_ip.get(&ip).copied().unwrap_or(0) >= self.max_cons_per_ip
        {
            Some((
                Refusal::MaxConsPerIp,
                "421 Too many connections from the same IP address.\r\n",
            ))
        } else if self.tokens.token(self.channels.vacant_key() + 1).is_none() {
            Some((Refusal::Busy, "421 Server busy.\r\n"))
        } else {
            None
        };
        if let Some((why, msg)) = refuse {
            self.stats.refused(why);
            self.stats.reply(421);
            log::warn!(target: logger::LOG, "{peer} refused: {}", msg.trim_end());
            // Best effort: the socket is fresh, so a short reply fits its buffer.
            let _ = stream.write(msg.as_bytes());
            return;
        }
        // Replies are small and often followed by nothing: do not let Nagle hold them back.
        let _ = stream.set_nodelay(true);
        set_oob_inline(&stream);
        let local = match stream.local_addr() {
            Ok(a) => a,
            Err(e) => {
                logger::logerror(&format!("{peer} local_addr failed: {e}"));
                return;
            }
        };
        let stats = Some(Arc::clone(&self.stats));
        let session = Session::counted(Arc::clone(&self.config), peer, local, now, stats);
        let entry = self.channels.vacant_entry();
        let key = entry.key();
        let Some(token) = self.tokens.token(key) else {
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
                return;
            }
        }
        entry.insert(Entry {
            chan: Channel::Control(chan),
            timer: None,
        });
        self.sessions += 1;
        *self.per_ip.entry(ip).or_insert(0) += 1;
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
        self.remove(key);
        self.sessions -= 1;
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }
}
