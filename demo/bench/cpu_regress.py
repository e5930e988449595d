#!/usr/bin/env python3
"""cpu_regress.py: server CPU per FTP operation, read from the server process's CPU clock.

The client of demo/bench/cpu_regress.sh. It logs in to a server on 127.0.0.1, runs the
workloads below one after another and prints one JSON object per workload: the operations
done, the server's CPU time over them (user + system, all threads) and the CPU per unit.

The server's CPU is read with clock_gettime() on the process CPU clock of --pid (the
clock clock_getcpuclockid(3) names: user + system time of every thread of the process,
in nanoseconds, threads that have ended included). /proc/PID/stat fields 14 and 15 hold
the same sum in clock ticks (10 ms); they are printed beside it as a check.

Workloads (units in brackets):
  login   connect, greeting, USER, PASS, QUIT, close          [login]
  noop    NOOP on one logged-in session                        [NOOP]
  size    SIZE of a small file (one stat)                      [SIZE]
  list    EPSV, LIST of a 100-file directory, read to the end  [LIST]
  retr    RETR of a --mib MiB file, read in 1 MiB pieces       [MiB]
  stor    STOR of --mib MiB from memory; DELE afterwards,
          outside the measured window                          [MiB]
  idle    nothing for 1 s: the server's CPU while idle         [s]

Every loop stops after --count operations (transfers for retr/stor) or --seconds,
whichever comes first; every socket has a 30 s timeout.
"""

import argparse
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402  (demo/bench/benchlib.py, beside this file)

TICK = 100.0  # USER_HZ: /proc/PID/stat counts CPU time in these


def cpu_clock(pid):
    # clock_getcpuclockid(pid): CPUCLOCK_SCHED (2) of the whole process, in the kernel's
    # encoding of a process CPU clock id: ((~pid) << 3) | 2.
    return ((~pid) << 3) | 2


class Server:
    def __init__(self, pid):
        self.pid = pid
        self.clock = cpu_clock(pid)

    def cpu(self):
        return time.clock_gettime(self.clock)

    def ticks(self):
        with open(f"/proc/{self.pid}/stat") as f:
            stat = f.read()
        # The name (field 2) may hold spaces; fields after it start after the last ')'.
        rest = stat[stat.rindex(")") + 2:].split()
        return int(rest[11]) + int(rest[12])  # fields 14 (utime) and 15 (stime)


def login(a):
    return benchlib.login(a.host, a.port, a.user, a.password, timeout=30)


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
            ftp = login(a)
            ftp.quit()
            ftp.close()
            n += 1
        return n, n
    return timed(a, srv, body)


def w_simple(cmd, expect):
    def run(a, srv):
        ftp = login(a)
        try:
            def body(deadline):
                n = 0
                while n < a.count and time.monotonic() < deadline:
                    r = ftp.sendcmd(cmd)
                    if not r.startswith(expect):
                        raise RuntimeError(f"{cmd}: {r}")
                    n += 1
                return n, n
            return timed(a, srv, body)
        finally:
            ftp.quit()
    return run


def w_list(a, srv):
    ftp = login(a)
    ftp.sendcmd("TYPE A")
    buf = bytearray(1 << 16)
    try:
        def body(deadline):
            n = 0
            while n < a.count and time.monotonic() < deadline:
                conn = ftp.transfercmd("LIST list100")
                got = benchlib.read_to_end(conn, buf)
                conn.close()
                ftp.voidresp()
                if got < 100 * 40:
                    raise RuntimeError(f"LIST gave {got} bytes, fewer than 100 lines")
                n += 1
            return n, n
        return timed(a, srv, body)
    finally:
        ftp.quit()


