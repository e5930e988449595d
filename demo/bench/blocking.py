#!/usr/bin/env python3
"""blocking.py: how long does one session wait while other sessions make the server work?

The client half of demo/bench/blocking.sh (standard library only). Every workload mode
starts a probe in a process of its own (so the workers' threads and Python's GIL do not
delay it): session B logs in and sends NOOP every 2 ms, timing each round trip, while
session(s) A in this process do the work. At the end one JSON line is printed with B's
round trips (p50, p99, max, count) and what A got done.

Modes (all talk to 127.0.0.1 only, all bounded in time and count):
  prepare  --root DIR [--files N] [--busy N]   make DIR/big with N empty files and/or
                                               DIR/c0..c{N-1} for the busy clients
  list     --cmd LIST|MLSD|NLST --path big --expect N --repeat R --seconds S
  login    --clients C --seconds S --login-user U --login-pass P
  busy     --clients C --seconds S
  probe    (started by the modes above)
  report   --results FILE.jsonl --out FILE.md  (the Markdown table)
"""

import argparse
import ftplib
import json
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402  (demo/bench/benchlib.py, beside this file)

HOST = "127.0.0.1"
SOCK_TIMEOUT = 60.0  # seconds, any single FTP exchange
SMALL = 4096  # bytes of the small file for RETR and STOR in the busy loop


def pct(sorted_vals, p):
    """Nearest-rank percentile of an already sorted list (None when empty)."""
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def summary_ms(vals):
    v = sorted(vals)
    return {
        "n": len(v),
        "p50": pct(v, 50),
        "p99": pct(v, 99),
        "max": v[-1] if v else None,
    }


def connect(port, user, password):
    return benchlib.login(HOST, port, user, password, timeout=SOCK_TIMEOUT)


# --- prepare ---------------------------------------------------------------------------

def cmd_prepare(a):
    if a.files:
        big = os.path.join(a.root, "big")
        os.makedirs(big, exist_ok=True)
        have = len(os.listdir(big))
        if have != a.files:
            for i in range(have, a.files):
                # os.open/close is the cheapest way to make an empty file.
                os.close(os.open(os.path.join(big, "f%06d" % i), os.O_CREAT | os.O_WRONLY, 0o644))
    if a.busy:
        data = b"x" * SMALL
        for i in range(a.busy):
            d = os.path.join(a.root, "c%d" % i)
            if os.path.isdir(os.path.join(d, "d")):
                os.rmdir(os.path.join(d, "d"))
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "small.bin"), "wb") as f:
                f.write(data)


# --- probe: session B ------------------------------------------------------------------

def cmd_probe(a):
    """Logs in and says "ready"; on a first line on stdin starts sending NOOP every
    interval, until a second line (or EOF) or --max-seconds; prints the round trips as
    JSON. Only round trips made while the work runs are recorded."""
    ftp = connect(a.port, a.user, a.password)
    stop = threading.Event()
    print("ready", flush=True)
    if sys.stdin.readline() == "":
        stop.set()

    def watch_stdin():
        sys.stdin.readline()
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    rtts, errors = [], []
    interval = a.interval_ms / 1000.0
    start = time.monotonic()
    nxt = start
    while not stop.is_set() and time.monotonic() - start < a.max_seconds:
        t0 = time.perf_counter()
        try:
            ftp.voidcmd("NOOP")
        except benchlib.FTP_ERRORS as e:
            errors.append(repr(e))
            break
        rtts.append((time.perf_counter() - t0) * 1000.0)
        # The next NOOP goes out on the next 2 ms tick; ticks missed while a round trip
        # was stalled are skipped, not sent in a burst.
        nxt += interval
        now = time.monotonic()
        if nxt > now:
            time.sleep(nxt - now)
        else:
            nxt = now
    benchlib.quit_or_close(ftp)
    out = summary_ms(rtts)
    out["errors"] = errors
    benchlib.emit(out)


