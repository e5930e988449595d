#!/usr/bin/env bash
# workers.sh: one reactor per core. ftpdlib with 1 and 2 workers (`--workers N`: N reactor
# threads on listeners bound N times with SO_REUSEPORT) against pyftpdlib's
# MultiprocessFTPServer (a process forked per session) and its plain FTPServer (one
# process, the single-process reference), in one run.
#
# Each server is started fresh on 127.0.0.1 for every workload of every round, from the
# same read-only tree on tmpfs, with an RSA-2048 self-signed certificate made for the run
# (openssl req): FTPS is offered, not required. The servers take turns, in an order
# rotated every round, and the report gives the median of the rounds. The client is
# demo/bench/workers/ (the workers_load example): one thread, a mio event loop, rustls
# for FTPS, so that the server is the bottleneck as far as the machine allows. It
# measures over a window after a warm-up: the aggregate rate, and the server's CPU (user
# + system of the server's process and every descendant, from /proc/PID/stat, in cores:
# 1.7 = 170 %), and its own.
#
# Workloads (rows of the table):
#   tls_1m      TLS_CLIENTS clients, each running FTPS sessions one after another: AUTH
#               TLS, USER, PASS, PBSZ 0, PROT P, TYPE I, then TLS_RETRS RETRs of a 1 MiB
#               file (PASV, a TLS data connection that resumes the control connection's
#               session), QUIT; aggregate MiB/s
#   tls_tiny    the same with one RETR of a TINY_BYTES file per session: the server's RSA
#               signature of every control handshake dominates; sessions per second
#   plain_1m    PLAIN_CLIENTS sessions logged in (not measured), each RETRing the 1 MiB
#               file again and again, plain FTP; aggregate MiB/s
#   login_seq   one client: connect, USER, PASS, QUIT, one session after another; 1/s
#   login_conc  LOGIN_CLIENTS clients doing the same at once; 1/s
#
# Usage: demo/bench/workers.sh [--quick] [--out FILE.md] [--keep] [--no-pyftpdlib]
#   --quick         a smoke run: 1 round, 2 s windows, fewer clients
#   --out FILE.md   the report (default demo/bench/results/workers-<UTC date>.md); the
#                   raw JSON lines go beside it as FILE.jsonl
#   --keep          keep the work directory (servers' logs, certificate)
#   --no-pyftpdlib  ftpdlib alone
#
# Environment:
#   ROUNDS (5), WINDOW (5 s measured), WARMUP (1 s before the window)
#   TLS_CLIENTS (200), TLS_RETRS (8), TINY_BYTES (1024), PLAIN_CLIENTS (1000),
#   LOGIN_CLIENTS (200)
#   QUIET_MAX    before each run, wait until the machine's busy time over 1 s (other
#                processes: no server runs then) is at most this many cores (0.3) ...
#   QUIET_WAIT   ... for at most this many seconds (30); the run then starts anyway
#   RETRIES      a run during whose window other processes took more than QUIET_MAX
#                cores is made again, up to RETRIES times in all (4); the last is kept
#                either way, marked noisy
#   SERVERS      the columns, in order (default "ftpdlib-1 ftpdlib-2 pyftpdlib-mp
#                pyftpdlib"); ftpdlib-N runs `ftpdlib --workers N`
#   WORKLOADS    the rows (default "tls_1m tls_tiny plain_1m login_seq login_conc")
#   FTPDLIB_BIN  server binary (default: cargo build --release, target/release/ftpdlib)
#   LOAD_BIN     the client (default: cargo build --release --example workers_load)
#   PYTHON       python3 for the venv and the report (python3)
#
# Everything listens on and connects to 127.0.0.1; every server runs in a process group
# of its own and is stopped after its workload and on exit; each client run is bounded
# by timeout(1), each of its phases by 60 s.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

USE_PY=1
while [ $# -gt 0 ]; do
    case "$1" in
        --keep) KEEP=1; shift ;;
        *) bench_option "$@"; shift "$TOOK" ;;
    esac
done
if [ "$QUICK" = 1 ]; then
    : "${ROUNDS:=1}" "${WINDOW:=2}" "${WARMUP:=0.5}" "${TLS_CLIENTS:=50}" "${PLAIN_CLIENTS:=200}"
    : "${LOGIN_CLIENTS:=50}"
