#!/usr/bin/env python3
"""soak.py: the clients, the sampler, the checks and the report of soak.sh.

Standard library only, plus the curl and lftp commands for their workers. Every worker
runs until its deadline (--seconds) or its most operations (--max-ops), whichever comes
first, and gives every socket and every child command a timeout. Each writes:

  WORK/events/<id>.jsonl    one JSON line per operation:
                            {"client": "curl", "op": "stor-epsv-tls", "ok": true,
                             "bytes": 1234, "err": null}
  WORK/manifest/<id>.json   what its part of the served tree must hold at the end:
                            {"files": {"/curl-1/f7.bin": [size, "sha256 hex"]},
                             "maybe": ["/curl-1/f9.bin"], "dirs": ["/curl-1"]}
                            files: uploads the client saw complete (226) and did not
                            delete or rename since; maybe: uploads that failed, which may
                            have left part of a file; dirs: the directories it owns.
                            Before a client deletes a file it stored, it compares the
                            file on disk (--root) with the manifest: a "disk-check"
                            operation.

Subcommands: curl, lftp, ftplib (good clients, from 127.0.0.1), bad (misbehaving raw
sockets, from --source), badpass (failed logins, from --source), monitor (samples the
server's /proc/PID fd count and VmRSS), probe (is the server still answering), verify
(the manifests against the disk) and report (the summary table and the checks).
"""

import argparse
import ftplib
import hashlib
import json
import os
import random
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import time

HOST = "127.0.0.1"
KiB = 1024
MiB = 1024 * 1024


# --- shared ------------------------------------------------------------------------------

class Worker:
    """Deadline, operation count, event log and manifest of one client process."""

    def __init__(self, a, kind):
        self.a = a
        self.kind = kind
        self.id = a.id
        self.rnd = random.Random(a.seed)
        self.deadline = time.monotonic() + a.seconds
        self.ops = 0
        os.makedirs(os.path.join(a.work, "events"), exist_ok=True)
        os.makedirs(os.path.join(a.work, "manifest"), exist_ok=True)
        self.events = open(os.path.join(a.work, "events", f"{a.id}.jsonl"), "a")
        self.files = {}  # remote path -> (size, sha256)
        self.maybe = set()
        self.dirs = set()
        self.local = os.path.join(a.work, "clients", a.id)
        os.makedirs(self.local, exist_ok=True)

    def running(self):
        return time.monotonic() < self.deadline and self.ops < self.a.max_ops

    def ev(self, op, ok, nbytes=0, err=None):
        self.ops += 1
        self.events.write(json.dumps({"client": self.kind, "op": op, "ok": ok,
                                      "bytes": nbytes if ok else 0, "err": err}) + "\n")
        self.events.flush()
        if self.ops % 10 == 0:
            self.save()

    def stored(self, path, data_or_meta):
        if isinstance(data_or_meta, tuple):
            self.files[path] = data_or_meta
        else:
            self.files[path] = (len(data_or_meta), sha(data_or_meta))
        self.maybe.discard(path)

    def check_disk(self, path):
        """Before the client deletes a file it saw stored: is it on disk, byte for byte as
        sent? So every upload seen complete is checked, here or at the end. Recorded as
        an operation, "disk-check"."""
        size, digest = self.files[path]
        disk = os.path.join(self.a.root, path.lstrip("/"))
        try:
            ok = os.path.getsize(disk) == size and sha_file(disk) == digest
            err = None if ok else "differs on disk"
        except OSError:
            err = "missing on disk"
        self.ev("disk-check", err is None, 0, err)
        if err:
            sys.stderr.write(f"{self.id}: {path}: {err}\n")

    def failed_upload(self, path):
        self.files.pop(path, None)
        self.maybe.add(path)

    def save(self):
        tmp = os.path.join(self.a.work, "manifest", f".{self.id}.tmp")
        with open(tmp, "w") as f:
            json.dump({"files": {k: list(v) for k, v in self.files.items()},
                       "maybe": sorted(self.maybe), "dirs": sorted(self.dirs)}, f)
        os.replace(tmp, os.path.join(self.a.work, "manifest", f"{self.id}.json"))

    def size(self):
        """A file size: mostly small, some empty, a few of a megabyte or two."""
        r = self.rnd.random()
        if r < 0.05:
            return 0
        if r < 0.45:
            return self.rnd.randint(1, 4 * KiB)
        if r < 0.92:
            return self.rnd.randint(4 * KiB, 256 * KiB)
        return self.rnd.randint(256 * KiB, self.a.big_max)


def sha(data):
    return hashlib.sha256(data).hexdigest()


def sha_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(MiB)
            if not b:
                return h.hexdigest()
            h.update(b)


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the test certificate is self-signed
    return ctx


