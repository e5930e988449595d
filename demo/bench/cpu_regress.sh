#!/usr/bin/env bash
# cpu_regress.sh: server CPU per operation, this build against an older one, and what a
# trip to the worker pool costs next to a stat done inline.
#
# Part 1. Two ftpdlib daemons run side by side: the current build (NEW) and a build of an
# older commit (OLD_REV, by default 56bd8fd, the last commit before storage calls and
# password checks moved to the worker pool). Each serves its own copy of the same tree
# on tmpfs. demo/bench/cpu_regress.py runs each workload against one server, then the
# other, the order swapped every round, and reads the server's CPU time (user + system,
# all threads, from the process CPU clock; /proc/PID/stat fields 14+15 as a check)
# around it. Workloads: connect + USER + PASS + QUIT; NOOP; SIZE of a small file; LIST
# of a 100-file directory over EPSV; RETR and STOR of MIB MiB. The table gives the
# median over the rounds of the server CPU per unit, and the ratio NEW/OLD.
#
# Part 2. The same runs give NOOP (nothing on the pool) and SIZE (one stat on the pool
# in NEW, inline in OLD) on one server, one run. The stat_cost example
# (demo/bench/stat_cost.rs) then measures inside one process: fstatat(2) on tmpfs,
# OsFilesystem::stat inline, and the server's pool trip (WorkerPool + socket-pair waker
# + mio poll) with an empty job and with that stat; STAT_REPS times unpinned and
# STAT_REPS times pinned to one CPU (taskset -c 0), medians reported.
#
# Part 3 (COUNTS=1, the default, where strace and valgrind are installed): where the
# CPU goes, as counts that do not depend on the machine's noise. Each server is run
# twice per workload under `strace -f -c` and twice under `valgrind --tool=callgrind`,
# with N and 3N operations (N = COUNT_N; LIST: N/2); the difference divided by 2N gives
# the system calls and the user-space instructions per operation.
#
# Everything listens on and connects to 127.0.0.1 only; both servers are started here,
# each in its own process group, and stopped on exit. Every loop is bounded in count
# and in time (cpu_regress.py: COUNT operations or WL_SECONDS per workload; stat_cost:
# STAT_COUNT iterations or 3 s per loop), and each client run is under timeout(1).
#
# Usage: demo/bench/cpu_regress.sh [--out FILE.md] [--quick]
#   --out FILE.md  results file (default demo/bench/results/cpu-regress-<UTC date>.md);
#                  the raw JSON lines go beside it as FILE.jsonl
#   --quick        a smoke test: 2 rounds, small counts
#
# Environment:
#   NEW_BIN     server under test (default: cargo build --release, target/release/ftpdlib)
#   OLD_BIN     reference server (default: OLD_REV built with cargo build --release from
#               `git archive OLD_REV`, in OLD_TARGET)
#   OLD_REV     reference commit (default 56bd8fd)
#   OLD_TARGET  cargo target directory of the reference build
#               (default target/cpu-regress-old, apart from the normal target/release)
#   ROUNDS      rounds, alternating the servers (default 7)
#   COUNT       logins, NOOPs, SIZEs per round (default 2000; LIST: COUNT/4)
#   TRANSFERS   RETR and STOR transfers per round (default 6)
#   MIB         size of each transfer in MiB (default 64)
#   WL_SECONDS  time limit of each workload in seconds (default 30)
#   STAT_REPS   runs of stat_cost per placement (default 5)
#   STAT_COUNT  iterations of each stat_cost loop (default 30000)
#   COUNTS      1 to run part 3, 0 to skip it (default 1)
#   COUNT_N     operations of the shorter counted run (default 100)
#   PYTHON      python3 for the client and the report (default python3)
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

while [ $# -gt 0 ]; do bench_option "$@"; shift "$TOOK"; done

if [ "$QUICK" = 1 ]; then
    : "${ROUNDS:=2}" "${COUNT:=300}" "${TRANSFERS:=2}" "${MIB:=16}" "${STAT_REPS:=1}" \
        "${STAT_COUNT:=5000}"
fi
: "${ROUNDS:=7}" "${COUNT:=2000}" "${TRANSFERS:=6}" "${MIB:=64}" "${WL_SECONDS:=30}"
: "${STAT_REPS:=5}" "${STAT_COUNT:=30000}" "${OLD_REV:=56bd8fd}" "${COUNTS:=1}" "${COUNT_N:=100}"
for v in "$ROUNDS" "$COUNT" "$TRANSFERS" "$MIB" "$WL_SECONDS" "$STAT_REPS" "$STAT_COUNT" "$COUNT_N"; do
    case "$v" in ''|*[!0-9]*|0) echo "cpu_regress.sh: numbers must be positive integers" >&2; exit 2 ;; esac
