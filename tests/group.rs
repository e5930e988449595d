//! ServerGroup over 127.0.0.1, seen from outside: two reactors on two threads behind
//! SO_REUSEPORT listeners. The limits they share (max_cons, max_cons_per_ip, failed-login
//! bans, the whole-server and per-user bandwidth) hold for the group, not per reactor;
//! passive ports are never granted twice; a reactor that panics takes only its own
//! sessions down; `GroupHandle` reaches every reactor; nothing leaks.
//!
//! Which reactor owns a session is read from the thread its on_connect hook ran on
//! (`ftpd-reactor-N`), looked up by the client's address. The kernel spreads connections
//! by a hash of the address pair, so tests open sessions until each reactor holds the ones
//! they need (a bounded number of tries).
//!
//! The descriptor count test wants no other test's sockets alive: it takes the write side
//! of a lock every other test holds the read side of.

mod util;

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::{mpsc, Arc, Barrier, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use ftpdlib::Limits;
use util::group::{
    assert_fds, assert_sessions_open, connect_retrying, knock, settled_fds, Group, PATIENCE,
    REACTORS,
};
use util::Client;

const KIB: u64 = 1024;

static ALONE: RwLock<()> = RwLock::new(());

/// Held by every test but the descriptor count.
fn together() -> RwLockReadGuard<'static, ()> {
    ALONE.read().unwrap_or_else(|p| p.into_inner())
}

/// Held by the descriptor count: no other test runs meanwhile.
fn alone() -> RwLockWriteGuard<'static, ()> {
    ALONE.write().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn sessions_spread_over_the_reactors_and_hooks_run_on_the_owner() {
    let _t = together();
    let g = Group::start(|_| {}, |_| {});
    let mut clients: Vec<Client> = (0..40).map(|_| g.login("user")).collect();
    let peers: Vec<SocketAddr> = clients
        .iter()
        .map(|c| c.stream.local_addr().unwrap())
        .collect();
    for c in &mut clients {
        c.cmd("QUIT", 221);
    }
    assert!(util::wait_until(PATIENCE, || g.spy.count("disconnect") == 40));
    assert_sessions_open(&g, 0);

    let events = g.spy.events.lock().unwrap().clone();
    let mut threads: HashMap<SocketAddr, BTreeSet<String>> = HashMap::new();
    let mut hooks: HashMap<SocketAddr, Vec<&str>> = HashMap::new();
    for (peer, hook, thread) in &events {
        threads.entry(*peer).or_default().insert(thread.clone());
        hooks.entry(*peer).or_default().push(hook);
    }
    for peer in &peers {
        assert_eq!(
            hooks[peer],
            ["connect", "login", "logout", "disconnect"],
            "{peer}"
        );
        assert_eq!(
            threads[peer].len(),
            1,
            "{peer}: hooks on {:?}",
            threads[peer]
        );
    }
    let all: BTreeSet<String> = events.iter().map(|e| e.2.clone()).collect();
    let per: Vec<usize> = (0..REACTORS)
        .map(|i| {
            let name = format!("ftpd-reactor-{i}");
            peers.iter().filter(|p| threads[*p].contains(&name)).count()
        })
        .collect();
    eprintln!("40 sessions over the reactors: {per:?}");
    assert_eq!(
        all,
        BTreeSet::from(["ftpd-reactor-0".to_string(), "ftpd-reactor-1".to_string()])
    );
    drop(events);
    g.stop().unwrap();
}

