#!/usr/bin/env python3
"""floor_report.py: the Markdown report of demo/bench/floor.sh, from its JSON lines.

    python3 floor_report.py RAW.jsonl OUT.md --date ... --rev ... (see floor.sh)

Part 1 lines come from floor.py (one per workload, server and round: "label" is
"SERVER:ROUND"), part 2 lines from idle_sessions.py --json ("part": "sessions"), part 3
lines from floor.sh itself around ftpbench ("part": "cstor").
"""

import argparse
import json
import statistics

NAMES = {"floor": "floor", "ftpdlib": "ftpdlib", "before": "ftpdlib (before)",
         "pyftpdlib": "pyftpdlib", "vsftpd": "vsftpd"}


def fmt(x):
    if x is None:
        return "n/a"
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def ratio(a, b):
    return f"{a / b:.2f}x" if a is not None and b else "n/a"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("raw")
    p.add_argument("out")
    for k in ("date", "rev", "bin", "before", "machine", "pyftpdlib", "vsftpd", "nofile", "pin"):
        p.add_argument("--" + k, default="")
    for k in ("rounds", "logins", "noops", "transfers", "mib", "part1-s", "cstor-mb"):
        p.add_argument("--" + k, type=int, default=0)
    a = p.parse_args()
    rows = [json.loads(line) for line in open(a.raw) if line.strip()]
    ops = [r for r in rows if "workload" in r]
    sess = [r for r in rows if r.get("part") == "sessions"]
    cstor = [r for r in rows if r.get("part") == "cstor"]

    servers = [s for s in ("floor", "ftpdlib", "before", "pyftpdlib")
               if any(r["label"].split(":")[0] == s for r in ops)]

    def series(server, wl, key):
        return [r[key] for r in ops
                if r["label"].split(":")[0] == server and r["workload"] == wl and r[key]]

    L = []
    L.append("# Per-operation floor: ftpdlib next to a bare server and pyftpdlib")
    L.append("")
    L.append(f"- date: {a.date}; command: `demo/bench/floor.sh` (ROUNDS={a.rounds} "
             f"LOGINS={a.logins} NOOPS={a.noops} TRANSFERS={a.transfers} MIB={a.mib})")
    L.append(f"- ftpdlib: {a.rev}, release build `{a.bin}`")
    if a.before:
        L.append(f"- ftpdlib (before): `{a.before}`, measured in the same run")
    L.append(f"- pyftpdlib {a.pyftpdlib} (`python -m pyftpdlib`, default logging); "
             f"vsftpd {a.vsftpd}")
    L.append(f"- machine: {a.machine}; shared and noisy; everything on 127.0.0.1; served "
             f"trees of part 1 on tmpfs; descriptor limit {a.nofile}")
    L.append("")
    if ops:
        L.append("## Server CPU per operation")
        L.append("")
        L.append("Server CPU (user + system, every thread, process CPU clock) over each "
                 "workload divided by its units; the median over the rounds, min-max in "
                 f"brackets; {a.rounds} rounds of {a.part1_s} s in all, the servers' order "
                 "rotating every round. One raw-socket Python client "
                 "(demo/bench/floor.py) for every server" + (
                     f", servers and client all on CPU {a.pin} (taskset)" if a.pin != "none"
                     else ", not pinned to a CPU") + ". The floor is "
                 "demo/bench/floor/floor.c: fixed replies for the control workloads, "
                 "recv(1 MiB)+write(2) for STOR, sendfile(2) for RETR.")
        L.append("")
        head = ["operation", "unit"] + [NAMES[s] + " (µs)" for s in servers]
        if "floor" in servers:
            head += [NAMES[s] + " / floor" for s in servers if s not in ("floor", "pyftpdlib")]
        if "pyftpdlib" in servers:
            head += [NAMES[s] + " / pyftpdlib" for s in servers if s in ("ftpdlib", "before")]
        if "before" in servers:
            head += ["ftpdlib / before"]
        L.append("| " + " | ".join(head) + " |")
        L.append("|" + "---|" * len(head))
        titles = {"login": ("login (connect, USER, PASS, QUIT)", "login"),
                  "noop": ("NOOP round trip", "NOOP"),
                  "stor": (f"STOR, {a.mib} MiB transfers", "MiB"),
                  "retr": (f"RETR, {a.mib} MiB transfers", "MiB")}
        for wl, (title, unit) in titles.items():
            med = {}
            cells = [title, unit]
            for s in servers:
                xs = series(s, wl, "cpu_us_per_unit")
                med[s] = statistics.median(xs) if xs else None
                cells.append(f"{fmt(med[s])} ({fmt(min(xs))}-{fmt(max(xs))})" if xs else "n/a")
            if "floor" in servers:
                cells += [ratio(med[s], med["floor"]) for s in servers
                          if s not in ("floor", "pyftpdlib")]
            if "pyftpdlib" in servers:
                cells += [ratio(med[s], med["pyftpdlib"]) for s in servers
                          if s in ("ftpdlib", "before")]
            if "before" in servers:
                cells.append(ratio(med["ftpdlib"], med["before"]))
            L.append("| " + " | ".join(cells) + " |")
        L.append("")
        L.append("The client's wall time per unit (median; it includes the Python client "
                 "and the scheduling of both sides, so it is a latency, not a cost):")
        L.append("")
        L.append("| operation | " + " | ".join(NAMES[s] + " (µs)" for s in servers) + " |")
        L.append("|---|" + "---|" * len(servers))
        for wl, (title, _) in titles.items():
            cells = [title]
            for s in servers:
                xs = series(s, wl, "wall_us_per_unit")
                cells.append(fmt(statistics.median(xs)) if xs else "n/a")
            L.append("| " + " | ".join(cells) + " |")
        chk = [(r["cpu_s"], r["proc_stat_cpu_s"]) for r in ops]
        L.append("")
        L.append(f"Check: the process CPU clocks summed over every measured window give "
                 f"{sum(c for c, _ in chk):.2f} s, /proc/PID/stat fields 14+15 "
                 f"{sum(k for _, k in chk):.2f} s.")
        L.append("")
    if sess:
        L.append("## Logged-in sessions")
        L.append("")
        L.append("Each server alone: demo/bench/idle_sessions.py logs the sessions in from "
                 "one Python thread (at most 64 logging in at a time) and leaves them idle; VmRSS "
                 "from /proc/PID/status after 2 idle seconds; then fresh logins one at a "
                 "time (connect to the server's close after QUIT) while every session "
                 "stays logged in.")
        L.append("")
        L.append("| server | sessions | time to log all in | VmRSS before | VmRSS with all "
                 "| growth per session | fresh login p50 | p99 | max |")
        L.append("|---|---|---|---|---|---|---|---|---|")
        for r in sess:
            g = (r["rss_after_kib"] - r["rss_before_kib"]) * 1024 / r["sessions"]
            L.append(f"| {NAMES.get(r['label'], r['label'])} | {r['sessions']:,} | "
                     f"{r['login_s']:.2f} s | {r['rss_before_kib'] / 1024:.1f} MiB | "
                     f"{r['rss_after_kib'] / 1024:.1f} MiB | {g:,.0f} bytes | "
                     f"{fmt(r['probe_p50_ms'])} ms | {fmt(r['probe_p99_ms'])} ms | "
                     f"{fmt(r['probe_max_ms'])} ms ({r['probes']} logins) |")
        L.append("")
    if cstor:
        L.append("## Concurrent STORs")
        L.append("")
        L.append(f"demo/ftpbench.rs `--only cstor`: every session uploads its own "
                 f"{a.cstor_mb} MiB file at once, to a directory in /tmp (disk); one run "
                 "per server, one after the other. Server CPU: /proc/PID/stat fields 14-17 "
                 "(its own and its reaped children's: vsftpd's per-session processes).")
        L.append("")
        L.append("| server | sessions | wall time | aggregate | server CPU |")
        L.append("|---|---|---|---|---|")
        for r in cstor:
            got = {x["workload"]: x for x in r["ftpbench"]}
            t, rate = got.get("stor_n_time", {}), got.get("stor_n_rate", {})
            err = t.get("error") or rate.get("error")
            n = f"{r['sessions']:,}"
            L.append(f"| {NAMES.get(r['label'], r['label'])} | {n} | "
                     f"{fmt(t.get('value'))} s | {fmt(rate.get('value'))} MiB/s | "
                     f"{r['server_cpu_s']:.2f} s |" + (f" failed: {err} |" if err else ""))
        L.append("")
    open(a.out, "w").write("\n".join(L) + "\n")


if __name__ == "__main__":
    main()