fi
: "${ROUNDS:=5}" "${WINDOW:=5}" "${WARMUP:=1}" "${TLS_CLIENTS:=200}" "${TLS_RETRS:=8}"
: "${TINY_BYTES:=1024}" "${PLAIN_CLIENTS:=1000}" "${LOGIN_CLIENTS:=200}"
: "${QUIET_MAX:=0.3}" "${QUIET_WAIT:=30}" "${RETRIES:=4}"
: "${SERVERS:=ftpdlib-1 ftpdlib-2 pyftpdlib-mp pyftpdlib}"
: "${WORKLOADS:=tls_1m tls_tiny plain_1m login_seq login_conc}"
for v in "$ROUNDS" "$WINDOW" "$TLS_CLIENTS" "$TLS_RETRS" "$TINY_BYTES" "$PLAIN_CLIENTS" \
    "$LOGIN_CLIENTS"; do
    case "$v" in ''|*[!0-9]*|0) say "ROUNDS, WINDOW and the counts must be positive integers"; exit 2 ;; esac
done
if ! { [ "$ROUNDS" -le 50 ] && [ "$WINDOW" -le 120 ] && [ "$TLS_CLIENTS" -le 5000 ] &&
    [ "$PLAIN_CLIENTS" -le 5000 ] && [ "$LOGIN_CLIENTS" -le 5000 ] && [ "$TLS_RETRS" -le 1000 ]; }; then
    say "at most 50 rounds, 120 s windows, 5000 clients, 1000 RETRs per session"
    exit 2
fi
read -r -a SERVER_LIST <<<"$SERVERS"
if [ "$USE_PY" = 0 ]; then
    keep=()
    for s in "${SERVER_LIST[@]}"; do [[ "$s" == pyftpdlib* ]] || keep+=("$s"); done
    SERVER_LIST=("${keep[@]}")
fi
read -r -a WORKLOAD_LIST <<<"$WORKLOADS"

bench_out_md workers
bench_workdir workers tmpfs
RAW="$WORK/results.jsonl"
: >"$RAW"
# Descriptors for 1000 sessions on each side (control, data, the server's home directory).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# --- builds, pyftpdlib, certificate, files ----------------------------------------------
REV="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
git -C "$REPO" diff --quiet HEAD -- src daemon/src 2>/dev/null || REV="$REV (with uncommitted changes)"
bench_build_ftpdlib FTPDLIB_BIN
[ -x "$FTPDLIB_BIN" ] || { say "no ftpdlib binary at $FTPDLIB_BIN"; exit 1; }
if [ -z "${LOAD_BIN:-}" ]; then
    bench_cargo "building the client (cargo build --release --example workers_load)" \
        --example workers_load
    LOAD_BIN="$REPO/target/release/examples/workers_load"
fi
[ -x "$LOAD_BIN" ] || { say "no client at $LOAD_BIN"; exit 1; }
HAS_WORKERS=0
"$FTPDLIB_BIN" --help | grep -q -- '--workers' && HAS_WORKERS=1
NOTES=()
if [ "$HAS_WORKERS" = 0 ]; then
    NOTES+=("this ftpdlib has no --workers flag: ftpdlib-1 ran without it, ftpdlib-N for N > 1 was skipped")
    keep=()
    for s in "${SERVER_LIST[@]}"; do [ "$s" != ftpdlib-1 ] && [[ "$s" == ftpdlib-* ]] || keep+=("$s"); done
    SERVER_LIST=("${keep[@]}")
fi
PY=""
if printf '%s\n' "${SERVER_LIST[@]}" | grep -q '^pyftpdlib'; then
    if bench_pyftpdlib pyftpdlib &&
        "$WORK/venv/bin/pip" install --quiet --disable-pip-version-check pyopenssl; then
        PYOPENSSL_VERSION="$("$PY" -c 'import OpenSSL; print(OpenSSL.__version__)')"
        OPENSSL_LIB="$("$PY" -c 'from OpenSSL import SSL; print(SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode())')"
    else
        NOTES+=("pyftpdlib or pyOpenSSL did not install: no pyftpdlib columns")
        keep=()
        for s in "${SERVER_LIST[@]}"; do [[ "$s" == pyftpdlib* ]] || keep+=("$s"); done
        SERVER_LIST=("${keep[@]}")
    fi
