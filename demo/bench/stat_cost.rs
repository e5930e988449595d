//! stat_cost: what a stat costs inline and what a trip to the worker pool adds to it.
//!
//! Four loops in one process, each timed by the process's CPU clock (user + system time of
//! all its threads, so the worker's share counts) and by the wall clock:
//!
//! 1. `fstatat(2)` of a file in a directory held open: the bare system call, the inode in
//!    the kernel's caches (the directory should be on tmpfs, /dev/shm by default).
//! 2. `OsFilesystem::stat` of the same file, inline: what the server's storage does for
//!    `SIZE f` (openat2 with `RESOLVE_IN_ROOT`, fstat, close).
//! 3. A trip to the worker pool with an empty job, made the way the server makes it: the
//!    reactor thread submits to `WorkerPool`, blocks in `mio::Poll` on the server's
//!    socket-pair waker, drains the waker and the pool's queue.
//! 4. The same trip with `OsFilesystem::stat` as the job.
//!
//! The pool has `--workers` threads (default: as many as the server starts by default, the
//! machine's cores, at least 2). Each loop runs `--count` times or `--seconds`, whichever
//! comes first, after a warm-up of a tenth as many; only this process and 127.0.0.1 are
//! involved, nothing is sent over a network.
//!
//! Usage: stat_cost [--dir DIR] [--count N] [--seconds S] [--workers W] [--json]
//! Run it with `cargo run --release --example stat_cost -- --help`.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ftpdlib::filesystem::{Filesystem, OsFilesystem};
use ftpdlib::ioloop::waker;
use ftpdlib::pool::{self, WorkerPool};
use mio::{Events, Interest, Poll, Token};

const USAGE: &str = "\
stat_cost: CPU per stat inline and per trip to the worker pool

USAGE: stat_cost [--dir DIR] [--count N] [--seconds S] [--workers W] [--json]
  --dir DIR      where to make the test file (default /dev/shm, else /tmp)
  --count N      iterations of each loop, at most (default 200000)
  --seconds S    time limit of each loop (default 5)
  --workers W    worker threads of the pool (default: the server's default)
  --json         one JSON object per line instead of a table
";

fn cpu_now() -> Duration {
    // SAFETY: an all-zero timespec is valid and the pointer is valid for the call.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: CLOCK_PROCESS_CPUTIME_ID always exists on Linux; `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Context switches of the whole process so far (voluntary + involuntary).
fn switches() -> u64 {
    // SAFETY: an all-zero rusage is valid and the pointer is valid for the call.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF covers every thread; `ru` is a valid out-pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    (ru.ru_nvcsw + ru.ru_nivcsw) as u64
}

struct Row {
    name: &'static str,
    ops: u64,
    cpu: Duration,
    wall: Duration,
    switches: u64,
}

impl Row {
    fn cpu_ns(&self) -> f64 {
        self.cpu.as_nanos() as f64 / self.ops as f64
    }
    fn wall_ns(&self) -> f64 {
        self.wall.as_nanos() as f64 / self.ops as f64
    }
    fn switches_per_op(&self) -> f64 {
        self.switches as f64 / self.ops as f64
    }
}

/// Runs `f` up to `count` times or for `limit`, after a warm-up; `f` must do one operation.
fn measure(
    name: &'static str,
    count: u64,
    limit: Duration,
    mut f: impl FnMut() -> io::Result<()>,
) -> io::Result<Row> {
    for _ in 0..(count / 10).max(1) {
        f()?;
    }
    let (c0, s0, t0) = (cpu_now(), switches(), Instant::now());
    let mut ops = 0;
    while ops < count {
        f()?;
        ops += 1;
        // Look at the clock every 64 operations only.
        if ops % 64 == 0 && t0.elapsed() > limit {
            break;
        }
    }
    Ok(Row {
        name,
        ops,
        cpu: cpu_now() - c0,
        wall: t0.elapsed(),
        switches: switches() - s0,
    })
}

/// The reactor's side of the server's pool: one poll with the waker registered.
struct Reactor {
    poll: Poll,
    events: Events,
    rx: waker::WakeReceiver,
    pool: WorkerPool<io::Result<u64>>,
}

impl Reactor {
    fn new(workers: usize) -> io::Result<Reactor> {
        let poll = Poll::new()?;
        let (w, mut rx) = waker::pair()?;
        poll.registry()
            .register(&mut rx, Token(0), Interest::READABLE)?;
        let pool = WorkerPool::new(workers, Arc::new(move || w.wake()))?;
        Ok(Reactor {
            poll,
            events: Events::with_capacity(64),
            rx,
            pool,
        })
    }

    /// Submits `job` and waits (at most 10 s) for its result, as the server's loop does.
    fn trip(
        &mut self,
        id: u64,
        job: Box<dyn FnOnce() -> io::Result<u64> + Send>,
    ) -> io::Result<u64> {
        self.pool.submit(0, id, job);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            self.poll
                .poll(&mut self.events, Some(Duration::from_secs(1)))?;
            if !self.events.is_empty() {
                self.rx.drain();
            }
            if let Some(d) = self.pool.drain().pop_front() {
                return d
                    .result
                    .unwrap_or_else(|| Err(io::Error::other("job panicked")));
            }
            if Instant::now() > deadline {
                return Err(io::Error::other("no result from the pool in 10 s"));
            }
        }
    }
}

fn main() {
    let mut dir = if Path::new("/dev/shm").is_dir() {
        "/dev/shm".to_string()
    } else {
        "/tmp".to_string()
    };
    let mut count: u64 = 200_000;
    let mut seconds: f64 = 5.0;
    let mut workers = pool::default_size();
    let mut json = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| {
            args.next().unwrap_or_else(|| {
                eprintln!("stat_cost: {name} needs a value");
                std::process::exit(2)
            })
        };
        let bad = |v: &str| -> ! {
            eprintln!("stat_cost: bad value {v:?}\n{USAGE}");
            std::process::exit(2)
        };
        match a.as_str() {
            "--dir" => dir = val("--dir"),
            "--count" => {
                let v = val("--count");
                count = v.parse().unwrap_or_else(|_| bad(&v));
            }
            "--seconds" => {
                let v = val("--seconds");
                seconds = v.parse().unwrap_or_else(|_| bad(&v));
            }
            "--workers" => {
                let v = val("--workers");
                workers = v.parse().unwrap_or_else(|_| bad(&v));
            }
            "--json" => json = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                return;
            }
            other => bad(other),
        }
    }
    let count = count.clamp(1, 10_000_000);
    let limit = Duration::from_secs_f64(seconds.clamp(0.1, 60.0));
    if let Err(e) = run(&dir, count, limit, workers.max(1), json) {
        eprintln!("stat_cost: {e}");
        std::process::exit(1);
    }
}

