//! The worker pool: work that may block (filesystem calls, password hashing, a user's own
//! authorizer) runs here, off the reactor thread, and comes back as a completion.
//!
//! The pool knows nothing of FTP. A job is a closure tagged with the slab key of the channel
//! that asked and a request id; a worker runs it, queues `(key, id, result)` and wakes the
//! reactor through a callback (the server's socket-pair waker). The reactor drains the queue
//! with [`WorkerPool::drain`] and hands each result to its channel, which drops it if it no
//! longer waits for that id (the session ended, or the slab key was reused): dropping a
//! result releases what it holds (an open file, a half-written upload).
//!
//! A job may also finish later, from another thread: [`WorkerPool::submit_deferred`] hands
//! it a [`Reply`] to send when it is done (an authorizer that asks a server of its own frees
//! the worker meanwhile). A job that panics is caught: its [`Reply`] is dropped unsent, its
//! result is `None` (the session answers 451 and goes on) and the worker carries on with the
//! next job. A job that leaves its thread unusable (an
//! impersonation that could not be undone) calls [`retire_current_worker`]: the worker ends
//! after the job and a fresh one takes its place.

use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;

/// A job: runs on a worker thread and yields a result.
pub type Job<C> = Box<dyn FnOnce() -> C + Send>;

/// A job that sends its result through a [`Reply`], now or later from any thread.
pub type DeferredJob<C> = Box<dyn FnOnce(Reply<C>) + Send>;

/// Called by a worker after queueing a result: wakes the reactor.
pub type WakeFn = Arc<dyn Fn() + Send + Sync>;

/// A finished job.
#[derive(Debug)]
pub struct Done<C> {
    /// Slab key of the channel that submitted the job.
    pub key: usize,
    /// The id it was submitted with.
    pub id: u64,
    /// The job's result; `None` if it panicked.
    pub result: Option<C>,
}

struct Task<C: Send + 'static> {
    reply: Reply<C>,
    job: DeferredJob<C>,
}

struct Shared<C: Send + 'static> {
    /// Jobs not yet taken, and whether the pool still stands (false: workers end).
    jobs: Mutex<Queue<C>>,
    /// Signalled once per job queued, and to every worker when the pool goes.
    ready: Condvar,
    out: Arc<Outbox<C>>,
}

struct Queue<C: Send + 'static> {
    tasks: VecDeque<Task<C>>,
    open: bool,
}

/// Where finished jobs wait for the reactor.
struct Outbox<C> {
    done: Mutex<VecDeque<Done<C>>>,
    wake: WakeFn,
    /// False once the pool is dropped: late results are dropped at once.
    open: AtomicBool,
}

/// The way back for one job's result: [`send`](Self::send) it once, from any thread. Dropped
/// unsent (the job panicked, or whoever held the reply gave up), it delivers `None`, so the
/// channel that waits always hears back.
pub struct Reply<C: Send + 'static> {
    key: usize,
    id: u64,
    out: Option<Arc<Outbox<C>>>,
}

impl<C: Send + 'static> Reply<C> {
    /// Delivers the result and wakes the reactor.
    pub fn send(mut self, result: C) {
        self.deliver(Some(result));
    }

    fn deliver(&mut self, result: Option<C>) {
        let Some(out) = self.out.take() else { return };
        if !out.open.load(Ordering::Acquire) {
            return;
        }
        lock(&out.done).push_back(Done {
            key: self.key,
            id: self.id,
            result,
        });
        (out.wake)();
    }
}

impl<C: Send + 'static> Drop for Reply<C> {
    fn drop(&mut self) {
        self.deliver(None);
    }
}

impl<C: Send + 'static> fmt::Debug for Reply<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reply")
            .field("key", &self.key)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

thread_local! {
    static RETIRE: Cell<bool> = const { Cell::new(false) };
}

/// Ends the calling worker thread once its current job has returned; a new worker replaces
/// it. For a job that leaves the thread in a state no later job may run in.
pub fn retire_current_worker() {
    RETIRE.with(|r| r.set(true));
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Jobs run outside these locks, so a poisoned lock only means a panic between two plain
    // queue operations; the queue itself is intact.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A fixed number of worker threads sharing one job queue.
pub struct WorkerPool<C: Send + 'static> {
    shared: Arc<Shared<C>>,
    size: usize,
}

impl<C: Send + 'static> fmt::Debug for WorkerPool<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerPool")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// The default number of workers: the machine's cores, at least 2.
pub fn default_size() -> usize {
    thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(2)
}

fn spawn<C: Send + 'static>(shared: Arc<Shared<C>>) -> std::io::Result<()> {
    thread::Builder::new()
        .name("ftpdlib-worker".into())
        .spawn(move || worker(shared))
        .map(drop)
}

fn worker<C: Send + 'static>(shared: Arc<Shared<C>>) {
    loop {
        // One worker wakes per job (notify_one), and idle workers sleep on the condition
        // variable, not on the lock: a trip costs one wake-up.
        let task = {
            let mut q = lock(&shared.jobs);
            loop {
                if let Some(t) = q.tasks.pop_front() {
                    break t;
                }
                if !q.open {
                    return;
                }
                q = shared.ready.wait(q).unwrap_or_else(|p| p.into_inner());
            }
        };
        let Task { reply, job } = task;
        // A panic drops the reply unsent on the way out, which delivers `None`.
        let _ = catch_unwind(AssertUnwindSafe(move || job(reply)));
        if RETIRE.with(|r| r.replace(false)) {
            if let Err(e) = spawn(Arc::clone(&shared)) {
                log::error!(target: crate::logger::ERROR, "can't replace a retired worker: {e}");
            }
            return;
        }
    }
}

