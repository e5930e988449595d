#!/usr/bin/env bash
# Several ftpdlib nodes, one bucket, behind a real HAProxy: the set-up of docs/deploy.md
# ("Scaling out: several nodes, one bucket") run on this machine, then used and broken.
#
#   clients -> HAProxy (127.0.0.1: control port, PROXY v2) -> 3 ftpdlib nodes ([::1]) -> S3 bucket
#
# Opt-in (not part of the test suite): demo/scaleout/run.sh, from anywhere. It
#  1. starts a throw-away Ceph cluster (or uses S3_ENDPOINT with AWS_ACCESS_KEY_ID and
#     AWS_SECRET_ACCESS_KEY, if given) and makes a bucket for this run;
#  2. builds the release daemon with the object store (cargo build --release
#     --features opendal), unless FTPDLIB_BIN names one;
#  3. starts 3 nodes on [::1], each with its own control port and passive range, all
#     serving the same bucket, requiring the PROXY protocol from HAProxy, and HAProxy in
#     TCP mode on 127.0.0.1: one control port balanced over the nodes with send-proxy-v2,
#     and each node's passive range forwarded to that node alone;
#  4. uploads a tree (a 50 MiB file among small ones) with lftp through the balancer,
#     checks the bucket with boto3, downloads every file again with curl and compares;
#  5. starts a 200 MiB upload, kills the node serving it (kill -9) mid-transfer, checks the
#     client saw a failure and the bucket holds nothing under the name, retries through the
#     balancer and checks the object's sha256;
#  6. prints a summary and exits 0, or non-zero at the first check that fails.
# Everything it started is stopped on exit, whatever the exit. Every wait is bounded.
#
# Needs: haproxy, lftp, curl, bc, python3 with boto3, and for its own cluster Ceph's
# ceph-mon, ceph-mgr, ceph-osd and radosgw (tests/ceph/start-ceph.sh starts it; START_CEPH
# names another). Variables: S3_ENDPOINT, FTPDLIB_BIN, START_CEPH, BIG_MIB (200),
# TREE_MIB (50), KEEP=1 (keep the work directory and its logs).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
S3PY="$HERE/s3.py"
NODES=3
PASV_PORTS=${PASV_PORTS:-8}     # passive ports per node
BIG_MIB=${BIG_MIB:-200}
TREE_MIB=${TREE_MIB:-50}
FTP_USER=scaleout
FTP_PASS=scaleout-$$-$RANDOM
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ftpdlib-scaleout.XXXXXX")
T0=$(date +%s.%N)

PIDS=()          # every process started here, stopped on exit
CEPH_DIR=""      # our own cluster, stopped on exit
START_CEPH=${START_CEPH:-}
BUCKET=""        # made here, emptied and removed on exit
FAILED=0

