//! Embedding the FTP server in a mio program that has sockets of its own.
//!
//! ```text
//! cargo run --example embed_mio -- [FTP_ADDR] [ECHO_ADDR] [DIR]
//! ```
//!
//! One thread and one `Poll` carry two services: an FTP server for DIR (default: the current
//! directory, anonymous read-only) on FTP_ADDR (default 127.0.0.1:2121), and the host's own
//! line-echo service on ECHO_ADDR (default 127.0.0.1:2122). Sending the line `shutdown` to
//! the echo service closes the FTP server and ends the program with every socket closed.
//! The program prints `ftp=ADDR echo=ADDR` once both listen.

#[path = "common.rs"]
mod common;

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Instant;

use ftpdlib::{Config, DummyAuthorizer, FtpServer};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

/// The host's tokens: the echo listener and its clients. The FTP server gets the range from
/// `FTP_TOKENS` up.
const ECHO_LISTENER: Token = Token(0);
const FTP_TOKENS: Token = Token(1 << 20);

struct EchoClient {
    stream: TcpStream,
    line: Vec<u8>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let mut args = std::env::args().skip(1);
    let ftp_addr = args.next().unwrap_or_else(|| "127.0.0.1:2121".into());
    let echo_addr = args.next().unwrap_or_else(|| "127.0.0.1:2122".into());
    let dir = match args.next() {
        Some(d) => d.into(),
        None => common::served_dir()?,
    };

    let mut auth = DummyAuthorizer::new();
    auth.add_anonymous(&dir, "elr")?;
    let mut ftp = FtpServer::bind(ftp_addr.as_str(), Config::new(Arc::new(auth)))?;

    let mut poll = Poll::new()?;
    let mut echo = TcpListener::bind(echo_addr.parse()?)?;
    poll.registry()
        .register(&mut echo, ECHO_LISTENER, Interest::READABLE)?;
    ftp.register(poll.registry(), FTP_TOKENS)?;
    println!("ftp={} echo={}", ftp.local_addrs()[0], echo.local_addr()?);
    io::stdout().flush()?;

    let mut clients: HashMap<Token, EchoClient> = HashMap::new();
    let mut next = 1usize;
    let mut events = Events::with_capacity(256);
    let mut running = true;
    while running {
        let timeout = ftp
            .next_timeout()
            .map(|d| d.saturating_duration_since(Instant::now()));
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e.into());
        }
        let now = Instant::now();
        for event in events.iter() {
            let token = event.token();
            if ftp.owns(token) {
                ftp.handle_event(event, now);
            } else if token == ECHO_LISTENER {
                loop {
                    match echo.accept() {
                        Ok((mut stream, _)) => {
                            let t = Token(next);
                            next += 1;
                            poll.registry()
                                .register(&mut stream, t, Interest::READABLE)?;
                            clients.insert(
                                t,
                                EchoClient {
                                    stream,
                                    line: Vec::new(),
                                },
                            );
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e.into()),
                    }
                }
            } else if let Some(c) = clients.get_mut(&token) {
                let (closed, shutdown) = serve_echo(c);
                if closed || shutdown {
                    if let Some(mut c) = clients.remove(&token) {
                        poll.registry().deregister(&mut c.stream)?;
                    }
                }
                if shutdown {
                    running = false;
                }
            }
        }
        ftp.handle_timeouts(Instant::now());
    }
    // Close every FTP session and listener and leave nothing registered.
    ftp.deregister(poll.registry());
    println!("stopped");
    Ok(())
}

/// Echoes complete lines back; returns (connection closed, shutdown requested).
fn serve_echo(c: &mut EchoClient) -> (bool, bool) {
    let mut buf = [0u8; 1024];
    loop {
        match c.stream.read(&mut buf) {
            Ok(0) => return (true, false),
            Ok(n) => c.line.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return (true, false),
        }
    }
    while let Some(i) = c.line.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = c.line.drain(..=i).collect();
        if line.trim_ascii() == b"shutdown" {
            return (false, true);
        }
        // Short lines on a fresh socket: a blocking write loop is fine for a demo.
        if c.stream.write_all(&line).is_err() {
            return (true, false);
        }
    }
    (false, false)
}
