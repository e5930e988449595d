//! A test storage back-end: [`OsFilesystem`] behind a fault in every call (a sleep, EIO or
//! a panic), to show that storage never holds the reactor and that every failure is a reply;
//! or behind an exhausted allocation ([`Mode::Exhausted`]): the errors a quota gives,
//! through the same `Filesystem` seam the server uses for every storage call; or behind a
//! file that panics when dropped unfinished ([`Mode::AbortPanics`]).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ftpdlib::filesystem::{DirStream, FileReader, FileWriter, Stat, WriteMode};
use ftpdlib::{Filesystem, OsFilesystem};

/// What the test back-end does in every call before (or instead of) the real one.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    Sleep(Duration),
    Fail,
    Panic,
    /// Each file written takes `after` bytes, then every write fails with `errno`
    /// (EDQUOT as a quota does, EFBIG as a file size limit does); MKD and RNTO fail with
    /// it at once. Every other call goes through.
    Exhausted {
        after: u64,
        errno: i32,
    },
    /// Every call goes through, but a file written panics when it is dropped before its
    /// `finish` (an upload cut short): a bug in a back-end's abort path, met on the
    /// reactor thread while the session closes. Counted in [`ABORT_PANICS`].
    AbortPanics,
}

/// Files of [`Mode::AbortPanics`] that panicked when dropped, in this test process.
pub static ABORT_PANICS: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug)]
pub struct Faulty {
    inner: OsFilesystem,
    mode: Mode,
}

impl Faulty {
    pub fn new(inner: OsFilesystem, mode: Mode) -> Faulty {
        Faulty { inner, mode }
    }

    fn call<T>(&self, f: impl FnOnce(&OsFilesystem) -> io::Result<T>) -> io::Result<T> {
        match self.mode {
            Mode::Sleep(d) => {
                std::thread::sleep(d);
                f(&self.inner)
            }
            Mode::Fail => Err(io::Error::from_raw_os_error(libc::EIO)),
            Mode::Panic => panic!("storage panicked"),
            Mode::Exhausted { .. } | Mode::AbortPanics => f(&self.inner),
        }
    }

    /// A call that allocates storage without writing a file (MKD, RNTO).
    fn allocate<T>(&self, f: impl FnOnce(&OsFilesystem) -> io::Result<T>) -> io::Result<T> {
        match self.mode {
            Mode::Exhausted { errno, .. } => Err(io::Error::from_raw_os_error(errno)),
            _ => self.call(f),
        }
    }
}

/// A file that takes `left` more bytes, then fails every write with `errno`.
#[derive(Debug)]
struct Limited {
    inner: Box<dyn FileWriter>,
    left: u64,
    errno: i32,
}

impl Write for Limited {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Err(io::Error::from_raw_os_error(self.errno));
        }
        let n = buf.len().min(self.left as usize);
        let n = self.inner.write(&buf[..n])?;
        self.left -= n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl FileWriter for Limited {
    fn finish(&mut self) -> io::Result<()> {
        self.inner.finish()
    }
}

/// A file that panics when dropped before `finish` succeeded ([`Mode::AbortPanics`]).
#[derive(Debug)]
struct AbortPanics {
    inner: Box<dyn FileWriter>,
    finished: bool,
}

impl Write for AbortPanics {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl FileWriter for AbortPanics {
    fn finish(&mut self) -> io::Result<()> {
        self.inner.finish()?;
        self.finished = true;
        Ok(())
    }
}

impl Drop for AbortPanics {
    fn drop(&mut self) {
        // Not while unwinding already: a second panic would abort the test process. The
        // inner file is dropped either way, closing its descriptor.
        if !self.finished && !std::thread::panicking() {
            ABORT_PANICS.fetch_add(1, Ordering::SeqCst);
            panic!("the storage fails on purpose: an unfinished upload is dropped");
        }
    }
}

impl Filesystem for Faulty {
    fn stat(&self, p: &Path) -> io::Result<Stat> {
        self.call(|f| f.stat(p))
    }
    fn lstat(&self, p: &Path) -> io::Result<Stat> {
        self.call(|f| f.lstat(p))
    }
    fn read_dir(&self, p: &Path) -> io::Result<Box<dyn DirStream>> {
        self.call(|f| f.read_dir(p))
    }
    fn open_read(&self, p: &Path, o: u64) -> io::Result<Box<dyn FileReader>> {
        self.call(|f| f.open_read(p, o))
    }
    fn open_write(&self, p: &Path, m: WriteMode) -> io::Result<Box<dyn FileWriter>> {
        let inner = self.call(|f| f.open_write(p, m))?;
        match self.mode {
            Mode::Exhausted { after, errno } => Ok(Box::new(Limited {
                inner,
                left: after,
                errno,
            })),
            Mode::AbortPanics => Ok(Box::new(AbortPanics {
                inner,
                finished: false,
            })),
            _ => Ok(inner),
        }
    }
    fn mkdir(&self, p: &Path) -> io::Result<()> {
        self.allocate(|f| f.mkdir(p))
    }
    fn rmdir(&self, p: &Path) -> io::Result<()> {
        self.call(|f| f.rmdir(p))
    }
    fn remove(&self, p: &Path) -> io::Result<()> {
        self.call(|f| f.remove(p))
    }
    fn rename(&self, a: &Path, b: &Path) -> io::Result<()> {
        self.allocate(|f| f.rename(a, b))
    }
    fn chmod(&self, p: &Path, m: u32) -> io::Result<()> {
        self.call(|f| f.chmod(p, m))
    }
    fn set_mtime(&self, p: &Path, t: i64) -> io::Result<()> {
        self.call(|f| f.set_mtime(p, t))
    }
    fn real_path(&self, p: &Path) -> PathBuf {
        self.inner.real_path(p)
    }
}