def transfers(a, srv, body, after=lambda: None):
    """Runs body, one transfer measured by timed(), up to --count times or for --seconds,
    then after() outside the measured window; returns the sums of timed()'s results."""
    ops = units = 0
    cpu = ticks = wall = 0.0
    deadline = time.monotonic() + a.seconds
    while ops < a.count and time.monotonic() < deadline:
        o, u, c, k, w = timed(a, srv, body)
        ops, units, cpu, ticks, wall = ops + o, units + u, cpu + c, ticks + k, wall + w
        after()
    return ops, units, cpu, ticks, wall


def w_retr(a, srv):
    ftp = login(a)
    ftp.sendcmd("TYPE I")
    buf = bytearray(1 << 20)
    want = a.mib << 20

    def body(_):
        conn = ftp.transfercmd("RETR big.bin")
        got = benchlib.read_to_end(conn, buf)
        conn.close()
        ftp.voidresp()
        if got != want:
            raise RuntimeError(f"RETR gave {got} bytes, not {want}")
        return 1, got / (1 << 20)

    try:
        return transfers(a, srv, body)
    finally:
        ftp.quit()


def w_stor(a, srv):
    ftp = login(a)
    ftp.sendcmd("TYPE I")
    piece = memoryview(bytes(range(256)) * 4096)  # 1 MiB

    def body(_):
        conn = ftp.transfercmd("STOR up.bin")
        for _ in range(a.mib):
            conn.sendall(piece)
        conn.close()
        ftp.voidresp()
        return 1, float(a.mib)

    def check_and_delete():
        size = ftp.size("up.bin")
        if size != a.mib << 20:
            raise RuntimeError(f"STOR stored {size} bytes, not {a.mib << 20}")
        ftp.delete("up.bin")

    try:
        return transfers(a, srv, body, check_and_delete)
    finally:
        ftp.quit()


def w_idle(a, srv):
    c0, k0, t0 = srv.cpu(), srv.ticks(), time.monotonic()
    time.sleep(1.0)
    t1 = time.monotonic()
    return 1, t1 - t0, srv.cpu() - c0, (srv.ticks() - k0) / TICK, t1 - t0


WORKLOADS = {
    "idle": (w_idle, "s"),
    "login": (w_login, "login"),
    "noop": (w_simple("NOOP", "200"), "NOOP"),
    "size": (w_simple("SIZE small.txt", "213"), "SIZE"),
    "list": (w_list, "LIST"),
    "retr": (w_retr, "MiB"),
    "stor": (w_stor, "MiB"),
}


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    benchlib.server_args(p)
    p.add_argument("--workloads", default="login,noop,size,list,retr,stor")
    p.add_argument("--count", type=int, default=2000,
                   help="operations per small workload (transfers: --transfers)")
    p.add_argument("--transfers", type=int, default=4, help="RETR/STOR transfers")
    p.add_argument("--mib", type=int, default=64, help="size of each transfer in MiB")
    p.add_argument("--seconds", type=float, default=30.0, help="time limit per workload")
    p.add_argument("--settle", type=float, default=0.05,
                   help="pause before and after each measured window (s)")
    p.add_argument("--label", default="", help="copied into every JSON line")
    a = p.parse_args()
    benchlib.loopback_only(a, "cpu_regress.py")
    a.count = max(1, min(a.count, 100000))
    a.transfers = max(1, min(a.transfers, 100))
    a.mib = max(1, min(a.mib, 1024))
    a.seconds = max(0.5, min(a.seconds, 300.0))
    srv = Server(a.pid)
    socket.setdefaulttimeout(30)
    for name in a.workloads.split(","):
        fn, unit = WORKLOADS[name]
        count = a.count
        if name in ("retr", "stor"):
            a.count = a.transfers
        ops, units, cpu, ticks, wall = fn(a, srv)
        a.count = count
        benchlib.emit({
            "label": a.label, "workload": name, "ops": ops, "units": units, "unit": unit,
            "cpu_s": cpu, "proc_stat_cpu_s": ticks, "wall_s": wall,
            "cpu_us_per_unit": 1e6 * cpu / units if units else None,
        })


if __name__ == "__main__":
    main()
