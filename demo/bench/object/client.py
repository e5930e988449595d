#!/usr/bin/env python3
"""client.py: the clients of demo/bench/object.sh (ftplib from the standard library; boto3
for the direct S3 columns). Every mode talks to 127.0.0.1 only, every wait is bounded, and
each prints one JSON line on stdout.

Modes:
  ftp-conc   --port P --user U --password W --op stor|retr -n N --size BYTES
             [--src FILE] [--pid SERVER_PID] [--probe-port P2]
             N sessions log in, then at once each STORs (from FILE, read into memory once)
             or RETRs (checking the byte count) cN.bin; the aggregate MiB/s is N * BYTES
             over the time from the first start to the last end. With --pid, the server's
             CPU (utime + stime) over the window and its VmRSS, sampled every 20 ms, and
             VmHWM at the end (the caller resets it before, /proc/PID/clear_refs).
             With --probe-port, a probe session in a process of its own (so the GIL and
             the transfer threads do not delay it) sends NOOP every --probe-ms (50) ms
             while the transfers run: p50, p99 and max of its round trips (--probe-rt:
             the probe under SCHED_FIFO); and once a second it logs a new session in
             and out (connect, USER, PASS, QUIT): p50 and max of those. Also the server's reactor threads' time on a
             CPU and waiting on a run queue (/proc/PID/task/TID/schedstat).
  boto3-conc --endpoint URL --bucket B --prefix PFX --op up|down -n N --size BYTES
             [--src FILE] [--dst DIR] [--probe-port P ...]
             N threads, a boto3 client each (made before the start), upload_file or
             download_file with boto3's default TransferConfig (multipart from 8 MiB,
             8 MiB parts, 10 threads per transfer); aggregate as above. --probe-port: the
             same probe against an idle ftpdlib, the machine's own delay under this load.
  boto3-one  --endpoint URL --bucket B --key K --op up|down --file F
             one upload_file or download_file, default TransferConfig; the seconds of that
             call alone (the client is made before the clock starts).
  s3         --endpoint URL --bucket B [--mkbucket] [--warm DIR] [--clean PREFIX]
             makes the bucket; one 20 MiB upload and download (the gateway makes the
             bucket's pools at the first write); deletes every object under PREFIX.
  probe      (started by ftp-conc and boto3-conc)
"""

import argparse
import ftplib
import json
import os
import select
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import benchlib  # noqa: E402  (demo/bench/benchlib.py)

HOST = "127.0.0.1"
SOCK_TIMEOUT = 120.0  # seconds, any single FTP exchange or socket read
PIECE = 1 << 20  # bytes per send and per receive buffer
MIB = 1 << 20


def pct(sorted_vals, p):
    """Nearest-rank percentile of an already sorted list (None when empty)."""
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def loopback_url(url):
    host = url.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
    if host not in benchlib.LOOPBACK:
        sys.exit("client.py: loopback only")


# --- the server's /proc ------------------------------------------------------------------

def cpu_seconds(pid):
    """utime + stime of the process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def reactor_sched(pid):
    """The server's reactor threads (ftpd-reactor-N), summed: [ns on a CPU, ns waiting on a
    run queue, times run] from /proc/PID/task/TID/schedstat."""
    tot = [0, 0, 0]
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if not f.read().startswith("ftpd-reactor"):
                    continue
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                for k, v in enumerate(f.read().split()[:3]):
                    tot[k] += int(v)
        except OSError:
            continue
    return tot


class Sampler:
    """Samples a process's VmRSS every 20 ms in a thread until stopped: the peak seen."""

    def __init__(self, pid):
        self.pid = pid
        self.peak = 0
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop_ev.wait(0.02):
            try:
                self.peak = max(self.peak, status_kib(self.pid, "VmRSS") or 0)
            except OSError:
                return

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stop_ev.set()
        self.t.join(5)


# --- the probe -----------------------------------------------------------------------------

