# shellcheck shell=bash disable=SC2034
# lib.sh: the shell code the benchmark scripts in demo/bench have in common, read by each
# of them right after `set -euo pipefail`:
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Reading it sets the names below and defines the functions; nothing is made, built or
# started until a function is called. Messages go to stderr headed by the script's name.
#
# Set when read:
#   BENCH_NAME  the script's file name (blocking.sh, ...), for messages
#   HERE, REPO  demo/bench and the repository's top directory, absolute
#   PYTHON      python3 for the clients, the venv and the reports (default python3)
#   HOST        127.0.0.1: every server listens there and every client connects there
#   USER_NAME, USER_PASS  the account the servers are given (bench, bench-<script's pid>)
#   RUN_DATE    when the run began, UTC (2026-11-29T13:10:16Z)
#   QUICK=0, OUT_MD=""    until bench_option reads --quick or --out
#   KEEP=0      1 keeps the work directory at exit (compare.sh --keep)
#   USE_PY=""   a script with a pyftpdlib column sets 1; --no-pyftpdlib sets 0
#   STARTED=(), SRV_PID=""  the servers' process groups, see track_started
#   PYFTPDLIB_VERSION="(not run)"  until bench_pyftpdlib installs it

BENCH_NAME="$(basename "$0")"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PYTHON="${PYTHON:-python3}"
HOST=127.0.0.1
USER_NAME=bench
USER_PASS="bench-$$"
RUN_DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
QUICK=0
OUT_MD=""
KEEP=0
USE_PY=""
STARTED=() # process groups of the servers (each runs under setsid: its pid is its group)
SRV_PID=""
SRV_PORT=""
PYFTPDLIB_VERSION="(not run)"

# say WORDS...: one line on stderr, "blocking.sh: WORDS".
say() { echo "$BENCH_NAME: $*" >&2; }

# usage: prints the script's header, from line 2 to `set -euo pipefail`, without the
# comment marks: what --help shows.
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

# bench_option ARGS...: reads the option at the head of ARGS that the scripts share:
# --quick sets QUICK=1, --out FILE or --out=FILE sets OUT_MD, -h or --help prints the
# usage and exits 0, --no-pyftpdlib sets USE_PY=0 in a script with a pyftpdlib column
# (one that has set USE_PY=1 before); anything else is refused (exit 2). Sets TOOK to
# the words it read, for the caller's `shift "$TOOK"`. A script with options of its own
# matches them first.
bench_option() {
    TOOK=1
    case "$1" in
        --quick) QUICK=1 ;;
        --no-pyftpdlib)
            [ -n "$USE_PY" ] || { say "unknown argument $1 (try --help)"; exit 2; }
            USE_PY=0 ;;
        --out) [ -n "${2:-}" ] || { say "--out needs a file"; exit 1; }; OUT_MD=$2; TOOK=2 ;;
        --out=*) OUT_MD="${1#*=}" ;;
        -h|--help) usage; exit 0 ;;
        *) say "unknown argument $1 (try --help)"; exit 2 ;;
    esac
}

# bench_out_md NAME: where the report goes. OUT_MD is --out's file, or by default
# demo/bench/results/NAME-<UTC date>.md; its directory is made and the path made absolute.
# Sets OUT_MD and OUT_JSONL, the same path ending in .jsonl, for the raw JSON lines.
bench_out_md() {
    [ -n "$OUT_MD" ] || OUT_MD="$HERE/results/$1-$(date -u +%Y-%m-%d).md"
    mkdir -p "$(dirname "$OUT_MD")"
    OUT_MD="$(cd "$(dirname "$OUT_MD")" && pwd)/$(basename "$OUT_MD")"
    OUT_JSONL="${OUT_MD%.md}.jsonl"
}

