#!/usr/bin/env bash
# floor_callgrind.sh: user-space instructions per operation of the ftpdlib daemon, counted by
# `valgrind --tool=callgrind`: repeatable where seconds on this shared machine are not, so a
# change's effect shows even when wall-clock noise hides it.
#
# The daemon runs under callgrind on 127.0.0.1 (a free port, a served tree on tmpfs), and
# demo/bench/floor.py drives it, one workload after another: WARMUP operations, then
# `callgrind_control -z` (zero the counters), COUNT operations, `callgrind_control -d`
# (dump), then the same with 3 x COUNT operations. Each dump holds its batch alone (no
# start-up, no warm-up), and the difference of the two over 2 x COUNT is the cost of one
# operation without the batch's own session (its login and QUIT, for NOOP, STOR, RETR). Workloads:
# login (connect, USER, PASS, QUIT), NOOP, STOR of 1 MiB and RETR of 1 MiB (each with its
# EPSV, data connection and 226). Every thread is counted (the worker pool's too: callgrind
# runs the threads one at a time). The kernel's side of each system call is not counted.
#
# The report: instructions per operation; the daemon's own cost split into ftpdlib's code
# (functions whose names hold "ftpdlib"), mio, rustls, Rust's std/core/alloc, other crates,
# libc (system call stubs, malloc) and ld.so; and the top TOP functions by inclusive
# instructions for login and NOOP (callgrind_annotate --inclusive=yes).
#
# Then system calls per operation (also repeatable), for ftpdlib and for the floor
# (demo/bench/floor/floor.c, built with cc -O2): each runs under `strace -f -c` twice per
# workload, with N and 3N operations (N = COUNT/2, STOR and RETR: XCOUNT); the difference
# over 2N is one operation's system calls.
#
# With FTPDLIB_BEFORE=/path/to/another/ftpdlib the same is done to that build, in the same
# run, and the table gets a ratio column (build it with debug symbols for function names:
# CARGO_PROFILE_RELEASE_DEBUG=true cargo build --release -p ftpdlib-daemon).
#
# Usage: demo/bench/floor_callgrind.sh [--out FILE.md] [--quick]
#   --out FILE.md  results file (default demo/bench/results/floor-callgrind-<UTC date>.md);
#                  the dumps and annotations are kept beside it in FILE.d/
#   --quick        WARMUP=5 COUNT=20 STOR/RETR COUNT=3
#
# Environment:
#   FTPDLIB_BIN     the daemon to count (default: built here with debug symbols,
#                   CARGO_PROFILE_RELEASE_DEBUG=true cargo build --release -p ftpdlib-daemon,
#                   in target/floor-callgrind so the normal release build is left alone)
#   FTPDLIB_BEFORE  a second daemon, counted the same way in the same run
#   WARMUP          operations before the counters are zeroed (default 20)
#   COUNT           logins and NOOPs counted (N; 3N follow; default 200); STOR and RETR:
#                   XCOUNT (default 10)
#   TOP             functions listed by inclusive cost (default 15)
#   PYTHON          python3 for the client and the report (default python3)
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

while [ $# -gt 0 ]; do bench_option "$@"; shift "$TOOK"; done
if [ "$QUICK" = 1 ]; then : "${WARMUP:=5}" "${COUNT:=20}" "${XCOUNT:=3}"; fi
: "${WARMUP:=20}" "${COUNT:=200}" "${XCOUNT:=10}" "${TOP:=15}"
for v in "$WARMUP" "$COUNT" "$XCOUNT" "$TOP"; do
    case "$v" in ''|*[!0-9]*|0) say "numbers must be positive integers"; exit 2 ;; esac
done
if ! { [ "$WARMUP" -le 1000 ] && [ "$COUNT" -le 5000 ] && [ "$XCOUNT" -le 100 ] && [ "$TOP" -le 100 ]; }; then
    say "at most WARMUP=1000, COUNT=5000, XCOUNT=100, TOP=100"
    exit 2
fi
for t in valgrind callgrind_control callgrind_annotate; do
    command -v "$t" >/dev/null || { say "$t is not installed (apt-get install -y valgrind)"; exit 1; }
done

