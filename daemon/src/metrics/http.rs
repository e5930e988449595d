//! The HTTP/1.1 server behind `--metrics`, with every resource bounded whatever clients do.
//!
//! - One accept thread (a mio poll on the listener and a waker for shutdown) and
//!   [`WORKERS`] threads that answer; a connection is handed over a channel of
//!   [`QUEUE`] places, and one that finds every worker busy and the queue full is closed
//!   at once. So the server holds at most `WORKERS + QUEUE` connections: with the
//!   listener, the poll and its waker, a bounded number of descriptors.
//! - Each connection has [`BUDGET`] in all to send its request head and take the answer
//!   (every read and write waits only for what is left of it), a head of at most
//!   [`MAX_HEAD`] bytes (431 past it), and one request: the answer carries
//!   `Connection: close` and anything pipelined behind the first request is read and
//!   dropped until the client closes or the budget ends.
//! - An accept error (out of descriptors: EMFILE, ENFILE) is logged once, and accepting
//!   resumes after [`BACKOFF`]; the listener never dies. The first accept that no longer
//!   fails is logged too, whether it finds a connection or none waiting.
//!
//! httparse (hyper's parser) reads the request line and headers (RFC 9112 section 2-5).

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc::{sync_channel, Receiver, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};

/// Connections answered at once.
pub(crate) const WORKERS: usize = 4;
/// Accepted connections waiting for a worker; one more is closed at once.
pub(crate) const QUEUE: usize = 4;
/// The time a connection has to send its request head and take the answer.
pub(crate) const BUDGET: Duration = Duration::from_secs(2);
/// The longest request head (request line and headers) read, in bytes.
pub(crate) const MAX_HEAD: usize = 8 * 1024;
/// The most headers in a request.
const MAX_HEADERS: usize = 32;
/// The pause after an accept error before accepting again.
pub(crate) const BACKOFF: Duration = Duration::from_millis(100);

const LISTENER: Token = Token(0);
const WAKE: Token = Token(1);

/// A request as the answering code sees it.
pub(crate) struct Request<'a> {
    pub(crate) method: &'a str,
    /// The request target without its query.
    pub(crate) path: &'a str,
}

/// An answer: status, content type, body, and an `Allow` header for 405.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    pub(crate) body: String,
    pub(crate) allow: Option<&'static str>,
}

/// Turns a request into an answer; called on the worker threads.
pub(crate) type Handler = dyn Fn(&Request<'_>) -> Answer + Send + Sync;

/// The running server: stopped and joined when dropped.
pub(crate) struct HttpServer {
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        // The accept thread stops at the wake-up; if the wake-up fails, it would block the
        // join forever, so it is then left to end with the process.
        if self.waker.wake().is_ok() {
            if let Some(t) = self.thread.take() {
                // A panic on that thread was already reported on stderr.
                let _ = t.join();
            }
        }
    }
}

/// Binds `addr` and serves `handler` from threads of their own; returns the server and
/// the address bound (its real port when `addr` asked for port 0).
///
/// # Errors
/// When the address can't be bound or a thread or the poll can't be made.
pub(crate) fn serve(
    addr: SocketAddr,
    handler: Arc<Handler>,
) -> std::io::Result<(HttpServer, SocketAddr)> {
    let std_listener = std::net::TcpListener::bind(addr)?;
    std_listener.set_nonblocking(true)?;
    let bound = std_listener.local_addr()?;
    let mut listener = TcpListener::from_std(std_listener);
    let poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);

    let (tx, rx) = sync_channel::<TcpStream>(QUEUE);
    let rx = Arc::new(Mutex::new(rx));
    let mut workers = Vec::with_capacity(WORKERS);
    for i in 0..WORKERS {
        let rx = Arc::clone(&rx);
        let handler = Arc::clone(&handler);
        workers.push(
            std::thread::Builder::new()
                .name(format!("metrics-{i}"))
                .spawn(move || work(&rx, &*handler))?,
        );
    }
    let thread = std::thread::Builder::new()
        .name("metrics".to_string())
        .spawn(move || {
            accept_loop(poll, &listener, &tx);
            // Closing the channel ends each worker after its current connection, which
            // takes at most BUDGET.
            drop(tx);
            for w in workers {
                let _ = w.join();
            }
        })?;
    Ok((
        HttpServer {
            waker,
            thread: Some(thread),
        },
        bound,
    ))
}