#[test]
fn max_cons_holds_across_the_group() {
    let _t = together();
    let g = Group::start(|_| {}, |g| g.max_cons = 5);
    const FULL: &str = "421 Too many connections. Service temporarily unavailable.";
    // 20 at once: whichever reactor accepts them, 5 in all get in.
    let (mut inside, refused) = knock(&g, 20, None);
    let on: Vec<usize> = inside.iter().map(|c| g.reactor(c)).collect();
    eprintln!("admitted sessions on reactors {on:?}");
    assert_eq!(
        (inside.len(), refused.len()),
        (5, 15),
        "strays {:?}",
        g.strays()
    );
    assert!(refused.iter().all(|l| l == FULL), "{refused:?}");
    assert_sessions_open(&g, 5);
    for c in &mut inside {
        c.cmd("NOOP", 200);
    }

    // Two leave: exactly two get in again.
    for mut c in inside.drain(..2) {
        c.cmd("QUIT", 221);
    }
    assert_sessions_open(&g, 3);
    let (more, refused) = knock(&g, 6, None);
    assert_eq!(
        (more.len(), refused.len()),
        (2, 4),
        "strays {:?}",
        g.strays()
    );
    assert!(refused.iter().all(|l| l == FULL), "{refused:?}");
    assert_sessions_open(&g, 5);
    drop((inside, more));
    assert_sessions_open(&g, 0);
    g.stop().unwrap();
}

#[test]
fn max_cons_per_ip_holds_across_the_group() {
    let _t = together();
    let g = Group::start(
        |_| {},
        |g| {
            g.max_cons = 100;
            g.max_cons_per_ip = 3;
        },
    );
    const SAME_IP: &str = "421 Too many connections from the same IP address.";
    let (a, b) = ([127, 0, 0, 2], [127, 0, 0, 3]);
    let (mut from_a, refused) = knock(&g, 16, Some(a));
    assert_eq!((from_a.len(), refused.len()), (3, 13));
    assert!(refused.iter().all(|l| l == SAME_IP), "{refused:?}");
    // Another address has slots of its own.
    let (from_b, refused) = knock(&g, 5, Some(b));
    assert_eq!((from_b.len(), refused.len()), (3, 2));
    assert!(refused.iter().all(|l| l == SAME_IP), "{refused:?}");
    assert_sessions_open(&g, 6);
    for c in &mut from_a {
        c.login("user", "pass");
    }
    // One of a's sessions leaves: one more of a's gets in, and only one.
    from_a.pop().unwrap().cmd("QUIT", 221);
    assert_sessions_open(&g, 5);
    let (again, refused) = knock(&g, 4, Some(a));
    assert_eq!((again.len(), refused.len()), (1, 3));
    assert_sessions_open(&g, 6);
    drop((from_a, from_b, again));
    g.stop().unwrap();
}

/// Asks every reactor whether `ip` is banned now; false if one does not answer.
fn banned_everywhere(g: &Group, ip: IpAddr) -> bool {
    let (tx, rx) = mpsc::channel();
    g.handle.call_each(move |_, s| {
        let _ = tx.send(s.is_banned(ip, Instant::now()));
    });
    (0..REACTORS).all(|_| rx.recv_timeout(PATIENCE).unwrap_or(false))
}

#[test]
fn a_failed_login_ban_holds_across_the_group() {
    let _t = together();
    let g = Group::start(
        |c| {
            c.flood.max_failed_logins = 3;
            c.flood.failed_login_window = Duration::from_secs(60);
            c.flood.ban_duration = Duration::from_secs(60);
        },
        |_| {},
    );
    let (bad, good) = ([127, 0, 0, 2], [127, 0, 0, 3]);
    let by = g.spread(2, || {
        let mut c = g.raw_from(bad);
        c.expect(220);
        c
    });
    let [mut on0, mut on1] = <[Vec<Client>; 2]>::try_from(by).ok().unwrap();
    // Three failures, two on reactor 0 and one on reactor 1: counted per reactor, none
    // would reach three.
    let (first, second) = on0.split_at_mut(1);
    for c in [&mut first[0], &mut on1[0], &mut second[0]] {
        c.cmd("USER user", 331);
        c.cmd("PASS wrong", 530);
    }
    assert_eq!(g.spy.count("login_failed"), 3);
    let ip = IpAddr::V4(Ipv4Addr::from(bad));
    assert!(util::wait_until(PATIENCE, || banned_everywhere(&g, ip)));

    // Every new connection of the address is refused, on whichever reactor.
    let (inside, refused) = knock(&g, 12, Some(bad));
    assert_eq!(inside.len(), 0);
    assert!(
        refused
            .iter()
            .all(|l| l == "421 Too many failed logins; try again later."),
        "{refused:?}"
    );
    assert_eq!(refused.len(), 12);
    // Another address is let in and logs in.
    let mut other = g.raw_from(good);
    other.expect(220);
    other.login("user", "pass");
    drop((on0, on1));
    g.stop().unwrap();
}