fn run(dir: &str, count: u64, limit: Duration, workers: usize, json: bool) -> io::Result<()> {
    let home = tempdir(dir)?;
    std::fs::write(home.join("f"), b"0123456789")?;
    let result = rows(&home, count, limit, workers);
    std::fs::remove_dir_all(&home)?;
    let rows = result?;
    let inline = rows[1].cpu_ns();
    if !json {
        println!("test file on {dir}, {workers} pool workers");
        println!(
            "{:<44} {:>9} {:>12} {:>12} {:>10} {:>14}",
            "operation", "count", "CPU ns/op", "wall ns/op", "cswitch/op", "CPU / inline"
        );
    }
    for r in &rows {
        if json {
            println!(
                "{{\"op\":\"{}\",\"count\":{},\"cpu_ns\":{:.1},\"wall_ns\":{:.1},\"switches_per_op\":{:.2},\"workers\":{},\"dir\":\"{}\"}}",
                r.name.replace('"', "\\\""),
                r.ops,
                r.cpu_ns(),
                r.wall_ns(),
                r.switches_per_op(),
                workers,
                dir
            );
        } else {
            println!(
                "{:<44} {:>9} {:>12.0} {:>12.0} {:>10.2} {:>14.2}",
                r.name,
                r.ops,
                r.cpu_ns(),
                r.wall_ns(),
                r.switches_per_op(),
                r.cpu_ns() / inline
            );
        }
    }
    Ok(())
}

fn rows(home: &Path, count: u64, limit: Duration, workers: usize) -> io::Result<Vec<Row>> {
    let mut out = Vec::new();

    let cdir =
        std::ffi::CString::new(home.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
    // SAFETY: `cdir` is NUL-terminated and alive for the call.
    let dfd = unsafe { libc::open(cdir.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) };
    if dfd < 0 {
        return Err(io::Error::last_os_error());
    }
    let name = c"f";
    out.push(measure(
        "fstatat(dirfd, \"f\"), inline",
        count,
        limit,
        || {
            // SAFETY: an all-zero stat is valid; `name` is NUL-terminated; `dfd` is open.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: as above.
            if unsafe { libc::fstatat(dfd, name.as_ptr(), &mut st, 0) } != 0 {
                return Err(io::Error::last_os_error());
            }
            std::hint::black_box(st.st_size);
            Ok(())
        },
    )?);
    // SAFETY: `dfd` is ours and no longer used.
    unsafe { libc::close(dfd) };

    let fs: Arc<dyn Filesystem> = Arc::new(OsFilesystem::new(home)?);
    let vpath = Path::new("/f");
    {
        let fs = Arc::clone(&fs);
        out.push(measure(
            "OsFilesystem::stat(\"/f\"), inline",
            count,
            limit,
            || {
                std::hint::black_box(fs.stat(vpath)?.size);
                Ok(())
            },
        )?);
    }

    let mut reactor = Reactor::new(workers)?;
    let mut id = 0u64;
    out.push(measure("pool trip, empty job", count, limit, || {
        id += 1;
        reactor.trip(id, Box::new(|| Ok(0))).map(drop)
    })?);
    out.push(measure(
        "pool trip, OsFilesystem::stat(\"/f\") as job",
        count,
        limit,
        || {
            id += 1;
            let fs = Arc::clone(&fs);
            reactor
                .trip(
                    id,
                    Box::new(move || fs.stat(Path::new("/f")).map(|s| s.size)),
                )
                .map(drop)
        },
    )?);
    Ok(out)
}

/// A fresh directory under `base`, named after this process.
fn tempdir(base: &str) -> io::Result<std::path::PathBuf> {
    let p = Path::new(base).join(format!("ftpdlib-stat-cost.{}", std::process::id()));
    std::fs::create_dir(&p)?;
    Ok(p)
}