fi
: "${PYOPENSSL_VERSION:=}" "${OPENSSL_LIB:=}"

say "making an RSA-2048 self-signed certificate and the served files"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>>"$WORK/logs/openssl.log"
ROOT="$WORK/root"
mkdir -p "$ROOT"
head -c 1048576 /dev/urandom >"$ROOT/1m.bin"
head -c "$TINY_BYTES" /dev/urandom >"$ROOT/tiny.bin"
chmod -R a+rX "$ROOT"

# start_server NAME LOG: starts NAME on a free port (SRV_PORT) and waits until it listens.
# ftpdlib also serves its metrics on METRICS_PORT, for the count of lock waits.
start_server() {
    local name=$1 log=$2 tls=(--tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem")
    SRV_PORT="$(free_port)"
    METRICS_PORT=""
    case "$name" in
        ftpdlib-*)
            local n=${name#ftpdlib-} workers=()
            [ "$HAS_WORKERS" = 1 ] && workers=(--workers "$n")
            METRICS_PORT="$(free_port)"
            workers+=(--metrics "$HOST:$METRICS_PORT")
            setsid "$FTPDLIB_BIN" -i "$HOST" -p "$SRV_PORT" -d "$ROOT" -u "$USER_NAME" \
                -P "$USER_PASS" --max-cons 0 --max-cons-per-ip 0 "${tls[@]}" "${workers[@]}" \
                >"$log" 2>&1 &
            ;;
        pyftpdlib|pyftpdlib-mp)
            local model=single
            [ "$name" = pyftpdlib-mp ] && model=multiproc
            setsid "$PY" "$HERE/workers_pyftpd.py" "$model" "$HOST" "$SRV_PORT" "$ROOT" \
                "$USER_NAME" "$USER_PASS" "$WORK/cert.pem" "$WORK/key.pem" >"$log" 2>&1 &
            ;;
        *) say "unknown server $name"; exit 2 ;;
    esac
    track_started "$name" "$SRV_PORT" "$log"
}

# load_args WORKLOAD: the client's arguments for WORKLOAD, in LOAD_ARGS.
load_args() {
    local big=(--file 1m.bin --size 1048576) tiny=(--file tiny.bin --size "$TINY_BYTES")
    case "$1" in
        tls_1m) LOAD_ARGS=(--workload sessions --tls -n "$TLS_CLIENTS" "${big[@]}" --retrs "$TLS_RETRS") ;;
        tls_tiny) LOAD_ARGS=(--workload sessions --tls -n "$TLS_CLIENTS" "${tiny[@]}" --retrs 1) ;;
        plain_1m) LOAD_ARGS=(--workload retr -n "$PLAIN_CLIENTS" "${big[@]}") ;;
        login_seq) LOAD_ARGS=(--workload sessions -n 1) ;;
        login_conc) LOAD_ARGS=(--workload sessions -n "$LOGIN_CLIENTS") ;;
        *) say "unknown workload $1"; exit 2 ;;
    esac
}

# busy_cores: how many CPUs the machine kept busy over the next second (/proc/stat).
busy_cores() {
    local a b
    a="$(head -n 1 /proc/stat)"
    sleep 1
    b="$(head -n 1 /proc/stat)"
    awk -v a="$a" -v b="$b" -v hz="$(getconf CLK_TCK)" 'BEGIN {
        split(a, x); split(b, y); busy = 0
        for (k = 2; k <= 9; k++) if (k != 5 && k != 6) busy += y[k] - x[k]
        printf "%.2f", busy / hz }'
}

# wait_quiet: waits, up to QUIET_WAIT seconds, for the other processes to leave the
# machine (busy_cores at most QUIET_MAX); sets QUIET to the last reading.
wait_quiet() {
    local t0=$SECONDS
    while true; do
        QUIET="$(busy_cores)"
        awk -v q="$QUIET" -v m="$QUIET_MAX" 'BEGIN { exit !(q <= m) }' && return 0
        [ $((SECONDS - t0)) -lt "$QUIET_WAIT" ] || { say "machine still busy ($QUIET cores), going on"; return 0; }
    done
}