/// RETR of `name` over PASV, every read bounded; returns the bytes received.
fn bounded_retr(c: &mut Client, name: &str) -> u64 {
    let mut data = TcpStream::connect(c.pasv()).unwrap();
    data.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    c.send(format!("RETR {name}"));
    let r = c.read_reply();
    assert!(r.code == 150 || r.code == 125, "{:?}", r.lines);
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = data.read(&mut buf).expect("data read");
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    c.expect(226);
    total
}

/// Four RETRs of `len` bytes started together, two on each reactor, as "user"; returns
/// the seconds until all four ended.
fn four_retrs_take(g: &Group, len: u64) -> f64 {
    for i in 0..4 {
        let f = std::fs::File::create(g.root.join(&format!("f{i}"))).unwrap();
        f.set_len(len).unwrap();
    }
    let sessions: Vec<Client> = g
        .spread(2, || g.login("user"))
        .into_iter()
        .flatten()
        .collect();
    let start_line = Arc::new(Barrier::new(sessions.len() + 1));
    let threads: Vec<_> = sessions
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            let start_line = Arc::clone(&start_line);
            std::thread::spawn(move || {
                start_line.wait();
                bounded_retr(&mut c, &format!("f{i}"))
            })
        })
        .collect();
    start_line.wait();
    let start = Instant::now();
    for t in threads {
        assert_eq!(t.join().unwrap(), len);
    }
    start.elapsed().as_secs_f64()
}

/// The four transfers of [`four_retrs_take`] under a limit of `rate` for them together:
/// shared by the group, they take 4 * len / rate; per reactor they would take half that.
#[track_caller]
fn assert_group_rate(what: &str, secs: f64, len: u64, rate: u64) {
    let want = (4 * len) as f64 / rate as f64;
    eprintln!(
        "{what}: 4 x {len} B in {secs:.2} s, {:.0}% of the {want:.2} s the shared limit \
         allows",
        secs / want * 100.0
    );
    assert!(secs >= 0.85 * want, "{what}: {secs:.2} s, want {want:.2} s");
    assert!(secs <= 3.0 * want, "{what}: {secs:.2} s, want {want:.2} s");
}

#[test]
fn the_whole_server_limit_holds_across_the_group() {
    let _t = together();
    let rate = 512 * KIB;
    let g = Group::start(|c| c.max_rate = Limits::new(0, rate), |_| {});
    let secs = four_retrs_take(&g, 512 * KIB);
    assert_group_rate("whole-server limit", secs, 512 * KIB, rate);
    g.stop().unwrap();
}

#[test]
fn a_user_limit_holds_across_the_group() {
    let _t = together();
    let rate = 512 * KIB;
    let g = Group::start(
        |c| {
            c.user_limits.insert("user".into(), Limits::new(0, rate));
        },
        |_| {},
    );
    let secs = four_retrs_take(&g, 512 * KIB);
    assert_group_rate("per-user limit", secs, 512 * KIB, rate);
    g.stop().unwrap();
}

/// The first of `len` consecutive ports, under the ephemeral range, free on 127.0.0.1.
fn free_port_range(len: u16) -> u16 {
    let first = 20_000 + (std::process::id() % 400) as u16 * 16;
    (first..30_000)
        .step_by(usize::from(len))
        .take(300)
        .find(|&p| (p..p + len).all(|q| std::net::TcpListener::bind(("127.0.0.1", q)).is_ok()))
        .expect("a free port range")
}

