#!/usr/bin/env python3
"""listing_memory.py: a server's memory while it sends a listing to a slow reader.

The client of demo/bench/listing_memory.sh. It logs in to a server on 127.0.0.1 and, for
each --listing CMD:PATH in turn, asks for that listing over EPSV and reads it slowly:
--read-size bytes, then a pause of --pause seconds, until the end (or --seconds). A
thread samples VmRSS and VmHWM of --pid from /proc/PID/status every --every seconds
meanwhile. For each listing it prints one JSON object: RSS before (after a pause with
the session idle), the highest RSS seen during the listing (or VmHWM, when VmHWM rose
above every sample), RSS after (the listing done and a pause), lines and bytes read.
"""

import argparse
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402  (demo/bench/benchlib.py, beside this file)


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":", 1)
                out[k] = int(v.split()[0])  # kB
    return out.get("VmRSS", 0), out.get("VmHWM", 0)


class Sampler(threading.Thread):
    def __init__(self, pid, every):
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.peak = 0
        self.samples = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                rss, _ = status(self.pid)
            except OSError:
                return
            self.peak = max(self.peak, rss)
            self.samples += 1
            self.stop.wait(self.every)


def one(a, ftp, cmd, path):
    time.sleep(a.settle)
    rss0, hwm0 = status(a.pid)
    s = Sampler(a.pid, a.every)
    s.start()
    t0 = time.monotonic()
    deadline = t0 + a.seconds
    conn = ftp.transfercmd(f"{cmd} {path}")
    conn.settimeout(30)
    buf = bytearray(a.read_size)
    got = lines = 0
    complete = True
    while True:
        k = conn.recv_into(buf)
        if k == 0:
            break
        got += k
        lines += buf[:k].count(b"\n")
        if time.monotonic() > deadline:
            complete = False
            break
        time.sleep(a.pause)
    conn.close()
    if complete:
        ftp.voidresp()
    else:
        ftp.abort()
    wall = time.monotonic() - t0
    time.sleep(a.settle)
    s.stop.set()
    s.join()
    rss1, hwm1 = status(a.pid)
    peak = max(s.peak, rss0, rss1)
    if hwm1 > hwm0 and hwm1 > peak:
        peak = hwm1  # a peak between two samples
    return {
        "label": a.label, "cmd": cmd, "path": path, "complete": complete,
        "lines": lines, "bytes": got, "seconds": round(wall, 3),
        "rss_before_kib": rss0, "rss_peak_kib": peak, "rss_after_kib": rss1,
        "hwm_before_kib": hwm0, "hwm_after_kib": hwm1, "samples": s.samples,
        "peak_growth_mib": round((peak - rss0) / 1024.0, 2),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    benchlib.server_args(p)
    p.add_argument("--listing", action="append", required=True,
                   help="CMD:PATH, e.g. LIST:big; repeat for more")
    p.add_argument("--read-size", type=int, default=65536)
    p.add_argument("--pause", type=float, default=0.01)
    p.add_argument("--every", type=float, default=0.01, help="sampling period (s)")
    p.add_argument("--seconds", type=float, default=300.0, help="time limit per listing")
    p.add_argument("--settle", type=float, default=0.5)
    p.add_argument("--label", default="")
    a = p.parse_args()
    benchlib.loopback_only(a, "listing_memory.py")
    a.seconds = max(1.0, min(a.seconds, 900.0))
    a.every = max(0.002, a.every)
    a.read_size = max(1024, min(a.read_size, 1 << 24))
    socket.setdefaulttimeout(60)
    ftp = benchlib.login(a.host, a.port, a.user, a.password, timeout=60)
    ftp.sendcmd("TYPE A")
    for item in a.listing[:10]:
        cmd, path = item.split(":", 1)
        benchlib.emit(one(a, ftp, cmd.upper(), path))
    ftp.quit()


if __name__ == "__main__":
    main()
