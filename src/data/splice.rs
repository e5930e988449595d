//! Uploads that never enter user space: splice(2) moves the bytes from the data socket into
//! a pipe, and from the pipe into the file.
//!
//! Reading list: splice(2) (SPLICE_F_NONBLOCK, SPLICE_F_MOVE, EINVAL for a file opened
//! with O_APPEND), pipe(7) ("Pipe capacity", /proc/sys/fs/pipe-max-size and
//! pipe-user-pages-soft), fcntl(2) (F_SETPIPE_SZ, F_GETPIPE_SZ, F_GETFL).
//!
//! One pipe per running upload, made when the upload starts and closed with it. The socket
//! side is non-blocking (the socket is, and SPLICE_F_NONBLOCK covers the pipe); the file
//! side writes what the pipe holds to the local disk, as write(2) does on the buffered
//! path. The pipe is emptied into the file after every fill, so a fill that would block
//! means the socket has nothing more, never that the pipe is full.

use std::io;

/// What a pipe grows to once a fill has filled it (a fast upload): the default most
/// systems let a user set (pipe-max-size).
const PIPE_SIZE: usize = 1 << 20;

/// The most the pipes of the process may have grown by, in bytes, together. A pipe is
/// made at the default 64 KiB and grows only while the sum of growth stays under this:
/// a user's pipes share pipe-user-pages-soft (64 MiB by default), past which every new
/// pipe gets two pages, and a thousand uploads at 1 MiB each would take a gigabyte of
/// pipe memory and leave the cache cold (measured: 1000 concurrent STORs of 10 MiB took
/// 1.7 times the server CPU with 1 MiB pipes that they take with 64 KiB ones, while one
/// fast upload takes 0.7 times with a 1 MiB pipe). A few fast uploads get large pipes; a
/// crowd keeps small ones.
const GROWTH_BUDGET: usize = 16 << 20;

/// Below this a pipe moves less per call than the buffered path's default read (the
/// capacity a pipe gets once its user is past pipe-user-pages-soft is two pages): the
/// upload is read instead.
const MIN_PIPE: usize = 64 << 10;

/// Whether an error from splice(2) says it cannot join these descriptors (a file system
/// without splice support, a descriptor kind it does not take): the transfer goes on
/// through a buffer.
pub(crate) fn unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP)
    ) || e.kind() == io::ErrorKind::Unsupported
}

#[cfg(target_os = "linux")]
mod imp {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::{GROWTH_BUDGET, MIN_PIPE, PIPE_SIZE};

    /// Bytes the live pipes of the process have grown by (see [`GROWTH_BUDGET`]).
    static GROWN: AtomicUsize = AtomicUsize::new(0);

    /// The pipe of one upload, and how many bytes sit in it.
    #[derive(Debug)]
    pub(crate) struct Pipe {
        read: OwnedFd,
        write: OwnedFd,
        capacity: usize,
        held: usize,
        /// What this pipe took from [`GROWN`], given back when it closes.
        grown: usize,
    }

    impl Drop for Pipe {
        fn drop(&mut self) {
            GROWN.fetch_sub(self.grown, Ordering::Relaxed);
        }
    }

