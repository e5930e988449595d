"""workers_report.py: the report of demo/bench/workers.sh, from its raw JSON lines.

Reads the environment workers.sh exports (RAW, OUT_MD, the settings, the machine) and
writes OUT_MD: the rates (median of the rounds) with the ratios, the server's and the
client's CPU, the TLS handshakes, and the failures.
"""

import json
import os
import statistics

E = os.environ
SERVERS = E["SERVER_COLS"].split()
ROWS = E["WORKLOAD_ROWS"].split()
NAMES = {
    "ftpdlib-1": "ftpdlib, 1 worker",
    "ftpdlib-2": "ftpdlib, 2 workers",
    "pyftpdlib-mp": "pyftpdlib, MultiprocessFTPServer",
    "pyftpdlib": "pyftpdlib, FTPServer (1 process)",
}
# workload -> (label, metric, unit, what one unit of server CPU is spent per)
WL = {
    "tls_1m": (f"FTPS RETR of 1 MiB, {E['TLS_CLIENTS']} clients, "
               f"{E['TLS_RETRS']} RETRs per session", "mib_per_s", "MiB/s", "MiB"),
    "tls_tiny": (f"FTPS sessions with one RETR of {E['TINY_BYTES']} bytes, "
                 f"{E['TLS_CLIENTS']} clients", "sessions_per_s", "sessions/s", "session"),
    "plain_1m": (f"plain RETR of 1 MiB, {E['PLAIN_CLIENTS']} sessions", "mib_per_s",
                 "MiB/s", "MiB"),
    "login_seq": ("logins, one client, sequential", "sessions_per_s", "logins/s", "login"),
    "login_conc": (f"logins, {E['LOGIN_CLIENTS']} clients at once", "sessions_per_s",
                   "logins/s", "login"),
}

rows = [json.loads(line) for line in open(E["RAW"]) if line.strip()]


def runs(srv, wl):
    return [r for r in rows if r["server"] == srv and r["wl"] == wl and "error" not in r]


def med(srv, wl, key):
    v = [r[key] for r in runs(srv, wl) if r.get(key) is not None]
    return statistics.median(v) if v else None


def fmt(v, digits=3):
    if v is None:
        return "–"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.{digits}g}"


def ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "–"


def pair_ratios(wl, metric, a, b):
    """The ratio a/b of each round, where both ran."""
    out = []
    for rnd in sorted({r["round"] for r in rows}):
        x = [r[metric] for r in runs(a, wl) if r["round"] == rnd]
        y = [r[metric] for r in runs(b, wl) if r["round"] == rnd]
        if x and y and y[0]:
            out.append(x[0] / y[0])
    return out


L = []
L.append("# One reactor per core: ftpdlib --workers against pyftpdlib")
L.append("")
L.append(f"- date: {E['RUN_DATE']}; {E['ROUNDS']} rounds, servers in turn (order rotated "
         f"every round), each started fresh per workload; medians of the rounds; "
         f"{E['BENCH_S']} s in all")
L.append(f"- command: `demo/bench/workers.sh` (ROUNDS={E['ROUNDS']} WINDOW={E['WINDOW']} "
         f"WARMUP={E['WARMUP']} TLS_CLIENTS={E['TLS_CLIENTS']} TLS_RETRS={E['TLS_RETRS']} "
         f"TINY_BYTES={E['TINY_BYTES']} PLAIN_CLIENTS={E['PLAIN_CLIENTS']} "
         f"LOGIN_CLIENTS={E['LOGIN_CLIENTS']})")
L.append(f"- machine: {E['MACHINE']}, {E['MACHINE_MEM']}; the client runs on the same "
         f"cores as the server")
L.append(f"- ftpdlib at {E['REV']}, `{E['FTPDLIB_BIN']}`; pyftpdlib {E['PYFTPDLIB_VERSION']} "
         f"with pyOpenSSL {E.get('PYOPENSSL_VERSION') or '–'} ({E.get('OPENSSL_LIB') or '–'}), "
         f"fresh venv")
L.append(f"- each figure: a {E['WINDOW']} s window after {E['WARMUP']} s of warm-up; server "
         f"CPU = utime + stime (+ reaped children's) of the server's process tree from "
         f"/proc/PID/stat over the window, in cores (1.00 = one CPU busy)")
noisy = sum(1 for r in rows if r.get("noisy"))
L.append(f"- other processes share this machine: before each run the script waited (up to "
         f"{E['QUIET_WAIT']} s) for them to use at most {E['QUIET_MAX']} cores over a "
         f"second, and made a run again when they took more than that during its window "
         f"({E['REDONE']} runs made again; {noisy} kept noisy after {E['RETRIES']} "
         f"attempts); the CPU table shows what they took in the runs kept")
L.append("- FTPS: RSA-2048 self-signed certificate, TLS as negotiated (below); the client "
         "(rustls) checks neither the certificate nor the signature")
for n in filter(None, E.get("NOTE_TEXT", "").split("\n")):
    L.append(f"- note: {n}")
L.append("")

# Rates.
head = ["workload", "unit"] + [NAMES.get(s, s) for s in SERVERS]
pairs = []
if "ftpdlib-1" in SERVERS and "ftpdlib-2" in SERVERS:
    pairs.append(("ftpdlib-2", "ftpdlib-1", "2 workers / 1 worker"))
if "ftpdlib-2" in SERVERS and "pyftpdlib-mp" in SERVERS:
    pairs.append(("ftpdlib-2", "pyftpdlib-mp", "2 workers / pyftpdlib multiproc"))
