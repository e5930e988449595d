//! Binding the server's listeners: the one place its listening sockets are made, with the
//! options every control connection then inherits.
//!
//! Reading list: socket(7) (SO_REUSEADDR, SO_REUSEPORT, SO_OOBINLINE), tcp(7)
//! (TCP_NODELAY), listen(2), accept(2) (on Linux the accepted socket is a copy of the
//! listener: its socket flags and Nagle setting included).

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use mio::net::TcpListener;

use super::accept::enable_option;

/// Backlog of each listener, as mio's own `TcpListener::bind`.
const BACKLOG: libc::c_int = 1024;

/// Whether accepted sockets inherit TCP_NODELAY and SO_OOBINLINE from their listener.
pub(super) const INHERITS: bool = cfg!(any(target_os = "linux", target_os = "android"));

/// A non-blocking listener on `addr` with `SO_REUSEADDR` (as mio's `TcpListener::bind`)
/// and, with `reuse_port`, `SO_REUSEPORT`, so that every reactor of a group can bind it.
///
/// On Linux TCP_NODELAY and SO_OOBINLINE are set before listen(2): every connection the
/// kernel completes from then on is a copy of the listener and has them, so the server
/// sets nothing per connection (see `accept::Inherited`). A connection completed before
/// an option is set does not get it, which is why they are set here and not on a
/// listener that is already listening.
pub(super) fn bind_listener(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    let family = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: socket takes integers only; the descriptor it returns is checked below.
    let raw = unsafe {
        libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a descriptor just opened and owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    enable_option(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR)?;
    if reuse_port {
        enable_option(&fd, libc::SOL_SOCKET, libc::SO_REUSEPORT)?;
    }
    if INHERITS {
        enable_option(&fd, libc::IPPROTO_TCP, libc::TCP_NODELAY)?;
        enable_option(&fd, libc::SOL_SOCKET, libc::SO_OOBINLINE)?;
    }
    let rc = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: the pointer and length describe `sin`, alive for the call.
            unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&sin as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            }
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: the pointer and length describe `sin6`, alive for the call.
            unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&sin6 as *const libc::sockaddr_in6).cast(),
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            }
        }
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: listen takes integers only, on the socket owned above.
    if unsafe { libc::listen(fd.as_raw_fd(), BACKLOG) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(TcpListener::from_std(std::net::TcpListener::from(fd)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_listeners_bind_one_port_twice() {
        let a = bind_listener("127.0.0.1:0".parse().unwrap(), true).unwrap();
        let addr = a.local_addr().unwrap();
        let b = bind_listener(addr, true).unwrap();
        assert_eq!(b.local_addr().unwrap(), addr);
        // A listener without SO_REUSEPORT cannot join them.
        assert!(std::net::TcpListener::bind(addr).is_err());
        let v6 = bind_listener("[::1]:0".parse().unwrap(), true);
        if let Ok(v6) = v6 {
            let addr6 = v6.local_addr().unwrap();
            assert_eq!(
                bind_listener(addr6, true).unwrap().local_addr().unwrap(),
                addr6
            );
        }
    }
}