    impl Pipe {
        /// A pipe for an upload into `file`, or why the upload should be read instead: no
        /// descriptor left (EMFILE, ENFILE), a pipe too small, or a file opened for
        /// appending (splice(2) refuses O_APPEND).
        pub fn for_file(file: RawFd) -> io::Result<Pipe> {
            // SAFETY: F_GETFL only reads the flags of a descriptor the caller keeps open.
            let flags = unsafe { libc::fcntl(file, libc::F_GETFL) };
            if flags < 0 {
                return Err(io::Error::last_os_error());
            }
            if flags & libc::O_APPEND != 0 {
                return Err(io::ErrorKind::Unsupported.into());
            }
            let mut fds = [0 as libc::c_int; 2];
            // SAFETY: pipe2 writes two descriptors into the local array of two.
            if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: pipe2 succeeded: both descriptors are new and owned by nobody else.
            let (read, write) =
                unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
            // SAFETY: F_GETPIPE_SZ reads the size of the pipe just made, owned here.
            let capacity = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) };
            let capacity = usize::try_from(capacity).unwrap_or(0);
            if capacity < MIN_PIPE {
                return Err(io::ErrorKind::Unsupported.into());
            }
            Ok(Pipe {
                read,
                write,
                capacity,
                held: 0,
                grown: 0,
            })
        }

        /// A fill filled the pipe: the upload is fast. Grows the pipe to [`PIPE_SIZE`] if
        /// the process's pipes have that much of [`GROWTH_BUDGET`] left; else, or past
        /// pipe-max-size or the user's pipe allocation (EPERM), it stays as it is.
        fn grow(&mut self) {
            let more = PIPE_SIZE.saturating_sub(self.capacity);
            if more == 0 || self.grown > 0 {
                return;
            }
            if GROWN.fetch_add(more, Ordering::Relaxed) + more > GROWTH_BUDGET {
                GROWN.fetch_sub(more, Ordering::Relaxed);
                return;
            }
            // SAFETY: F_SETPIPE_SZ acts on the pipe owned here; growing keeps what it holds.
            let set = unsafe {
                libc::fcntl(
                    self.write.as_raw_fd(),
                    libc::F_SETPIPE_SZ,
                    PIPE_SIZE as libc::c_int,
                )
            };
            match usize::try_from(set) {
                Ok(size) if size > self.capacity => {
                    self.grown = more;
                    self.capacity = size;
                }
                _ => {
                    GROWN.fetch_sub(more, Ordering::Relaxed);
                }
            }
        }

        /// Bytes in the pipe, not yet in the file.
        pub fn held(&self) -> usize {
            self.held
        }

        /// What the pipe can hold.
        #[cfg(test)]
        pub fn capacity(&self) -> usize {
            self.capacity
        }

        /// Moves up to `max` bytes from socket `sock` into the (empty) pipe, without
        /// blocking. `Ok(0)` is the peer's FIN.
        pub fn fill(&mut self, sock: RawFd, max: usize) -> io::Result<usize> {
            debug_assert_eq!(self.held, 0, "the pipe is emptied after every fill");
            let max = max.min(self.capacity);
            // SAFETY: both descriptors are open for the call (the socket is the caller's,
            // the pipe's end is owned here); null offsets: neither is seekable.
            let n = unsafe {
                libc::splice(
                    sock,
                    std::ptr::null_mut(),
                    self.write.as_raw_fd(),
                    std::ptr::null_mut(),
                    max,
                    libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
                )
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = n as usize;
            self.held += n;
            if n == self.capacity {
                self.grow();
            }
            Ok(n)
        }

        /// Writes everything the pipe holds into `file` at its current position, which
        /// moves on as write(2) moves it. On an error, what is left stays counted in
        /// [`held`](Self::held) (some may have been written before it).
        pub fn drain_to(&mut self, file: RawFd) -> io::Result<()> {
            while self.held > 0 {
                // SAFETY: both descriptors are open for the call (the file is the caller's,
                // the pipe's end is owned here); a null offset uses and moves the file's own.
                let n = unsafe {
                    libc::splice(
                        self.read.as_raw_fd(),
                        std::ptr::null_mut(),
                        file,
                        std::ptr::null_mut(),
                        self.held,
                        libc::SPLICE_F_MOVE,
                    )
                };
                match n {
                    n if n > 0 => self.held -= (n as usize).min(self.held),
                    0 => return Err(io::ErrorKind::WriteZero.into()),
                    _ => {
                        let e = io::Error::last_os_error();
                        if e.kind() != io::ErrorKind::Interrupted {
                            return Err(e);
                        }
                    }
                }
            }
            Ok(())
        }

        /// Reads out what the pipe holds, into `buf` (for a file that turned out not to take
        /// splice(2): the rest goes through a buffer).
        pub fn read_out(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let want = buf.len().min(self.held);
            if want == 0 {
                return Ok(0);
            }
            // SAFETY: reads at most `want` bytes into `buf`, which has that many; the pipe's
            // end is owned here.
            let n = unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), want) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            self.held -= (n as usize).min(self.held);
            Ok(n as usize)
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::io;
    use std::os::fd::RawFd;

    /// No splice(2) here: never made, every upload is read.
    #[derive(Debug)]
    pub(crate) struct Pipe(());

    impl Pipe {
        pub fn for_file(_file: RawFd) -> io::Result<Pipe> {
            Err(io::ErrorKind::Unsupported.into())
        }
        pub fn held(&self) -> usize {
            0
        }
        pub fn fill(&mut self, _sock: RawFd, _max: usize) -> io::Result<usize> {
            Err(io::ErrorKind::Unsupported.into())
        }
        pub fn drain_to(&mut self, _file: RawFd) -> io::Result<()> {
            Err(io::ErrorKind::Unsupported.into())
        }
        pub fn read_out(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
            Ok(0)
        }
    }
}

pub(crate) use imp::Pipe;

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    /// A pipe starts at the default size and grows once a fill fills it; what it moved
    /// reaches the file whole.
    #[test]
    fn a_fast_upload_grows_its_pipe() {
        let dir = crate::testutil::TempDir::new("splice-grow");
        let file = std::fs::File::create(dir.join("f")).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (sock, _) = listener.accept().unwrap();
        let body: Vec<u8> = (0..(3u32 << 20)).map(|i| (i % 251) as u8).collect();
        let writer = std::thread::spawn(move || client.write_all(&body).map(|()| body));
        let mut pipe = Pipe::for_file(file.as_raw_fd()).unwrap();
        let first = pipe.capacity();
        assert!(first < PIPE_SIZE, "made at the default size: {first}");
        let mut moved = 0;
        while moved < 3 << 20 {
            // The socket is blocking here: each fill waits for bytes.
            let n = pipe.fill(sock.as_raw_fd(), usize::MAX).unwrap();
            assert!(n > 0);
            moved += n;
            pipe.drain_to(file.as_raw_fd()).unwrap();
        }
        let body = writer.join().unwrap().unwrap();
        // Grown, where the system lets a user have pipes that large.
        let max: usize = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        if max >= PIPE_SIZE {
            assert!(
                pipe.capacity() >= PIPE_SIZE,
                "{} of {first}",
                pipe.capacity()
            );
        }
        drop(pipe);
        assert_eq!(std::fs::read(dir.join("f")).unwrap(), body);
    }
}
