#!/usr/bin/env bash
# soak.sh: many real clients, good and bad, against one ftpdlib for minutes on end; then
# is every upload intact, and is the server back where it started?
#
# Starts the release ftpdlib on 127.0.0.1 (a free port) with write access, two accounts
# (soak, and slow with a per-user bandwidth limit so throttling runs too), a small
# passive port range, FTPS with the test certificate of tests/data, and bans after
# failed logins. For SOAK_SECONDS it then runs, in parallel (demo/bench/soak.py):
#
#   curl     CURL_WORKERS loops: STOR then RETR and compare, PASV, EPSV, PORT and EPRT
#            (--ftp-port), part of them over FTPS (--ssl-reqd); one loop as `slow`
#   lftp     LFTP_WORKERS loops: mirror -R of a small random tree, mirror back, compare;
#            passive and active, part of them over FTPS
#   ftplib   FTPLIB_WORKERS loops of Python's ftplib: STOR, RETR, APPE, REST+STOR,
#            REST+RETR, LIST, MLSD, RNFR/RNTO, DELE, SIZE; part of them over FTPS
#   bad      BAD_WORKERS raw-socket loops from 127.0.0.2: slowloris lines, uploads and
#            downloads dropped with a RST, ABOR storms, PASV never connected, garbage
#            bytes and over-long lines, idle connections
#   badpass  one loop from 127.0.0.3 logging in with wrong passwords until banned (the
#            ban hits 127.0.0.3 alone: the good clients come from 127.0.0.1)
#
# Then, once the clients are done and the server had SETTLE_SECONDS to close what was
# left: every upload a client saw end in 226 is compared on disk with what was sent (a
# manifest per client: name, size, sha256), the clients' directories hold nothing else
# but the leftovers of failed uploads, the server answers (plain and FTPS), and its fd
# count (/proc/PID/fd) and VmRSS (/proc/PID/status) are back near their baseline. A
# table goes to stdout and to demo/bench/results/soak-<UTC date>.md; the exit status is
# non-zero when a check failed.
#
# Not part of `cargo test`: an opt-in run of minutes. Everything runs on 127.0.0.1 (and
# 127.0.0.2/.3 as sources); every loop is bounded in time and count, every process
# started here is stopped on exit.
#
# Usage: demo/bench/soak.sh [--out FILE.md] [--keep]
#   --out FILE.md  results file (default demo/bench/results/soak-<UTC date>.md)
#   --keep         keep the work directory (server log, events, manifests)
#
# Environment:
#   SOAK_SECONDS   how long the clients run (default 600)
#   CURL_WORKERS LFTP_WORKERS FTPLIB_WORKERS BAD_WORKERS   2, 1, 2, 2
#   SLOW_RATE      the `slow` account's read and write limit (default 256K)
#   SETTLE_SECONDS at most this long for the fds to come back after the clients stop (60)
#   FD_SLACK RSS_SLACK_KB   how far above the baseline the end may be (2 fds, 32768 KiB)
#   FTPDLIB_BIN    server binary (default: cargo build --release, target/release/ftpdlib)
#   PYTHON         python3 for the clients (default python3)
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

while [ $# -gt 0 ]; do
    case "$1" in
        --keep) KEEP=1; shift ;;
        *) bench_option "$@"; shift "$TOOK" ;;
    esac
done

: "${SOAK_SECONDS:=600}" "${CURL_WORKERS:=2}" "${LFTP_WORKERS:=1}" "${FTPLIB_WORKERS:=2}"
: "${BAD_WORKERS:=2}" "${SLOW_RATE:=256K}" "${SETTLE_SECONDS:=60}" "${FD_SLACK:=2}"
: "${RSS_SLACK_KB:=32768}"
for v in "$SOAK_SECONDS" "$CURL_WORKERS" "$LFTP_WORKERS" "$FTPLIB_WORKERS" "$BAD_WORKERS" \
    "$SETTLE_SECONDS" "$FD_SLACK" "$RSS_SLACK_KB"; do
    case "$v" in ''|*[!0-9]*) say "numbers must be non-negative integers"; exit 2 ;; esac
done
if ! { [ "$SOAK_SECONDS" -le 86400 ] && [ $((CURL_WORKERS + LFTP_WORKERS + FTPLIB_WORKERS + BAD_WORKERS)) -le 64 ]; }; then
    say "at most 86400 s and 64 workers"
    exit 2
fi
for tool in curl lftp "$PYTHON"; do
    command -v "$tool" >/dev/null || { say "needs $tool"; exit 1; }
