"""report.py: the report of demo/bench/object.sh, from its raw JSON lines (RAW), written to
OUT_MD. Medians of the rounds; ratios are taken round by round (both columns of a ratio ran
in the same round) and their median given.
"""

import json
import os
import statistics

E = os.environ
ROWS = [json.loads(line) for line in open(E["RAW"]) if line.strip()]
DIRECT = ("rclone", "boto3")
MIB = 1 << 20
CONC = int(E["CONC"])


def ok(r):
    return "error" not in r and r.get("mib_s") is not None and not r.get("n_errors")


def get(method, wl, op, key, rnd=None):
    return [r[key] for r in ROWS if r.get("method") == method and r.get("wl") == wl
            and r.get("op") == op and ok(r) and r.get(key) is not None
            and (rnd is None or r["round"] == rnd)]


def med(v):
    return statistics.median(v) if v else None


def fmt(v, digits=3):
    if v is None:
        return "–"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.{digits}g}"


def spread(v):
    if not v:
        return "–"
    if len(v) == 1:
        return fmt(v[0])
    return f"{fmt(med(v))} ({fmt(min(v))}–{fmt(max(v))})"


def rounds():
    return sorted({r["round"] for r in ROWS})


def best_direct(wl, op, rnd):
    v = [x for m in DIRECT for x in get(m, wl, op, "mib_s", rnd)]
    return max(v) if v else None


def ratio_rounds(a, wl, op, ref):
    """Per-round a / ref, where ref is a method name or "direct" (the better of rclone and
    boto3 in that round)."""
    out = []
    for rnd in rounds():
        x = get(a, wl, op, "mib_s", rnd)
        y = best_direct(wl, op, rnd) if ref == "direct" else (get(ref, wl, op, "mib_s", rnd) or [None])[0]
        if x and y:
            out.append(x[0] / y)
    return out


def rfmt(v):
    if not v:
        return "–"
    m = med(v)
    return f"{m:.2f}" if len(v) == 1 else f"{m:.2f} ({min(v):.2f}–{max(v):.2f})"


methods = []
for r in ROWS:
    if r.get("method") not in methods:
        methods.append(r["method"])
main = [m for m in methods if not m.startswith("s3:")]
sweep = [m for m in methods if m.startswith("s3:")]
SWEEP_FLAGS = dict(s.split("=", 1) for s in E.get("SWEEP", "").split() if "=" in s)
NAMES = {
    "ftpdlib-s3": "ftpdlib → S3 (defaults)",
    "ftpdlib-disk": "ftpdlib → tmpfs",
    "rclone": "rclone → S3 direct",
    "boto3": "boto3 → S3 direct",
}


def name(m):
    if m == "s3:rt":
        return "ftpdlib → S3 (defaults), reactor + probe SCHED_FIFO"
    if m.startswith("s3:rt"):
        return (f"ftpdlib → S3, `{SWEEP_FLAGS.get(m[3:], '').replace(',', ' ')}`, "
                "reactor + probe SCHED_FIFO")
    if m.startswith("s3:"):
        return f"ftpdlib → S3, `{SWEEP_FLAGS.get(m[3:], '').replace(',', ' ')}`"
    return NAMES.get(m, m)


out = []
w = out.append
w(f"# Object storage, {E['RUN_DATE'][:10]}")
w("")
w(f"- run: {E['RUN_DATE']}, `demo/bench/object.sh`, {E['BENCH_S']} s; ftpdlib {E['REV']}")
w(f"- machine: {E['MACHINE']}, {E['MACHINE_MEM']}; the S3 gateway, its OSD, the server and "
  "the clients all share these cores")
w(f"- S3: {E['CEPH_NOTE']}, {E['S3_ENDPOINT']}")
w(f"- clients: {E['CURL_VERSION']}, {E['RCLONE_VERSION']}, boto3 {E['BOTO3_VERSION']}, "
  "Python ftplib (demo/bench/object/client.py)")
w(f"- rounds: {E['ROUNDS']} (the sweep in the first {E['SWEEP_ROUNDS']}), columns rotated; "
  f"single stream {E['SIZE_MB']} MiB; {CONC} clients × {E['CONC_MB']} MiB; NOOP probe every "
  f"{E['PROBE_MS']} ms")
w("")
w("Cells: median of the rounds (lowest–highest). Ratios: per round, then the median; "
  "\"best direct\" is the faster of rclone and boto3 in the same round.")
w("")

w(f"## Single stream, {E['SIZE_MB']} MiB (MiB/s)")
w("")
w("| column | STOR / upload | RETR / download |")
w("| --- | --- | --- |")
for m in main + sweep:
    w(f"| {name(m)} | {spread(get(m, 'single', 'stor', 'mib_s'))} | "
      f"{spread(get(m, 'single', 'retr', 'mib_s'))} |")