bench_out_md floor-callgrind
DUMPS="${OUT_MD%.md}.d"
rm -rf "$DUMPS"
mkdir -p "$DUMPS"
bench_workdir floor-callgrind tmpfs

if [ -z "${FTPDLIB_BIN:-}" ]; then
    say "building the daemon with debug symbols (target/floor-callgrind)"
    (cd "$REPO" && CARGO_PROFILE_RELEASE_DEBUG=true CARGO_TARGET_DIR="$REPO/target/floor-callgrind" \
        cargo build --release --quiet -p ftpdlib-daemon)
    FTPDLIB_BIN="$REPO/target/floor-callgrind/release/ftpdlib"
fi
[ -x "$FTPDLIB_BIN" ] || { say "no ftpdlib binary at $FTPDLIB_BIN"; exit 1; }
if [ -n "${FTPDLIB_BEFORE:-}" ] && [ ! -x "$FTPDLIB_BEFORE" ]; then
    say "FTPDLIB_BEFORE=$FTPDLIB_BEFORE is not an executable"
    exit 1
fi
REV="$(git -C "$REPO" rev-parse --short HEAD)"
DIRTY=""
git -C "$REPO" diff --quiet HEAD -- src daemon Cargo.toml Cargo.lock || DIRTY=" (with uncommitted changes)"

META="$DUMPS/meta.jsonl"
: >"$META"
mkdir -p "$WORK/root"
head -c $((1 << 20)) /dev/urandom >"$WORK/root/floor.bin"

# count NAME BIN: BIN under callgrind, every workload, a dump each.
count() {
    local name=$1 bin=$2 port out="$DUMPS/$1.callgrind" wl n k
    port="$(free_port)"
    setsid valgrind --tool=callgrind --callgrind-out-file="$out" -- "$bin" -i "$HOST" \
        -p "$port" -w -d "$WORK/root" -u "$USER_NAME" -P "$USER_PASS" \
        >"$WORK/logs/$name.log" 2>&1 &
    track_started "$name under callgrind" "$port" "$WORK/logs/$name.log" 120 || exit 1
    k=0
    for wl in login noop stor retr; do
        n=$COUNT
        case "$wl" in stor|retr) n=$XCOUNT ;; esac
        run() { # COUNT: floor.py's line
            timeout --kill-after=10 600 "$PYTHON" "$HERE/floor.py" --kind ftp --port "$port" \
                --pid "$SRV_PID" --user "$USER_NAME" --password "$USER_PASS" --workload "$wl" \
                --count "$1" --mib 1 --seconds 300 --settle 0.3 2>>"$WORK/logs/client.log"
        }
        run "$WARMUP" >/dev/null || { say "$wl warm-up on $name failed"; exit 1; }
        local dumps=()
        for m in 1 3; do
            callgrind_control -z "$SRV_PID" >/dev/null
            run $((m * n)) >/dev/null || { say "$wl on $name failed"; exit 1; }
            sleep 0.5
            callgrind_control --dump="$wl-$m" "$SRV_PID" >/dev/null
            k=$((k + 1))
            local dump="$out.$k"
            for _ in $(seq 50); do [ -s "$dump" ] && break; sleep 0.1; done
            [ -s "$dump" ] || { say "no dump $dump"; ls "$DUMPS" >&2; exit 1; }
            dumps+=("$dump")
        done
        callgrind_annotate --inclusive=yes --threshold=100 "$dump" >"$dump.inclusive.txt" 2>/dev/null || true
        "$PYTHON" -c 'import json, sys
print(json.dumps({"server": sys.argv[1], "workload": sys.argv[2], "n": int(sys.argv[3]),
                  "dump_n": sys.argv[4], "dump_3n": sys.argv[5],
                  "annotate": sys.argv[5] + ".inclusive.txt"}))' "$name" "$wl" "$n" "${dumps[@]}" >>"$META"
        say "$name: $wl counted ($n operations)"
    done
    stop_server
}
count ftpdlib "$FTPDLIB_BIN"
[ -z "${FTPDLIB_BEFORE:-}" ] || count before "$FTPDLIB_BEFORE"

