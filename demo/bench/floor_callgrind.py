#!/usr/bin/env python3
"""floor_callgrind.py: instructions per operation from the callgrind dumps of
demo/bench/floor_callgrind.sh, as a Markdown report.

    python3 floor_callgrind.py OUT.md --dumps DIR --meta META.jsonl [--top 15]

META.jsonl has one line per workload: {"server": ..., "workload": ..., "n": N, "dump_n":
PATH, "dump_3n": PATH, "annotate": PATH} (annotate: callgrind_annotate --inclusive=yes of
the 3N dump). Each dump holds only its batch (callgrind_control -z before it, -d after), so
(total of the 3N dump - total of the N dump) / 2N is the cost of one operation, the batch's
own session (login, QUIT) cancelled; the same difference per function gives own costs.

The parser reads callgrind's format (valgrind's docs, "Callgrind Format Specification"):
name compression "(id) name" / "(id)", ob= / fn= set the current object and function, a
cost line after calls= is the inclusive cost of that call (not the caller's own), every
other cost line is the current function's own cost. The first event (Ir) is used.
"""

import argparse
import json
import os
import re
from collections import defaultdict

NAMES = {"ftpdlib": "ftpdlib", "before": "ftpdlib (before)", "floor": "floor"}
ORDER = ["ftpdlib code", "mio", "rustls", "Rust std/core/alloc", "other crates",
         "libc (syscall stubs, malloc, ...)", "ld.so, valgrind preload"]


def parse(path):
    """Returns (total Ir, {(object, function): own Ir})."""
    names = {"ob": {}, "fn": {}}
    own = defaultdict(int)
    ob = fn = ""
    skip_next = False
    total = None
    npos = 1
    sub = re.compile(r"^\((\d+)\)(?: (.*))?$")

    def name(kind, val):
        m = sub.match(val)
        if not m:
            return val
        if m.group(2) is not None:
            names[kind][m.group(1)] = m.group(2)
            return m.group(2)
        return names[kind].get(m.group(1), val)

    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                if skip_next:
                    skip_next = False
                    continue
                parts = line.split()
                if len(parts) > npos:
                    own[(ob, fn)] += int(parts[npos])
                continue
            key, _, val = line.partition("=")
            if key == "ob":
                ob = name("ob", val)
            elif key == "fn":
                fn = name("fn", val)
            elif key in ("cob", "cfob"):
                name("ob", val)
            elif key in ("cfn",):
                name("fn", val)
            elif key == "calls":
                skip_next = True
            elif line.startswith("positions:"):
                npos = len(line.split()) - 1
            elif line.startswith(("totals:", "summary:")):
                total = int(line.split()[1])
    return total, own


def category(ob, fn):
    o = ob.rsplit("/", 1)[-1]
    if o.startswith("libc"):
        return "libc (syscall stubs, malloc, ...)"
    if o.startswith(("ld-linux", "ld-", "vgpreload")):
        return "ld.so, valgrind preload"
    if re.search(r"\brustls|(^|[^A-Za-z_])ring::|aws_lc", fn):
        return "rustls"
    if "ftpdlib" in fn:
        return "ftpdlib code"
    if fn.startswith("mio::") or "<mio::" in fn:
        return "mio"
    if (re.match(r"^<?&?(std|core|alloc|hashbrown)::", fn)
            or re.match(r"^<[a-z0-9&\[\]; ]+ as (core|std|alloc)::", fn)
            or fn.startswith(("__rust", "__rdl", "rust_"))):
        return "Rust std/core/alloc"
    if o.startswith("lib") and ".so" in o:
        return "libc (syscall stubs, malloc, ...)"
    return "other crates"


def short(fn):
    """A function line of callgrind_annotate without its source file and object."""
    fn = re.sub(r" \[[^\]]*\]$", "", fn)
    m = re.match(r"^([^:]*):(?!:)(.*)$", fn)
    return m.group(2) if m else fn


def top_inclusive(path, k):
    """The first k functions of a callgrind_annotate --inclusive=yes report, each once
    (callgrind_annotate may list a function once per source file of its inlined parts:
    the largest is kept)."""
    out = []
    seen = set()
    started = False
    for line in open(path, errors="replace"):
        s = line.strip()
        if not started:
            if s.startswith("Ir") and "file:function" in s:
                started = True
            continue
        if not s or s.startswith("-"):
            if out:
                break
            continue
        m = re.match(r"^([\d,]+)\s+(?:\([\d.]+%\)\s+)?(.*)$", s)
        if m and short(m.group(2)) not in seen:
            seen.add(short(m.group(2)))
            out.append((int(m.group(1).replace(",", "")), short(m.group(2))))
        if len(out) >= k:
            break
    return out


def strace_counts(path):
    d = {}
    for line in open(path):
        f = line.split()
        if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
            d[f[-1]] = int(f[3])
    return d