w("")
w("| ratio | STOR | RETR |")
w("| --- | --- | --- |")
for a, ref, label in (("ftpdlib-s3", "direct", "ftpdlib → S3 / best direct"),
                      ("ftpdlib-s3", "rclone", "ftpdlib → S3 / rclone"),
                      ("ftpdlib-s3", "boto3", "ftpdlib → S3 / boto3"),
                      ("ftpdlib-s3", "ftpdlib-disk", "ftpdlib → S3 / ftpdlib → tmpfs")):
    w(f"| {label} | {rfmt(ratio_rounds(a, 'single', 'stor', ref))} | "
      f"{rfmt(ratio_rounds(a, 'single', 'retr', ref))} |")
w("")

w(f"## {CONC} clients at once, {E['CONC_MB']} MiB each (aggregate MiB/s)")
w("")
w("| column | STOR / upload | RETR / download | NOOP p50 / p99 / max ms (STOR phase) "
  "| NOOP p50 / p99 / max ms (RETR phase) |")
w("| --- | --- | --- | --- | --- |")


def noop(m, op):
    rs = [r["noop"] for r in ROWS if r.get("method") == m and r.get("wl") == "conc"
          and r.get("op") == op and isinstance(r.get("noop"), dict) and "max_ms" in r["noop"]
          and r["noop"]["max_ms"] is not None]
    if not rs:
        return "–"
    p50 = med([x["p50_ms"] for x in rs])
    p99 = med([x["p99_ms"] for x in rs])
    mx = max(x["max_ms"] for x in rs)
    n = sum(x["n"] for x in rs)
    return f"{p50:.2f} / {p99:.1f} / **{mx:.1f}** ({n} NOOPs)"


for m in main + sweep:
    w(f"| {name(m)} | {spread(get(m, 'conc', 'stor', 'mib_s'))} | "
      f"{spread(get(m, 'conc', 'retr', 'mib_s'))} | {noop(m, 'stor')} | {noop(m, 'retr')} |")
w("")
w("NOOP on the boto3 row: the probe against an idle ftpdlib while boto3 loads the machine, "
  "the delay the load alone adds. Max: the highest of all rounds; p50, p99: medians.")
w("")


def logins(m, op):
    rs = [r["noop"] for r in ROWS if r.get("method") == m and r.get("wl") == "conc"
          and r.get("op") == op and isinstance(r.get("noop"), dict)
          and r["noop"].get("login_max_ms") is not None]
    if not rs:
        return "–"
    return (f"{med([x['login_p50_ms'] for x in rs]):.1f} / "
            f"**{max(x['login_max_ms'] for x in rs):.0f}** ({sum(x['logins'] for x in rs)})")


if any(isinstance(r.get("noop"), dict) and r["noop"].get("logins") for r in ROWS):
    w("A new session every second from the probe (connect, USER, PASS, QUIT), ms, p50 / max "
      "(count):")
    w("")
    w("| column | during the uploads | during the downloads |")
    w("| --- | --- | --- |")
    for m in main + sweep:
        if logins(m, "stor") != "–" or logins(m, "retr") != "–":
            w(f"| {name(m)} | {logins(m, 'stor')} | {logins(m, 'retr')} |")
    w("")
w("| ratio | STOR | RETR |")
w("| --- | --- | --- |")
for a, ref, label in (("ftpdlib-s3", "direct", "ftpdlib → S3 / best direct"),
                      ("ftpdlib-s3", "rclone", "ftpdlib → S3 / rclone"),
                      ("ftpdlib-s3", "boto3", "ftpdlib → S3 / boto3"),
                      ("ftpdlib-s3", "ftpdlib-disk", "ftpdlib → S3 / ftpdlib → tmpfs")):
    w(f"| {label} | {rfmt(ratio_rounds(a, 'conc', 'stor', ref))} | "
      f"{rfmt(ratio_rounds(a, 'conc', 'retr', ref))} |")
w("")

w("## The server's memory and CPU")
w("")
w("VmRSS before (fresh server, idle); peak: VmHWM over the transfer (reset before it) less "
  f"VmRSS before, MiB; per transfer: the {CONC}-client peak / {CONC}. CPU: utime + stime of "
  "the server per MiB moved, ms.")
w("")
w(f"| column | RSS before | single STOR peak | single RETR peak | {CONC}× STOR peak "
  f"(per transfer) | {CONC}× RETR peak (per transfer) | CPU ms/MiB single STOR / RETR "
  f"| CPU ms/MiB {CONC}× STOR / RETR | reactor ms per s, on a CPU / waiting for one, "
  f"{CONC}× STOR; RETR |")
w("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")