#[test]
fn passive_ports_are_never_granted_twice() {
    let _t = together();
    let lo = free_port_range(4);
    let range = lo..=lo + 3;
    let r2 = range.clone();
    let g = Group::start(move |c| c.passive_ports = Some(r2), |_| {});
    let [on0, on1] = <[Vec<Client>; 2]>::try_from(g.spread(4, || g.login("user")))
        .ok()
        .unwrap();
    // Alternating reactors, each session asks for a port and keeps its listener.
    let mut sessions: Vec<(usize, Client)> = on0
        .into_iter()
        .map(|c| (0, c))
        .zip(on1.into_iter().map(|c| (1, c)))
        .flat_map(|(a, b)| [a, b])
        .collect();
    let mut granted: Vec<(usize, u16)> = Vec::new();
    let mut denied = Vec::new();
    for (i, (r, c)) in sessions.iter_mut().enumerate() {
        c.send("PASV");
        let reply = c.read_reply();
        match reply.code {
            227 => {
                let text = &reply.lines[0];
                let inner = &text[text.find('(').unwrap() + 1..text.find(')').unwrap()];
                let n: Vec<u16> = inner.split(',').map(|x| x.parse().unwrap()).collect();
                granted.push((*r, n[4] * 256 + n[5]));
            }
            425 => {
                assert_eq!(reply.lines, ["425 Can't open passive connection."]);
                denied.push(i);
            }
            _ => panic!("PASV: {:?}", reply.lines),
        }
        // The session goes on either way.
        c.cmd("NOOP", 200);
    }
    eprintln!("granted (reactor, port): {granted:?}; denied to sessions {denied:?}");
    let ports: BTreeSet<u16> = granted.iter().map(|g| g.1).collect();
    assert_eq!(
        ports.len(),
        granted.len(),
        "a port granted twice: {granted:?}"
    );
    assert!(ports.iter().all(|p| range.contains(p)), "{ports:?}");
    assert_eq!(granted.len(), 4, "every port of the range granted once");
    assert!(granted.iter().any(|g| g.0 == 0) && granted.iter().any(|g| g.0 == 1));

    // A port given back on one reactor can be granted on the other.
    let (holder, _) = granted[0];
    let (gi, gc) = sessions
        .iter_mut()
        .enumerate()
        .find(|(i, (r, _))| *r == holder && !denied.contains(i))
        .map(|(i, (_, c))| (i, c))
        .unwrap();
    gc.cmd("QUIT", 221);
    let waiting = denied
        .iter()
        .copied()
        .find(|&i| sessions[i].0 != holder)
        .expect("a denied session on the other reactor");
    assert_ne!(gi, waiting);
    let c = &mut sessions[waiting].1;
    let mut freed = None;
    assert!(util::wait_until(PATIENCE, || {
        c.send("PASV");
        let r = c.read_reply();
        if r.code == 227 {
            freed = Some(r);
            return true;
        }
        assert_eq!(r.code, 425, "{:?}", r.lines);
        false
    }));
    let text = freed.unwrap().lines[0].clone();
    let port_text = format!(",{},{}).", granted[0].1 >> 8, granted[0].1 & 0xff);
    assert!(text.ends_with(&port_text), "{text} after {port_text}");
    g.stop().unwrap();
}

#[test]
fn a_full_group_takes_a_reconnect_once_the_session_is_seen_gone() {
    let _t = together();
    // One slot: each session quits, and as soon as its client sees the connection end,
    // the next one connects, on whichever reactor; the slot must be free by then.
    let g = Group::start(|_| {}, |g| g.max_cons = 1);
    let mut c = g.connect();
    let mut on = [0usize; REACTORS];
    for round in 0..300 {
        on[g.reactor(&c)] += 1;
        c.cmd("QUIT", 221);
        assert!(c.closed_by_server());
        let mut next = g.raw();
        let r = next.read_reply();
        assert_eq!(
            r.code,
            220,
            "round {round}: {:?}; strays {:?}",
            r.lines,
            g.strays()
        );
        c = next;
    }
    eprintln!("sessions per reactor: {on:?}");
    g.stop().unwrap();
}