class Probe:
    """Session B in a child process."""

    def __init__(self, a):
        cmd = [sys.executable, os.path.abspath(__file__), "probe", "--port", str(a.port),
               "--user", a.user, "--pass", a.password, "--max-seconds",
               str(a.seconds * 4 + 120)]
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True)
        line = self.p.stdout.readline().strip()
        if line != "ready":
            self.p.kill()
            raise SystemExit("probe did not log in (got %r)" % line)

    def _say(self, word):
        try:
            self.p.stdin.write(word + "\n")
            self.p.stdin.flush()
        except OSError:
            pass

    def start(self):
        self._say("start")

    def finish(self):
        self._say("stop")
        try:
            out, _ = self.p.communicate(timeout=SOCK_TIMEOUT + 10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            out, _ = self.p.communicate()
        for line in out.splitlines()[::-1]:
            if line.startswith("{"):
                return json.loads(line)
        return {"n": 0, "p50": None, "p99": None, "max": None, "errors": ["no probe output"]}


def run_with_probe(a, work):
    probe = Probe(a)
    probe.start()
    t0 = time.monotonic()
    try:
        res = work(a)
    finally:
        noop = probe.finish()
    res["work_seconds"] = round(time.monotonic() - t0, 3)
    res["noop"] = noop
    res["scenario"] = a.scenario
    res["server"] = a.server
    benchlib.emit(res)


# --- session A: one big listing, again --------------------------------------------------

def work_list(a):
    ftp = connect(a.port, a.user, a.password)
    ftp.voidcmd("TYPE A")
    durations, entries, errors = [], [], []
    deadline = time.monotonic() + a.seconds
    for _ in range(a.repeat):
        if time.monotonic() >= deadline:
            break
        t0 = time.perf_counter()
        try:
            conn = ftp.transfercmd("%s %s" % (a.cmd, a.path))
            lines = 0
            with conn:
                while True:
                    chunk = conn.recv(1 << 20)
                    if not chunk:
                        break
                    lines += chunk.count(b"\n")
            ftp.voidresp()
        except benchlib.FTP_ERRORS as e:
            errors.append(repr(e))
            break
        durations.append((time.perf_counter() - t0) * 1000.0)
        # One line per entry (a server may add a line or two, e.g. MLSD's cdir or LIST's
        # "total"): the listing is complete when at least --expect lines arrived.
        entries.append(lines)
    benchlib.quit_or_close(ftp)
    ok = all(n >= a.expect for n in entries) and bool(entries)
    return {"kind": "list", "listings": len(durations), "listing_ms": [round(d, 1) for d in durations],
            "entries": entries, "complete": ok, "errors": errors}


# --- session(s) A: hashed logins ----------------------------------------------------------

def work_login(a):
    deadline = time.monotonic() + a.seconds
    lock = threading.Lock()
    login_ms, errors = [], []

    def worker():
        while time.monotonic() < deadline:
            ftp = ftplib.FTP()
            try:
                ftp.connect(HOST, a.port, timeout=SOCK_TIMEOUT)
                t0 = time.perf_counter()
                ftp.login(a.login_user, a.login_pass)  # USER + PASS
                ms = (time.perf_counter() - t0) * 1000.0
                with lock:
                    login_ms.append(ms)
                ftp.quit()
            except benchlib.FTP_ERRORS as e:
                with lock:
                    errors.append(repr(e))
                ftp.close()
                time.sleep(0.05)

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(a.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline + SOCK_TIMEOUT * 2 - time.monotonic()))
    elapsed = time.monotonic() - t0
    s = summary_ms(login_ms)
    return {"kind": "login", "logins": len(login_ms), "logins_per_s": round(len(login_ms) / elapsed, 1),
            "login_ms": s, "errors": len(errors), "first_error": errors[0] if errors else None}


# --- session(s) A: busy clients -------------------------------------------------------------

def work_busy(a):
    deadline = time.monotonic() + a.seconds
    lock = threading.Lock()
    counts = {"loops": 0, "ops": 0}
    errors = []
    payload = b"y" * SMALL

    def worker(i):
        d = "c%d" % i
        try:
            ftp = connect(a.port, a.user, a.password)
        except benchlib.FTP_ERRORS as e:
            with lock:
                errors.append(repr(e))
            return
        ops = [
            ("LIST", lambda: ftp.retrlines("LIST " + d, lambda _l: None)),
            ("RETR", lambda: ftp.retrbinary("RETR %s/small.bin" % d, lambda _b: None)),
            ("STOR", lambda: ftp.storbinary("STOR %s/up.bin" % d, _Reader(payload))),
            ("MKD", lambda: ftp.mkd(d + "/d")),
            ("RMD", lambda: ftp.rmd(d + "/d")),
        ]
        while time.monotonic() < deadline:
            for name, op in ops:
                try:
                    op()
                    with lock:
                        counts["ops"] += 1
                except ftplib.error_perm as e:  # a refused command: go on
                    with lock:
                        errors.append("%s: %s" % (name, e))
                except benchlib.FTP_ERRORS as e:
                    with lock:
                        errors.append("%s: %r" % (name, e))
                    ftp.close()
                    return
            with lock:
                counts["loops"] += 1
        benchlib.quit_or_close(ftp)

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(a.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline + SOCK_TIMEOUT * 2 - time.monotonic()))
    elapsed = time.monotonic() - t0
    return {"kind": "busy", "loops": counts["loops"], "ops": counts["ops"],
            "ops_per_s": round(counts["ops"] / elapsed, 1), "errors": len(errors),
            "first_error": errors[0] if errors else None}


