//! A test storage back-end whose open files wait on "the network": [`OsFilesystem`] on the
//! test's directory, whose readers and writers say they are not inline
//! ([`FileReader::is_inline`], [`FileWriter::is_inline`]), so the server moves their
//! contents a piece at a time on its worker pool. Every `read`, `write` and `finish` sleeps
//! (as a request to an object store would wait), records the thread it ran on, and can be
//! made to fail on its Nth call; the [`Probe`] counts what happened, including writers
//! dropped without `finish` (an object store aborts those uploads).
//!
//! The thread the server serves on is learned from a hook ([`Probe::hooks`]): hooks run on
//! the reactor thread (see `ftpdlib::Hooks`).

use std::io::{self, Read, Write};
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use ftpdlib::config::FilesystemFactory;
use ftpdlib::filesystem::{DirStream, FileReader, FileWriter, Stat, WriteMode};
use ftpdlib::{Filesystem, Hooks, OsFilesystem, SessionInfo};

/// The name the worker pool gives its threads.
pub const WORKER: &str = "ftpdlib-worker";

/// What one call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Read,
    Write,
    Finish,
    /// A writer dropped without a successful `finish`.
    Abort,
}

/// One call and the thread it ran on.
#[derive(Debug, Clone)]
pub struct Call {
    pub op: Op,
    pub thread: ThreadId,
    pub name: Option<String>,
}

/// The settings (changeable while a transfer runs) and the record, shared by the storage of
/// every session of one server.
#[derive(Debug, Default)]
pub struct Probe {
    read_delay_us: AtomicU64,
    write_delay_us: AtomicU64,
    finish_delay_us: AtomicU64,
    /// Each file's read number N (1-based) fails; 0: none.
    fail_read_call: AtomicUsize,
    /// Each file's write number N (1-based) fails; 0: none.
    fail_write_call: AtomicUsize,
    fail_finish: AtomicBool,
    /// The errno of injected failures; 0: an error with no errno (`io::Error::other`).
    fail_errno: AtomicI32,
    /// Injected failures panic instead (a back-end's bug).
    fail_panics: AtomicBool,
    /// Readers and writers hand out the descriptor of the file behind them, as a back-end on
    /// a slow network filesystem (NFS, FUSE) could.
    forward_fd: AtomicBool,

    pub reads: AtomicUsize,
    pub writes: AtomicUsize,
    pub finish_calls: AtomicUsize,
    pub finished: AtomicUsize,
    /// Writers dropped without a successful `finish`.
    pub aborted: AtomicUsize,
    pub readers_open: AtomicUsize,
    pub writers_open: AtomicUsize,
    pub writers_opened: AtomicUsize,
    calls: Mutex<Vec<Call>>,
    reactor: Mutex<Option<ThreadId>>,
}

fn us(d: Duration) -> u64 {
    d.as_micros() as u64
}

fn pause(us: &AtomicU64) {
    let n = us.load(Ordering::SeqCst);
    if n > 0 {
        std::thread::sleep(Duration::from_micros(n));
    }
}

impl Probe {
    /// Every read, write and finish takes `delay`.
    pub fn new(delay: Duration) -> Arc<Probe> {
        let p = Probe::default();
        p.set_delays(delay, delay, delay);
        Arc::new(p)
    }

    pub fn set_delays(&self, read: Duration, write: Duration, finish: Duration) {
        self.read_delay_us.store(us(read), Ordering::SeqCst);
        self.write_delay_us.store(us(write), Ordering::SeqCst);
        self.finish_delay_us.store(us(finish), Ordering::SeqCst);
    }

    pub fn fail_read_call(&self, n: usize) {
        self.fail_read_call.store(n, Ordering::SeqCst);
    }

    pub fn fail_write_call(&self, n: usize) {
        self.fail_write_call.store(n, Ordering::SeqCst);
    }

    pub fn fail_finish(&self, on: bool) {
        self.fail_finish.store(on, Ordering::SeqCst);
    }

    pub fn fail_errno(&self, errno: i32) {
        self.fail_errno.store(errno, Ordering::SeqCst);
    }

    pub fn fail_panics(&self, on: bool) {
        self.fail_panics.store(on, Ordering::SeqCst);
    }

    pub fn forward_fd(&self, on: bool) {
        self.forward_fd.store(on, Ordering::SeqCst);
    }

    fn error(&self) -> io::Error {
        if self.fail_panics.load(Ordering::SeqCst) {
            panic!("the storage panics on purpose");
        }
        match self.fail_errno.load(Ordering::SeqCst) {
            0 => io::Error::other("injected storage failure"),
            n => io::Error::from_raw_os_error(n),
        }
    }

    fn record(&self, op: Op) {
        let t = std::thread::current();
        self.calls.lock().unwrap().push(Call {
            op,
            thread: t.id(),
            name: t.name().map(str::to_string),
        });
    }