/// The number of sessions reactor `i` holds, by its own count.
fn session_count(g: &Group, i: usize) -> usize {
    let (tx, rx) = mpsc::channel();
    g.handle.reactors()[i].call(move |s| {
        let _ = tx.send(s.session_count());
    });
    rx.recv_timeout(PATIENCE).expect("the reactor answers")
}

#[test]
fn a_reactor_that_panics_takes_only_its_own_sessions_down() {
    let _t = together();
    const MAX: usize = 25;
    let g = Group::start(|_| {}, |g| g.max_cons = MAX);
    let sessions: Vec<Client> = (0..20).map(|_| g.login("user")).collect();
    let mut boom = g.connect();
    let dead = g.reactor(&boom);
    let live = 1 - dead;
    let (mut doomed, mut spared): (Vec<Client>, Vec<Client>) =
        sessions.into_iter().partition(|c| g.reactor(c) == dead);
    eprintln!(
        "reactor {dead} (with boom) holds {} sessions, reactor {live} {}",
        doomed.len(),
        spared.len()
    );
    assert!(!doomed.is_empty() && !spared.is_empty());

    // Logging in as boom panics reactor `dead`: its sessions end, the others go on.
    boom.cmd("USER boom", 331);
    boom.send("PASS pass");
    assert!(boom.closed_by_server());
    for c in &mut doomed {
        assert!(c.closed_by_server());
    }
    for c in &mut spared {
        c.cmd("NOOP", 200);
    }
    assert_eq!(g.stats.reactor_panics(), 1);
    // The dead sessions' slots are back: up to MAX sessions again, all on the live reactor.
    assert_sessions_open(&g, spared.len() as u64);
    let mut fresh = Vec::new();
    while spared.len() + fresh.len() < MAX {
        let mut c = connect_retrying(&g).unwrap_or_else(|refusal| {
            panic!(
                "{refusal} with {} + {} sessions open; the live reactor counts {}, \
                 sessions_open {}, stray sessions {:?}",
                spared.len(),
                fresh.len(),
                session_count(&g, live),
                g.stats.sessions_open(),
                g.strays()
            )
        });
        assert_eq!(g.reactor(&c), live);
        c.login("user", "pass");
        fresh.push(c);
    }
    assert_sessions_open(&g, MAX as u64);
    let (inside, refused) = knock(&g, 3, None);
    assert_eq!(inside.len(), 0);
    assert_eq!(
        refused,
        ["421 Too many connections. Service temporarily unavailable."; 3]
    );
    for c in spared.iter_mut().chain(&mut fresh) {
        c.cmd("NOOP", 200);
    }
    g.stop().expect("one reactor still served");
}

#[test]
fn a_group_whose_every_reactor_panics_fails() {
    let _t = together();
    let mut g = Group::start(|_| {}, |_| {});
    let mut c = g.connect();
    g.handle
        .call_each(|i, _| panic!("reactor {i} fails on purpose"));
    let err = g.join().expect_err("every reactor panicked");
    eprintln!("serve_forever: {err}");
    assert_eq!(g.stats.reactor_panics(), 2);
    assert!(c.closed_by_server());
    assert!(TcpStream::connect(g.addr).is_err(), "still listening");
    assert_sessions_open(&g, 0);
}

