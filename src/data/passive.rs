//! Accepting a passive data connection: the session's client only, straight from its
//! address or through a proxy that relays data connections and names the client in a
//! PROXY header ([`ProxyProtocol::passive`](crate::proxy::ProxyProtocol::passive)).
//! Anyone else who reaches the port is closed and reported, and the port waits on.

use std::io;
#[cfg(feature = "proxy-protocol")]
use std::net::SocketAddr;
use std::time::Instant;

use mio::net::{TcpListener, TcpStream};
#[cfg(feature = "proxy-protocol")]
use mio::Interest;
use mio::{Registry, Token};

use super::{DataChannel, DataEvent, Sock};
use crate::control::session::DataFailure;

impl DataChannel {
    /// Accepts the session's client on the passive listener: a connection from its address,
    /// or one from a proxy whose PROXY header names it (see `proxy`). Strangers are closed
    /// and reported; `None` while the client has not come, or when the listener failed (then
    /// reported too). `now` and `token` serve the proxies' headers.
    #[cfg_attr(not(feature = "proxy-protocol"), allow(unused_variables))]
    pub(super) fn accept_client(
        &mut self,
        now: Instant,
        registry: &Registry,
        token: Token,
        events: &mut Vec<DataEvent>,
    ) -> Option<TcpStream> {
        #[cfg(feature = "proxy-protocol")]
        if let Some(stream) = self.header_step(registry, events) {
            return Some(stream);
        }
        loop {
            let Sock::Listening(l) = &self.sock else {
                return None;
            };
            match l.accept() {
                #[cfg(feature = "proxy-protocol")]
                Ok((stream, peer)) if self.proxy.as_ref().is_some_and(|p| p.trusts(peer.ip())) => {
                    if let Some(stream) =
                        self.start_header(stream, peer, now, registry, token, events)
                    {
                        return Some(stream);
                    }
                }
                Ok((stream, peer)) if peer.ip().to_canonical() != self.client_ip => {
                    // Someone else raced the client to the port: refuse them and keep
                    // listening for the real client.
                    drop(stream);
                    events.push(DataEvent::Failed(DataFailure::ForeignPeer(peer)));
                }
                Ok((stream, _)) => return Some(stream),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e)
                    if e.kind() == io::ErrorKind::Interrupted
                        || e.kind() == io::ErrorKind::ConnectionAborted => {}
                // Linux takes the new descriptor before it looks for a connection, so
                // EMFILE comes whether or not one waits: with none, wait for it.
                Err(_) if !connection_waiting(l) => return None,
                Err(e) => {
                    // Out of descriptors or memory. The client's connection stays in the
                    // backlog, and readiness is edge-triggered, so waiting would wait
                    // for the accept timeout: give up now, and the session answers.
                    crate::logger::logerror(&format!("passive accept failed: {e}"));
                    self.deregister(registry);
                    events.push(DataEvent::Failed(DataFailure::AcceptFailed(e)));
                    return None;
                }
            }
        }
    }

    /// A proxy connected to the passive port: reads its header, beside the listener. A
    /// second one while a header is awaited is closed (a proxy sends its header at once, in
    /// its first segment).
    #[cfg(feature = "proxy-protocol")]
    fn start_header(
        &mut self,
        mut stream: TcpStream,
        peer: SocketAddr,
        now: Instant,
        registry: &Registry,
        token: Token,
        events: &mut Vec<DataEvent>,
    ) -> Option<TcpStream> {
        let timeout = self.proxy.as_ref()?.header_timeout;
        if self.header.is_some() {
            log::warn!(
                target: crate::logger::LOG,
                "{peer} passive connection closed: another one's PROXY header is awaited"
            );
            return None;
        }
        if let Err(e) = registry.register(&mut stream, token, Interest::READABLE) {
            crate::logger::logerror(&format!("passive connection from {peer}: {e}"));
            return None;
        }
        self.header = Some(crate::proxy::HeaderWait::new(stream, peer, now, timeout));
        self.header_step(registry, events)
    }

    /// Reads what has come of the awaited header; the connection once it names the
    /// session's client. One that names another client, or none (a health check's LOCAL),
    /// is a stranger's: closed and reported, and the listener waits on.
    #[cfg(feature = "proxy-protocol")]
    fn header_step(
        &mut self,
        registry: &Registry,
        events: &mut Vec<DataEvent>,
    ) -> Option<TcpStream> {
        use crate::proxy::Step;
        let step = self.header.as_mut()?.read();
        if step == Step::Wait {
            return None;
        }
        let mut h = self.header.take()?;
        let _ = registry.deregister(h.stream_mut());
        match step {
            Step::Done(Some(client)) if client.ip().to_canonical() == self.client_ip => {
                Some(h.into_stream())
            }
            Step::Done(client) => {
                events.push(DataEvent::Failed(DataFailure::ForeignPeer(
                    client.unwrap_or(h.peer()),
                )));
                None
            }
            Step::Fail(why) => {
                log::warn!(
                    target: crate::logger::LOG,
                    "{} passive connection closed: {why}",
                    h.peer()
                );
                None
            }
            Step::Wait => None,
        }
    }
}

/// Whether a connection waits in the listener's backlog; poll(2) takes no descriptor, so it
/// answers when accept cannot.
fn connection_waiting(l: &TcpListener) -> bool {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd {
        fd: l.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll reads and writes one local pollfd, for a descriptor `l` keeps open, and
    // does not wait (timeout 0).
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n == 1 && p.revents & libc::POLLIN != 0
}
