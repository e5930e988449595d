#!/usr/bin/env bash
# floor.sh: server CPU per operation for ftpdlib, next to a floor and to pyftpdlib, in one run.
#
# The floor is demo/bench/floor/floor.c, built here with `cc -O2`: a bare epoll server that
# answers USER/PASS/NOOP/QUIT with fixed replies and nothing else (one recv per command, one
# send per reply), a bare recv(1 MiB)+write(2) loop for uploads and a bare sendfile(2) for
# downloads. No real server can take less CPU for the same work on this machine, so the
# ratio ftpdlib/floor says how much of ftpdlib's cost is its own.
#
# Part 1, per operation. The floor, ftpdlib (and FTPDLIB_BEFORE's build when given) and
# pyftpdlib run side by side on 127.0.0.1, each with its own directory on tmpfs; the same
# raw-socket Python client (demo/bench/floor.py) runs each workload against each server,
# the servers' order rotating every round, and reads the server's CPU time (user + system,
# every thread, from the process CPU clock; /proc/PID/stat as a check) around it. Servers
# and client all run on one CPU (PIN_CPU): see the note at "the servers of part 1".
# Workloads: login (connect, USER, PASS, QUIT), NOOP, STOR and RETR of MIB MiB files (per
# MiB). The table gives the median over the rounds, and the ratios to the floor and to
# pyftpdlib.
#
# Part 2, SESSIONS logged-in sessions (default 10,000; 0 skips): each server in turn gets
# SESSIONS sessions logged in and left idle by demo/bench/idle_sessions.py; the row gives
# the time to log them all in, the server's VmRSS, and the latency (p50, p99) of PROBES
# fresh logins (connect, USER, PASS, QUIT, one at a time) made while they stay logged in.
# The descriptor limits are raised as far as the hard limit allows; ftpdlib holds two
# descriptors per session, so it is offered the largest N <= SESSIONS that fits.
#
# Part 3, CSTOR concurrent STORs (default 1000; 0 skips): demo/ftpbench.rs (`--only cstor`)
# uploads CSTOR_MB MiB from each of CSTOR sessions at once to ftpdlib, vsftpd (when
# /usr/sbin/vsftpd is there and this runs as root) and pyftpdlib, one after the other; the
# row gives the wall time, the aggregate MiB/s and the server's CPU (/proc/PID/stat fields
# 14-17: its own and its reaped children's, which counts vsftpd's per-session processes).
# These directories are in /tmp, not tmpfs (CSTOR x CSTOR_MB MiB are written).
#
# Every server is started here in its own process group and stopped on exit; every loop is
# bounded in count and time, each client run is under timeout(1). 127.0.0.1 only.
# Instruction counts, which this machine's noise does not move: demo/bench/floor_callgrind.sh.
#
# Usage: demo/bench/floor.sh [--out FILE.md] [--quick] [--no-pyftpdlib]
#   --out FILE.md    results file (default demo/bench/results/floor-<UTC date>.md); the raw
#                    JSON lines go beside it as FILE.jsonl
#   --quick          a smoke test: 2 rounds, small counts, 500 sessions, 50 STORs
#   --no-pyftpdlib   no pyftpdlib column
#
# Environment:
#   FTPDLIB_BIN      the server under test (default: cargo build --release -p ftpdlib-daemon,
#                    target/release/ftpdlib)
#   FTPDLIB_BEFORE   another build of the server, measured in the same run as a column of its
#                    own ("before"); unset: no such column
#   ROUNDS           rounds of part 1 (default 7)
#   LOGINS, NOOPS    logins and NOOPs per round and server (default 1000, 5000)
#   TRANSFERS, MIB   STOR and RETR transfers per round and server, and their size in MiB
#                    (default 4 of 64 MiB)
#   WL_SECONDS       time limit of each workload (default 30)
#   PIN_CPU          the CPU that part 1's servers and client all run on (taskset -c; default
#                    the last one); none: not pinned, the scheduler places them
#   SESSIONS, PROBES part 2 (default 10000 sessions, 200 probe logins; SESSIONS=0 skips it)
#   CSTOR, CSTOR_MB  part 3 (default 1000 sessions of 10 MiB; CSTOR=0 skips it)
#   FTPBENCH_BIN     the load tool of part 3 (default: cargo build --release --example ftpbench)
#   PYTHON           python3 for the clients and the report (default python3)
#   PYFTPDLIB_PY     a python with pyftpdlib 2.x installed (default /tmp/pyvenv/bin/python
#                    when it has it, else a fresh venv with pyftpdlib>=2,<3 from PyPI)
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

