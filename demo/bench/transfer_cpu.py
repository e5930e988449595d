#!/usr/bin/env python3
"""transfer_cpu.py: server CPU per MiB of RETR and STOR, plain or FTPS, for several servers
measured in the same run, interleaved round by round.

Each sample starts a fresh server as a child of this script, runs one workload against it
with Python's ftplib (one session, N transfers), stops it and takes its CPU time (user +
system) from wait4(2): the process with its threads and every child it reaped. vsftpd
runs a process per session, and its post-login process can outlive its parent; this script
makes itself a child subreaper (prctl(2) PR_SET_CHILD_SUBREAPER) so that those come back
to it and their CPU is counted too. A baseline sample per round (start, login, QUIT, stop)
is subtracted; the result is the median over the rounds of (sample - baseline) / MiB, and
the ratio of each server's median to the last server's.

Servers (--servers, comma-separated, in this order each even round, reversed each odd one):
  ftpdlib:PATH  the ftpdlib daemon at PATH (several may be given, e.g. two builds)
  pyftpdlib     python -m pyftpdlib (PYFTPDLIB_PYTHON, default python3)
  vsftpd        /usr/sbin/vsftpd with a configuration written here (local user, explicit
                FTPS with ssl_ciphers=HIGH when --tls, passive ports 40000-40999)
  floor         no FTP: a child of this script sendfile()s the 64 MiB file over one TCP
                connection per transfer, blocking, in one call per file: what sendfile
                itself costs on this machine (plain RETR of --files big only)

Workloads: --op retr|stor, --files big (64 MiB per transfer) or small (1 MiB). RETR reads
into a 1 MiB buffer; STOR sends 1 MiB pieces from memory. FTPS: TLS 1.3 with the client's
default suites (TLS_AES_256_GCM_SHA384 against rustls and OpenSSL), or TLS 1.2 with
--cipher12 (an OpenSSL cipher string, e.g. ECDHE-ECDSA-AES128-GCM-SHA256); the suite each
data connection used is printed.

Setup (root, for vsftpd's local user):
  useradd -M -d DIR -s /bin/bash NAME && echo NAME:PASS | chpasswd
  and DIR owned by NAME, holding big.bin (64 MiB) and small/f00.bin .. f49.bin (1 MiB)

Everything binds and connects to 127.0.0.1; every loop is bounded (--rounds <= 30,
--n <= 200, 30 s socket timeouts, 10 s to start or stop a server).

Example:
  demo/bench/transfer_cpu.py --dir /dev/shm/bench --user bench --password pw \\
      --servers ftpdlib:target/release/ftpdlib,vsftpd --tls --op retr --files big
"""

import argparse
import ctypes
import ftplib
import json
import os
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

BUF = bytearray(1 << 20)
PAYLOAD = os.urandom(1 << 20)
PR_SET_CHILD_SUBREAPER = 36


def set_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise SystemExit("prctl(PR_SET_CHILD_SUBREAPER) failed")


def vsftpd_conf(a, port, tmp):
    path = os.path.join(tmp, f"vsftpd-{port}.conf")
    lines = [
        "listen=YES", "listen_address=127.0.0.1", f"listen_port={port}", "background=NO",
        "anonymous_enable=NO", "local_enable=YES", "write_enable=YES", "local_umask=022",
        "pasv_enable=YES", "pasv_address=127.0.0.1", "pasv_min_port=40000",
        "pasv_max_port=40999", "seccomp_sandbox=NO", "xferlog_enable=NO",
        "secure_chroot_dir=/var/run/vsftpd/empty", "pam_service_name=vsftpd",
        "connect_from_port_20=NO", "max_per_ip=0", "max_clients=0",
    ]
    if a.tls:
        lines += [
            "ssl_enable=YES", f"rsa_cert_file={a.cert}", f"rsa_private_key_file={a.key}",
            "force_local_data_ssl=YES", "force_local_logins_ssl=YES", "require_ssl_reuse=NO",
            "ssl_tlsv1=NO", "ssl_sslv2=NO", "ssl_sslv3=NO", "ssl_ciphers=HIGH",
        ]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def server_cmd(a, kind, port, tmp):
    if kind.startswith("ftpdlib:"):
        cmd = [kind.split(":", 1)[1], "-i", "127.0.0.1", "-p", str(port), "-d", a.dir,
               "-u", a.user, "-P", a.password, "-w", "--shutdown-grace", "0"]
        if a.tls:
            cmd += ["--tls-cert", a.cert, "--tls-key", a.key]
        return cmd
    if kind == "pyftpdlib":
        py = os.environ.get("PYFTPDLIB_PYTHON", "python3")
        cmd = [py, "-m", "pyftpdlib", "-i", "127.0.0.1", "-p", str(port), "-d", a.dir,
               "-u", a.user, "-P", a.password, "-w"]
        if a.tls:
            cmd += ["--tls", "--certfile", a.cert, "--keyfile", a.key]
        return cmd
    if kind == "vsftpd":
        return ["/usr/sbin/vsftpd", vsftpd_conf(a, port, tmp)]
    raise SystemExit(f"unknown server {kind}")


def wait_port(port, limit=10.0):
    end = time.time() + limit
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"no server on port {port}")