def common(p):
    p.add_argument("--work", required=True)
    p.add_argument("--root", required=True, help="the served directory, for disk checks")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--id", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--max-ops", type=int, default=100000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--tls-share", type=float, default=0.3,
                   help="part of the sessions that run over FTPS")
    p.add_argument("--big-max", type=int, default=2 * MiB)
    p.add_argument("--keep-files", type=int, default=40,
                   help="files kept on the server; older ones are deleted")


def err_of(e):
    """An error kind: the class, and the reply code for FTP errors."""
    if isinstance(e, ftplib.Error):
        return f"{type(e).__name__} {str(e)[:3]}"
    return type(e).__name__


# --- curl --------------------------------------------------------------------------------

def run_curl(w, args, timeout):
    a = w.a
    cmd = ["curl", "--silent", "--show-error", "--max-time", str(timeout),
           "--connect-timeout", "10", "--user", f"{a.user}:{a.password}"] + args
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=timeout + 15)
    except subprocess.TimeoutExpired:
        return "curl hung"
    if p.returncode != 0:
        return f"curl rc={p.returncode}"
    return None


def curl_active_tls():
    """Whether this curl does TLS on an active (PORT/EPRT) data connection: 7.87 and 7.88
    send the data in the clear after PROT P (curl/curl#10666, fixed in 8.0), which a
    server must refuse (522)."""
    out = subprocess.run(["curl", "--version"], capture_output=True, text=True).stdout.split()
    ver = out[1] if len(out) > 1 else ""
    return not (ver.startswith("7.87.") or ver.startswith("7.88."))