# bench_workdir NAME [tmpfs]: makes the work directory WORK, ftpdlib-NAME.XXXXXX (mode
# 755, with WORK/logs), in /tmp, or in /dev/shm when tmpfs is asked for and /dev/shm is
# writable. From then on the script's exit runs bench_cleanup, and Ctrl-C or TERM exit 130.
bench_workdir() {
    if [ "${2:-}" = tmpfs ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
        WORK="$(mktemp -d "/dev/shm/ftpdlib-$1.XXXXXX")"
    else
        WORK="$(mktemp -d "/tmp/ftpdlib-$1.XXXXXX")"
    fi
    chmod 755 "$WORK"
    mkdir -p "$WORK/logs"
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

# bench_cleanup: on exit. Sends TERM to every process group in STARTED, gives each 5 s,
# then KILL; removes WORK, or keeps it and says so when KEEP=1; exits with the script's
# exit status.
bench_cleanup() {
    local rc=$? pid
    for pid in "${STARTED[@]:-}"; do
        [ -z "$pid" ] || kill -TERM -- "-$pid" 2>/dev/null || true
    done
    for pid in "${STARTED[@]:-}"; do
        [ -n "$pid" ] || continue
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$pid" 2>/dev/null || true
    done
    if [ "$KEEP" = 1 ]; then
        say "kept work directory $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}

# bench_cargo MESSAGE ARGS...: says MESSAGE and runs cargo build --release --quiet ARGS in
# the repository (ARGS: --bin ftpdlib, --example slow_ftpd, ...).
bench_cargo() {
    say "$1"
    (cd "$REPO" && cargo build --release --quiet "${@:2}")
}

# bench_build_ftpdlib VAR [WHAT]: unless the variable VAR (FTPDLIB_BIN, ...) already names
# a server binary, builds this checkout's (cargo build --release --bin ftpdlib) and sets
# VAR to target/release/ftpdlib; WHAT names it in the message (the ftpdlib binary).
# Whether the file is there is for the caller to check.
bench_build_ftpdlib() {
    local var=$1
    [ -z "${!var:-}" ] || return 0
    bench_cargo "building ${2:-the ftpdlib binary} (cargo build --release)" --bin ftpdlib
    printf -v "$var" '%s' "$REPO/target/release/ftpdlib"
}

# bench_pyftpdlib SPEC [WHAT]: installs pyftpdlib into a throw-away venv, WORK/venv; SPEC
# is what pip is asked for ('pyftpdlib>=2,<3' for 2.x), WHAT names it in the message
# (SPEC). Sets PY (the venv's python) and PYFTPDLIB_VERSION; returns 1 when the venv or
# the install fails.
bench_pyftpdlib() {
    say "installing ${2:-$1} into a venv under $WORK"
    "$PYTHON" -m venv "$WORK/venv" &&
        "$WORK/venv/bin/pip" install --quiet --disable-pip-version-check "$1" || return 1
    PY="$WORK/venv/bin/python"
    PYFTPDLIB_VERSION="$("$PY" -c 'import pyftpdlib; print(pyftpdlib.__ver__)')"
}

# free_port: prints a TCP port free on 127.0.0.1 just now.
free_port() {
    "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_listen PID PORT [SECONDS]: succeeds once PORT on HOST accepts connections; fails
# when PID has gone or after SECONDS (15).
wait_listen() {
    local pid=$1 port=$2 tries=$(( ${3:-15} * 10 ))
    for _ in $(seq "$tries"); do
        kill -0 "$pid" 2>/dev/null || return 1
        if (exec 3<>"/dev/tcp/$HOST/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

# track_started NAME PORT LOG [SECONDS]: right after a server was started in the
# background under setsid, sets SRV_PID to it, adds it to STARTED and waits up to SECONDS
# (15) for it to listen on PORT; if it does not, shows LOG's tail, stops it and returns 1.
track_started() {
    local name=$1 port=$2 log=$3
    SRV_PID=$!
    STARTED+=("$SRV_PID")
    if ! wait_listen "$SRV_PID" "$port" "${4:-15}"; then
        say "$name did not start listening on $HOST:$port; log tail:"
        tail -n 5 "$log" >&2 || true
        stop_server
        return 1
    fi
}

# stop_server: stops the process group SRV_PID (TERM, KILL after 5 s), reaps it, takes
# it out of STARTED and clears SRV_PID. Does nothing when SRV_PID is empty.
stop_server() {
    [ -n "$SRV_PID" ] || return 0
    kill -TERM -- "-$SRV_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$SRV_PID" 2>/dev/null || true
    wait "$SRV_PID" 2>/dev/null || true
    local keep=() p
    for p in "${STARTED[@]:-}"; do [ -z "$p" ] || [ "$p" = "$SRV_PID" ] || keep+=("$p"); done
    STARTED=("${keep[@]:-}")
    SRV_PID=""
}

# bench_machine: the machine facts of a report's header. Sets MACHINE_NPROC, MACHINE_CPU
# (the first "model name" of /proc/cpuinfo), MACHINE_KERNEL, MACHINE_MEM ("7.8 GiB") and
# MACHINE, "2 cores, <cpu>, kernel <release>", as the "- machine:" lines begin.
bench_machine() {
    MACHINE_NPROC="$(nproc)"
    MACHINE_CPU="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)"
    MACHINE_KERNEL="$(uname -r)"
    MACHINE_MEM="$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    MACHINE="$MACHINE_NPROC cores, $MACHINE_CPU, kernel $MACHINE_KERNEL"
}
