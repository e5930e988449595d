#!/usr/bin/env python3
"""floor.py: server CPU per operation, the same raw-socket client for every server.

The client of demo/bench/floor.sh. One run does one workload against one server and prints
one JSON line: the operations done, the server's CPU time over them (user + system, every
thread of --pid, from the process CPU clock; /proc/PID/stat fields 14+15 beside it as a
check) and the client's wall time.

Two kinds of server:
  --kind ftp    an FTP server (ftpdlib, pyftpdlib) on --port; transfers go over EPSV
  --kind floor  the bare servers of demo/bench/floor/floor.c: `floor ctl` on --port for
                login and noop, `floor sink` on --port for stor, `floor src` for retr

Workloads (units in brackets):
  login  connect, 220, USER, PASS, QUIT, the server's close          [login]
  noop   NOOP on one logged-in session                               [NOOP]
  stor   --transfers uploads of --mib MiB from memory, 1 MiB sends   [MiB]
         (ftp: EPSV, STOR floor-up.bin, data, close, 226;
          floor: connect to the sink, data, shutdown, its "226")
  retr   --transfers downloads of the --mib MiB file floor.bin,      [MiB]
         1 MiB receives (ftp: EPSV, RETR, data to EOF, 226;
          floor: connect to the source, data to EOF)

The client speaks FTP over plain sockets (no ftplib), so what it costs is small and the same
for every server. Every loop stops after its count or --seconds, whichever comes first;
every socket has a 30 s timeout. Loopback only.
"""

import argparse
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402  (demo/bench/benchlib.py, beside this file)

TICK = 100.0  # USER_HZ: /proc/PID/stat counts CPU time in these
PIECE = memoryview(bytes(range(256)) * 4096)  # 1 MiB


class Server:
    """The CPU time of process pid: the process CPU clock (clock_getcpuclockid(3): every
    thread, ended ones included, in ns), encoded as the kernel does, ((~pid) << 3) | 2."""

    def __init__(self, pid):
        self.pid = pid
        self.clock = ((~pid) << 3) | 2

    def cpu(self):
        return time.clock_gettime(self.clock)

    def ticks(self):
        with open(f"/proc/{self.pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return int(rest[11]) + int(rest[12])  # fields 14 (utime) and 15 (stime)


class Control:
    """One control connection: send a line, read one reply (multi-line replies too)."""

    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=30)
        self.buf = b""

    def reply(self):
        while True:
            while b"\r\n" in self.buf:
                line, self.buf = self.buf.split(b"\r\n", 1)
                if len(line) >= 4 and line[3:4] == b" " and line[:3].isdigit():
                    return line
            data = self.sock.recv(4096)
            if not data:
                raise ConnectionError("closed by the server")
            self.buf += data

    def cmd(self, line, expect):
        self.sock.sendall(line.encode() + b"\r\n")
        r = self.reply()
        if not r.startswith(expect.encode()):
            raise RuntimeError(f"{line.split()[0]}: {r!r}")
        return r

    def login(self, user, password):
        if not self.reply().startswith(b"220"):
            raise RuntimeError("no 220 greeting")
        self.cmd(f"USER {user}", "331")
        self.cmd(f"PASS {password}", "230")

    def quit(self):
        self.cmd("QUIT", "221")
        while self.sock.recv(4096):  # the server closes; wait for it
            pass
        self.sock.close()

    def epsv(self, host):
        r = self.cmd("EPSV", "229").decode()
        port = int(r[r.index("(") + 1:r.rindex(")")].strip("|"))
        return socket.create_connection((host, port), timeout=30)


def send_mib(conn, mib):
    for _ in range(mib):
        conn.sendall(PIECE)


def read_to_end(conn, buf):
    got = 0
    while True:
        k = conn.recv_into(buf)
        if k == 0:
            return got
        got += k


def timed(a, srv, body):
    """Runs body(deadline) -> (ops, units) with the server's CPU read around it."""
    time.sleep(a.settle)
    c0, k0, t0 = srv.cpu(), srv.ticks(), time.monotonic()
    ops, units = body(t0 + a.seconds)
    t1 = time.monotonic()
    time.sleep(a.settle)  # let the server finish what the last reply started (a close)
    c1, k1 = srv.cpu(), srv.ticks()
    return ops, units, c1 - c0, (k1 - k0) / TICK, t1 - t0