done
if ! { [ "$ROUNDS" -le 50 ] && [ "$COUNT" -le 100000 ] && [ "$TRANSFERS" -le 100 ] &&
    [ "$MIB" -le 1024 ] && [ "$WL_SECONDS" -le 300 ] && [ "$STAT_REPS" -le 50 ] &&
    [ "$STAT_COUNT" -le 1000000 ] && [ "$COUNT_N" -le 2000 ]; }; then
    echo "cpu_regress.sh: at most 50 rounds, 100000 operations, 100 transfers of 1024 MiB, 300 s, COUNT_N 2000" >&2
    exit 2
fi

CLIENT="$HERE/cpu_regress.py"
bench_out_md cpu-regress

bench_workdir cpu tmpfs
RAW="$WORK/results.jsonl"
: >"$RAW"

# --- the two builds -----------------------------------------------------------------
NEW_REV="$(git -C "$REPO" rev-parse --short HEAD)"
SRC_REV="$(git -C "$REPO" log -1 --format=%h HEAD -- src)" # the last commit that changed src/
NEW_DIRTY=""
git -C "$REPO" diff --quiet HEAD -- src Cargo.toml Cargo.lock || NEW_DIRTY=" (with uncommitted changes)"
bench_build_ftpdlib NEW_BIN "the current server"
bench_cargo "building the stat_cost example" --example stat_cost
STAT_COST="$REPO/target/release/examples/stat_cost"
OLD_SRC_NOTE="$OLD_REV"
if [ -z "${OLD_BIN:-}" ]; then
    OLD_TARGET="${OLD_TARGET:-$REPO/target/cpu-regress-old}"
    say "building $OLD_REV in $OLD_TARGET (cargo build --release)"
    mkdir -p "$WORK/old-src"
    git -C "$REPO" archive "$OLD_REV" | tar -x -C "$WORK/old-src"
    (cd "$WORK/old-src" && CARGO_TARGET_DIR="$OLD_TARGET" cargo build --release --quiet --bin ftpdlib)
    OLD_BIN="$OLD_TARGET/release/ftpdlib"
else
    OLD_SRC_NOTE="$OLD_REV (as given by OLD_BIN=$OLD_BIN)"
fi
OLD_REV_FULL="$(git -C "$REPO" rev-parse --short "$OLD_REV")"
for b in "$NEW_BIN" "$OLD_BIN"; do
    [ -x "$b" ] || { say "no server binary at $b"; exit 1; }
done

# --- the served trees, one per server -------------------------------------------------
make_root() { # DIR
    mkdir -p "$1/list100"
    for i in $(seq -w 1 100); do printf 'file %s\n' "$i" >"$1/list100/file-$i.txt"; done
    printf 'twelve bytes' >"$1/small.txt"
    head -c "$((MIB * 1024 * 1024))" /dev/urandom >"$1/big.bin"
}
make_root "$WORK/root-new"
make_root "$WORK/root-old"

declare -A PID PORT BIN
BIN[new]=$NEW_BIN
BIN[old]=$OLD_BIN
start() { # NAME BIN ROOT: the server NAME, left running; sets PID[NAME] and PORT[NAME]
    local port
    port="$(free_port)"
    setsid "$2" -i "$HOST" -p "$port" -d "$3" -u "$USER_NAME" -P "$USER_PASS" -w \
        --max-cons 0 >"$WORK/logs/$1.log" 2>&1 &
    track_started "$1" "$port" "$WORK/logs/$1.log" || exit 1
    PID[$1]=$SRV_PID
    PORT[$1]=$port
}
start new "$NEW_BIN" "$WORK/root-new"
start old "$OLD_BIN" "$WORK/root-old"

# client SERVER WORKLOAD ROUND: one workload against one server; its JSON line to RAW.
client() {
    local srv=$1 wl=$2 round=$3 count=$COUNT line
    [ "$wl" = list ] && count=$(( (COUNT + 3) / 4 ))
    if line="$(timeout --kill-after=10 $((WL_SECONDS * 2 + 60)) "$PYTHON" "$CLIENT" \
        --port "${PORT[$srv]}" --pid "${PID[$srv]}" --user "$USER_NAME" --password "$USER_PASS" \
        --workloads "$wl" --count "$count" --transfers "$TRANSFERS" --mib "$MIB" \
        --seconds "$WL_SECONDS" --label "$srv:$round" 2>>"$WORK/logs/client.log")" &&
        [ "${line:0:1}" = "{" ]; then
        echo "$line" >>"$RAW"
    else
        say "$wl on $srv failed; client log:"
        tail -n 5 "$WORK/logs/client.log" >&2 || true
        exit 1
    fi
}