def vsftpd_sessions(listener):
    """vsftpd processes other than the listener that have not exited yet."""
    n = 0
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == listener:
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if not f.read().split(b"\0")[0].endswith(b"vsftpd"):
                    continue
            with open(f"/proc/{d}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    n += 1
        except OSError:
            pass
    return n


def reap_orphans():
    cpu = 0.0
    for _ in range(10000):
        try:
            pid, _, ru = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        cpu += ru.ru_utime + ru.ru_stime
    return cpu


def connect(a, port):
    if a.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if a.cipher12:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            ctx.set_ciphers(a.cipher12)
        else:
            ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        f = ftplib.FTP_TLS(context=ctx, timeout=30)
        f.connect("127.0.0.1", port)
        f.auth()
        f.login(a.user, a.password)
        f.prot_p()
    else:
        f = ftplib.FTP(timeout=30)
        f.connect("127.0.0.1", port)
        f.login(a.user, a.password)
    f.voidcmd("TYPE I")
    return f


def retr(f, name, suites):
    conn = f.transfercmd("RETR " + name)
    if hasattr(conn, "cipher"):
        suites.add(f"{conn.version()} {conn.cipher()[0]}")
    view = memoryview(BUF)
    total = 0
    while True:
        n = conn.recv_into(view)
        if not n:
            break
        total += n
    if hasattr(conn, "unwrap"):
        try:
            conn.unwrap()
        except (OSError, ValueError):
            pass
    conn.close()
    f.voidresp()
    return total


def stor(f, name, mib, suites):
    conn = f.transfercmd("STOR " + name)
    if hasattr(conn, "cipher"):
        suites.add(f"{conn.version()} {conn.cipher()[0]}")
    for _ in range(mib):
        conn.sendall(PAYLOAD)
    if hasattr(conn, "unwrap"):
        conn.unwrap()
    conn.close()
    f.voidresp()


def floor_sample(a, n):
    """A child sendfile()s big.bin n times, one blocking call per connection."""
    path = os.path.join(a.dir, "big.bin")
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(4)
    port = ls.getsockname()[1]
    pid = os.fork()
    if pid == 0:
        try:
            for _ in range(n):
                c, _ = ls.accept()
                fd = os.open(path, os.O_RDONLY)
                size, off = os.fstat(fd).st_size, 0
                while off < size:
                    off += os.sendfile(c.fileno(), fd, off, size - off)
                os.close(fd)
                c.close()
        finally:
            os._exit(0)
    ls.close()
    t0 = time.time()
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), 30)
        s.settimeout(30)
        view = memoryview(BUF)
        while s.recv_into(view):
            pass
        s.close()
    wall = time.time() - t0
    _, _, ru = os.wait4(pid, 0)
    return ru.ru_utime + ru.ru_stime, n * 64, wall, []


def sample(a, kind, port, n, tmp):
    if kind == "floor":
        return floor_sample(a, n)
    p = subprocess.Popen(server_cmd(a, kind, port, tmp), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    suites, mib, wall = set(), 0.0, 0.0
    try:
        wait_port(port)
        f = connect(a, port)
        t0 = time.time()
        for i in range(n):
            if a.op == "retr":
                name = "big.bin" if a.files == "big" else "small/f%02d.bin" % (i % 50)
                mib += retr(f, name, suites) / (1 << 20)
            else:
                size = 64 if a.files == "big" else 1
                stor(f, "transfer-cpu-%d.bin" % (i % 50), size, suites)
                mib += size
        wall = time.time() - t0
        f.quit()
        end = time.time() + 10
        while kind == "vsftpd" and vsftpd_sessions(p.pid) and time.time() < end:
            time.sleep(0.01)
        time.sleep(0.05)
    finally:
        os.kill(p.pid, signal.SIGTERM)
        _, _, ru = os.wait4(p.pid, 0)
        orphans = reap_orphans()
        for name in os.listdir(a.dir):
            if name.startswith("transfer-cpu-"):
                os.unlink(os.path.join(a.dir, name))
    return ru.ru_utime + ru.ru_stime + orphans, mib, wall, sorted(suites)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--servers", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--cert", default="tests/data/cert.pem")
    ap.add_argument("--key", default="tests/data/key.pem")
    ap.add_argument("--cipher12", default="")
    ap.add_argument("--op", choices=["retr", "stor"], default="retr")
    ap.add_argument("--files", choices=["big", "small"], default="big")
    ap.add_argument("--n", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--port", type=int, default=2391)
    a = ap.parse_args()
    if not (0 < a.rounds <= 30 and 0 < a.n <= 200):
        raise SystemExit("--rounds 1..30, --n 1..200")
    a.cert, a.key = os.path.abspath(a.cert), os.path.abspath(a.key)
    servers = a.servers.split(",")
    if "floor" in servers and (a.tls or a.op != "retr" or a.files != "big"):
        raise SystemExit("floor is plain RETR of --files big only")
    set_subreaper()
    per = {s: [] for s in servers}
    rate = {s: [] for s in servers}
    suites = {s: set() for s in servers}
    with tempfile.TemporaryDirectory(prefix="transfer-cpu-") as tmp:
        for r in range(a.rounds):
            for s in servers if r % 2 == 0 else servers[::-1]:
                port = a.port + 2 * (r * len(servers) + servers.index(s)) % 400
                base, _, _, _ = sample(a, s, port, 0, tmp) if s != "floor" else (0.0, 0, 0, [])
                cpu, mib, wall, used = sample(a, s, port + 1, a.n, tmp)
                per[s].append((cpu - base) / mib * 1e6)
                rate[s].append(mib / wall if wall else 0.0)
                suites[s].update(used)
    ref = statistics.median(per[servers[-1]])
    out = {}
    for s in servers:
        med = statistics.median(per[s])
        out[s] = {"cpu_us_per_mib": round(med, 1), "rounds": [round(x) for x in per[s]],
                  "MiB_per_s": round(statistics.median(rate[s])), "suites": sorted(suites[s]),
                  "ratio_to_last": round(med / ref, 3)}
    print(json.dumps({"op": a.op, "files": a.files, "tls": a.tls, "cipher12": a.cipher12,
                      "n": a.n, "rounds": a.rounds, "results": out}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