def cmd_curl(a):
    w = Worker(a, "curl")
    active_tls = curl_active_tls()
    base = f"ftp://{HOST}:{a.port}"
    d = f"/{a.id}"
    w.dirs.add(d)
    n = 0
    order = []
    while w.running():
        n += 1
        mode = w.rnd.choice(["pasv", "epsv", "port", "eprt"])
        tls = w.rnd.random() < a.tls_share and (active_tls or mode in ("pasv", "epsv"))
        flags = {"pasv": ["--disable-epsv"], "epsv": [],
                 "port": ["--ftp-port", HOST, "--disable-eprt"],
                 "eprt": ["--ftp-port", HOST]}[mode]
        if tls:
            flags = flags + ["--ssl-reqd", "--insecure"]
        tag = mode + ("-tls" if tls else "")
        data = os.urandom(w.size())
        src = os.path.join(w.local, "up.bin")
        with open(src, "wb") as f:
            f.write(data)
        name = f"{d}/f{n}.bin"
        timeout = 60 + len(data) // (64 * KiB)
        e = run_curl(w, flags + ["--ftp-create-dirs", "-T", src, base + name], timeout)
        if e is None:
            w.stored(name, data)
            order.append(name)
        else:
            w.failed_upload(name)
        w.ev("stor-" + tag, e is None, len(data), e)
        if not w.running():
            break
        # Download a file this worker holds, and compare.
        if order:
            name = w.rnd.choice(order)
            size, digest = w.files[name]
            dst = os.path.join(w.local, "down.bin")
            if os.path.exists(dst):
                os.unlink(dst)
            e = run_curl(w, flags + ["-o", dst, base + name], 60 + size // (64 * KiB))
            if e is None:
                got = os.path.getsize(dst) if os.path.exists(dst) else -1
                if got != size or sha_file(dst) != digest:
                    e = "download differs"
            w.ev("retr-" + tag, e is None, size, e)
        # Keep the tree small: delete the oldest.
        if len(order) > a.keep_files:
            old = order.pop(0)
            w.check_disk(old)
            e = run_curl(w, ["-Q", f"DELE {old}", base + d + "/", "-o", os.devnull], 30)
            if e is None:
                w.files.pop(old, None)
            else:
                w.maybe.add(old)
                w.files.pop(old, None)
            w.ev("dele", e is None, 0, e)
    w.save()


# --- lftp --------------------------------------------------------------------------------

def make_tree(w, root, files):
    shutil.rmtree(root, ignore_errors=True)
    out = {}
    for i in range(files):
        sub = f"d{i % 3}"
        os.makedirs(os.path.join(root, sub), exist_ok=True)
        data = os.urandom(w.rnd.choice([0, w.rnd.randint(1, 2 * KiB),
                                        w.rnd.randint(2 * KiB, 96 * KiB)]))
        with open(os.path.join(root, sub, f"x{i}.dat"), "wb") as f:
            f.write(data)
        out[f"{sub}/x{i}.dat"] = (len(data), sha(data))
    return out


def tree_of(root):
    out = {}
    for dirpath, _, names in os.walk(root):
        for nm in names:
            p = os.path.join(dirpath, nm)
            out[os.path.relpath(p, root)] = (os.path.getsize(p), sha_file(p))
    return out


def cmd_lftp(a):
    w = Worker(a, "lftp")
    top = f"/{a.id}"
    w.dirs.add(top)
    k = 0
    trees = []
    try:
        ftp = ftplib_session(a, False)
        ftp.mkd(top)
        ftp.quit()
    except (OSError, EOFError, ftplib.Error) as e:
        w.ev("mkd", False, 0, err_of(e))
    while w.running():
        k += 1
        tls = w.rnd.random() < a.tls_share
        passive = w.rnd.random() < 0.75
        up = os.path.join(w.local, "up")
        down = os.path.join(w.local, "down")
        shutil.rmtree(down, ignore_errors=True)
        want = make_tree(w, up, w.rnd.randint(3, 9))
        remote = f"{top}/t{k}"
        nbytes = sum(s for s, _ in want.values())
        drop = ""
        if len(trees) >= 4:
            drop = f"rm -r {trees[0]}; "
            for pth in [p for p in w.files if p.startswith(trees[0] + "/")]:
                w.check_disk(pth)
        script = ("set net:max-retries 1; set net:timeout 20; set net:reconnect-interval-base 1; "
                  "set cmd:fail-exit yes; set xfer:clobber on; "
                  f"set ftp:ssl-allow {'yes' if tls else 'no'}; set ftp:ssl-force {'yes' if tls else 'no'}; "
                  "set ftp:ssl-protect-data yes; set ssl:verify-certificate no; "
                  f"set ftp:passive-mode {'on' if passive else 'off'}; "
                  f"mirror -R --no-perms {up} {remote}; "
                  f"mirror --no-perms {remote} {down}; {drop}quit")
        tag = ("pasv" if passive else "port") + ("-tls" if tls else "")
        try:
            p = subprocess.run(["lftp", "-u", f"{a.user},{a.password}", "-p", str(a.port), HOST,
                                "-e", script], capture_output=True, timeout=180,
                               stdin=subprocess.DEVNULL)
            e = None if p.returncode == 0 else f"lftp rc={p.returncode}"
            if e:
                sys.stderr.write(f"{a.id}: {p.stderr.decode(errors='replace')[-300:]}\n")
        except subprocess.TimeoutExpired:
            e = "lftp hung"
        if e is None:
            for rel, meta in want.items():
                w.stored(f"{remote}/{rel}", meta)
            if drop:
                gone = trees.pop(0)
                for pth in [p for p in w.files if p.startswith(gone + "/")]:
                    del w.files[pth]
                w.maybe = {p for p in w.maybe if not p.startswith(gone + "/")}
            trees.append(remote)
            if tree_of(down) != want:
                e = "mirror down differs"
        else:
            for rel in want:
                w.failed_upload(f"{remote}/{rel}")
            if drop:
                # The rm -r may or may not have run: what was there is only "maybe".
                gone = trees.pop(0)
                for pth in [p for p in w.files if p.startswith(gone + "/")]:
                    del w.files[pth]
                    w.maybe.add(pth)
        w.ev("mirror-" + tag, e is None, 2 * nbytes, e)
    w.save()


# --- ftplib ------------------------------------------------------------------------------

def ftplib_session(a, tls):
    if tls:
        ftp = ftplib.FTP_TLS(context=tls_context(), timeout=30)
        ftp.connect(HOST, a.port)
        ftp.login(a.user, a.password)
        ftp.prot_p()
    else:
        ftp = ftplib.FTP(timeout=30)
        ftp.connect(HOST, a.port)
        ftp.login(a.user, a.password)
    return ftp


def cmd_ftplib(a):
    w = Worker(a, "ftplib")
    d = f"/{a.id}"
    w.dirs.add(d)
    n = 0
    ftp = None
    while w.running():
        if ftp is None:
            tls = w.rnd.random() < a.tls_share
            try:
                ftp = ftplib_session(a, tls)
                ftp.set_pasv(w.rnd.random() < 0.8)
                try:
                    ftp.mkd(d)
                except ftplib.error_perm:
                    pass  # there already
                w.ev("login" + ("-tls" if tls else ""), True)
            except (OSError, EOFError, ftplib.Error) as e:
                w.ev("login" + ("-tls" if tls else ""), False, 0, err_of(e))
                ftp = None
                time.sleep(0.5)
                continue
            left = w.rnd.randint(5, 30)
        n += 1
        op = w.rnd.choice(["stor", "stor", "retr", "appe", "rest-stor", "rest-retr",
                           "list", "mlsd", "rename", "dele", "size"])
        names = sorted(w.files)
        if op in ("retr", "rest-retr", "rename", "dele", "size") and not names:
            op = "stor"
        name = f"{d}/p{n}.bin"
        nbytes = 0
        try:
            if op == "stor":
                data = os.urandom(w.size())
                w.maybe.add(name)
                ftp.storbinary(f"STOR {name}", _reader(data))
                w.stored(name, data)
                nbytes = len(data)
            elif op == "appe":
                data = os.urandom(w.size() + 2)
                cut = w.rnd.randint(1, len(data) - 1)
                w.maybe.add(name)
                ftp.storbinary(f"STOR {name}", _reader(data[:cut]))
                ftp.storbinary(f"APPE {name}", _reader(data[cut:]))
                w.stored(name, data)
                nbytes = len(data)
            elif op == "rest-stor":
                data = os.urandom(w.size() + 2)
                cut = w.rnd.randint(1, len(data) - 1)
                w.maybe.add(name)
                ftp.storbinary(f"STOR {name}", _reader(data[:cut]))
                ftp.storbinary(f"STOR {name}", _reader(data[cut:]), rest=cut)
                w.stored(name, data)
                nbytes = len(data)
            elif op in ("retr", "rest-retr"):
                name = w.rnd.choice(names)
                size, digest = w.files[name]
                start = w.rnd.randint(0, size) if op == "rest-retr" and size else 0
                buf = bytearray()
                ftp.retrbinary(f"RETR {name}", buf.extend, rest=start or None)
                nbytes = len(buf)
                if op == "retr" and (len(buf) != size or sha(bytes(buf)) != digest):
                    raise Mismatch("download differs")
                if op == "rest-retr" and len(buf) != size - start:
                    raise Mismatch("resumed download has the wrong length")
            elif op == "list":
                lines = []
                ftp.retrlines(f"LIST {d}", lines.append)
                got = {ln.split()[-1] for ln in lines if ln.strip()}
                want = {p.rsplit("/", 1)[1] for p in w.files}
                if not want <= got:
                    raise Mismatch("LIST lacks files")
            elif op == "mlsd":
                got = {nm: facts for nm, facts in ftp.mlsd(d, ["type", "size"])}
                for p, (size, _) in w.files.items():
                    nm = p.rsplit("/", 1)[1]
                    if nm not in got or int(got[nm].get("size", -1)) != size:
                        raise Mismatch("MLSD lacks a file or has a wrong size")
            elif op == "rename":
                old = w.rnd.choice(names)
                new = f"{d}/r{n}.bin"
                meta = w.files.pop(old)
                w.maybe.update((old, new))  # until RNTO's reply says where it is
                ftp.rename(old, new)
                w.maybe.discard(old)
                w.stored(new, meta)
            elif op == "dele":
                old = w.rnd.choice(names)
                w.check_disk(old)
                w.files.pop(old)
                w.maybe.add(old)
                ftp.delete(old)
                w.maybe.discard(old)
            elif op == "size":
                name = w.rnd.choice(names)
                ftp.voidcmd("TYPE I")  # SIZE is refused in ASCII mode, as by pyftpdlib
                if ftp.size(name) != w.files[name][0]:
                    raise Mismatch("SIZE differs")
            w.ev(op, True, nbytes)
        except Mismatch as e:
            w.ev(op, False, 0, str(e))
        except (OSError, EOFError, ftplib.Error) as e:
            w.ev(op, False, 0, err_of(e))
            try:
                ftp.close()
            finally:
                ftp = None
            continue
        if len(w.files) > a.keep_files:
            old = sorted(w.files)[0]
            w.check_disk(old)
            try:
                w.files.pop(old)
                w.maybe.add(old)
                ftp.delete(old)
                w.maybe.discard(old)
                w.ev("dele", True)
            except (OSError, EOFError, ftplib.Error) as e:
                w.ev("dele", False, 0, err_of(e))
                ftp.close()
                ftp = None
                continue
        left -= 1
        if left <= 0:
            try:
                ftp.quit()
            except (OSError, EOFError, ftplib.Error):
                ftp.close()
            ftp = None
    if ftp is not None:
        try:
            ftp.quit()
        except (OSError, EOFError, ftplib.Error):
            ftp.close()
    w.save()


class Mismatch(Exception):
    pass


def _reader(data):
    import io
    return io.BytesIO(data)


# --- misbehaving clients -------------------------------------------------------------------

class Raw:
    """A control connection from a chosen source address, read line by line."""

    def __init__(self, a, timeout=10):
        self.a = a
        self.s = socket.socket()
        self.s.settimeout(timeout)
        self.s.bind((a.source, 0))
        self.s.connect((HOST, a.port))
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def reply(self):
        """The next complete reply (multi-line ones too); its code as an int."""
        while True:
            while b"\r\n" not in self.buf:
                b = self.s.recv(65536)
                if not b:
                    raise EOFError("server closed")
                self.buf += b
            line, self.buf = self.buf.split(b"\r\n", 1)
            if len(line) >= 4 and line[:3].isdigit() and line[3:4] == b" ":
                return int(line[:3]), line

    def cmd(self, line):
        self.send(line.encode() + b"\r\n")
        return self.reply()

    def login(self):
        c, _ = self.reply()
        if c != 220:
            raise EOFError(f"greeting {c}")
        self.cmd(f"USER {self.a.user}")
        c, _ = self.cmd(f"PASS {self.a.password}")
        if c != 230:
            raise EOFError(f"login {c}")

    def pasv_data(self):
        c, line = self.cmd("PASV")
        if c != 227:
            raise EOFError(f"PASV {c}")
        nums = line.decode().split("(", 1)[1].split(")", 1)[0].split(",")
        port = int(nums[4]) * 256 + int(nums[5])
        d = socket.socket()
        d.settimeout(10)
        d.bind((self.a.source, 0))
        d.connect((HOST, port))
        return d

    def reset(self):
        reset(self.s)


def reset(s):
    """Closes s with a RST: the peer sees the connection drop, not end."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()


class KeptOpen(Exception):
    """The server kept a misbehaving connection open longer than its timeouts allow."""


def bad_slowloris(w, a):
    """Three sessions, before or after login, that send one byte of a line every half
    second and never end it. The server's login timeout (15 s) or idle timeout (20 s)
    must close them: a partial line is not activity. Gives up after a.slow_secs."""
    logged = w.rnd.random() < 0.5
    conns = []
    try:
        for _ in range(3):
            r = Raw(a)
            if logged:
                r.login()
            else:
                r.reply()
            r.send(b"NOOP ")
            conns.append(r)
        t0 = time.monotonic()
        open_ = list(conns)
        closed_at = []
        while open_ and time.monotonic() - t0 < a.slow_secs and time.monotonic() < w.deadline + 60:
            time.sleep(0.5)
            for r in list(open_):
                try:
                    r.s.setblocking(False)
                    try:
                        got = r.s.recv(4096)
                    except BlockingIOError:
                        got = None
                    r.s.setblocking(True)
                    if got is not None:
                        # EOF, or the server's closing reply (421): either way it hangs up.
                        open_.remove(r)
                        closed_at.append(time.monotonic() - t0)
                        continue
                    r.s.send(b"x")
                except OSError:
                    open_.remove(r)
                    closed_at.append(time.monotonic() - t0)
        when = "after" if logged else "before"
        if open_:
            raise KeptOpen(f"{len(open_)} of 3 kept open {a.slow_secs:.0f} s ({when} login)")
        return f"{when} login: closed after {min(closed_at):.0f}-{max(closed_at):.0f} s"
    finally:
        for r in conns:
            r.s.close()


def bad_drop_upload(w, a):
    r = Raw(a)
    try:
        r.login()
        d = r.pasv_data()
        r.send(f"STOR /bad/drop-{w.rnd.randint(0, 10**9)}.bin\r\n".encode())
        for _ in range(w.rnd.randint(1, 20)):
            d.sendall(os.urandom(16 * KiB))
        reset(d)
    finally:
        r.reset()


def bad_drop_download(w, a):
    r = Raw(a)
    try:
        r.login()
        d = r.pasv_data()
        r.send(b"RETR /fixtures/big.bin\r\n")
        got = 0
        want = w.rnd.randint(1, 512 * KiB)
        while got < want:
            b = d.recv(65536)
            if not b:
                break
            got += len(b)
        reset(d)
    finally:
        r.reset()


def bad_abor_storm(w, a):
    r = Raw(a)
    try:
        r.login()
        d = r.pasv_data()
        r.send(b"RETR /fixtures/big.bin\r\n" + b"ABOR\r\n" * 20)
        d.settimeout(2)
        try:
            d.recv(65536)
        except OSError:
            pass
        d.close()
        r.send(b"ABOR\r\n" * 30 + b"PASV\r\nABOR\r\n" * 5)
        r.s.settimeout(2)
        try:
            while True:
                r.reply()
        except (OSError, EOFError):
            pass
        r.s.settimeout(10)
        r.buf = b""
        c, _ = r.cmd("NOOP")
        return None if c == 200 else f"NOOP {c} after the storm"
    finally:
        r.reset()


def bad_pasv_noconnect(w, a):
    r = Raw(a)
    try:
        r.login()
        for _ in range(w.rnd.randint(1, 10)):
            r.cmd("PASV")
        r.send(b"STOR /bad/never.bin\r\n")
        time.sleep(w.rnd.uniform(0, 2))
    finally:
        r.s.close()


def bad_garbage(w, a):
    r = Raw(a)
    try:
        r.reply()
        kind = w.rnd.choice(["bytes", "long", "nul", "telnet", "utf8", "logged-in"])
        if kind == "logged-in":
            r.cmd(f"USER {a.user}")
            r.cmd(f"PASS {a.password}")
            kind = w.rnd.choice(["bytes", "long", "nul", "telnet", "utf8"])
        if kind == "bytes":
            r.send(os.urandom(w.rnd.randint(1, 8192)) + b"\r\n")
        elif kind == "long":
            r.send(b"A" * w.rnd.randint(3000, 200000))
        elif kind == "nul":
            r.send(b"CWD /\x00/etc\r\nSTOR a\x00b\r\nRETR \x00\r\n")
        elif kind == "telnet":
            r.send(b"\xff\xf4\xff\xf2ABOR\r\n\xff\xff\xfd\x01NOOP\r\n")
        else:
            r.send(b"MKD /bad/\xc3\x28\xa0\xa1\r\nCWD \xed\xa0\x80\r\nSTOR /bad/\xf0\x28\x8c\x28\r\n")
        r.s.settimeout(2)
        try:
            r.cmd("NOOP")
        except (OSError, EOFError):
            pass  # closing a garbled session is fine
    finally:
        r.s.close()


def bad_idle(w, a):
    s = socket.socket()
    s.settimeout(5)
    s.bind((a.source, 0))
    s.connect((HOST, a.port))
    time.sleep(w.rnd.uniform(0, 2))
    s.close()


BAD = {"slowloris": bad_slowloris, "drop-upload": bad_drop_upload,
       "drop-download": bad_drop_download, "abor-storm": bad_abor_storm,
       "pasv-noconnect": bad_pasv_noconnect, "garbage": bad_garbage, "idle": bad_idle}


def cmd_bad(a):
    w = Worker(a, "bad")
    names = sorted(BAD)
    while w.running():
        name = w.rnd.choice(names)
        try:
            note = BAD[name](w, a)
            w.ev(name, True, 0, None)
            if note:
                w.events.write(json.dumps({"client": "bad", "note": name, "text": note}) + "\n")
        except KeptOpen as e:
            w.ev(name, False, 0, f"server kept it open: {e}")
        except (OSError, EOFError) as e:
            # A misbehaving client's error is not the server's: recorded, never a failure.
            w.ev(name, False, 0, err_of(e) + (f" {e}" if isinstance(e, EOFError) else ""))
        time.sleep(w.rnd.uniform(0, 0.2))
    w.save()


def cmd_badpass(a):
    w = Worker(a, "badpass")
    while w.running():
        try:
            r = Raw(a, timeout=15)
            try:
                c, _ = r.reply()
                if c != 220:
                    w.ev("refused", True, 0, None)
                    time.sleep(0.5)
                    continue
                r.cmd(f"USER {a.user}")
                c, _ = r.cmd(f"PASS wrong-{w.rnd.randint(0, 10**6)}")
                w.ev("bad-pass" if c == 530 else f"bad-pass {c}", c == 530, 0,
                     None if c == 530 else f"PASS {c}")
            finally:
                r.s.close()
        except (OSError, EOFError):
            w.ev("refused", True, 0, None)  # banned: the server hangs up at once
            time.sleep(0.5)
    w.save()


# --- monitor, probe, verify, report --------------------------------------------------------

def proc_sample(pid):
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return fds, rss


def cmd_monitor(a):
    with open(a.out, "a") as out:
        while not os.path.exists(a.stop_file):
            try:
                fds, rss = proc_sample(a.pid)
            except OSError:
                out.write(json.dumps({"t": time.time(), "gone": True}) + "\n")
                return
            out.write(json.dumps({"t": time.time(), "fds": fds, "rss_kb": rss}) + "\n")
            out.flush()
            time.sleep(a.every)


def cmd_sample(a):
    """Prints 'fds rss_kb' of --pid, the median of --count samples --every seconds apart."""
    fds, rss = [], []
    for i in range(a.count):
        f, r = proc_sample(a.pid)
        fds.append(f)
        rss.append(r)
        if i + 1 < a.count:
            time.sleep(a.every)
    fds.sort()
    rss.sort()
    print(fds[len(fds) // 2], rss[len(rss) // 2])


def cmd_probe(a):
    """Logs in, lists /, stores and reads back a small file, plain and over FTPS."""
    problems = []
    for tls in (False, True):
        try:
            ftp = ftplib_session(a, tls)
            ftp.voidcmd("NOOP")
            ftp.retrlines("LIST /", lambda _l: None)
            data = os.urandom(1000)
            ftp.storbinary("STOR /probe.bin", _reader(data))
            buf = bytearray()
            ftp.retrbinary("RETR /probe.bin", buf.extend)
            if bytes(buf) != data:
                problems.append(f"probe{' tls' if tls else ''}: read back differs")
            ftp.delete("/probe.bin")
            ftp.quit()
        except (OSError, EOFError, ftplib.Error) as e:
            problems.append(f"probe{' tls' if tls else ''}: {err_of(e)} {e}")
    print(json.dumps({"ok": not problems, "problems": problems}))


def cmd_verify(a):
    """Checks each manifest's files on disk (size and sha256), and that its directories
    hold nothing else but files that may be left of failed uploads."""
    checked = 0
    bad = []
    missing = []
    stray = []
    nbytes = 0
    for fn in sorted(os.listdir(os.path.join(a.work, "manifest"))):
        if not fn.endswith(".json"):
            continue
        with open(os.path.join(a.work, "manifest", fn)) as f:
            m = json.load(f)
        for path, (size, digest) in m["files"].items():
            disk = os.path.join(a.root, path.lstrip("/"))
            checked += 1
            if not os.path.isfile(disk):
                missing.append(path)
                continue
            if os.path.getsize(disk) != size or sha_file(disk) != digest:
                bad.append(f"{path} ({os.path.getsize(disk)} bytes on disk, {size} sent)")
                continue
            nbytes += size
        allowed = set(m["files"]) | set(m["maybe"])
        for top in m["dirs"]:
            for dirpath, _, names in os.walk(os.path.join(a.root, top.lstrip("/"))):
                for nm in names:
                    rel = "/" + os.path.relpath(os.path.join(dirpath, nm), a.root)
                    if rel not in allowed:
                        stray.append(rel)
    expected_top = {"fixtures", "bad"} | {
        fn[:-5] for fn in os.listdir(os.path.join(a.work, "manifest")) if fn.endswith(".json")}
    unexpected = sorted(set(os.listdir(a.root)) - expected_top)
    print(json.dumps({"checked": checked, "bytes": nbytes, "corrupt": bad, "missing": missing,
                      "stray": stray, "unexpected_top": unexpected}))


def cmd_report(a):
    ops = {}
    errors = {}
    notes = {}
    for fn in sorted(os.listdir(os.path.join(a.work, "events"))):
        with open(os.path.join(a.work, "events", fn)) as f:
            for line in f:
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                if "note" in e:
                    notes.setdefault((e["note"], e["text"]), 0)
                    notes[(e["note"], e["text"])] += 1
                    continue
                o = ops.setdefault(e["client"], {"ops": 0, "ok": 0, "err": 0, "bytes": 0, "kinds": {}})
                o["ops"] += 1
                o["ok" if e["ok"] else "err"] += 1
                o["bytes"] += e["bytes"]
                o["kinds"][e["op"]] = o["kinds"].get(e["op"], 0) + 1
                if not e["ok"]:
                    key = (e["client"], e["op"], e["err"])
                    errors[key] = errors.get(key, 0) + 1
    with open(a.verify) as f:
        v = json.load(f)
    with open(a.probe) as f:
        probe = json.load(f)
    samples = []
    with open(a.samples) as f:
        for line in f:
            s = json.loads(line)
            if "fds" in s:
                samples.append(s)
    base_fd, base_rss = a.baseline
    end_fd, end_rss = a.end
    peak_fd = max([s["fds"] for s in samples] + [base_fd, end_fd])
    peak_rss = max([s["rss_kb"] for s in samples] + [base_rss, end_rss])

    checks = []
    before = sum(o["kinds"].get("disk-check", 0) for o in ops.values())
    before_bad = sum(n for (_, op, _), n in errors.items() if op == "disk-check")
    checks.append(("every upload seen complete is on disk, byte for byte",
                   not v["corrupt"] and not v["missing"] and before_bad == 0,
                   f"{before:,} checked before the client deleted them ({before_bad} differ or "
                   f"missing), {v['checked']} at the end ({v['bytes']:,} bytes; corrupt "
                   f"{len(v['corrupt'])}, missing {len(v['missing'])})"))
    checks.append(("no stray or misplaced file", not v["stray"] and not v["unexpected_top"],
                   f"stray {len(v['stray'])}, unexpected top-level {v['unexpected_top']}"))
    good_err = sum(o["err"] for k, o in ops.items() if k in ("curl", "lftp", "ftplib"))
    checks.append(("the good clients saw no error", good_err == 0, f"{good_err} errors"))
    checks.append(("the server answers at the end (plain and FTPS)", probe["ok"],
                   "; ".join(probe["problems"]) or "login, LIST, STOR, RETR, DELE"))
    checks.append((f"fds back near the baseline (end <= baseline + {a.fd_slack})",
                   end_fd <= base_fd + a.fd_slack, f"{base_fd} -> {end_fd}"))
    checks.append((f"RSS back near the baseline (end <= baseline + {a.rss_slack_kb} KiB)",
                   end_rss <= base_rss + a.rss_slack_kb, f"{base_rss} -> {end_rss} KiB"))
    kept = sum(n for (c, _, err), n in errors.items() if err and err.startswith("server kept"))
    checks.append(("the server closed every slowloris session (login/idle timeout)", kept == 0,
                   f"{kept} kept open"))
    for k in ("curl", "lftp", "ftplib", "bad", "badpass"):
        if k not in ops or ops[k]["ops"] == 0:
            checks.append((f"{k} clients ran", False, "no operations"))

    L = []
    L.append("| client | operations | ok | errors | bytes moved | operations by kind |")
    L.append("|---|---:|---:|---:|---:|---|")
    for k in ("curl", "lftp", "ftplib", "bad", "badpass"):
        o = ops.get(k, {"ops": 0, "ok": 0, "err": 0, "bytes": 0, "kinds": {}})
        kinds = ", ".join(f"{n} {c}" for n, c in sorted(o["kinds"].items()))
        L.append(f"| {k} | {o['ops']:,} | {o['ok']:,} | {o['err']:,} | {o['bytes']:,} | {kinds} |")
    total = sum(o["bytes"] for o in ops.values())
    L.append(f"| **all** | {sum(o['ops'] for o in ops.values()):,} | "
             f"{sum(o['ok'] for o in ops.values()):,} | {sum(o['err'] for o in ops.values()):,} | "
             f"{total:,} | |")
    L.append("")
    L.append("Errors by kind (the misbehaving clients' own errors are expected: the server may hang up on them):")
    L.append("")
    if errors:
        L.append("| client | operation | error | count |")
        L.append("|---|---|---|---:|")
        for (c, op, err), n in sorted(errors.items(), key=lambda x: (-x[1], x[0])):
            L.append(f"| {c} | {op} | {err} | {n:,} |")
    else:
        L.append("none")
    if notes:
        L.append("")
        L.append("Notes from the misbehaving clients:")
        L.append("")
        for (n, t), c in sorted(notes.items(), key=lambda x: -x[1])[:12]:
            L.append(f"- {n}: {t} ({c}x)")
    L.append("")
    L.append("| server | baseline | peak | end |")
    L.append("|---|---:|---:|---:|")
    L.append(f"| open fds (/proc/PID/fd) | {base_fd} | {peak_fd} | {end_fd} |")
    L.append(f"| VmRSS (KiB) | {base_rss:,} | {peak_rss:,} | {end_rss:,} |")
    L.append("")
    L.append("| check | result | detail |")
    L.append("|---|---|---|")
    for name, ok, detail in checks:
        L.append(f"| {name} | {'pass' if ok else '**FAIL**'} | {detail} |")
    for lst, what in ((v["corrupt"], "corrupt"), (v["missing"], "missing"), (v["stray"], "stray")):
        for p in lst[:20]:
            L.append(f"\n- {what}: {p}")
    with open(a.out, "w") as f:
        f.write("\n".join(L) + "\n")
    failed = [n for n, ok, _ in checks if not ok]
    print(json.dumps({"failed": failed}))
    return 1 if failed else 0


def main():
    p = argparse.ArgumentParser(description="soak.sh's clients and checks")
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("curl", "lftp", "ftplib", "bad", "badpass", "probe"):
        s = sub.add_parser(name)
        if name == "probe":
            s.add_argument("--port", type=int, required=True)
            s.add_argument("--user", required=True)
            s.add_argument("--password", required=True)
            continue
        common(s)
        if name in ("bad", "badpass"):
            s.add_argument("--source", required=True, help="local address to connect from")
            s.add_argument("--slow-secs", type=float, default=40)
    s = sub.add_parser("monitor")
    s.add_argument("--pid", type=int, required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--stop-file", required=True)
    s.add_argument("--every", type=float, default=0.5)
    s = sub.add_parser("sample")
    s.add_argument("--pid", type=int, required=True)
    s.add_argument("--count", type=int, default=5)
    s.add_argument("--every", type=float, default=0.2)
    s = sub.add_parser("verify")
    s.add_argument("--work", required=True)
    s.add_argument("--root", required=True)
    s = sub.add_parser("report")
    s.add_argument("--work", required=True)
    s.add_argument("--verify", required=True)
    s.add_argument("--probe", required=True)
    s.add_argument("--samples", required=True)
    s.add_argument("--baseline", type=int, nargs=2, required=True)
    s.add_argument("--end", type=int, nargs=2, required=True)
    s.add_argument("--fd-slack", type=int, default=2)
    s.add_argument("--rss-slack-kb", type=int, default=32768)
    s.add_argument("--out", required=True)
    a = p.parse_args()
    f = {"curl": cmd_curl, "lftp": cmd_lftp, "ftplib": cmd_ftplib, "bad": cmd_bad,
         "badpass": cmd_badpass, "monitor": cmd_monitor, "sample": cmd_sample,
         "probe": cmd_probe, "verify": cmd_verify, "report": cmd_report}[a.cmd]
    sys.exit(f(a) or 0)


if __name__ == "__main__":
    main()