def strace_table(directory, ns, titles):
    """System calls per operation: (count at 3N - count at N) / 2N, per server."""
    small, xfer = (int(x) for x in ns.split(","))
    names = [s for s in ("floor", "ftpdlib", "before")
             if any(f.startswith(s + "-") for f in os.listdir(directory))]
    L = ["## System calls per operation (strace -f -c)", "",
         "Each server under `strace -f -c` twice per workload, N and 3N operations "
         f"(N = {small}, STOR and RETR: {xfer}); the difference over 2N. Every thread.", ""]
    L.append("| operation | " + " | ".join(f"{NAMES.get(s, s)}: calls per op" for s in names)
             + " | " + " | ".join(f"{NAMES.get(s, s)}: which" for s in names) + " |")
    L.append("|---|" + "---|" * (2 * len(names)))
    for wl in ("login", "noop", "stor", "retr"):
        n = xfer if wl in ("stor", "retr") else small
        tot, which = [], []
        for s in names:
            a = os.path.join(directory, f"{s}-{wl}-{n}")
            b = os.path.join(directory, f"{s}-{wl}-{3 * n}")
            if not (os.path.exists(a) and os.path.exists(b)):
                tot.append("n/a")
                which.append("")
                continue
            ca, cb = strace_counts(a), strace_counts(b)
            per = {k: (cb.get(k, 0) - ca.get(k, 0)) / (2 * n) for k in set(ca) | set(cb)}
            per = {k: v for k, v in per.items() if v >= 0.05}
            tot.append(f"{sum(per.values()):.1f}")
            which.append(", ".join(f"{k} {v:.1f}" for k, v in
                                   sorted(per.items(), key=lambda kv: -kv[1])))
        L.append(f"| {titles.get(wl, wl)} | " + " | ".join(tot) + " | " + " | ".join(which) + " |")
    L.append("")
    return L


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--meta", required=True)
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--header", default="", help="lines to put first (\\n-separated)")
    p.add_argument("--strace", default="", help="directory of strace -c summaries")
    p.add_argument("--strace-n", default="", help="N of login/noop, N of stor/retr")
    a = p.parse_args()
    meta = [json.loads(line) for line in open(a.meta) if line.strip()]
    res = {}
    for m in meta:
        t1, own1 = parse(m["dump_n"])
        t3, own3 = parse(m["dump_3n"])
        n = 2 * m["n"]  # the operations in the difference
        own = {k: own3.get(k, 0) - own1.get(k, 0) for k in set(own1) | set(own3)}
        cats = defaultdict(int)
        byfn = defaultdict(int)
        for (ob, fn), v in own.items():
            cats[category(ob, fn)] += v
            byfn[fn] += v
        m = dict(m, ops=n, ops_3n=3 * m["n"])
        res[(m["server"], m["workload"])] = (m, t3 - t1, cats, byfn)
    servers = list(dict.fromkeys(m["server"] for m in meta))
    workloads = list(dict.fromkeys(m["workload"] for m in meta))
    titles = {"login": "login (connect, USER, PASS, QUIT)", "noop": "NOOP",
              "stor": "STOR of 1 MiB (EPSV, data connection, 226)",
              "retr": "RETR of 1 MiB (EPSV, data connection, 226)"}

    L = a.header.split("\\n") + [""] if a.header else []
    L.append("## Instructions per operation (callgrind)")
    L.append("")
    head = ["operation"] + [NAMES.get(s, s) + ": Ir per op" for s in servers]
    if len(servers) == 2:
        head.append(f"{NAMES.get(servers[0])} / {NAMES.get(servers[1])}")
    L.append("| " + " | ".join(head) + " |")
    L.append("|" + "---|" * len(head))
    for wl in workloads:
        cells = [titles.get(wl, wl)]
        per = []
        for s in servers:
            m, total, _, _ = res.get((s, wl), (None, None, None, None))
            v = total / m["ops"] if m and total else None
            per.append(v)
            cells.append(f"{v:,.0f}" if v else "n/a")
        if len(servers) == 2:
            cells.append(f"{per[0] / per[1]:.3f}" if per[0] and per[1] else "n/a")
        L.append("| " + " | ".join(cells) + " |")
    L.append("")
    for s in servers:
        L.append(f"### Where {NAMES.get(s, s)}'s instructions go (own cost, Ir per op)")
        L.append("")
        L.append("| part | " + " | ".join(titles.get(w, w).split(" (")[0] for w in workloads) + " |")
        L.append("|---|" + "---|" * len(workloads))
        for c in ORDER:
            cells = [c]
            for wl in workloads:
                m, total, cats, _ = res.get((s, wl), (None, None, {}, None))
                v = cats.get(c, 0) / m["ops"] if m else None
                pc = f" ({100 * cats.get(c, 0) / total:.0f}%)" if m and total else ""
                cells.append(f"{v:,.0f}{pc}" if v is not None else "n/a")
            L.append("| " + " | ".join(cells) + " |")
        L.append("")
    for s in servers:
        for wl in workloads:
            if (s, wl) not in res or wl not in ("login", "noop"):
                continue
            m, total, _, byfn = res[(s, wl)]
            top = top_inclusive(m["annotate"], a.top)
            own = sorted(byfn.items(), key=lambda kv: -kv[1])[:a.top]
            t3 = parse(m["dump_3n"])[0]
            for what, rows, ops, whole in (
                    ("inclusive", top, m["ops_3n"], t3),
                    ("own", [(v, f) for f, v in own], m["ops"], total)):
                if not rows:
                    continue
                L.append(f"### {NAMES.get(s, s)}, {titles.get(wl, wl)}: top {len(rows)} "
                         f"functions by {what} Ir (per op)")
                L.append("")
                if what == "inclusive":
                    L.append("From the 3N dump alone (callgrind_annotate --inclusive=yes), "
                             "over 3N: the batch's own session is in it.")
                    L.append("")
                L.append(f"| {what} Ir per op | % of the op | function |")
                L.append("|---|---|---|")
                for ir, fn in rows:
                    fn = short(fn).replace("|", "\\|")
                    L.append(f"| {ir / ops:,.0f} | {100 * ir / whole:.0f}% | `{fn}` |")
                L.append("")
    if a.strace and os.path.isdir(a.strace):
        L += strace_table(a.strace, a.strace_n, titles)
    open(a.out, "w").write("\n".join(L) + "\n")


if __name__ == "__main__":
    main()