def cmd_probe(a):
    """Logs in, says "ready", then sends NOOP every probe_ms until a line comes on stdin
    (or max_s passes); prints the round trips' summary."""
    ftp = benchlib.login(HOST, a.port, a.user, a.password, timeout=SOCK_TIMEOUT)
    print("ready", flush=True)
    rtts, logins = [], []
    end = time.monotonic() + a.max_s
    step = a.probe_ms / 1000.0
    nxt = time.monotonic()
    next_login = nxt + a.login_every
    while time.monotonic() < end:
        t0 = time.perf_counter()
        ftp.voidcmd("NOOP")
        rtts.append((time.perf_counter() - t0) * 1000.0)
        if a.login_every and time.monotonic() >= next_login:
            # A new session: connect, USER, PASS (the password check may queue on the
            # server's worker pool), QUIT.
            t0 = time.perf_counter()
            benchlib.quit_or_close(
                benchlib.login(HOST, a.port, a.user, a.password, timeout=SOCK_TIMEOUT))
            logins.append((time.perf_counter() - t0) * 1000.0)
            next_login = time.monotonic() + a.login_every
        nxt += step
        wait = max(0.0, nxt - time.monotonic())
        r, _, _ = select.select([sys.stdin], [], [], wait)
        if r:
            break
    benchlib.quit_or_close(ftp)
    v = sorted(rtts)
    g = sorted(logins)
    benchlib.emit({"n": len(v), "p50_ms": pct(v, 50), "p99_ms": pct(v, 99),
                   "max_ms": v[-1] if v else None, "logins": len(g),
                   "login_p50_ms": pct(g, 50), "login_max_ms": g[-1] if g else None})


class Probe:
    """The probe process around a load: started and logged in on enter, stopped and read
    on exit (result in .result)."""

    def __init__(self, a):
        self.a = a
        self.p = None
        self.result = None

    def __enter__(self):
        if not self.a.probe_port:
            return self
        rt = ["chrt", "-f", "10"] if self.a.probe_rt else []
        self.p = subprocess.Popen(
            rt + [sys.executable, os.path.abspath(__file__), "probe", "--port", str(self.a.probe_port),
             "--user", self.a.user, "--password", self.a.password,
             "--probe-ms", str(self.a.probe_ms), "--max-s", "900"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.p.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"probe did not log in: {line!r}")
        return self

    def __exit__(self, *exc):
        if not self.p:
            return
        try:
            out, _ = self.p.communicate("stop\n", timeout=60)
            self.result = json.loads(out.strip().splitlines()[-1])
        except (subprocess.TimeoutExpired, ValueError, IndexError) as e:
            self.p.kill()
            self.p.wait()
            self.result = {"error": f"probe: {e}"}


# --- the concurrent loads ----------------------------------------------------------------

def run_threads(n, prepare, work):
    """n threads: prepare(i) before a common start, then work(i, state) timed. Returns
    (first start, last end, per-thread seconds, errors)."""
    barrier = threading.Barrier(n + 1)
    starts, ends, errors = [None] * n, [None] * n, []

    def body(i):
        state = None
        try:
            state = prepare(i)
        except Exception as e:  # noqa: BLE001  (any failure is a reported error)
            errors.append(f"prepare {i}: {e!r}")
        try:
            barrier.wait(timeout=300)
        except threading.BrokenBarrierError:
            return
        if state is None:
            return
        starts[i] = time.monotonic()
        try:
            work(i, state)
            ends[i] = time.monotonic()
        except Exception as e:  # noqa: BLE001
            errors.append(f"transfer {i}: {e!r}")

    ts = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(n)]
    for t in ts:
        t.start()
    barrier.wait(timeout=300)
    for t in ts:
        t.join(900)
    done = [(s, e) for s, e in zip(starts, ends) if s is not None and e is not None]
    if not done:
        return None, None, [], errors
    return (min(s for s, _ in done), max(e for _, e in done),
            sorted(e - s for s, e in done), errors)


def conc_result(a, t0, t1, secs, errors, extra):
    ok = len(secs)
    out = {"n": a.n, "ok": ok, "errors": errors[:5], "n_errors": len(errors),
           "size": a.size}
    if ok and t1 > t0:
        out["wall_s"] = t1 - t0
        out["mib_s"] = ok * a.size / MIB / (t1 - t0)
        out["per_transfer_s_p50"] = pct(secs, 50)
        out["per_transfer_s_max"] = secs[-1]
    out.update(extra)
    return out