    /// Every call recorded so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn count(&self, op: Op) -> usize {
        self.calls().iter().filter(|c| c.op == op).count()
    }

    /// The thread the server serves on, once a session connected.
    pub fn reactor(&self) -> Option<ThreadId> {
        *self.reactor.lock().unwrap()
    }

    /// Hooks that learn the reactor thread.
    pub fn hooks(self: &Arc<Self>) -> Arc<dyn Hooks> {
        Arc::new(ReactorSpy(Arc::clone(self)))
    }

    /// The storage factory for `Config::filesystem`.
    pub fn factory(self: &Arc<Self>) -> FilesystemFactory {
        let probe = Arc::clone(self);
        Arc::new(move |home: &Path| {
            Ok(Arc::new(Offloaded {
                inner: OsFilesystem::new(home)?,
                probe: Arc::clone(&probe),
            }) as Arc<dyn Filesystem>)
        })
    }

    /// Asserts that no read, write or finish ran on the reactor thread: each ran on a
    /// worker of the pool. Returns how many calls were looked at.
    #[track_caller]
    pub fn assert_off_reactor(&self) -> usize {
        let reactor = self
            .reactor()
            .expect("a session connected, so the reactor is known");
        let calls = self.calls();
        for c in &calls {
            if c.op == Op::Abort {
                continue;
            }
            assert_ne!(c.thread, reactor, "{:?} ran on the reactor thread", c.op);
            assert_eq!(
                c.name.as_deref(),
                Some(WORKER),
                "{:?} ran on {:?}, not a worker",
                c.op,
                c.name
            );
        }
        calls.len()
    }

    /// Waits (bounded) until no reader or writer is open any more.
    pub fn all_closed(&self) -> bool {
        super::wait_until(Duration::from_secs(10), || {
            self.readers_open.load(Ordering::SeqCst) == 0
                && self.writers_open.load(Ordering::SeqCst) == 0
        })
    }
}

struct ReactorSpy(Arc<Probe>);

impl Hooks for ReactorSpy {
    fn on_connect(&self, _s: SessionInfo<'_>) {
        let me = std::thread::current().id();
        let mut r = self.0.reactor.lock().unwrap();
        if let Some(known) = *r {
            assert_eq!(known, me, "sessions of one server on two threads");
        }
        *r = Some(me);
    }
}

#[derive(Debug)]
struct Offloaded {
    inner: OsFilesystem,
    probe: Arc<Probe>,
}

#[derive(Debug)]
struct SlowReader {
    inner: Box<dyn FileReader>,
    probe: Arc<Probe>,
    calls: usize,
}

impl Read for SlowReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.probe.record(Op::Read);
        self.probe.reads.fetch_add(1, Ordering::SeqCst);
        self.calls += 1;
        pause(&self.probe.read_delay_us);
        if self.calls == self.probe.fail_read_call.load(Ordering::SeqCst) {
            return Err(self.probe.error());
        }
        self.inner.read(buf)
    }
}

impl FileReader for SlowReader {
    fn raw_fd(&self) -> Option<RawFd> {
        if self.probe.forward_fd.load(Ordering::SeqCst) {
            self.inner.raw_fd()
        } else {
            None
        }
    }

    fn size(&self) -> u64 {
        self.inner.size()
    }

    fn is_inline(&self) -> bool {
        false
    }
}

impl Drop for SlowReader {
    fn drop(&mut self) {
        self.probe.readers_open.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Debug)]
struct SlowWriter {
    inner: Box<dyn FileWriter>,
    probe: Arc<Probe>,
    calls: usize,
    done: bool,
}

impl Write for SlowWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.probe.record(Op::Write);
        self.probe.writes.fetch_add(1, Ordering::SeqCst);
        self.calls += 1;
        pause(&self.probe.write_delay_us);
        if self.calls == self.probe.fail_write_call.load(Ordering::SeqCst) {
            return Err(self.probe.error());
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl FileWriter for SlowWriter {
    fn raw_fd(&self) -> Option<RawFd> {
        if self.probe.forward_fd.load(Ordering::SeqCst) {
            self.inner.raw_fd()
        } else {
            None
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        self.probe.record(Op::Finish);
        self.probe.finish_calls.fetch_add(1, Ordering::SeqCst);
        pause(&self.probe.finish_delay_us);
        if self.probe.fail_finish.load(Ordering::SeqCst) {
            return Err(self.probe.error());
        }
        self.inner.finish()?;
        self.done = true;
        self.probe.finished.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn is_inline(&self) -> bool {
        false
    }
}

impl Drop for SlowWriter {
    fn drop(&mut self) {
        if !self.done {
            self.probe.record(Op::Abort);
            self.probe.aborted.fetch_add(1, Ordering::SeqCst);
        }
        self.probe.writers_open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Filesystem for Offloaded {
    fn stat(&self, p: &Path) -> io::Result<Stat> {
        self.inner.stat(p)
    }
    fn lstat(&self, p: &Path) -> io::Result<Stat> {
        self.inner.lstat(p)
    }
    fn read_dir(&self, p: &Path) -> io::Result<Box<dyn DirStream>> {
        self.inner.read_dir(p)
    }
    fn open_read(&self, p: &Path, o: u64) -> io::Result<Box<dyn FileReader>> {
        let inner = self.inner.open_read(p, o)?;
        self.probe.readers_open.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(SlowReader {
            inner,
            probe: Arc::clone(&self.probe),
            calls: 0,
        }))
    }
    fn open_write(&self, p: &Path, m: WriteMode) -> io::Result<Box<dyn FileWriter>> {
        let inner = self.inner.open_write(p, m)?;
        self.probe.writers_open.fetch_add(1, Ordering::SeqCst);
        self.probe.writers_opened.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(SlowWriter {
            inner,
            probe: Arc::clone(&self.probe),
            calls: 0,
            done: false,
        }))
    }
    fn mkdir(&self, p: &Path) -> io::Result<()> {
        self.inner.mkdir(p)
    }
    fn rmdir(&self, p: &Path) -> io::Result<()> {
        self.inner.rmdir(p)
    }
    fn remove(&self, p: &Path) -> io::Result<()> {
        self.inner.remove(p)
    }
    fn rename(&self, a: &Path, b: &Path) -> io::Result<()> {
        self.inner.rename(a, b)
    }
    fn chmod(&self, p: &Path, m: u32) -> io::Result<()> {
        self.inner.chmod(p, m)
    }
    fn set_mtime(&self, p: &Path, t: i64) -> io::Result<()> {
        self.inner.set_mtime(p, t)
    }
    fn real_path(&self, p: &Path) -> PathBuf {
        self.inner.real_path(p)
    }
}