START_S=$(date +%s)
WORKLOADS=(idle login noop size list retr stor)
for round in $(seq "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then order=(old new); else order=(new old); fi
    say "round $round/$ROUNDS (${order[*]})"
    for wl in "${WORKLOADS[@]}"; do
        for srv in "${order[@]}"; do client "$srv" "$wl" "$round"; done
    done
done
for srv in new old; do
    kill -0 "${PID[$srv]}" 2>/dev/null || { say "the $srv server died during the run"; exit 1; }
done
BENCH_S=$(( $(date +%s) - START_S ))

# --- part 2: stat_cost --------------------------------------------------------------
say "stat_cost: $STAT_REPS runs unpinned, $STAT_REPS pinned to CPU 0"
for _ in $(seq "$STAT_REPS"); do
    timeout 120 "$STAT_COST" --dir "$WORK" --count "$STAT_COUNT" --seconds 3 --json |
        sed 's/^{/{"placement":"unpinned",/' >>"$RAW"
    timeout 120 taskset -c 0 "$STAT_COST" --dir "$WORK" --count "$STAT_COUNT" --seconds 3 --json |
        sed 's/^{/{"placement":"one CPU",/' >>"$RAW"
done

# --- part 3: system calls and instructions per operation -----------------------------
# counted TOOL SERVER WORKLOAD N: one server under TOOL (strace or callgrind), N operations
# of one workload; the tool's report goes to $WORK/counts/TOOL-SERVER-WORKLOAD-N.
counted() {
    local tool=$1 srv=$2 wl=$3 n=$4 port wrapper pid out
    out="$WORK/counts/$tool-$srv-$wl-$n"
    port="$(free_port)"
    case "$tool" in
        strace) setsid strace -f -c -o "$out" -- "${BIN[$srv]}" -i "$HOST" -p "$port" \
                    -d "$WORK/root-$srv" -u "$USER_NAME" -P "$USER_PASS" -w \
                    >"$WORK/logs/count.log" 2>&1 & ;;
        callgrind) setsid valgrind --tool=callgrind --callgrind-out-file="$out" -- \
                    "${BIN[$srv]}" -i "$HOST" -p "$port" -d "$WORK/root-$srv" \
                    -u "$USER_NAME" -P "$USER_PASS" -w >"$WORK/logs/count.log" 2>&1 & ;;
    esac
    wrapper=$!
    STARTED+=("$wrapper")
    wait_listen "$wrapper" "$port" || { say "$srv under $tool did not start"; return 1; }
    pid=$wrapper
    [ "$tool" = strace ] && pid="$(pgrep -P "$wrapper" | head -n 1)"
    timeout --kill-after=10 300 "$PYTHON" "$CLIENT" --port "$port" --pid "$pid" \
        --user "$USER_NAME" --password "$USER_PASS" --workloads "$wl" --count "$n" \
        --settle 0.2 >/dev/null 2>>"$WORK/logs/client.log" || { say "$wl under $tool failed"; return 1; }
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$wrapper" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$wrapper" 2>/dev/null || true
    wait "$wrapper" 2>/dev/null || true
}
COUNT_TOOLS=()
if [ "$COUNTS" = 1 ]; then
    command -v strace >/dev/null && COUNT_TOOLS+=(strace)
    command -v valgrind >/dev/null && COUNT_TOOLS+=(callgrind)
    [ "${#COUNT_TOOLS[@]}" = 2 ] || say "strace or valgrind missing: part 3 in part or not at all"
fi
mkdir -p "$WORK/counts"
for tool in ${COUNT_TOOLS[@]+"${COUNT_TOOLS[@]}"}; do
    say "counting system calls and instructions per operation with $tool"
    for wl in login noop size list; do
        n=$COUNT_N
        [ "$wl" = list ] && n=$(( (COUNT_N + 1) / 2 ))
        for srv in old new; do
            if counted "$tool" "$srv" "$wl" "$n"; then
                counted "$tool" "$srv" "$wl" $((n * 3)) || true
            fi
        done
    done
done

cp "$RAW" "$OUT_JSONL"

# --- report ----------------------------------------------------------------------------
bench_machine
"$PYTHON" - "$RAW" "$OUT_MD" "$WORK/counts" <<PYEOF
import json, os, statistics, sys
raw, out, counts = sys.argv[1:4]
rows = [json.loads(l) for l in open(raw) if l.strip()]
srv_rows = [r for r in rows if "workload" in r]
stat_rows = [r for r in rows if "op" in r]

