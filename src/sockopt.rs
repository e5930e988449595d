//! Socket options set to 1 (setsockopt(2)), for the few the server sets: TCP_NODELAY,
//! SO_OOBINLINE, SO_REUSEADDR and SO_REUSEPORT on its sockets, TCP_QUICKACK under TLS
//! uploads. One unsafe call for them all.

use std::io;

/// Sets an integer socket option (`level`, `name`) of `sock` to 1.
pub(crate) fn enable(
    sock: &impl std::os::fd::AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads `on` (a live local of the stated size) on an open socket.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