USE_PY=1
while [ $# -gt 0 ]; do bench_option "$@"; shift "$TOOK"; done

if [ "$QUICK" = 1 ]; then
    : "${ROUNDS:=2}" "${LOGINS:=200}" "${NOOPS:=1000}" "${TRANSFERS:=2}" "${MIB:=16}"
    : "${SESSIONS:=500}" "${PROBES:=50}" "${CSTOR:=50}" "${CSTOR_MB:=2}"
fi
: "${ROUNDS:=7}" "${LOGINS:=1000}" "${NOOPS:=5000}" "${TRANSFERS:=4}" "${MIB:=64}"
: "${PIN_CPU:=$(( $(nproc) - 1 ))}"
: "${WL_SECONDS:=30}" "${SESSIONS:=10000}" "${PROBES:=200}" "${CSTOR:=1000}" "${CSTOR_MB:=10}"
for v in "$ROUNDS" "$LOGINS" "$NOOPS" "$TRANSFERS" "$MIB" "$WL_SECONDS" "$PROBES" "$CSTOR_MB"; do
    case "$v" in ''|*[!0-9]*|0) say "numbers must be positive integers"; exit 2 ;; esac
done
for v in "$SESSIONS" "$CSTOR"; do
    case "$v" in ''|*[!0-9]*) say "SESSIONS and CSTOR must be integers (0 skips)"; exit 2 ;; esac
done
if ! { [ "$ROUNDS" -le 50 ] && [ "$LOGINS" -le 100000 ] && [ "$NOOPS" -le 100000 ] &&
    [ "$TRANSFERS" -le 100 ] && [ "$MIB" -le 1024 ] && [ "$WL_SECONDS" -le 300 ] &&
    [ "$SESSIONS" -le 50000 ] && [ "$PROBES" -le 10000 ] && [ "$CSTOR" -le 5000 ] &&
    [ "$CSTOR_MB" -le 100 ]; }; then
    say "at most 50 rounds, 100000 operations, 100 transfers of 1024 MiB, 300 s, 50000 sessions, 5000 STORs of 100 MiB"
    exit 2
fi

bench_out_md floor
bench_workdir floor tmpfs
RAW="$WORK/results.jsonl"
: >"$RAW"
CLIENT="$HERE/floor.py"

# --- builds -----------------------------------------------------------------------------
command -v cc >/dev/null || { say "no C compiler (cc); apt-get install -y gcc"; exit 1; }
say "building the floor (cc -O2 demo/bench/floor/floor.c)"
cc -O2 -o "$WORK/floor" "$HERE/floor/floor.c"
FLOOR="$WORK/floor"
if [ -z "${FTPDLIB_BIN:-}" ]; then
    bench_cargo "building the ftpdlib daemon (cargo build --release -p ftpdlib-daemon)" -p ftpdlib-daemon
    FTPDLIB_BIN="$REPO/target/release/ftpdlib"
fi
[ -x "$FTPDLIB_BIN" ] || { say "no ftpdlib binary at $FTPDLIB_BIN"; exit 1; }
if [ -n "${FTPDLIB_BEFORE:-}" ] && [ ! -x "$FTPDLIB_BEFORE" ]; then
    say "FTPDLIB_BEFORE=$FTPDLIB_BEFORE is not an executable"
    exit 1
fi
REV="$(git -C "$REPO" rev-parse --short HEAD)"
DIRTY=""
git -C "$REPO" diff --quiet HEAD -- src daemon Cargo.toml Cargo.lock || DIRTY=" (with uncommitted changes)"

PY=""
if [ "$USE_PY" = 1 ]; then
    cand="${PYFTPDLIB_PY:-/tmp/pyvenv/bin/python}"
    if [ -x "$cand" ] && "$cand" -c 'import pyftpdlib, sys; sys.exit(not pyftpdlib.__ver__.startswith("2."))' 2>/dev/null; then
        PY="$cand"
        PYFTPDLIB_VERSION="$("$PY" -c 'import pyftpdlib; print(pyftpdlib.__ver__)')"
    elif ! bench_pyftpdlib 'pyftpdlib>=2,<3' 'pyftpdlib 2.x'; then
        say "pyftpdlib did not install: no pyftpdlib column"
        USE_PY=0
    fi