class _Reader:
    """A file-like source of one payload for storbinary."""

    def __init__(self, data):
        self.data, self.pos = data, 0

    def read(self, n):
        chunk = self.data[self.pos:self.pos + n]
        self.pos += len(chunk)
        return chunk


# --- report ---------------------------------------------------------------------------------

def fmt_ms(v):
    if v is None:
        return "–"
    if v >= 100:
        return "%.0f" % v
    if v >= 10:
        return "%.1f" % v
    return "%.2f" % v


def cell(r):
    if r is None:
        return "–"
    if r.get("na"):
        return r["na"]
    if r.get("error"):
        return "failed (%s)" % r["error"]
    n = r["noop"]
    if not n.get("n"):
        return "failed (no NOOP round trips)"
    return "%s / %s / %s" % (fmt_ms(n["p50"]), fmt_ms(n["p99"]), fmt_ms(n["max"]))


def work_note(r):
    if r is None or r.get("na") or r.get("error"):
        return "–"
    k = r.get("kind")
    n = r["noop"]["n"]
    if k == "list":
        s = "%d listing(s) of %s entries in %s ms" % (
            r["listings"], "/".join(str(e) for e in r["entries"]) or "0",
            "/".join("%.0f" % d for d in r["listing_ms"]) or "–")
        if not r["complete"]:
            s += ", **incomplete**"
    elif k == "login":
        s = "%d logins, %.1f/s, login p50 %s ms" % (
            r["logins"], r["logins_per_s"], fmt_ms(r["login_ms"]["p50"]))
        if r["errors"]:
            s += ", %d errors (%s)" % (r["errors"], r["first_error"])
    elif k == "busy":
        s = "%d loops, %d ops (%.1f/s)" % (r["loops"], r["ops"], r["ops_per_s"])
        if r["errors"]:
            s += ", %d errors (first: %s)" % (r["errors"], r["first_error"])
    else:
        s = ""
    if r["noop"].get("errors"):
        s += ", probe error: %s" % r["noop"]["errors"][0]
    return "%s; %d NOOPs in %.1f s" % (s, n, r["work_seconds"])


def cmd_report(a):
    rows, order = {}, []
    with open(a.results) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            key = r["scenario"]
            if key not in rows:
                rows[key] = {}
                order.append(key)
            rows[key][r["server"]] = r
    out = []
    out.append("| scenario | ftpdlib NOOP p50 / p99 / max (ms) | pyftpdlib NOOP p50 / p99 / max (ms) |")
    out.append("|---|---|---|")
    for key in order:
        f, p = rows[key].get("ftpdlib"), rows[key].get("pyftpdlib")
        out.append("| %s | %s | %s |" % (key, cell(f), cell(p)))
        if any(r and r.get("kind") == "login" and not r.get("na") for r in (f, p)):
            def rate(r):
                if r is None or r.get("na") or r.get("error") or r.get("kind") != "login":
                    return "–"
                return "%.1f logins/s" % r["logins_per_s"]
            out.append("| %s: logins per second, whole server | %s | %s |" % (
                key, rate(f), rate(p)))
    out.append("")
    out.append("What session(s) A got done meanwhile:")
    out.append("")
    out.append("| scenario | ftpdlib | pyftpdlib |")
    out.append("|---|---|---|")
    for key in order:
        f, p = rows[key].get("ftpdlib"), rows[key].get("pyftpdlib")
        out.append("| %s | %s | %s |" % (key, work_note(f), work_note(p)))
    text = "\n".join(out) + "\n"
    with open(a.out, "w") as f:
        f.write(text)
    sys.stdout.write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["prepare", "probe", "list", "login", "busy", "report"])
    ap.add_argument("--port", type=int)
    ap.add_argument("--user", default="bench")
    ap.add_argument("--pass", dest="password", default="")
    ap.add_argument("--scenario", default="")
    ap.add_argument("--server", default="")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--interval-ms", type=float, default=2.0)
    ap.add_argument("--max-seconds", type=float, default=120.0)
    ap.add_argument("--cmd", default="LIST", choices=["LIST", "MLSD", "NLST"])
    ap.add_argument("--path", default="big")
    ap.add_argument("--expect", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--login-user", default="hashed")
    ap.add_argument("--login-pass", default="")
    ap.add_argument("--root")
    ap.add_argument("--files", type=int, default=0)
    ap.add_argument("--busy", type=int, default=0)
    ap.add_argument("--results")
    ap.add_argument("--out")
    a = ap.parse_args()
    socket.setdefaulttimeout(SOCK_TIMEOUT)
    if a.mode == "prepare":
        cmd_prepare(a)
    elif a.mode == "probe":
        cmd_probe(a)
    elif a.mode == "report":
        cmd_report(a)
    else:
        work = {"list": work_list, "login": work_login, "busy": work_busy}[a.mode]
        run_with_probe(a, work)


if __name__ == "__main__":
    main()