/// Accepts until woken to stop; hands each connection to a worker or closes it.
fn accept_loop(
    mut poll: Poll,
    listener: &TcpListener,
    tx: &std::sync::mpsc::SyncSender<TcpStream>,
) {
    let mut events = Events::with_capacity(8);
    // After an accept error the pending connections raise no new readiness event (the
    // poll is edge-triggered), so the loop retries on its own after BACKOFF.
    let mut backoff: Option<Duration> = None;
    let mut failing = false;
    loop {
        if let Err(e) = poll.poll(&mut events, backoff) {
            if e.kind() != ErrorKind::Interrupted {
                log::error!(target: ftpdlib::logger::LOG, "metrics: poll failed: {e}");
                std::thread::sleep(BACKOFF);
            }
            continue;
        }
        if events.iter().any(|e| e.token() == WAKE) {
            return;
        }
        backoff = None;
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    accepting_again(&mut failing);
                    let stream = TcpStream::from(stream);
                    match tx.try_send(stream) {
                        Ok(()) => {}
                        // Every worker busy and the queue full: closed at once.
                        Err(TrySendError::Full(s) | TrySendError::Disconnected(s)) => drop(s),
                    }
                }
                // Linux takes a descriptor before it looks for a connection: EMFILE comes
                // with none waiting too (say, once the loop has taken the last descriptor
                // and drains on). So no connection to accept is a recovery as well.
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    accepting_again(&mut failing);
                    break;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // The peer gave up before the accept: nothing to do.
                Err(e) if e.kind() == ErrorKind::ConnectionAborted => {}
                Err(e) => {
                    if !failing {
                        failing = true;
                        log::warn!(
                            target: ftpdlib::logger::LOG,
                            "metrics: accept failed, retrying every {} ms: {e}",
                            BACKOFF.as_millis()
                        );
                    }
                    backoff = Some(BACKOFF);
                    break;
                }
            }
        }
    }
}

/// An accept succeeded or found nothing to accept: after a failure, says so once.
fn accepting_again(failing: &mut bool) {
    if std::mem::take(failing) {
        log::info!(target: ftpdlib::logger::LOG, "metrics: accepting again");
    }
}

/// A worker: answers connections until the channel closes.
fn work(rx: &Mutex<Receiver<TcpStream>>, handler: &Handler) {
    loop {
        // A poisoned lock means another worker panicked while waiting, which it can't do
        // while holding it (recv doesn't panic); take the receiver anyway.
        let next = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        match next {
            Ok(stream) => connection(stream, handler),
            Err(_) => return,
        }
    }
}

/// What's left of the budget, or None once it is spent.
fn left(deadline: Instant) -> Option<Duration> {
    let d = deadline.saturating_duration_since(Instant::now());
    (!d.is_zero()).then_some(d)
}

/// Reads one request head and writes its answer within [`BUDGET`]; any failure closes
/// the connection (a client that left or was too slow is no error worth a line).
fn connection(mut stream: TcpStream, handler: &Handler) {
    let deadline = Instant::now() + BUDGET;
    if stream.set_nonblocking(false).is_err() {
        return;
    }
    let mut buf = [0u8; MAX_HEAD];
    let mut len = 0;
    let answer = loop {
        let Some(wait) = left(deadline) else { return };
        if stream.set_read_timeout(Some(wait)).is_err() {
            return;
        }
        match stream.read(&mut buf[len..]) {
            Ok(0) => return,
            Ok(n) => len += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(_)) => {
                let (Some(method), Some(target)) = (req.method, req.path) else {
                    // httparse fills both in a complete request.
                    break plain(400, "bad request\n");
                };
                let path = target.split('?').next().unwrap_or("");
                let answer = handler(&Request { method, path });
                break (answer, method == "HEAD", req.version == Some(0));
            }
            Ok(httparse::Status::Partial) if len == buf.len() => {
                break plain(431, "request header too large\n");
            }
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => {
                break plain(431, "too many request headers\n");
            }
            Err(_) => break plain(400, "bad request\n"),
        }
    };
    let (answer, head, http10) = answer;
    let bytes = encode(&answer, head, http10);
    let mut sent = 0;
    while sent < bytes.len() {
        let Some(wait) = left(deadline) else { return };
        if stream.set_write_timeout(Some(wait)).is_err() {
            return;
        }
        match stream.write(&bytes[sent..]) {
            Ok(0) => return,
            Ok(n) => sent += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
    // A lingering close: closing with unread bytes (a pipelined request) would send a
    // reset that can discard the answer at the client before it reads it, so what is
    // left is read and dropped until the client closes or the budget is spent.
    if stream.shutdown(Shutdown::Write).is_err() {
        return;
    }
    while let Some(wait) = left(deadline) {
        if stream.set_read_timeout(Some(wait)).is_err() {
            return;
        }
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// A text answer to a request that could not be read.
fn plain(status: u16, body: &str) -> (Answer, bool, bool) {
    let answer = Answer {
        status,
        content_type: "text/plain",
        body: body.to_string(),
        allow: None,
    };
    (answer, false, false)
}

/// The reason phrase of the statuses this server sends (RFC 9110 section 15).
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// The answer on the wire; a HEAD answer has the headers of the GET one and no body.
fn encode(answer: &Answer, head: bool, http10: bool) -> Vec<u8> {
    let version = if http10 { "HTTP/1.0" } else { "HTTP/1.1" };
    let mut out = format!(
        "{version} {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        answer.status,
        reason(answer.status),
        answer.content_type,
        answer.body.len()
    );
    if let Some(allow) = answer.allow {
        out.push_str("Allow: ");
        out.push_str(allow);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    if !head {
        out.push_str(&answer.body);
    }
    out.into_bytes()
}