def cmd_ftp_conc(a):
    data = None
    if a.op == "stor":
        with open(a.src, "rb") as f:
            data = memoryview(f.read())
        if len(data) != a.size:
            sys.exit("client.py: --src is not --size bytes")

    def prepare(i):
        ftp = benchlib.login(HOST, a.port, a.user, a.password, timeout=SOCK_TIMEOUT)
        ftp.voidcmd("TYPE I")
        return ftp

    def work(i, ftp):
        name = f"{a.name_prefix}{i}.bin"
        if a.op == "stor":
            conn = ftp.transfercmd(f"STOR {name}")
            for off in range(0, len(data), PIECE):
                conn.sendall(data[off:off + PIECE])
            conn.close()
            ftp.voidresp()
        else:
            buf = bytearray(PIECE)
            conn = ftp.transfercmd(f"RETR {name}")
            got = benchlib.read_to_end(conn, buf)
            conn.close()
            ftp.voidresp()
            if got != a.size:
                raise RuntimeError(f"RETR {name}: {got} bytes, not {a.size}")
        benchlib.quit_or_close(ftp)

    extra = {}
    sched0 = reactor_sched(a.pid) if a.pid else None
    cpu0 = cpu_seconds(a.pid) if a.pid else None
    rss0 = status_kib(a.pid, "VmRSS") if a.pid else None
    with Probe(a) as probe:
        if a.pid:
            with Sampler(a.pid) as s:
                t0, t1, secs, errors = run_threads(a.n, prepare, work)
            sched1 = reactor_sched(a.pid)
            extra = {"cpu_s": cpu_seconds(a.pid) - cpu0, "rss_before_kib": rss0,
                     "rss_peak_kib": s.peak, "hwm_kib": status_kib(a.pid, "VmHWM"),
                     "reactor_cpu_ms": (sched1[0] - sched0[0]) / 1e6,
                     "reactor_runq_ms": (sched1[1] - sched0[1]) / 1e6,
                     "reactor_runs": sched1[2] - sched0[2]}
        else:
            t0, t1, secs, errors = run_threads(a.n, prepare, work)
    if probe.result is not None:
        extra["noop"] = probe.result
    benchlib.emit(conc_result(a, t0, t1, secs, errors, extra))


def boto3_client(endpoint):
    import boto3  # imported here: the FTP modes need only the standard library
    from botocore.config import Config
    loopback_url(endpoint)
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "CEPHTESTAK"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "CEPHTESTSECRET"),
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}))


def cmd_boto3_conc(a):
    def prepare(i):
        return boto3_client(a.endpoint)

    def work(i, s3):
        key = f"{a.prefix}{a.name_prefix}{i}.bin"
        if a.op == "up":
            s3.upload_file(a.src, a.bucket, key)
        else:
            path = os.path.join(a.dst, f"{a.name_prefix}{i}.bin")
            s3.download_file(a.bucket, key, path)
            got = os.path.getsize(path)
            os.unlink(path)
            if got != a.size:
                raise RuntimeError(f"download {key}: {got} bytes, not {a.size}")

    with Probe(a) as probe:
        t0, t1, secs, errors = run_threads(a.n, prepare, work)
    extra = {"noop": probe.result} if probe.result is not None else {}
    benchlib.emit(conc_result(a, t0, t1, secs, errors, extra))


def cmd_boto3_one(a):
    s3 = boto3_client(a.endpoint)
    t0 = time.perf_counter()
    if a.op == "up":
        s3.upload_file(a.file, a.bucket, a.key)
    else:
        s3.download_file(a.bucket, a.key, a.file)
    benchlib.emit({"seconds": time.perf_counter() - t0})


