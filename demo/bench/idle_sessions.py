"""idle_sessions.py: log N sessions in, leave them idle, and read the server's VmRSS.

Run by idle_sessions.sh, which starts the server; by hand:

    python3 idle_sessions.py --port 2121 --pid PID --user bench --password secret -n 10000

One thread and one selector drive every session: connect (from 127.0.0.1 ... 127.0.0.SOURCES
in turn, so a large N does not run out of source ports towards one address), read the 220,
USER, read the 331, PASS, read the 230, then nothing. At most WINDOW sessions are logging in
at a time (connected, not yet at 230), so the server's listen backlog never overflows: an
overflow would cost the client a SYN retransmission, a second or more, and measure the
kernel's back-off rather than the server. Prints the server's VmRSS (KiB, from
/proc/PID/status) before the first connection and with every session logged in, and the
growth per session; exits 1 if any session fails or the whole run passes --timeout seconds.

With --probe K, K more logins follow while the N sessions stay logged in, one at a time
(connect, 220, USER, PASS, QUIT, the server's close), each timed: their p50 and p99 say how
long a new client waits for its login on a server that holds N sessions. --json prints one
JSON line (for demo/bench/floor.sh) instead of the text.
"""

import argparse
import json
import math
import selectors
import socket
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit(f"no VmRSS for pid {pid}")


class Session:
    """One control connection's login, as a tiny state machine over its replies."""

    STEPS = [(b"220", b"USER {u}\r\n"), (b"331", b"PASS {p}\r\n"), (b"230", None)]

    def __init__(self, sock, user, password):
        self.sock = sock
        self.buf = b""
        self.step = 0
        self.user = user
        self.password = password
        self.done = False

    def on_readable(self):
        data = self.sock.recv(4096)
        if not data:
            raise ConnectionError("closed by the server")
        self.buf += data
        while b"\r\n" in self.buf and not self.done:
            line, self.buf = self.buf.split(b"\r\n", 1)
            want, send = self.STEPS[self.step]
            if line[3:4] == b"-":  # a multi-line reply goes on
                continue
            if not line.startswith(want):
                raise ConnectionError(f"expected {want!r}, got {line!r}")
            if send is None:
                self.done = True
                return
            self.sock.sendall(
                send.replace(b"{u}", self.user.encode()).replace(
                    b"{p}", self.password.encode()
                )
            )
            self.step += 1


def probe_logins(port, user, password, k, timeout):
    """k logins one after another, each timed from connect to the server's close; returns
    the latencies in seconds, sorted."""
    took = []
    for _ in range(k):
        t0 = time.monotonic()
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        buf = b""
        for want, send in ((b"220", b"USER %s\r\n" % user.encode()),
                           (b"331", b"PASS %s\r\n" % password.encode()),
                           (b"230", b"QUIT\r\n"), (b"221", None)):
            while True:
                while b"\r\n" in buf:
                    line, buf = buf.split(b"\r\n", 1)
                    if line[3:4] != b"-":
                        break
                else:
                    data = s.recv(4096)
                    if not data:
                        raise ConnectionError("closed by the server")
                    buf += data
                    continue
                break
            if not line.startswith(want):
                raise ConnectionError(f"expected {want!r}, got {line!r}")
            if send is not None:
                s.sendall(send)
        while s.recv(4096):  # until the server closes
            pass
        s.close()
        took.append(time.monotonic() - t0)
    return sorted(took)


def pct(sorted_xs, p):
    """The p-th percentile (nearest rank) of a sorted list."""
    i = max(0, min(len(sorted_xs) - 1, math.ceil(p / 100 * len(sorted_xs)) - 1))
    return sorted_xs[i]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--sources", type=int, default=8)
    ap.add_argument("--window", type=int, default=64,
                    help="sessions logging in at a time (connected, not yet logged in)")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--hold", type=float, default=2.0, help="seconds idle before measuring")
    ap.add_argument("--probe", type=int, default=0,
                    help="logins timed one by one with every session logged in (max 10000)")
    ap.add_argument("--json", action="store_true", help="one JSON line instead of text")
    ap.add_argument("--label", default="", help="copied into the JSON line")
    a = ap.parse_args()

    before = rss_kib(a.pid)
    sel = selectors.DefaultSelector()
    sessions = []
    done = 0
    start = time.monotonic()
    opened = 0
    while done < a.n:
        if time.monotonic() - start > a.timeout:
            sys.exit(f"timed out: {done} of {a.n} sessions logged in")
        # Keep WINDOW sessions logging in; the 220 tells that a connection is up.
        while opened < a.n and opened - done < max(1, a.window):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((f"127.0.0.{1 + opened % a.sources}", 0))
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", a.port))  # EINPROGRESS; a failure shows on recv
            sess = Session(s, a.user, a.password)
            sessions.append(sess)
            sel.register(s, selectors.EVENT_READ, sess)
            opened += 1
        for key, _ in sel.select(timeout=1.0):
            sess = key.data
            sess.on_readable()
            if sess.done:
                sel.unregister(sess.sock)
                done += 1
    login_s = time.monotonic() - start
    time.sleep(a.hold)
    after = rss_kib(a.pid)
    growth = after - before
    took = probe_logins(a.port, a.user, a.password, max(0, min(a.probe, 10000)), 30)
    if a.json:
        print(json.dumps({
            "label": a.label, "part": "sessions", "sessions": a.n, "login_s": login_s,
            "rss_before_kib": before, "rss_after_kib": after,
            "probes": len(took),
            "probe_p50_ms": 1e3 * pct(took, 50) if took else None,
            "probe_p99_ms": 1e3 * pct(took, 99) if took else None,
            "probe_max_ms": 1e3 * took[-1] if took else None,
        }), flush=True)
    else:
        print(f"sessions         {a.n}")
        print(f"login time       {login_s:.1f} s")
        print(f"VmRSS before     {before / 1024:.1f} MiB")
        print(f"VmRSS with all   {after / 1024:.1f} MiB")
        print(f"growth           {growth / 1024:.1f} MiB")
        print(f"per session      {growth * 1024 / a.n:.0f} bytes")
        if took:
            print(f"login p50, p99   {1e3 * pct(took, 50):.2f} ms, {1e3 * pct(took, 99):.2f} ms"
                  f" ({len(took)} logins with {a.n} sessions in)")
    for sess in sessions:
        sess.sock.close()


if __name__ == "__main__":
    main()