# --- the rounds ------------------------------------------------------------------------
# one_run SERVER WORKLOAD ROUND ATTEMPT: SERVER started fresh, WORKLOAD's client against
# it, SERVER stopped; the result, a JSON line, in LINE.
one_run() {
    local srv=$1 wl=$2 round=$3 log="$WORK/logs/$1-$2-$3-$4.log" head line waits
    wait_quiet
    head='{"server":"'$srv'","wl":"'$wl'","round":'$round',"attempt":'$4',"busy_before":'$QUIET','
    if ! start_server "$srv" "$log"; then
        LINE="$head\"error\":\"server did not start\"}"
        return 0
    fi
    line="$(timeout --kill-after=10 $((WINDOW + 200)) "$LOAD_BIN" --port "$SRV_PORT" \
        --pid "$SRV_PID" --user "$USER_NAME" --pass "$USER_PASS" --warmup "$WARMUP" \
        --seconds "$WINDOW" --label "$srv" "${LOAD_ARGS[@]}" \
        2>>"$WORK/logs/client.log")" || true
    [ "${line:0:1}" = "{" ] || line='{"error":"the client gave no result (see its log)"}'
    if [[ "$srv" == ftpdlib-* ]] && command -v curl >/dev/null; then
        waits="$(curl -s --max-time 5 "http://$HOST:$METRICS_PORT/metrics" |
            awk '/^ftpdlib_lock_waits_total/ { print $2 }')" || waits=""
        [ -z "$waits" ] || line="{\"lock_waits\":$waits,${line:1}"
    fi
    LINE="$head${line:1}"
    grep -q '"error"' <<<"$line" && say "$wl on $srv: $(grep -o '"error":"[^"]*"' <<<"$line" | head -c 300)"
    stop_server
}

START_S=$(date +%s)
REDONE=0
NS=${#SERVER_LIST[@]}
for round in $(seq "$ROUNDS"); do
    order=()
    for k in $(seq 0 $((NS - 1))); do order+=("${SERVER_LIST[$(( (k + round - 1) % NS ))]}"); done
    say "round $round/$ROUNDS (${order[*]})"
    for wl in "${WORKLOAD_LIST[@]}"; do
        load_args "$wl"
        for srv in "${order[@]}"; do
            for attempt in $(seq "$RETRIES"); do
                one_run "$srv" "$wl" "$round" "$attempt"
                others="$(grep -o '"others_cores":[0-9.]*' <<<"$LINE" | cut -d: -f2)"
                if [ -z "$others" ] ||
                    awk -v o="$others" -v m="$QUIET_MAX" 'BEGIN { exit !(o <= m) }'; then
                    break
                fi
                if [ "$attempt" -lt "$RETRIES" ]; then
                    say "$wl on $srv: other processes took $others cores in the window, again"
                    echo "$LINE" >>"$WORK/discarded.jsonl"
                    REDONE=$((REDONE + 1))
                else
                    LINE="{\"noisy\":true,${LINE:1}"
                fi
            done
            echo "$LINE" >>"$RAW"
        done
    done
done
BENCH_S=$(( $(date +%s) - START_S ))
cp "$RAW" "$OUT_JSONL"

# --- report ------------------------------------------------------------------------------
bench_machine
export RAW OUT_MD RUN_DATE REV FTPDLIB_BIN PYFTPDLIB_VERSION PYOPENSSL_VERSION OPENSSL_LIB
export REDONE RETRIES QUIET_MAX QUIET_WAIT ROUNDS WINDOW WARMUP TLS_CLIENTS TLS_RETRS TINY_BYTES PLAIN_CLIENTS LOGIN_CLIENTS
export MACHINE MACHINE_MEM BENCH_S
export SERVER_COLS="${SERVER_LIST[*]}" WORKLOAD_ROWS="${WORKLOAD_LIST[*]}"
NOTE_TEXT="$(printf '%s\n' "${NOTES[@]+"${NOTES[@]}"}")"
export NOTE_TEXT
"$PYTHON" "$HERE/workers_report.py"
say "results in $OUT_MD (raw: $OUT_JSONL)"
cat "$OUT_MD"