log() { printf '[%6.1fs] %s\n' "$(echo "$(date +%s.%N) - $T0" | bc)" "$*"; }
fail() { log "FAIL: $*"; FAILED=1; exit 1; }

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        # Bounded: every one of them stops on SIGTERM within a second or two.
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n "$BUCKET" && -z "$CEPH_DIR" ]]; then
        # Somebody else's service: leave nothing of ours in it.
        timeout 120 python3 "$S3PY" empty "$BUCKET" delete >/dev/null 2>&1 || true
    fi
    if [[ -n "$CEPH_DIR" ]]; then
        # Kills the cluster's daemons and waits for them (10 s at most); then whatever a
        # failed start left behind, by its pid files.
        timeout 30 "$START_CEPH" --stop "$CEPH_DIR" >/dev/null 2>&1 || true
        for f in "$CEPH_DIR"/*.pid; do
            [[ -f "$f" ]] && kill -9 "$(cat "$f")" 2>/dev/null || true
        done
    fi
    if [[ "${KEEP:-}" == 1 || $rc != 0 ]]; then
        echo "logs and files kept in $WORK"
        # The work files are big; the logs are what is worth keeping.
        rm -rf "$WORK/tree" "$WORK/down" "$WORK/big.bin" "$WORK/ceph/osd" 2>/dev/null || true
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for SECONDS WHAT COMMAND...: runs COMMAND every 0.1 s until it succeeds, at most
# SECONDS; fails the run with WHAT otherwise.
wait_for() {
    local secs=$1 what=$2
    shift 2
    local end=$(($(date +%s) + secs))
    until "$@" >/dev/null 2>&1; do
        (($(date +%s) < end)) || fail "$what: not within ${secs} s"
        sleep 0.1
    done
}

need() { command -v "$1" >/dev/null || fail "needs $1 ($2)"; }
need lftp "apt-get install lftp"
need curl "apt-get install curl"
need python3 "and boto3: pip install boto3"
need bc "apt-get install bc"
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
[[ -x "$HAPROXY" ]] || fail "needs haproxy (apt-get install haproxy)"
python3 -c 'import boto3' 2>/dev/null || fail "needs boto3 (pip install boto3)"

# ---- ports: all free now, on both 127.0.0.1 (HAProxy) and ::1 (the nodes) ----
# One control front, 3 node control ports, 3 metrics ports, and 3 passive ranges: each
# range's numbers are used twice, by HAProxy on 127.0.0.1 and by its node on ::1, so that
# what a node announces (PASV 227, EPSV 229) is the port the client reaches HAProxy on.
read -r FRONT C1 C2 C3 M1 M2 M3 PASV_BASE < <(python3 - "$PASV_PORTS" "$NODES" <<'EOF'
import random, socket, sys
per, nodes = int(sys.argv[1]), int(sys.argv[2])
def free(port):
    for fam, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        s = socket.socket(fam)
        try:
            s.bind((host, port))
        except OSError:
            return False
        finally:
            s.close()
    return True
def one():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
    return p
singles = []
while len(singles) < 7:
    p = one()
    if free(p) and p not in singles:
        singles.append(p)
need = per * nodes
for _ in range(200):
    base = random.randrange(20000, 30000 - need)
    if all(free(p) for p in range(base, base + need)) and not set(singles) & set(range(base, base + need)):
        print(*singles, base)
        break
else:
    sys.exit("no free passive range")
EOF
) || fail "no free ports on both 127.0.0.1 and ::1"
CTRL=("$C1" "$C2" "$C3")
METRICS=("$M1" "$M2" "$M3")
range_of() { local i=$1; echo "$((PASV_BASE + i * PASV_PORTS))-$((PASV_BASE + (i + 1) * PASV_PORTS - 1))"; }

# ---- the object store ----
if [[ -n "${S3_ENDPOINT:-}" ]]; then
    : "${AWS_ACCESS_KEY_ID:?S3_ENDPOINT needs AWS_ACCESS_KEY_ID}"
    : "${AWS_SECRET_ACCESS_KEY:?S3_ENDPOINT needs AWS_SECRET_ACCESS_KEY}"
    log "object store: $S3_ENDPOINT (given)"
else
    START_CEPH=${START_CEPH:-$ROOT/tests/ceph/start-ceph.sh}
    [[ -x "$START_CEPH" ]] || fail "no S3_ENDPOINT and no $START_CEPH to start Ceph with"
    RGW=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    CEPH_DIR="$WORK/ceph"
    log "starting Ceph (1 OSD on memstore, RADOS Gateway on 127.0.0.1:$RGW)"
    # The script's own waits are bounded; this bounds the whole of it.
    REPLICAS=1 timeout 300 "$START_CEPH" "$CEPH_DIR" "$RGW" 1 >"$WORK/ceph.env" 2>"$WORK/ceph.err" \
        || fail "Ceph did not start (see $WORK/ceph.err)"
    # Its stdout has the assignments, and Ceph's own chatter: keep the assignments.
    grep -E '^[A-Z_0-9]+=[^ ]*$' "$WORK/ceph.env" >"$WORK/ceph.vars"
    # shellcheck disable=SC1091
    source "$WORK/ceph.vars"
    export S3_ENDPOINT AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY
    log "Ceph up: $S3_ENDPOINT"
fi
export S3_ENDPOINT AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
BUCKET="ftpdlib-scaleout-$(date +%s)-$$"
PREFIX="site/"
MADE=$(timeout 60 python3 "$S3PY" mkbucket "$BUCKET") || fail "can't make the bucket"
log "$MADE; the nodes serve s3://$BUCKET/${PREFIX%/}"

# ---- the daemon ----
if [[ -n "${FTPDLIB_BIN:-}" ]]; then
    BIN=$FTPDLIB_BIN
else
    log "cargo build --release -p ftpdlib-daemon --features opendal"
    (cd "$ROOT" && timeout 1800 cargo build --release -q -p ftpdlib-daemon --features opendal) \
        || fail "the build failed"
    BIN=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/ftpdlib
fi
[[ -x "$BIN" ]] || fail "no daemon at $BIN"

# ---- the nodes ----
NODE_PID=()
start_node() {
    local i=$1 n=$(($1 + 1))
    "$BIN" --storage "s3://$BUCKET/${PREFIX%/}" --s3-endpoint "$S3_ENDPOINT" \
        -i ::1 -p "${CTRL[$i]}" -w -u "$FTP_USER" -P "$FTP_PASS" \
        --proxy-protocol --proxy-trusted ::1 --proxy-passive \
        -r "$(range_of "$i")" --nat-address 127.0.0.1 \
        --metrics "127.0.0.1:${METRICS[$i]}" \
        -D --log-format json --log-file "$WORK/node$n.log" \
        2>>"$WORK/node$n.err" &
    NODE_PID[$i]=$!
    PIDS+=($!)
    # Out of the shell's job table: the kill -9 below is meant, not news.
    disown "$!"
}
for i in 0 1 2; do start_node "$i"; done
for i in 0 1 2; do
    wait_for 30 "node$((i + 1)) listening" curl -sf "http://127.0.0.1:${METRICS[$i]}/health"
done
log "nodes up: $(for i in 0 1 2; do printf 'node%d [::1]:%d passive %s (pid %d)  ' $((i + 1)) "${CTRL[$i]}" "$(range_of "$i")" "${NODE_PID[$i]}"; done)"

# ---- HAProxy ----
cat >"$WORK/haproxy.cfg" <<EOF
global
    maxconn 256
    log stdout format raw local0
    stats socket $WORK/haproxy.sock level operator

defaults
    mode tcp
    log global
    option tcplog
    timeout connect 2s
    timeout client 10m
    timeout server 10m
    # A node that refuses the connection (dead, not yet marked down): try another.
    retries 2
    option redispatch 1

# Control connections, spread over the nodes, each opened with a PROXY v2 header naming the
# client. Health: each node's /health on its metrics port, which answers 503 from the first
# SIGTERM on, so a node being stopped gets no new sessions while its transfers finish.
frontend ftp
    bind 127.0.0.1:$FRONT
    default_backend nodes

backend nodes
    balance roundrobin
    option httpchk GET /health
    default-server send-proxy-v2 check inter 1s fall 2 rise 2
    server node1 [::1]:${CTRL[0]} check addr 127.0.0.1 port ${METRICS[0]}
    server node2 [::1]:${CTRL[1]} check addr 127.0.0.1 port ${METRICS[1]}
    server node3 [::1]:${CTRL[2]} check addr 127.0.0.1 port ${METRICS[2]}

# Each node's passive range goes to that node alone, port for port (no port on the server
# line: the port the client connected to), with a header too (the node's --proxy-passive):
# the node then knows the data connection is its session's client's, not a stranger's.
EOF
for i in 0 1 2; do
    cat >>"$WORK/haproxy.cfg" <<EOF
listen pasv_node$((i + 1))
    bind 127.0.0.1:$(range_of "$i")
    server node$((i + 1)) [::1] send-proxy-v2
EOF
done
"$HAPROXY" -c -q -f "$WORK/haproxy.cfg" || fail "haproxy refused its config"
"$HAPROXY" -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
HAPROXY_PID=$!
PIDS+=($HAPROXY_PID)
# Up once its stats socket answers (a probe of the front port would be a session on a node).
wait_for 10 "HAProxy's stats socket" test -S "$WORK/haproxy.sock"
haproxy_cmd() { python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n"); out = b""
while True:
    b = s.recv(65536)
    if not b: break
    out += b
sys.stdout.write(out.decode())' "$WORK/haproxy.sock" "$1"; }
servers_up() { [[ $(haproxy_cmd "show stat" | grep -c '^nodes,node[0-9],.*,UP,') == "$1" ]]; }
wait_for 15 "HAProxy sees the 3 nodes up" servers_up 3
log "HAProxy (pid $HAPROXY_PID): control 127.0.0.1:$FRONT, passive $(range_of 0), $(range_of 1), $(range_of 2)"

URL="ftp://127.0.0.1:$FRONT"
mib() { echo "scale=1; $1 / 1048576" | bc; }
rate() { echo "scale=1; $1 / 1048576 / $2" | bc; }    # bytes seconds -> MiB/s
now() { date +%s.%N; }
since() { printf '%.2f' "$(echo "$(now) - $1" | bc)"; }

# ---- 1. a tree, up through the balancer ----
TREE="$WORK/tree"
mkdir -p "$TREE/docs/notes" "$TREE/data"
head -c $((TREE_MIB << 20)) /dev/urandom >"$TREE/data/big-$TREE_MIB.bin"
head -c 1048576 /dev/urandom >"$TREE/data/one-mib.bin"
head -c 300000 /dev/urandom >"$TREE/docs/scan.pdf"
printf 'hello from the scale-out demo\n' >"$TREE/README.txt"
for i in 1 2 3; do head -c $((i * 40000)) /dev/urandom >"$TREE/docs/notes/note$i.txt"; done
: >"$TREE/docs/empty.txt"
TREE_FILES=$(find "$TREE" -type f | wc -l)
TREE_BYTES=$(find "$TREE" -type f -printf '%s\n' | paste -sd+ | bc)
log "uploading a tree of $TREE_FILES files, $(mib "$TREE_BYTES") MiB, with lftp mirror -R --parallel=3 (PASV)"
t=$(now)
timeout 300 lftp -c "set net:max-retries 1; set net:timeout 30; set cmd:fail-exit yes;
    set ftp:prefer-epsv no; set ftp:passive-mode yes;
    open -u $FTP_USER,$FTP_PASS $URL; mirror -R --parallel=3 --no-perms $TREE /" \
    >"$WORK/lftp-up.out" 2>&1 || { cat "$WORK/lftp-up.out"; fail "lftp upload"; }
UP_SECS=$(since "$t")
log "tree up in ${UP_SECS} s ($(rate "$TREE_BYTES" "$UP_SECS") MiB/s)"

log "the bucket, by boto3 (objects under $PREFIX against the local tree):"
timeout 120 python3 "$S3PY" expect "$BUCKET" "$PREFIX" "$TREE" || fail "the bucket does not hold the tree"

# ---- 2. every file down again, one curl (one session) each, EPSV ----
mkdir -p "$WORK/down"
DOWN_BYTES=0
t=$(now)
while IFS= read -r f; do
    rel=${f#"$TREE"/}
    mkdir -p "$WORK/down/$(dirname "$rel")"
    timeout 300 curl -sS --fail -u "$FTP_USER:$FTP_PASS" "$URL/$rel" -o "$WORK/down/$rel" \
        || fail "download of $rel"
    cmp -s "$f" "$WORK/down/$rel" || fail "$rel came back different"
    DOWN_BYTES=$((DOWN_BYTES + $(stat -c %s "$f")))
done < <(find "$TREE" -type f | sort)
DOWN_SECS=$(since "$t")
log "all $TREE_FILES files down again and identical, in ${DOWN_SECS} s ($(rate "$DOWN_BYTES" "$DOWN_SECS") MiB/s)"

served() { python3 "$S3PY" served "$WORK"/node?.log; }
# The nodes write their log files once a second: wait for every transfer's line.
all_logged() { [[ $(served | grep -c " True ") -ge $((2 * TREE_FILES)) ]]; }
wait_for 10 "the nodes log all $((2 * TREE_FILES)) transfers" all_logged
log "which node served which transfer (from the nodes' logs):"
served | awk '{printf "  %-6s %-5s %-32s %10s bytes %8.3f s  completed=%s  client %s\n", $1, $2, $3, $4, $5, $6, $7}' \
    | tee "$WORK/served-1.txt"
NODES_USED=$(awk '{print $1}' "$WORK/served-1.txt" | sort -u | wc -l)
((NODES_USED >= 2)) || fail "every session landed on one node"

# ---- 3. a node dies mid-upload ----
BIG="$WORK/big.bin"
head -c $((BIG_MIB << 20)) /dev/urandom >"$BIG"
BIG_SHA=$(sha256sum "$BIG" | cut -d' ' -f1)
BIG_BYTES=$((BIG_MIB << 20))
KEY="${PREFIX}big-$BIG_MIB.bin"

# The reference for the throughput figures: the same file straight to the bucket (boto3,
# 8 MiB parts, 2 at once, as the nodes upload), in this run.
REF_SECS=$(timeout 300 python3 "$S3PY" put-timed "$BUCKET" "reference/big.bin" "$BIG") || fail "direct upload"
log "reference: $BIG_MIB MiB straight to the bucket with boto3 in ${REF_SECS} s ($(rate "$BIG_BYTES" "$REF_SECS") MiB/s)"

received() {
    curl -sf "http://127.0.0.1:${METRICS[$1]}/metrics" | awk '$1 == "ftpdlib_bytes_received_total" {print $2}'
}
BEFORE=()
for i in 0 1 2; do BEFORE[$i]=$(received "$i"); done

# Slowed by the client (curl --limit-rate) so that the kill lands mid-transfer.
log "uploading $BIG_MIB MiB with curl at 40 MiB/s; the node that takes it will be killed"
t=$(now)
timeout 300 curl -sS -u "$FTP_USER:$FTP_PASS" --limit-rate 40M -T "$BIG" "$URL/big-$BIG_MIB.bin" \
    >"$WORK/curl-killed.out" 2>&1 &
CURL_PID=$!
PIDS+=($CURL_PID)
# The node that has the STOR: the one whose log shows it (its command line, -D).
stor_node() {
    grep -l "\"STOR big-$BIG_MIB.bin\"\|STOR big-$BIG_MIB.bin" "$WORK"/node?.log 2>/dev/null | head -1
}
wait_for 30 "a node logs the STOR" stor_node
VICTIM_LOG=$(stor_node)
VICTIM=$(basename "$VICTIM_LOG" .log)
VI=$((${VICTIM#node} - 1))
# Mid-transfer: once the node has received a third of the file (its counter of upload bytes,
# less what it had before).
got_now() { local r; r=$(received "$VI") && echo $((${r%.*} - ${BEFORE[$VI]%.*})); }
mid() { local g; g=$(got_now) && ((g >= BIG_BYTES / 3)); }
wait_for 60 "$VICTIM receiving" mid
GOT=$(got_now)
kill -9 "${NODE_PID[$VI]}"
KILL_AT=$(since "$t")
log "kill -9 $VICTIM (pid ${NODE_PID[$VI]}) at ${KILL_AT} s, $(mib "${GOT%.*}") MiB of $BIG_MIB received"
CURL_RC=0
wait "$CURL_PID" || CURL_RC=$?
FAIL_AT=$(since "$t")
log "the client: exit status $CURL_RC after ${FAIL_AT} s: $(tr '\n' ' ' <"$WORK/curl-killed.out")"
((CURL_RC != 0)) || fail "curl reported success for an upload whose node died"

log "the bucket after the kill:"
timeout 60 python3 "$S3PY" absent "$BUCKET" "$KEY" | tee "$WORK/absent.txt" || fail "a half-written object is visible"
ORPHANS=$(awk '/unfinished-uploads/ {print $2}' "$WORK/absent.txt")
timeout 120 python3 "$S3PY" expect "$BUCKET" "$PREFIX" "$TREE" >/dev/null || fail "the tree changed"

log "retrying the upload through the balancer at once, at full speed (HAProxy may not have marked $VICTIM down yet: a refused connection is redispatched)"
t=$(now)
timeout 300 curl -sS --fail -u "$FTP_USER:$FTP_PASS" -T "$BIG" "$URL/big-$BIG_MIB.bin" \
    || fail "the retry failed"
RETRY_SECS=$(since "$t")
# The nodes write their log files once a second.
retry_logged() { served | awk -v p="/big-$BIG_MIB.bin" '$2 == "STOR" && $3 == p && $6 == "True"' | grep -q .; }
wait_for 10 "a node logs the retried STOR" retry_logged
RETRY_NODE=$(served | awk -v p="/big-$BIG_MIB.bin" '$2 == "STOR" && $3 == p && $6 == "True" {print $1}')
[[ -n "$RETRY_NODE" && "$RETRY_NODE" != "$VICTIM" ]] || fail "the retry was not logged by a surviving node"
wait_for 15 "HAProxy marks $VICTIM down" servers_up 2
log "HAProxy: $VICTIM DOWN, the other two UP"
log "retry: $RETRY_NODE took it in ${RETRY_SECS} s ($(rate "$BIG_BYTES" "$RETRY_SECS") MiB/s)"
read -r GOT_SHA GOT_BYTES < <(timeout 300 python3 "$S3PY" sha256 "$BUCKET" "$KEY")
[[ "$GOT_SHA" == "$BIG_SHA" && "$GOT_BYTES" == "$BIG_BYTES" ]] \
    || fail "the object is not the file: $GOT_SHA $GOT_BYTES, want $BIG_SHA $BIG_BYTES"
log "object $KEY: $GOT_BYTES bytes, sha256 $GOT_SHA = the file's"

# And down again through the balancer, from whichever node gets the session.
t=$(now)
DOWN_SHA=$(timeout 300 curl -sS --fail -u "$FTP_USER:$FTP_PASS" "$URL/big-$BIG_MIB.bin" | sha256sum | cut -d' ' -f1)
BIG_DOWN_SECS=$(since "$t")
[[ "$DOWN_SHA" == "$BIG_SHA" ]] || fail "the download of big-$BIG_MIB.bin differs"
retr_logged() { served | awk -v p="/big-$BIG_MIB.bin" '$2 == "RETR" && $3 == p' | grep -q .; }
wait_for 10 "a node logs the RETR" retr_logged
BIG_DOWN_NODE=$(served | awk -v p="/big-$BIG_MIB.bin" '$2 == "RETR" && $3 == p {print $1}' | tail -1)

# ---- summary ----
ratio() { printf '%.2f' "$(echo "scale=4; $2 / $1" | bc)"; }    # throughput of the FTP path / the reference
echo
echo "================ scale-out summary ================"
echo "nodes: 3 ftpdlib processes, one bucket ($BUCKET), behind HAProxy $("$HAPROXY" -v | head -1 | awk '{print $3}') (TCP, send-proxy-v2)"
echo "transfers per node (from the nodes' logs):"
served | awk '{n[$1]++; b[$1]+=$4} END {for (k in n) printf "  %s: %d transfers, %.1f MiB\n", k, n[k], b[k]/1048576}' | sort
echo "tree: $TREE_FILES files, $(mib "$TREE_BYTES") MiB up with lftp (3 sessions) in ${UP_SECS} s, $(rate "$TREE_BYTES" "$UP_SECS") MiB/s;"
echo "      down with curl (one session per file) in ${DOWN_SECS} s, $(rate "$DOWN_BYTES" "$DOWN_SECS") MiB/s; bucket and bytes checked"
echo "reference: $BIG_MIB MiB straight to the bucket (boto3) in ${REF_SECS} s, $(rate "$BIG_BYTES" "$REF_SECS") MiB/s"
echo "kill: $VICTIM killed -9 at ${KILL_AT} s into a $BIG_MIB MiB upload, $(mib "${GOT%.*}") MiB in; curl failed (exit $CURL_RC) at ${FAIL_AT} s"
echo "      bucket: no object under the name; unfinished multipart uploads (invisible): $ORPHANS"
echo "retry: through the balancer on $RETRY_NODE, ${RETRY_SECS} s, $(rate "$BIG_BYTES" "$RETRY_SECS") MiB/s" \
     "= $(ratio "$RETRY_SECS" "$REF_SECS") x the direct upload; sha256 matches"
echo "read back: on $BIG_DOWN_NODE, ${BIG_DOWN_SECS} s, $(rate "$BIG_BYTES" "$BIG_DOWN_SECS") MiB/s; sha256 matches"
echo "HAProxy's count of connections per node (show stat: control sessions and state; passive data connections):"
haproxy_cmd "show stat" | awk -F, '$1 == "nodes" && $2 ~ /^node/ {c[$2] = $8 " control (" $18 ")"}
    $1 ~ /^pasv_/ && $2 ~ /^node/ {d[$2] = $8} END {for (k in c) printf "  %s: %s, %s data\n", k, c[k], d[k]}' | sort
echo "total: $(since "$T0" | xargs printf '%.0f') s. PASS"