fi

# --- the servers of part 1 ----------------------------------------------------------------
# Part 1 runs every server and the client on one CPU: on this machine (a VM) a wake-up that
# crosses CPUs charges the woken server tens of microseconds, and where the scheduler puts
# the two sides changes from run to run (NOOP 5 us on one CPU, 40-50 us across two).
PIN=()
case "$PIN_CPU" in
    none) ;;
    *[!0-9]*|'') say "PIN_CPU is a CPU number or none"; exit 2 ;;
    *) command -v taskset >/dev/null || { say "no taskset (util-linux); PIN_CPU=none"; exit 1; }
       PIN=(taskset -c "$PIN_CPU") ;;
esac
declare -A PID PORT KIND
SERVERS=()
tree() { # DIR: a served directory with floor.bin, MIB MiB of random bytes
    mkdir -p "$1"
    head -c "$((MIB << 20))" /dev/urandom >"$1/floor.bin"
}
tree "$WORK/floor-root"
# start_ftp NAME ARGS...: an FTP server (ARGS: its command without address options), left
# running; NAME joins SERVERS.
start_ftp() {
    local name=$1 port
    shift
    port="$(free_port)"
    tree "$WORK/root-$name"
    "${PIN[@]}" setsid "$@" -i "$HOST" -p "$port" -w -d "$WORK/root-$name" -u "$USER_NAME" \
        -P "$USER_PASS" --max-cons 0 --max-cons-per-ip 0 >"$WORK/logs/$name.log" 2>&1 &
    track_started "$name" "$port" "$WORK/logs/$name.log" || exit 1
    PID[$name]=$SRV_PID
    PORT[$name]=$port
    KIND[$name]=ftp
    SERVERS+=("$name")
}
# start_floor ROLE ARGS...: one of the floor's servers (ctl, sink, src).
start_floor() {
    local role=$1 port
    shift
    port="$(free_port)"
    "${PIN[@]}" setsid "$FLOOR" "$role" "$port" "$@" >"$WORK/logs/floor-$role.log" 2>&1 &
    track_started "floor $role" "$port" "$WORK/logs/floor-$role.log" || exit 1
    PID[floor-$role]=$SRV_PID
    PORT[floor-$role]=$port
}
start_floor ctl
start_floor sink "$WORK/floor-root"
start_floor src "$WORK/floor-root/floor.bin"
SERVERS+=(floor)
KIND[floor]=floor
start_ftp ftpdlib "$FTPDLIB_BIN"
[ -z "${FTPDLIB_BEFORE:-}" ] || start_ftp before "$FTPDLIB_BEFORE"
[ "$USE_PY" = 0 ] || start_ftp pyftpdlib "$PY" -m pyftpdlib