done
CLIENT="$HERE/soak.py"
bench_out_md soak

# The revision the binary is built from, taken now: the tree may change during the run.
REV="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git -C "$REPO" status --porcelain -- src daemon/src Cargo.toml Cargo.lock 2>/dev/null)" ]; then
    REV="$REV (with uncommitted changes in src/, daemon/src or Cargo.*)"
fi
bench_build_ftpdlib FTPDLIB_BIN
[ -x "$FTPDLIB_BIN" ] || { say "no ftpdlib binary at $FTPDLIB_BIN"; exit 1; }

bench_workdir soak
ROOT="$WORK/root"
mkdir -p "$ROOT/fixtures" "$ROOT/bad" "$WORK/events" "$WORK/manifest"
head -c $((8 * 1024 * 1024)) /dev/urandom >"$ROOT/fixtures/big.bin"
SLOW_PASS="slow-$$"
CONFIG="$WORK/ftpdlib.toml"
cat >"$CONFIG" <<EOF
[[users]]
name = "$USER_NAME"
password = "$USER_PASS"
perm = "elradfmwMT"

[[users]]
name = "slow"
password = "$SLOW_PASS"
perm = "elradfmwMT"
read-limit = "$SLOW_RATE"
write-limit = "$SLOW_RATE"
EOF

# A small passive range: 40 ports for every data connection of every client.
RANGE_FROM=$(( 42000 + RANDOM % 20000 ))
RANGE="$RANGE_FROM-$((RANGE_FROM + 39))"
SRV_PORT="$(free_port)"
SERVER_ARGS=(-i "$HOST" -p "$SRV_PORT" -d "$ROOT" --config "$CONFIG" -r "$RANGE"
    --tls-cert "$REPO/tests/data/cert.pem" --tls-key "$REPO/tests/data/key.pem"
    --max-cons 0 --timeout 20 --login-timeout 15 --auth-failed-delay 1
    --max-login-failures 5 --ban-time 60 --shutdown-grace 2)
say "starting ftpdlib on $HOST:$SRV_PORT, passive $RANGE, for ${SOAK_SECONDS}s of clients"
setsid "$FTPDLIB_BIN" "${SERVER_ARGS[@]}" >"$WORK/logs/ftpdlib.log" 2>&1 &
track_started ftpdlib "$SRV_PORT" "$WORK/logs/ftpdlib.log"
PID=$SRV_PID

# Baseline: after one warm-up session of each kind (first TLS handshake, first
# transfer), the median of a few samples.
"$PYTHON" "$CLIENT" probe --port "$SRV_PORT" --user "$USER_NAME" --password "$USER_PASS" >/dev/null
sleep 1
read -r BASE_FD BASE_RSS < <("$PYTHON" "$CLIENT" sample --pid "$PID")
say "baseline: $BASE_FD fds, $BASE_RSS KiB RSS"

SAMPLES="$WORK/samples.jsonl"
STOP="$WORK/monitor.stop"
setsid "$PYTHON" "$CLIENT" monitor --pid "$PID" --out "$SAMPLES" --stop-file "$STOP" &
STARTED+=("$!")
MONITOR=$!

WORKERS=()
worker() { # KIND ID USER PASS [ARGS...]
    local kind=$1 id=$2 user=$3 pass=$4; shift 4
    setsid timeout --kill-after=10 "$((SOAK_SECONDS + 240))" "$PYTHON" "$CLIENT" "$kind" \
        --work "$WORK" --root "$ROOT" --port "$SRV_PORT" --id "$id" --user "$user" --password "$pass" \
        --seconds "$SOAK_SECONDS" --seed "$RANDOM" "$@" 2>>"$WORK/logs/$id.err" &
    STARTED+=("$!")
    WORKERS+=("$!")
}
for i in $(seq "$CURL_WORKERS"); do
    if [ "$i" = 1 ]; then
        worker curl "curl-$i" slow "$SLOW_PASS" --big-max $((512 * 1024))
    else
        worker curl "curl-$i" "$USER_NAME" "$USER_PASS"
    fi
done
for i in $(seq "$LFTP_WORKERS"); do worker lftp "lftp-$i" "$USER_NAME" "$USER_PASS"; done
for i in $(seq "$FTPLIB_WORKERS"); do worker ftplib "ftplib-$i" "$USER_NAME" "$USER_PASS"; done
for i in $(seq "$BAD_WORKERS"); do
    worker bad "bad-$i" "$USER_NAME" "$USER_PASS" --source 127.0.0.2