def cmd_s3(a):
    s3 = boto3_client(a.endpoint)
    if a.mkbucket:
        try:
            s3.create_bucket(Bucket=a.bucket)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
    if a.warm:
        # The gateway makes a bucket's data pools at their first write, which takes
        # seconds: done here, not in the first measured transfer. 20 MiB: multipart too.
        import tempfile
        with tempfile.NamedTemporaryFile(dir=a.warm) as f:
            f.write(os.urandom(20 * MIB))
            f.flush()
            s3.upload_file(f.name, a.bucket, "warm/20m.bin")
            s3.download_file(a.bucket, "warm/20m.bin", f.name + ".dl")
            os.unlink(f.name + ".dl")
        s3.delete_object(Bucket=a.bucket, Key="warm/20m.bin")
    deleted = 0
    if a.clean is not None:
        for _ in range(1000):  # pages of up to 1000 keys; bounded
            r = s3.list_objects_v2(Bucket=a.bucket, Prefix=a.clean)
            keys = [{"Key": o["Key"]} for o in r.get("Contents", [])]
            if not keys:
                break
            s3.delete_objects(Bucket=a.bucket, Delete={"Objects": keys, "Quiet": True})
            deleted += len(keys)
        up = s3.list_multipart_uploads(Bucket=a.bucket, Prefix=a.clean).get("Uploads", [])
        for u in up:
            s3.abort_multipart_upload(Bucket=a.bucket, Key=u["Key"], UploadId=u["UploadId"])
    benchlib.emit({"deleted": deleted})


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True)

    def ftp_args(q, port_required=True):
        q.add_argument("--port", type=int, required=port_required)
        q.add_argument("--user", default="bench")
        q.add_argument("--password", default="")

    def probe_args(q):
        q.add_argument("--probe-port", type=int, default=0)
        q.add_argument("--probe-ms", type=float, default=50.0)
        q.add_argument("--probe-rt", action="store_true",
                       help="the probe under SCHED_FIFO (chrt -f 10)")

    q = sub.add_parser("probe")
    ftp_args(q)
    q.add_argument("--probe-ms", type=float, default=50.0)
    q.add_argument("--max-s", type=float, default=900.0)
    q.add_argument("--login-every", type=float, default=1.0,
                   help="seconds between the probe's fresh logins (0: none)")

    q = sub.add_parser("ftp-conc")
    ftp_args(q)
    probe_args(q)
    q.add_argument("--op", choices=["stor", "retr"], required=True)
    q.add_argument("-n", type=int, required=True)
    q.add_argument("--size", type=int, required=True)
    q.add_argument("--src")
    q.add_argument("--pid", type=int, default=0)
    q.add_argument("--name-prefix", default="c")

    q = sub.add_parser("boto3-conc")
    ftp_args(q, port_required=False)
    probe_args(q)
    q.add_argument("--endpoint", required=True)
    q.add_argument("--bucket", required=True)
    q.add_argument("--prefix", default="")
    q.add_argument("--op", choices=["up", "down"], required=True)
    q.add_argument("-n", type=int, required=True)
    q.add_argument("--size", type=int, required=True)
    q.add_argument("--src")
    q.add_argument("--dst")
    q.add_argument("--name-prefix", default="c")

    q = sub.add_parser("boto3-one")
    q.add_argument("--endpoint", required=True)
    q.add_argument("--bucket", required=True)
    q.add_argument("--key", required=True)
    q.add_argument("--op", choices=["up", "down"], required=True)
    q.add_argument("--file", required=True)

    q = sub.add_parser("s3")
    q.add_argument("--endpoint", required=True)
    q.add_argument("--bucket", required=True)
    q.add_argument("--mkbucket", action="store_true")
    q.add_argument("--clean")
    q.add_argument("--warm", metavar="DIR", help="one 20 MiB upload and download through DIR")

    a = p.parse_args()
    if not 0 < getattr(a, "n", 1) <= 1000:
        sys.exit("client.py: -n is 1..1000")
    {"probe": cmd_probe, "ftp-conc": cmd_ftp_conc, "boto3-conc": cmd_boto3_conc,
     "boto3-one": cmd_boto3_one, "s3": cmd_s3}[a.mode](a)


if __name__ == "__main__":
    main()