# --- system calls per operation (strace -f -c), the floor included --------------------------
# traced NAME WORKLOAD N: NAME (ftpdlib, before, floor) under strace -f -c with N operations
# of WORKLOAD; strace's summary goes to $DUMPS/strace/NAME-WORKLOAD-N. Run with N and 3N: the
# difference over 2N is the system calls of one operation, start-up and shut-down cancelled.
FLOOR="$WORK/floor"
STRACE_NOTE=""
if ! command -v strace >/dev/null; then
    STRACE_NOTE="strace is not installed: no system call counts"
elif ! cc -O2 -o "$FLOOR" "$HERE/floor/floor.c"; then
    STRACE_NOTE="the floor did not build (cc): no system call counts"
fi
mkdir -p "$DUMPS/strace"
traced() {
    local name=$1 wl=$2 n=$3 port kind=ftp cmd pid wrapper
    port="$(free_port)"
    case "$name" in
        ftpdlib) cmd=("$FTPDLIB_BIN") ;;
        before) cmd=("$FTPDLIB_BEFORE") ;;
    esac
    if [ "$name" = floor ]; then
        kind=floor
        case "$wl" in
            login|noop) cmd=("$FLOOR" ctl "$port") ;;
            stor) cmd=("$FLOOR" sink "$port" "$WORK") ;;
            retr) cmd=("$FLOOR" src "$port" "$WORK/root/floor.bin") ;;
        esac
    else
        cmd+=(-i "$HOST" -p "$port" -w -d "$WORK/root" -u "$USER_NAME" -P "$USER_PASS")
    fi
    setsid strace -f -c -o "$DUMPS/strace/$name-$wl-$n" -- "${cmd[@]}" >"$WORK/logs/strace.log" 2>&1 &
    wrapper=$!
    STARTED+=("$wrapper")
    wait_listen "$wrapper" "$port" 30 || { say "$name under strace did not start"; return 1; }
    pid="$(pgrep -P "$wrapper" | head -n 1)"
    timeout --kill-after=10 300 "$PYTHON" "$HERE/floor.py" --kind "$kind" --port "$port" \
        --pid "$pid" --user "$USER_NAME" --password "$USER_PASS" --workload "$wl" --count "$n" \
        --mib 1 --settle 0.3 >/dev/null 2>>"$WORK/logs/client.log" || { say "$wl under strace failed"; return 1; }
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$wrapper" 2>/dev/null || break; sleep 0.1; done
    SRV_PID=$wrapper
    stop_server
}
if [ -z "$STRACE_NOTE" ]; then
    NAMES=(floor ftpdlib)
    [ -z "${FTPDLIB_BEFORE:-}" ] || NAMES+=(before)
    for wl in login noop stor retr; do
        n=$((COUNT / 2))
        case "$wl" in stor|retr) n=$XCOUNT ;; esac
        for name in "${NAMES[@]}"; do
            if traced "$name" "$wl" "$n"; then traced "$name" "$wl" $((3 * n)) || true; fi
        done
        say "system calls counted: $wl"
    done
else
    say "$STRACE_NOTE"
fi

bench_machine
header="# Instructions per operation: ftpdlib under callgrind\\n\\n"
header+="- date: $RUN_DATE; command: \`demo/bench/floor_callgrind.sh\` (WARMUP=$WARMUP COUNT=$COUNT XCOUNT=$XCOUNT)\\n"
header+="- ftpdlib: $REV$DIRTY, \`$FTPDLIB_BIN\`\\n"
[ -z "${FTPDLIB_BEFORE:-}" ] || header+="- ftpdlib (before): \`$FTPDLIB_BEFORE\`\\n"
header+="- $(valgrind --version); machine: $MACHINE\\n"
header+="- per workload: $WARMUP operations of warm-up; callgrind_control -z, N operations, callgrind_control -d; the same with 3N; Ir per op = (dump 3N - dump N) / 2N (N = COUNT, STOR and RETR: XCOUNT); user-space instructions (Ir) of every thread, the kernel not included"
"$PYTHON" "$HERE/floor_callgrind.py" "$OUT_MD" --meta "$META" --top "$TOP" --header "$header" \
    --strace "$DUMPS/strace" --strace-n "$((COUNT / 2)),$XCOUNT"
say "results in $OUT_MD (dumps in $DUMPS)"
cat "$OUT_MD"