if "ftpdlib-1" in SERVERS and "pyftpdlib" in SERVERS:
    pairs.append(("ftpdlib-1", "pyftpdlib", "1 worker / pyftpdlib 1 process"))
head += [p[2] for p in pairs]
L.append("## Rates (higher is better)")
L.append("")
L.append("| " + " | ".join(head) + " |")
L.append("|" + "---|" * len(head))
ranges = []
for wl in ROWS:
    label, metric, unit, _ = WL[wl]
    cells = [label, unit] + [fmt(med(s, wl, metric)) for s in SERVERS]
    for a, b, _n in pairs:
        cells.append(ratio(med(a, wl, metric), med(b, wl, metric)))
        pr = pair_ratios(wl, metric, a, b)
        if pr and a == "ftpdlib-2" and b == "ftpdlib-1":
            ranges.append(f"{wl} {min(pr):.2f}-{max(pr):.2f}")
    L.append("| " + " | ".join(cells) + " |")
L.append("")
if ranges:
    L.append("2 workers / 1 worker in single rounds (each pair measured in the same round), "
             "min-max: " + "; ".join(ranges) + ".")
    L.append("")

# CPU.
L.append("## Server CPU (cores), the client's and the rest of the machine's, medians")
L.append("")
head = ["workload"] + [NAMES.get(s, s) for s in SERVERS]
L.append("| " + " | ".join(head) + " |")
L.append("|" + "---|" * len(head))
for wl in ROWS:
    label, metric, unit, per = WL[wl]
    cells = [label]
    for s in SERVERS:
        sc, cc, rate = med(s, wl, "server_cores"), med(s, wl, "client_cores"), med(s, wl, metric)
        oc = med(s, wl, "others_cores")
        if sc is None:
            cells.append("–")
            continue
        per_unit = f"; {1000 * sc / rate:.3g} ms per {per}" if rate else ""
        others = f", others {oc:.2f}" if oc is not None else ""
        cells.append(f"server {sc:.2f} (client {cc:.2f}{others}){per_unit}")
    L.append("| " + " | ".join(cells) + " |")
L.append("")
procs = [(s, max((r["server_procs"] for r in runs(s, wl)), default=0)) for s in SERVERS
         for wl in ROWS]
mp = [p for s, p in procs if s == "pyftpdlib-mp"]
if mp:
    L.append(f"pyftpdlib's MultiprocessFTPServer had up to {max(mp)} processes at the end "
             "of a window (one per open session, plus the parent).")
    L.append("")

# The two reactors.
if "ftpdlib-2" in SERVERS:
    L.append("## ftpdlib with 2 workers: how the load fell on the reactors")
    L.append("")
    L.append("The busier reactor's share of the two reactors' CPU over the window (0.50 = "
             "even), median and max over the rounds; the worker pool's CPU; and the lock "
             "waits on the shared limits over each whole run (`ftpdlib_lock_waits_total`, "
             "summed over the rounds).")
    L.append("")
    L.append("| workload | busier reactor's share, median (max) | reactors, cores | pool workers, cores | lock waits |")
    L.append("|---|---|---|---|---|")
    for wl in ROWS:
        rs = [r for r in runs("ftpdlib-2", wl) if r.get("thread_cores")]
        if not rs:
            continue
        shares, reac, pool = [], [], []
        for r in rs:
            t = r["thread_cores"]
            rc = [v for k, v in t.items() if k.startswith("ftpd-reactor")]
            if len(rc) >= 2 and sum(rc) > 0:
                shares.append(max(rc) / sum(rc))
                reac.append(" + ".join(f"{v:.2f}" for v in rc))
            pool.append(t.get("ftpdlib-worker", 0.0))
        waits = sum(r.get("lock_waits", 0) for r in rs)
        share = f"{statistics.median(shares):.2f} ({max(shares):.2f})" if shares else "–"
        L.append(f"| {WL[wl][0]} | {share} | {reac[len(reac) // 2] if reac else '–'} | "
                 f"{statistics.median(pool):.2f} | {waits:.0f} |")
    L.append("")

# TLS handshakes.
tls_rows = [wl for wl in ROWS if wl.startswith("tls")]
if tls_rows:
    L.append("## TLS handshakes (all rounds, whole runs)")
    L.append("")
    L.append("| workload | server | suite | control: full | data: resumed / all |")
    L.append("|---|---|---|---|---|")
    for wl in tls_rows:
        for s in SERVERS:
            rs = runs(s, wl)
            if not rs:
                continue
            suite = next((r["tls_suite"] for r in rs if r.get("tls_suite")), "–")
            cf = sum(r["ctrl_full"] for r in rs)
            dr = sum(r["data_resumed"] for r in rs)
            dall = dr + sum(r["data_full"] for r in rs)
            L.append(f"| {wl} | {NAMES.get(s, s)} | {suite} | {cf} | {dr} / {dall} |")
    L.append("")

# Failures.
fails = []
for s in SERVERS:
    for wl in ROWS:
        bad = [r for r in rows if r["server"] == s and r["wl"] == wl and "error" in r]
        errs = sum(r.get("errors", 0) for r in runs(s, wl))
        if bad:
            fails.append(f"- {s} {wl}: {len(bad)} run(s) failed: {bad[0]['error']}")
        if errs:
            first = next((r["first_error"] for r in runs(s, wl) if r.get("first_error")), "")
            fails.append(f"- {s} {wl}: {errs} session error(s) in the runs (counted, the "
                         f"run kept going); first: {first}")
L.append("## Failures")
L.append("")
L.extend(fails or ["None: every RETR returned its exact size, every session ended with 221."])
L.append("")
open(E["OUT_MD"], "w").write("\n".join(L))