done
worker badpass badpass-1 "$USER_NAME" "$USER_PASS" --source 127.0.0.3

START=$(date +%s)
WORKER_FAIL=0
for pid in "${WORKERS[@]}"; do
    wait "$pid" || { WORKER_FAIL=1; say "a client process (pid $pid) exited with $?"; }
done
ELAPSED=$(( $(date +%s) - START ))
say "clients done after ${ELAPSED}s; letting the server settle (at most ${SETTLE_SECONDS}s)"

# Settle: the server's idle timeout (20 s) closes what a misbehaving client left open.
SETTLED=0
for _ in $(seq "$SETTLE_SECONDS"); do
    read -r END_FD END_RSS < <("$PYTHON" "$CLIENT" sample --pid "$PID" --count 1)
    SETTLED=$((SETTLED + 1))
    [ "$END_FD" -gt $((BASE_FD + FD_SLACK)) ] || break
    sleep 1
done
read -r END_FD END_RSS < <("$PYTHON" "$CLIENT" sample --pid "$PID")
touch "$STOP"
wait "$MONITOR" 2>/dev/null || true

"$PYTHON" "$CLIENT" probe --port "$SRV_PORT" --user "$USER_NAME" --password "$USER_PASS" \
    >"$WORK/probe.json" || true
[ -s "$WORK/probe.json" ] || echo '{"ok": false, "problems": ["probe crashed"]}' >"$WORK/probe.json"
"$PYTHON" "$CLIENT" verify --work "$WORK" --root "$ROOT" >"$WORK/verify.json"

TABLE="$WORK/table.md"
RC=0
"$PYTHON" "$CLIENT" report --work "$WORK" --verify "$WORK/verify.json" \
    --probe "$WORK/probe.json" --samples "$SAMPLES" --baseline "$BASE_FD" "$BASE_RSS" \
    --end "$END_FD" "$END_RSS" --fd-slack "$FD_SLACK" --rss-slack-kb "$RSS_SLACK_KB" \
    --out "$TABLE" >"$WORK/report.json" || RC=1
[ "$WORKER_FAIL" = 0 ] || RC=1
PANICS="$(grep -c -i 'panic' "$WORK/logs/ftpdlib.log" || true)"
[ "$PANICS" = 0 ] || RC=1

LOG="$WORK/logs/ftpdlib.log"
LOG_LINES="$(wc -l <"$LOG")"
LOG_WARN="$(grep -c -E '^\[[^]]* (WARN|ERROR) ' "$LOG" || true)"
LOG_RUSTLS="$(grep -c -E '^\[[^]]* [A-Z]+ +rustls' "$LOG" || true)"
bench_machine
LOAD="$(cut -d' ' -f1-3 /proc/loadavg)"
{
    echo "# Soak: ${SOAK_SECONDS} s of mixed clients against one ftpdlib"
    echo
    echo "- date: $RUN_DATE; ftpdlib at \`git rev-parse --short HEAD\` = $REV"
    echo "- ftpdlib binary: ${FTPDLIB_BIN#"$REPO"/}, \`${SERVER_ARGS[*]}\`" | sed "s|$WORK|WORK|g; s|$REPO/||g"
    echo "- accounts: $USER_NAME (no limit) and slow (read-limit = write-limit = $SLOW_RATE); passive range of 40 ports"
    echo "- machine: $MACHINE, $MACHINE_MEM; load average at the end $LOAD (other builds may share the machine)"
    echo "- workers: curl $CURL_WORKERS (curl-1 as slow), lftp $LFTP_WORKERS, ftplib $FTPLIB_WORKERS, bad $BAD_WORKERS (from 127.0.0.2), badpass 1 (from 127.0.0.3); clients ran ${ELAPSED} s, the server settled in ${SETTLED} s"
    echo "- panics in the server's log: $PANICS; client processes that failed: $WORKER_FAIL"
    echo "- the server's log: $LOG_LINES lines, $LOG_WARN at WARN or ERROR ($LOG_RUSTLS of them from rustls)"
    echo
    echo "Command: \`SOAK_SECONDS=$SOAK_SECONDS demo/bench/soak.sh\`"
    echo
    cat "$TABLE"
} >"$OUT_MD"
cat "$OUT_MD"
if [ "$RC" = 0 ]; then
    say "all checks passed; results: $OUT_MD"
else
    say "CHECKS FAILED: $(cat "$WORK/report.json" 2>/dev/null); results: $OUT_MD"
    KEEP=1
fi
exit "$RC"