def w_login(a, srv):
    def body(deadline):
        n = 0
        while n < a.count and time.monotonic() < deadline:
            c = Control(a.host, a.port)
            c.login(a.user, a.password)
            c.quit()
            n += 1
        return n, n
    return timed(a, srv, body)


def w_noop(a, srv):
    c = Control(a.host, a.port)
    c.login(a.user, a.password)

    def body(deadline):
        n = 0
        while n < a.count and time.monotonic() < deadline:
            c.cmd("NOOP", "200")
            n += 1
        return n, n
    try:
        return timed(a, srv, body)
    finally:
        c.quit()


def w_stor(a, srv):
    want = a.mib << 20
    if a.kind == "floor":
        def one():
            conn = socket.create_connection((a.host, a.port), timeout=30)
            send_mib(conn, a.mib)
            conn.shutdown(socket.SHUT_WR)
            if conn.recv(16) != b"226\r\n":
                raise RuntimeError("the sink did not confirm")
            conn.close()
        return transfers(a, srv, one, want)
    c = Control(a.host, a.port)
    c.login(a.user, a.password)
    c.cmd("TYPE I", "200")

    def one():
        conn = c.epsv(a.host)
        c.cmd("STOR floor-up.bin", "1")
        send_mib(conn, a.mib)
        conn.close()
        if not c.reply().startswith(b"226"):
            raise RuntimeError("STOR did not end with 226")
    try:
        return transfers(a, srv, one, want)
    finally:
        c.quit()


def w_retr(a, srv):
    want = a.mib << 20
    buf = bytearray(1 << 20)
    if a.kind == "floor":
        def one():
            conn = socket.create_connection((a.host, a.port), timeout=30)
            got = read_to_end(conn, buf)
            conn.close()
            if got != want:
                raise RuntimeError(f"the source sent {got} bytes, not {want}")
        return transfers(a, srv, one, want)
    c = Control(a.host, a.port)
    c.login(a.user, a.password)
    c.cmd("TYPE I", "200")

    def one():
        conn = c.epsv(a.host)
        c.cmd("RETR floor.bin", "1")
        got = read_to_end(conn, buf)
        conn.close()
        if not c.reply().startswith(b"226") or got != want:
            raise RuntimeError(f"RETR gave {got} bytes, not {want}")
    try:
        return transfers(a, srv, one, want)
    finally:
        c.quit()


def transfers(a, srv, one, size):
    def body(deadline):
        n = 0
        while n < a.count and time.monotonic() < deadline:
            one()
            n += 1
        return n, n * size / (1 << 20)
    return timed(a, srv, body)


WORKLOADS = {"login": w_login, "noop": w_noop, "stor": w_stor, "retr": w_retr}
UNITS = {"login": "login", "noop": "NOOP", "stor": "MiB", "retr": "MiB"}


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    benchlib.server_args(p)
    p.add_argument("--kind", choices=("ftp", "floor"), required=True)
    p.add_argument("--workload", choices=sorted(WORKLOADS), required=True)
    p.add_argument("--count", type=int, default=1000, help="operations (stor/retr: transfers)")
    p.add_argument("--mib", type=int, default=64, help="size of each transfer in MiB")
    p.add_argument("--seconds", type=float, default=30.0, help="time limit of the workload")
    p.add_argument("--settle", type=float, default=0.05,
                   help="pause before and after the measured window (s)")
    p.add_argument("--label", default="", help="copied into the JSON line")
    a = p.parse_args()
    benchlib.loopback_only(a, "floor.py")
    a.count = max(1, min(a.count, 100000))
    a.mib = max(1, min(a.mib, 1024))
    a.seconds = max(0.5, min(a.seconds, 300.0))
    socket.setdefaulttimeout(30)
    ops, units, cpu, ticks, wall = WORKLOADS[a.workload](a, Server(a.pid))
    benchlib.emit({
        "label": a.label, "workload": a.workload, "ops": ops, "units": units,
        "unit": UNITS[a.workload], "cpu_s": cpu, "proc_stat_cpu_s": ticks, "wall_s": wall,
        "cpu_us_per_unit": 1e6 * cpu / units if units else None,
        "wall_us_per_unit": 1e6 * wall / units if units else None,
    })


if __name__ == "__main__":
    main()