# client SERVER WORKLOAD ROUND: one workload against one server; its JSON line to RAW.
client() {
    local srv=$1 wl=$2 round=$3 count port pid line
    case "$wl" in
        login) count=$LOGINS ;;
        noop) count=$NOOPS ;;
        *) count=$TRANSFERS ;;
    esac
    if [ "$srv" = floor ]; then
        case "$wl" in login|noop) port=${PORT[floor-ctl]} pid=${PID[floor-ctl]} ;;
            stor) port=${PORT[floor-sink]} pid=${PID[floor-sink]} ;;
            retr) port=${PORT[floor-src]} pid=${PID[floor-src]} ;;
        esac
    else
        port=${PORT[$srv]} pid=${PID[$srv]}
    fi
    if line="$(timeout --kill-after=10 $((WL_SECONDS * 2 + 60)) "${PIN[@]}" "$PYTHON" "$CLIENT" \
        --kind "${KIND[$srv]}" --port "$port" --pid "$pid" --user "$USER_NAME" \
        --password "$USER_PASS" --workload "$wl" --count "$count" --mib "$MIB" \
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
for round in $(seq "$ROUNDS"); do
    # Rotate the order: each server goes first in turn.
    n=${#SERVERS[@]}
    order=()
    for i in $(seq 0 $((n - 1))); do order+=("${SERVERS[$(( (i + round) % n ))]}"); done
    say "round $round/$ROUNDS (${order[*]})"
    for wl in login noop stor retr; do
        for srv in "${order[@]}"; do client "$srv" "$wl" "$round"; done
    done
done
for p in "${PID[@]}"; do
    kill -0 "$p" 2>/dev/null || { say "a server died during the run (see $WORK/logs)"; exit 1; }
done
PART1_S=$(( $(date +%s) - START_S ))
# Part 1's servers are done: stop them before the heavier parts.
for p in "${STARTED[@]:-}"; do SRV_PID=$p; stop_server; done

# --- part 2: SESSIONS logged-in sessions ----------------------------------------------------
HARD="$(ulimit -Hn)"
[ "$HARD" = unlimited ] && HARD=1048576
if [ "$SESSIONS" -gt 0 ]; then
    want=$((2 * SESSIONS + 256))
    if [ "$HARD" -lt "$want" ]; then
        if ulimit -Hn "$want" 2>/dev/null; then
            HARD=$want
        else
            say "the hard descriptor limit is $HARD and cannot be raised"
        fi
    fi
    ulimit -n "$HARD"
    # sessions NAME ARGS...: NAME serves an empty directory; idle_sessions.py logs N in.
    sessions() {
        local name=$1 n=$SESSIONS port line
        shift
        # ftpdlib: a control connection and the home directory per session.
        if [ "$name" != pyftpdlib ] && [ $((2 * n + 64)) -gt "$HARD" ]; then
            n=$(( (HARD - 64) / 2 / 100 * 100 ))
        fi
        port="$(free_port)"
        mkdir -p "$WORK/idle-$name"
        setsid "$@" -i "$HOST" -p "$port" -d "$WORK/idle-$name" -u "$USER_NAME" \
            -P "$USER_PASS" --max-cons 0 --max-cons-per-ip 0 >"$WORK/logs/idle-$name.log" 2>&1 &
        track_started "$name" "$port" "$WORK/logs/idle-$name.log" || exit 1
        say "$n idle sessions on $name, then $PROBES logins"
        if line="$(timeout --kill-after=10 600 "$PYTHON" "$HERE/idle_sessions.py" --port "$port" \
            --pid "$SRV_PID" --user "$USER_NAME" --password "$USER_PASS" -n "$n" \
            --probe "$PROBES" --json --label "$name" 2>>"$WORK/logs/client.log")" &&
            [ "${line:0:1}" = "{" ]; then
            echo "$line" >>"$RAW"
        else
            say "the sessions on $name failed; client log:"
            tail -n 5 "$WORK/logs/client.log" >&2 || true
        fi
        stop_server
    }
    sessions ftpdlib "$FTPDLIB_BIN"
    [ -z "${FTPDLIB_BEFORE:-}" ] || sessions before "$FTPDLIB_BEFORE"
    [ "$USE_PY" = 0 ] || sessions pyftpdlib "$PY" -m pyftpdlib
fi

# --- part 3: CSTOR concurrent STORs ---------------------------------------------------------
VSFTPD=/usr/sbin/vsftpd
VSFTPD_VERSION="(not run)"
if [ "$CSTOR" -gt 0 ]; then
    if [ -z "${FTPBENCH_BIN:-}" ]; then
        bench_cargo "building ftpbench (cargo build --release --example ftpbench)" --example ftpbench
        FTPBENCH_BIN="$REPO/target/release/examples/ftpbench"
    fi
    [ -x "$FTPBENCH_BIN" ] || { say "no ftpbench at $FTPBENCH_BIN"; exit 1; }
    [ "$HARD" -ge $((2 * CSTOR + 256)) ] && ulimit -n "$HARD"
    CWORK="$(mktemp -d /tmp/ftpdlib-floor-cstor.XXXXXX)"
    chmod 755 "$CWORK"
    trap 'rc=$?; rm -rf "$CWORK"; (exit "$rc"); bench_cleanup' EXIT
    cpu_ticks() { # PID: fields 14-17 of /proc/PID/stat (own and reaped children's CPU)
        awk '{ sub(/.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$1/stat"
    }
    # cstor NAME: starts NAME on an empty directory, runs ftpbench, stops it.
    cstor() {
        local name=$1 port root="$CWORK/$1" args=(--user "$USER_NAME" --pass "$USER_PASS")
        local t0 t1 line
        port="$(free_port)"
        rm -rf "$root"
        mkdir -p "$root"
        case "$name" in
            ftpdlib|before)
                local bin=$FTPDLIB_BIN
                [ "$name" = before ] && bin=$FTPDLIB_BEFORE
                setsid "$bin" -i "$HOST" -p "$port" -w -d "$root" -u "$USER_NAME" \
                    -P "$USER_PASS" --max-cons 0 --max-cons-per-ip 0 \
                    >"$WORK/logs/cstor-$name.log" 2>&1 & ;;
            pyftpdlib)
                setsid "$PY" -m pyftpdlib -i "$HOST" -p "$port" -w -d "$root" -u "$USER_NAME" \
                    -P "$USER_PASS" --max-cons 0 --max-cons-per-ip 0 \
                    >"$WORK/logs/cstor-$name.log" 2>&1 & ;;
            vsftpd)
                # Anonymous and writable: the chroot root must not be writable by the
                # 'ftp' user, so uploads go to pub/.
                mkdir -p "$root/pub" "$CWORK/vsftpd-empty"
                chown ftp:ftp "$root/pub"
                cat >"$CWORK/vsftpd.conf" <<EOF