/// Runs a call on every reactor and waits for every answer: (index, thread, addresses,
/// sessions).
fn ask_each(g: &Group) -> Vec<(usize, String, Vec<SocketAddr>, usize)> {
    let (tx, rx) = mpsc::channel();
    g.handle.call_each(move |i, s| {
        let thread = std::thread::current().name().unwrap_or("?").to_string();
        let _ = tx.send((i, thread, s.local_addrs().to_vec(), s.session_count()));
    });
    let mut seen: Vec<_> = (0..REACTORS)
        .map(|_| rx.recv_timeout(PATIENCE).expect("every reactor answers"))
        .collect();
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "one call per reactor"
    );
    seen.sort();
    seen
}

#[test]
fn call_each_reaches_every_reactor_and_close_lets_sessions_finish() {
    let _t = together();
    let mut g = Group::start(|_| {}, |_| {});
    for (n, (i, thread, addrs, sessions)) in ask_each(&g).into_iter().enumerate() {
        assert_eq!(i, n);
        assert_eq!(thread, format!("ftpd-reactor-{n}"));
        assert_eq!(addrs, [g.addr]);
        assert_eq!(sessions, 0);
    }
    let [mut on0, mut on1] = <[Vec<Client>; 2]>::try_from(g.spread(2, || g.login("user")))
        .ok()
        .unwrap();
    let counts: Vec<usize> = ask_each(&g).into_iter().map(|a| a.3).collect();
    assert_eq!(counts, [2, 2]);

    // Calls run after the close sent before them: once both answered, nobody listens.
    g.handle.close();
    ask_each(&g);
    assert!(TcpStream::connect(g.addr).is_err(), "listening after close");
    for c in on0.iter_mut().chain(&mut on1) {
        c.cmd("NOOP", 200);
        c.retr("LIST");
    }
    // Reactor 0's sessions leave: reactor 1's go on, and the group with them.
    for c in &mut on0 {
        c.cmd("QUIT", 221);
    }
    assert_sessions_open(&g, 2);
    for c in &mut on1 {
        c.cmd("NOOP", 200);
    }
    assert!(g.serving(), "serve_forever returned with sessions open");
    for c in &mut on1 {
        c.cmd("QUIT", 221);
    }
    g.join().unwrap();
}

#[test]
fn a_stopped_group_leaves_no_descriptor_open() {
    let _t = alone();
    util::init();
    let before = settled_fds();
    {
        let g = Group::start(|_| {}, |_| {});
        std::fs::write(g.root.join("small"), util::random_bytes(100_000, 1)).unwrap();
        std::fs::write(g.root.join("big"), util::random_bytes(16 << 20, 2)).unwrap();
        let mut by = g.spread(3, || g.login("user"));
        let mut held = Vec::new();
        for (r, s) in by.iter_mut().enumerate() {
            // Whole transfers both ways and a listing; a passive listener left waiting;
            // a download stopped half-way.
            assert_eq!(s[0].retr("RETR small").len(), 100_000);
            s[0].stor(format!("STOR up{r}"), b"abc");
            s[0].retr("LIST");
            s[1].pasv();
            let mut data = TcpStream::connect(s[2].pasv()).unwrap();
            s[2].send("RETR big");
            let r = s[2].read_reply();
            assert!(r.code == 125 || r.code == 150, "{:?}", r.lines);
            let mut buf = [0u8; 4096];
            data.read_exact(&mut buf).unwrap();
            held.push(data);
        }
        g.stop().unwrap();
        for c in by.iter_mut().flatten() {
            assert!(c.closed_by_server());
        }
    }
    assert_fds(before);

    // And after a reactor panicked with sessions and listeners open.
    {
        let g = Group::start(|_| {}, |_| {});
        let mut by = g.spread(2, || g.login("user"));
        for c in by.iter_mut().flatten() {
            c.pasv();
        }
        g.handle.reactors()[0].call(|_| panic!("reactor 0 fails on purpose"));
        assert!(util::wait_until(PATIENCE, || g.stats.reactor_panics() == 1));
        for c in &mut by[0] {
            assert!(c.closed_by_server());
        }
        g.stop().unwrap();
    }
    assert_fds(before);
}