def reactor(m, op):
    rs = [r for r in ROWS if r.get("method") == m and r.get("wl") == "conc"
          and r.get("op") == op and ok(r) and r.get("reactor_cpu_ms") is not None]
    if not rs:
        return "–"
    c = med([r["reactor_cpu_ms"] / r["wall_s"] for r in rs])
    q = med([r["reactor_runq_ms"] / r["wall_s"] for r in rs])
    return f"{fmt(c)} / {fmt(q)}"


def peak(m, wl, op, per=1):
    v = [(r["hwm_kib"] - r["rss_before_kib"]) / 1024 / per for r in ROWS
         if r.get("method") == m and r.get("wl") == wl and r.get("op") == op and ok(r)
         and r.get("hwm_kib") and r.get("rss_before_kib")]
    return med(v)


def cpu(m, wl, op):
    v = []
    for r in ROWS:
        if r.get("method") == m and r.get("wl") == wl and r.get("op") == op and ok(r) \
                and r.get("cpu_s") is not None:
            mib = int(E["SIZE_MB"]) if wl == "single" else r["ok"] * r["size"] / MIB
            v.append(r["cpu_s"] * 1000 / mib)
    return med(v)


for m in [x for x in main + sweep if x.startswith(("ftpdlib", "s3:"))]:
    before = med([r["rss_before_kib"] / 1024 for r in ROWS if r.get("method") == m
                  and r.get("rss_before_kib")])
    cs = peak(m, "conc", "stor")
    cr = peak(m, "conc", "retr")
    w(f"| {name(m)} | {fmt(before)} | {fmt(peak(m, 'single', 'stor'))} | "
      f"{fmt(peak(m, 'single', 'retr'))} | {fmt(cs)} ({fmt(cs / CONC if cs else None)}) | "
      f"{fmt(cr)} ({fmt(cr / CONC if cr else None)}) | "
      f"{fmt(cpu(m, 'single', 'stor'))} / {fmt(cpu(m, 'single', 'retr'))} | "
      f"{fmt(cpu(m, 'conc', 'stor'))} / {fmt(cpu(m, 'conc', 'retr'))} | "
      f"{reactor(m, 'stor')}; {reactor(m, 'retr')} |")
w("")

if sweep:
    w(f"## Settings (rounds 1–{E['SWEEP_ROUNDS']}), against the defaults in the same rounds")
    w("")
    w("| ftpdlib → S3 with | single STOR | single RETR | "
      f"{CONC}× STOR | {CONC}× RETR | NOOP max ms | {CONC}× peak MiB per transfer (STOR / RETR) |")
    w("| --- | --- | --- | --- | --- | --- | --- |")
    srounds = [x for x in rounds() if x <= int(E["SWEEP_ROUNDS"])]

    def rel(m, wl, op):
        rs = []
        for rnd in srounds:
            x = get(m, wl, op, "mib_s", rnd)
            y = get("ftpdlib-s3", wl, op, "mib_s", rnd)
            if x and y:
                rs.append(x[0] / y[0])
        v = [r["mib_s"] for r in ROWS if r.get("method") == m and r.get("wl") == wl
             and r.get("op") == op and ok(r) and r["round"] in srounds]
        return f"{fmt(med(v))} (×{med(rs):.2f})" if v and rs else fmt(med(v))

    for m in ["ftpdlib-s3"] + sweep:
        nm = [r["noop"]["max_ms"] for r in ROWS if r.get("method") == m and r.get("wl") == "conc"
              and r["round"] in srounds and isinstance(r.get("noop"), dict)
              and r["noop"].get("max_ms") is not None]
        ps = peak(m, "conc", "stor", CONC)
        pr = peak(m, "conc", "retr", CONC)
        flags = "(defaults)" if m == "ftpdlib-s3" else \
            f"`{SWEEP_FLAGS.get(m[3:], '').replace(',', ' ')}`" if SWEEP_FLAGS.get(m[3:]) \
            else name(m)
        w(f"| {flags} | {rel(m, 'single', 'stor')} | {rel(m, 'single', 'retr')} | "
          f"{rel(m, 'conc', 'stor')} | {rel(m, 'conc', 'retr')} | "
          f"{fmt(max(nm)) if nm else '–'} | {fmt(ps)} / {fmt(pr)} |")
    w("")

errs = [r for r in ROWS if "error" in r or r.get("n_errors")]
if errs:
    w("## Failures")
    w("")
    for r in errs:
        w(f"- {r.get('method')} {r.get('wl')} {r.get('op', '')} round {r.get('round')}: "
          f"{r.get('error') or r.get('errors')}")
    w("")

w("## Raw")
w("")
w("```")
for r in ROWS:
    w(json.dumps(r, separators=(",", ":")))
w("```")
with open(E["OUT_MD"], "w") as f:
    f.write("\n".join(out) + "\n")