listen=YES
listen_ipv6=NO
listen_address=$HOST
listen_port=$port
background=NO
anonymous_enable=YES
local_enable=NO
write_enable=YES
anon_root=$root
no_anon_password=YES
anon_upload_enable=YES
anon_other_write_enable=YES
anon_world_readable_only=NO
anon_umask=022
pasv_enable=YES
pasv_address=$HOST
max_clients=0
max_per_ip=0
secure_chroot_dir=$CWORK/vsftpd-empty
seccomp_sandbox=NO
isolate=NO
isolate_network=NO
xferlog_enable=NO
dirmessage_enable=NO
EOF
                args=(--user anonymous --pass ftpbench@ --dir pub)
                setsid "$VSFTPD" "$CWORK/vsftpd.conf" >"$WORK/logs/cstor-$name.log" 2>&1 & ;;
        esac
        track_started "$name" "$port" "$WORK/logs/cstor-$name.log" || return 0
        say "$CSTOR concurrent STORs of $CSTOR_MB MiB to $name"
        t0="$(cpu_ticks "$SRV_PID")"
        line="$(timeout --kill-after=10 400 "$FTPBENCH_BIN" --host "$HOST" --port "$port" \
            "${args[@]}" -n "$CSTOR" --conc-size-mb "$CSTOR_MB" --only cstor --timeout 300 \
            --json 2>>"$WORK/logs/ftpbench.log" | grep '^{' | paste -sd, -)" || true
        sleep 1 # the last sessions' processes (vsftpd) end and are reaped
        t1="$(cpu_ticks "$SRV_PID")"
        if [ -n "$line" ]; then
            echo "{\"label\":\"$name\",\"part\":\"cstor\",\"sessions\":$CSTOR,\"server_cpu_s\":$(( t1 - t0 ))e-2,\"ftpbench\":[$line]}" >>"$RAW"
        else
            say "ftpbench against $name gave no result (see $WORK/logs/ftpbench.log)"
        fi
        stop_server
        rm -rf "$root"
    }
    cstor ftpdlib
    [ -z "${FTPDLIB_BEFORE:-}" ] || cstor before
    if [ -x "$VSFTPD" ] && [ "$(id -u)" = 0 ] && id ftp >/dev/null 2>&1; then
        VSFTPD_VERSION="$( (dpkg-query -W -f '${Version}' vsftpd 2>/dev/null) || echo unknown)"
        cstor vsftpd
    else
        say "vsftpd not installed, or not root, or no user ftp: no vsftpd column"
    fi
    [ "$USE_PY" = 0 ] || cstor pyftpdlib
fi

cp "$RAW" "$OUT_JSONL"

# --- report --------------------------------------------------------------------------------
bench_machine
"$PYTHON" "$HERE/floor_report.py" "$RAW" "$OUT_MD" \
    --date "$RUN_DATE" --rev "$REV$DIRTY" --bin "$FTPDLIB_BIN" --before "${FTPDLIB_BEFORE:-}" \
    --machine "$MACHINE" --pyftpdlib "$PYFTPDLIB_VERSION" --vsftpd "$VSFTPD_VERSION" \
    --rounds "$ROUNDS" --logins "$LOGINS" --noops "$NOOPS" --transfers "$TRANSFERS" \
    --mib "$MIB" --part1-s "$PART1_S" --cstor-mb "$CSTOR_MB" --nofile "$(ulimit -n)" \
    --pin "$PIN_CPU"
say "results in $OUT_MD (raw: $OUT_JSONL)"
cat "$OUT_MD"