def per(server, wl):
    return [r["cpu_us_per_unit"] for r in srv_rows
            if r["label"].split(":")[0] == server and r["workload"] == wl]

def fmt(x):
    if x is None:
        return "n/a"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"

L = []
L.append("# Server CPU per operation: $NEW_REV against $OLD_REV_FULL")
L.append("")
L.append("- date: $RUN_DATE; command: \`demo/bench/cpu_regress.sh\` (ROUNDS=$ROUNDS COUNT=$COUNT "
         "TRANSFERS=$TRANSFERS MIB=$MIB WL_SECONDS=$WL_SECONDS STAT_REPS=$STAT_REPS STAT_COUNT=$STAT_COUNT)")
L.append("- new: ftpdlib at $NEW_REV$NEW_DIRTY (src/ last changed in $SRC_REV), release build, \`$NEW_BIN\`")
L.append("- old: ftpdlib at $OLD_SRC_NOTE, release build, \`$OLD_BIN\`")
L.append("- machine: $MACHINE; served trees on tmpfs; "
         "127.0.0.1 only; $BENCH_S s of server workloads")
L.append("- server CPU: user + system time of the server process, all threads (process CPU "
         "clock, ns), over the workload, divided by its units; median of $ROUNDS rounds, the "
         "servers alternating, each its own tree; min-max over the rounds in brackets")
L.append("- client: demo/bench/cpu_regress.py (Python ftplib, one operation at a time); LIST "
         "over EPSV, RETR read in 1 MiB pieces, STOR written in 1 MiB pieces (each STOR's "
         "DELE outside the measured window)")
L.append("")
L.append("## 1. Server CPU per operation")
L.append("")
L.append("| workload | unit | old: CPU per unit (µs) | new: CPU per unit (µs) | new/old | new/old, median of the rounds' pairs |")
L.append("|---|---|---|---|---|---|")
names = {
    "idle": ("idle, 1 s", "s"),
    "login": ("connect, USER, PASS, QUIT", "login"),
    "noop": ("NOOP", "NOOP"),
    "size": ("SIZE of a small file", "SIZE"),
    "list": ("LIST of 100 files (EPSV, data connection)", "LIST"),
    "retr": ("RETR, $MIB MiB transfers", "MiB"),
    "stor": ("STOR, $MIB MiB transfers", "MiB"),
}
med = {}
for wl, (title, unit) in names.items():
    o, n = per("old", wl), per("new", wl)
    if not o or not n:
        continue
    mo, mn = statistics.median(o), statistics.median(n)
    med[wl] = (mo, mn)
    ratio = f"{mn / mo:.2f}" if mo > 0 else "n/a"
    pair = {}
    for r in srv_rows:
        if r["workload"] == wl:
            srv, rnd = r["label"].split(":")
            pair.setdefault(rnd, {})[srv] = r["cpu_us_per_unit"]
    pr = [p["new"] / p["old"] for p in pair.values() if p.get("old") and "new" in p]
    pratio = f"{statistics.median(pr):.2f}" if pr else "n/a"
    L.append(f"| {title} | {unit} | {fmt(mo)} ({fmt(min(o))}-{fmt(max(o))}) | "
             f"{fmt(mn)} ({fmt(min(n))}-{fmt(max(n))}) | {ratio} | {pratio} |")
ops = {}
for r in srv_rows:
    k = (r["label"].split(":")[0], r["workload"])
    ops.setdefault(k, []).append(r["ops"])
L.append("")
L.append("Operations per round (new, old): " + "; ".join(
    f"{wl} {min(ops.get(('new', wl), [0]))}, {min(ops.get(('old', wl), [0]))}"
    for wl in names if wl != "idle") + " (transfers for RETR and STOR).")
chk = [(r["cpu_s"], r["proc_stat_cpu_s"]) for r in srv_rows]
tot_c, tot_k = sum(c for c, _ in chk), sum(k for _, k in chk)
L.append(f"Check: the CPU clock summed over every measured window is {tot_c:.2f} s, "
         f"/proc/PID/stat fields 14+15 give {tot_k:.2f} s.")