impl<C: Send + 'static> WorkerPool<C> {
    /// Starts `size` workers (at least 1); `wake` is called after each result is queued.
    ///
    /// # Errors
    /// A thread could not be started.
    pub fn new(size: usize, wake: WakeFn) -> std::io::Result<WorkerPool<C>> {
        let shared = Arc::new(Shared {
            jobs: Mutex::new(Queue {
                tasks: VecDeque::new(),
                open: true,
            }),
            ready: Condvar::new(),
            out: Arc::new(Outbox {
                done: Mutex::new(VecDeque::new()),
                wake,
                open: AtomicBool::new(true),
            }),
        });
        let size = size.max(1);
        for _ in 0..size {
            spawn(Arc::clone(&shared))?;
        }
        Ok(WorkerPool { shared, size })
    }

    /// The number of workers.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Queues a job for the channel `key` under request `id`.
    pub fn submit(&self, key: usize, id: u64, job: Job<C>) {
        self.submit_deferred(key, id, Box::new(move |reply| reply.send(job())));
    }

    /// Queues a job that sends its result through the [`Reply`] it is given, before it
    /// returns or later from another thread; the worker is free as soon as it returns.
    pub fn submit_deferred(&self, key: usize, id: u64, job: DeferredJob<C>) {
        let reply = Reply {
            key,
            id,
            out: Some(Arc::clone(&self.shared.out)),
        };
        lock(&self.shared.jobs).tasks.push_back(Task { reply, job });
        self.shared.ready.notify_one();
    }

    /// Takes every finished job.
    pub fn drain(&self) -> VecDeque<Done<C>> {
        std::mem::take(&mut *lock(&self.shared.out.done))
    }
}

impl<C: Send + 'static> Drop for WorkerPool<C> {
    fn drop(&mut self) {
        // Closing the queue ends each worker after its current job; nobody waits for them, so
        // a job stuck on a dead disk cannot hang the owner. Results still queued are dropped
        // here, releasing what they hold.
        self.shared.out.open.store(false, Ordering::Release);
        {
            let mut q = lock(&self.shared.jobs);
            q.open = false;
            // Jobs never started are dropped unrun; their replies deliver nothing, as the
            // outbox is closed.
            q.tasks.clear();
        }
        self.shared.ready.notify_all();
        lock(&self.shared.out.done).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    fn wait_for<C: Send + 'static>(pool: &WorkerPool<C>, n: usize) -> Vec<Done<C>> {
        let mut out = Vec::new();
        let start = Instant::now();
        while out.len() < n && start.elapsed() < Duration::from_secs(10) {
            out.extend(pool.drain());
            thread::sleep(Duration::from_millis(1));
        }
        out
    }

    #[test]
    fn jobs_run_off_thread_and_wake() {
        let wakes = Arc::new(AtomicUsize::new(0));
        let w = Arc::clone(&wakes);
        let pool = WorkerPool::new(
            2,
            Arc::new(move || {
                w.fetch_add(1, Ordering::SeqCst);
            }),
        )
        .unwrap();
        let me = thread::current().id();
        for i in 0..10 {
            pool.submit(
                i,
                i as u64 * 10,
                Box::new(move || thread::current().id() != me),
            );
        }
        let mut done = wait_for(&pool, 10);
        done.sort_by_key(|d| d.key);
        assert_eq!(done.len(), 10);
        for (i, d) in done.iter().enumerate() {
            assert_eq!((d.key, d.id, d.result), (i, i as u64 * 10, Some(true)));
        }
        assert!(wakes.load(Ordering::SeqCst) >= 10);
    }

    #[test]
    fn a_panicking_job_is_a_none_and_the_worker_goes_on() {
        let pool = WorkerPool::new(1, Arc::new(|| {})).unwrap();
        pool.submit(1, 1, Box::new(|| panic!("job fails")));
        pool.submit(2, 2, Box::new(|| 7));
        let done = wait_for(&pool, 2);
        assert_eq!(done.len(), 2);
        assert!(done.iter().any(|d| d.key == 1 && d.result.is_none()));
        assert!(done.iter().any(|d| d.key == 2 && d.result == Some(7)));
    }

    #[test]
    fn a_deferred_job_frees_its_worker_and_answers_later() {
        let pool = WorkerPool::new(1, Arc::new(|| {})).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // The first job hands its reply to a thread of its own and returns at once ...
        pool.submit_deferred(
            1,
            1,
            Box::new(move |reply| {
                thread::spawn(move || {
                    let _ = rx.recv();
                    reply.send(1);
                });
            }),
        );
        // ... so the single worker runs the second while the first is still out.
        pool.submit(2, 2, Box::new(|| 2));
        let done = wait_for(&pool, 1);
        assert_eq!((done[0].key, done[0].result), (2, Some(2)));
        tx.send(()).unwrap();
        let done = wait_for(&pool, 1);
        assert_eq!((done[0].key, done[0].result), (1, Some(1)));
        // A reply dropped unsent is a failure, never silence.
        pool.submit_deferred(3, 3, Box::new(drop));
        let done = wait_for(&pool, 1);
        assert_eq!((done[0].key, done[0].result), (3, None));
    }

    #[test]
    fn a_retired_worker_is_replaced() {
        let pool = WorkerPool::new(1, Arc::new(|| {})).unwrap();
        pool.submit(
            1,
            1,
            Box::new(|| {
                retire_current_worker();
                thread::current().id()
            }),
        );
        let first = wait_for(&pool, 1);
        pool.submit(2, 2, Box::new(|| thread::current().id()));
        let second = wait_for(&pool, 1);
        assert_ne!(first[0].result, second[0].result);
    }
}