L.append("")
L.append("## 2. A trip to the worker pool against a stat inline")
L.append("")
if "noop" in med and "size" in med:
    (on, nn), (os_, ns) = med["noop"], med["size"]
    L.append("On the server, from the table above (median µs of server CPU per command):")
    L.append("")
    L.append("| server | NOOP | SIZE | SIZE - NOOP | where SIZE's stat runs |")
    L.append("|---|---|---|---|---|")
    L.append(f"| old | {fmt(on)} | {fmt(os_)} | {fmt(os_ - on)} | inline (realpath + stat) |")
    L.append(f"| new | {fmt(nn)} | {fmt(ns)} | {fmt(ns - nn)} | worker pool (openat2 + fstat) |")
    L.append("")
if stat_rows:
    L.append("In one process (demo/bench/stat_cost.rs, the test file on tmpfs; median of "
             "$STAT_REPS runs per placement, min-max in brackets; CPU = all threads):")
    L.append("")
    L.append("| operation | placement | CPU ns/op | wall ns/op | context switches/op | CPU / inline OsFilesystem::stat |")
    L.append("|---|---|---|---|---|---|")
    for placement in ("unpinned", "one CPU"):
        rs = [r for r in stat_rows if r["placement"] == placement]
        base = [r["cpu_ns"] for r in rs if r["op"].startswith("OsFilesystem")]
        b = statistics.median(base) if base else None
        for op in dict.fromkeys(r["op"] for r in rs):
            c = [r["cpu_ns"] for r in rs if r["op"] == op]
            w = [r["wall_ns"] for r in rs if r["op"] == op]
            s = [r["switches_per_op"] for r in rs if r["op"] == op]
            mc = statistics.median(c)
            L.append(f"| {op} | {placement}, {rs[0]['workers']} workers | {mc:.0f} "
                     f"({min(c):.0f}-{max(c):.0f}) | {statistics.median(w):.0f} | "
                     f"{statistics.median(s):.2f} | {mc / b:.1f} |" if b else "")
    L.append("")

def strace_counts(path):
    d = {}
    for line in open(path):
        f = line.split()
        if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
            d[f[-1]] = int(f[3])
    return d

def callgrind_total(path):
    for line in open(path):
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    return None

def diff(tool, srv, wl):
    n = $COUNT_N if wl != "list" else ($COUNT_N + 1) // 2
    a = os.path.join(counts, f"{tool}-{srv}-{wl}-{n}")
    b = os.path.join(counts, f"{tool}-{srv}-{wl}-{3 * n}")
    if not (os.path.exists(a) and os.path.exists(b)):
        return None
    if tool == "strace":
        ca, cb = strace_counts(a), strace_counts(b)
        return {k: (cb.get(k, 0) - ca.get(k, 0)) / (2 * n) for k in set(ca) | set(cb)}
    ta, tb = callgrind_total(a), callgrind_total(b)
    return None if ta is None or tb is None else (tb - ta) / (2 * n)

if os.path.isdir(counts) and os.listdir(counts):
    L.append("## 3. System calls and user-space instructions per operation")
    L.append("")
    L.append("Each server run with N and 3N operations of one workload (N = $COUNT_N, LIST: "
             "N/2) under \`strace -f -c\` and under \`valgrind --tool=callgrind\`; the "
             "difference divided by 2N. System calls of all threads; instructions are "
             "user-space only (callgrind does not see the kernel).")
    L.append("")
    L.append("| workload | old: system calls | new: system calls | old: instructions | "
             "new: instructions | new/old instructions | system calls that differ (old -> new) |")
    L.append("|---|---|---|---|---|---|---|")
    for wl in ("login", "noop", "size", "list"):
        so, sn = diff("strace", "old", wl), diff("strace", "new", wl)
        io_, in_ = diff("callgrind", "old", wl), diff("callgrind", "new", wl)
        sc = lambda d: f"{sum(d.values()):.1f}" if d else "n/a"
        ins = lambda x: f"{x:,.0f}" if x else "n/a"
        changed = ""
        if so and sn:
            ks = sorted(set(so) | set(sn), key=lambda k: -abs(sn.get(k, 0) - so.get(k, 0)))
            changed = ", ".join(f"{k} {so.get(k, 0):.1f} -> {sn.get(k, 0):.1f}" for k in ks
                                if abs(sn.get(k, 0) - so.get(k, 0)) >= 0.3)
        r = f"{in_ / io_:.2f}" if io_ and in_ else "n/a"
        L.append(f"| {names[wl][0]} | {sc(so)} | {sc(sn)} | {ins(io_)} | {ins(in_)} | {r} | "
                 f"{changed or 'none'} |")
    L.append("")
open(out, "w").write("\n".join(L) + "\n")
PYEOF
say "results in $OUT_MD (raw: $OUT_JSONL)"
cat "$OUT_MD"
