#!/usr/bin/env bash
# object.sh: ftpdlib in front of an object store (--storage s3://..., the opendal feature)
# against the same ftpdlib on local disk (tmpfs) and against the S3 service used directly
# (rclone and boto3 to the same bucket), in one run, the columns' order rotated each round.
#
# The S3 service is a throw-away Ceph cluster (1 monitor, 1 manager, 1 memstore OSD, a RADOS
# Gateway) started by CEPH_START on 127.0.0.1; the OSD's memstore is raised to MEMSTORE_BYTES
# (default 4 GiB) so that 50 x 20 MiB fit, and deleted objects are handed to the gateway's
# garbage collector (radosgw-admin gc process --include-all) after every column, so nothing
# accumulates. S3_ENDPOINT=http://127.0.0.1:PORT uses a gateway already running instead.
#
# Columns ("methods"):
#   ftpdlib-s3    target/release/ftpdlib --storage s3://bench/ftp (defaults), curl / ftplib
#   ftpdlib-disk  the same binary serving a directory on tmpfs
#   rclone        rclone copyto / copy --transfers N straight to the bucket (defaults)
#   boto3         upload_file / download_file, boto3's default TransferConfig
#   s3:SETTING    ftpdlib-s3 with other flags (SWEEP, below), e.g. s3:io8 = --io-threads 8
#
# Workloads:
#   single  one STOR (upload) then one RETR (download) of a SIZE_MB MiB file; curl for FTP
#           (curl's time_total), rclone copyto (wall time of the command), boto3 (the call
#           alone). Downloads are written to tmpfs by every client.
#   conc    CONC clients at once each STOR a CONC_MB MiB file, then CONC at once each RETR
#           it (two phases, each timed from the first start to the last end): aggregate
#           MiB/s. FTP: demo/bench/object/client.py (ftplib, a thread per session); direct:
#           boto3 with a thread and a client per transfer, and rclone copy --transfers CONC.
#           While the FTP transfers run, a probe session (a process of its own) sends NOOP
#           every PROBE_MS ms to the same server: p50, p99, max. During the boto3 phases
#           the probe goes to an idle ftpdlib: the delay the loaded machine alone adds.
#   For every ftpdlib run the server is fresh; its CPU (utime + stime, /proc/PID/stat) and
#   its memory (VmRSS before; VmHWM, reset through /proc/PID/clear_refs before each phase)
#   are read around each transfer or phase.
#
# Usage: demo/bench/object.sh [--quick] [--out FILE.md] [--keep]
#   --quick   a smoke run: 1 round, 20 MiB single, 10 clients of 4 MiB, no sweep
#   --out     the report (default demo/bench/results/object-<UTC date>.md); the raw JSON
#             lines go beside it as FILE.jsonl
#   --keep    keep the work directory (servers' and Ceph's logs)
#
# Environment:
#   ROUNDS (3), SIZE_MB (200), CONC (50), CONC_MB (20), PROBE_MS (50)
#   WARMUP_ROUNDS (1; 0 for none) a first round of the main columns, not in the report
#                 (its lines go beside it, FILE-warmup.jsonl): the cluster's first minutes
#                 are slower whatever the column
#   METHODS       the main columns (default "ftpdlib-s3 ftpdlib-disk rclone boto3")
#   SWEEP         ftpdlib-s3 settings tried in the first SWEEP_ROUNDS (2) rounds, each
#                 NAME=FLAGS with commas for spaces (default: io4, io8, io16 = --io-threads;
#                 c1, c4 = --s3-concurrency; p5c1 = --s3-part-size 5M --s3-concurrency 1;
#                 io16c4; rt = the defaults with the reactor thread and the NOOP probe
#                 under SCHED_FIFO, chrt -f 10: the NOOP delay that is not waiting for a
#                 CPU); SWEEP="" skips it. A name starting with rt gets SCHED_FIFO too; a
#                 flag @NAME=VALUE goes into the server's environment instead
#   FTPDLIB_BIN   server binary (default: cargo build --release -p ftpdlib-daemon
#                 --features opendal)
#   CEPH_START    start-ceph.sh (default: shared/tools/start-ceph.sh beside the repository,
#                 else /work/shared/tools/start-ceph.sh)
#   S3_ENDPOINT   an S3 gateway already running (keys AWS_ACCESS_KEY_ID/SECRET, default
#                 Ceph's test keys): no Ceph is started
#   MEMSTORE_BYTES (4294967296)
#
# Everything listens on and connects to 127.0.0.1; every server and Ceph daemon started here
# is stopped on exit; each client run is bounded by timeout(1).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

while [ $# -gt 0 ]; do
    case "$1" in
        --keep) KEEP=1; shift ;;
        *) bench_option "$@"; shift "$TOOK" ;;
    esac
done
DEFAULT_SWEEP="io4=--io-threads,4 io8=--io-threads,8 io16=--io-threads,16 c1=--s3-concurrency,1"
DEFAULT_SWEEP+=" c4=--s3-concurrency,4 p5c1=--s3-part-size,5M,--s3-concurrency,1"
DEFAULT_SWEEP+=" io16c4=--io-threads,16,--s3-concurrency,4 rt="
if [ "$QUICK" = 1 ]; then
    : "${ROUNDS:=1}" "${SIZE_MB:=20}" "${CONC:=10}" "${CONC_MB:=4}" "${SWEEP=}" "${WARMUP_ROUNDS:=0}"
fi
: "${ROUNDS:=3}" "${SIZE_MB:=200}" "${CONC:=50}" "${CONC_MB:=20}" "${PROBE_MS:=50}"
: "${METHODS:=ftpdlib-s3 ftpdlib-disk rclone boto3}" "${SWEEP=$DEFAULT_SWEEP}"
: "${SWEEP_ROUNDS:=2}" "${MEMSTORE_BYTES:=4294967296}" "${WARMUP_ROUNDS:=1}"
case "$WARMUP_ROUNDS" in 0|1) ;; *) say "WARMUP_ROUNDS is 0 or 1"; exit 2 ;; esac
for v in "$ROUNDS" "$SIZE_MB" "$CONC" "$CONC_MB" "$PROBE_MS" "$MEMSTORE_BYTES"; do
    case "$v" in ''|*[!0-9]*|0) say "ROUNDS, the sizes and counts must be positive integers"; exit 2 ;; esac
done
if ! { [ "$ROUNDS" -le 20 ] && [ "$SIZE_MB" -le 2048 ] && [ "$CONC" -le 200 ] &&
    [ $((CONC * CONC_MB)) -le 3000 ]; }; then
    say "at most 20 rounds, 2048 MiB single, 200 clients, 3000 MiB in flight"
    exit 2
fi
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-CEPHTESTAK}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-CEPHTESTSECRET}"
# A CA bundle in the environment makes rclone's S3 client fail on plain http endpoints.
unset AWS_CA_BUNDLE
BUCKET=bench
CLIENT="$HERE/object/client.py"

bench_out_md object
bench_workdir object tmpfs
RAW="$WORK/results.jsonl"
: >"$RAW"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# --- build, files ------------------------------------------------------------------------
REV="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
git -C "$REPO" diff --quiet HEAD -- src daemon/src 2>/dev/null || REV="$REV (with uncommitted changes)"
if [ -z "${FTPDLIB_BIN:-}" ]; then
    bench_cargo "building ftpdlib with object storage (cargo build --release -p ftpdlib-daemon --features opendal)" \
        -p ftpdlib-daemon --features opendal
    FTPDLIB_BIN="$REPO/target/release/ftpdlib"
fi
"$FTPDLIB_BIN" --help | grep -q -- '--storage' || { say "$FTPDLIB_BIN has no --storage"; exit 1; }
for tool in curl rclone; do command -v "$tool" >/dev/null || { say "needs $tool"; exit 1; }; done
"$PYTHON" -c 'import boto3' 2>/dev/null || { say "needs boto3 (pip install boto3)"; exit 1; }

say "making the files ($SIZE_MB MiB, $CONC links to one $CONC_MB MiB file) in $WORK"
head -c $((SIZE_MB << 20)) /dev/urandom >"$WORK/big.bin"
head -c $((CONC_MB << 20)) /dev/urandom >"$WORK/conc.bin"
mkdir -p "$WORK/up" "$WORK/dl" "$WORK/disk"
for i in $(seq 0 $((CONC - 1))); do ln "$WORK/conc.bin" "$WORK/up/c$i.bin"; done

# --- Ceph -------------------------------------------------------------------------------
CEPH_DIR="$WORK/ceph1" # ceph2, ceph3 when a start fails
RGW_PID=""
ceph_pids() { cat "$CEPH_DIR"/*.pid 2>/dev/null || true; echo "$RGW_PID"; }
# stop_ceph: TERM to each daemon, KILL after 20 s. The pids are read once: a daemon takes
# its pid file away early in its shutdown, and its OSD still writes its store after that.
stop_ceph() {
    local p pids alive
    pids="$(ceph_pids)"
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    for _ in $(seq 100); do
        alive=0
        for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.2
    done
    for p in $pids; do kill -KILL "$p" 2>/dev/null || true; done
    for _ in $(seq 50); do
        alive=0
        for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
}
on_exit() {
    local rc=$?
    [ -z "${S3_ENDPOINT_GIVEN:-}" ] && [ -d "$CEPH_DIR" ] && stop_ceph
    (exit "$rc")
    bench_cleanup
}
trap on_exit EXIT

osd_up() { local d; d="$(ceph osd dump 2>/dev/null)" || return 1; grep -q '^osd.0 up' <<<"$d"; }
if [ -n "${S3_ENDPOINT:-}" ]; then
    S3_ENDPOINT_GIVEN=1
    CEPH_NOTE="an S3 gateway already running at $S3_ENDPOINT"
else
    if [ -z "${CEPH_START:-}" ]; then
        CEPH_START="$REPO/../shared/tools/start-ceph.sh"
        [ -x "$CEPH_START" ] || CEPH_START=/work/shared/tools/start-ceph.sh
    fi
    [ -x "$CEPH_START" ] || { say "no start-ceph.sh (set CEPH_START)"; exit 1; }
    command -v radosgw >/dev/null || { say "needs Ceph (apt-get install ceph-mon ceph-mgr ceph-osd radosgw ceph-common)"; exit 1; }
    # start_ceph_once: start-ceph.sh into CEPH_DIR, then the OSD again while it is not up.
    # Ceph 16's monitor client can send a first command before it knows the cluster's
    # fsid; the monitor refuses it ("wrong fsid", EPERM), and start-ceph.sh's `ceph osd
    # create` or the OSD's first boot fails with it. Fails when the OSD is not up.
    start_ceph_once() {
        RGW_PORT="$(free_port)"
        say "starting Ceph in $CEPH_DIR (gateway on $HOST:$RGW_PORT)"
        REPLICAS=1 timeout 300 "$CEPH_START" "$CEPH_DIR" "$RGW_PORT" 1 \
            >>"$WORK/logs/ceph-start.out" 2>>"$WORK/logs/ceph-start.err" || true
        export CEPH_CONF="$CEPH_DIR/ceph.conf"
        [ -f "$CEPH_CONF" ] || return 1
        local try
        for try in 1 2 3 4 5; do
            osd_up && return 0
            for _ in $(seq 20); do osd_up && return 0; sleep 0.5; done
            # No OSD made (the race hit `ceph osd create`): only a new cluster helps.
            [ -f "$CEPH_DIR/osd/osd.0/fsid" ] || return 1
            say "the OSD is not up (try $try), starting it again"
            ceph-osd -i 0 -c "$CEPH_CONF" >>"$WORK/logs/ceph-start.err" 2>&1 || true
        done
        osd_up
    }
    for attempt in 1 2 3; do
        CEPH_DIR="$WORK/ceph$attempt"
        start_ceph_once && break
        say "Ceph did not come up (attempt $attempt of 3)"
        stop_ceph
        [ "$attempt" -lt 3 ] || exit 1
    done
    ceph tell osd.0 config set memstore_device_bytes "$MEMSTORE_BYTES" >/dev/null 2>&1 || true
    # The gateway on RGW_PORT must be ours: another cluster's may have taken the port.
    rgw_ours() {
        local pid
        pid="$(ss -ltnpH "sport = :$RGW_PORT" 2>/dev/null | grep -o 'pid=[0-9]*' | awk -F= 'NR == 1 { print $2 }')"
        [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$CEPH_DIR/"
    }
    if ! rgw_ours; then
        kill "$(cat "$CEPH_DIR/client.rgw.pid" 2>/dev/null)" 2>/dev/null || true
        RGW_PORT="$(free_port)"
        say "starting the gateway"
        setsid radosgw -f -n client.rgw -c "$CEPH_CONF" \
            --rgw-frontends "beast endpoint=$HOST:$RGW_PORT" --rgw-dns-name "$HOST" \
            >>"$WORK/logs/rgw.log" 2>&1 &
        RGW_PID=$!
        for _ in $(seq 120); do rgw_ours && curl -s -o /dev/null --max-time 2 "http://$HOST:$RGW_PORT/" && break; sleep 0.5; done
        rgw_ours || { say "the gateway did not start on $HOST:$RGW_PORT"; exit 1; }
        radosgw-admin -c "$CEPH_CONF" user create --uid=test --display-name=test \
            --access-key="$AWS_ACCESS_KEY_ID" --secret-key="$AWS_SECRET_ACCESS_KEY" >/dev/null 2>&1 || true
    fi
    S3_ENDPOINT="http://$HOST:$RGW_PORT"
    CEPH_NOTE="Ceph $(ceph-osd --version | awk '{print $3}'): 1 monitor, 1 manager, 1 OSD (memstore, $((MEMSTORE_BYTES >> 20)) MiB), RADOS Gateway (beast), pool size 1, started by $(basename "$CEPH_START")"
fi
timeout 60 "$PYTHON" "$CLIENT" s3 --endpoint "$S3_ENDPOINT" --bucket "$BUCKET" --mkbucket --warm "$WORK/dl" --clean "" >/dev/null

# rclone's remote "obj", from the environment alone (no config file).
export RCLONE_CONFIG_OBJ_TYPE=s3 RCLONE_CONFIG_OBJ_PROVIDER=Ceph
export RCLONE_CONFIG_OBJ_ENDPOINT="$S3_ENDPOINT" RCLONE_CONFIG_OBJ_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID"
export RCLONE_CONFIG_OBJ_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" RCLONE_CONFIG=/dev/null
RCLONE=(rclone --ignore-times --retries 1 --low-level-retries 3)

# clean PREFIX: deletes the bucket's objects under PREFIX and has the gateway free them.
clean() {
    timeout 120 "$PYTHON" "$CLIENT" s3 --endpoint "$S3_ENDPOINT" --bucket "$BUCKET" --clean "$1" >/dev/null ||
        say "cleaning $1 failed"
    if [ -z "${S3_ENDPOINT_GIVEN:-}" ]; then
        timeout 120 radosgw-admin -c "$CEPH_CONF" gc process --include-all >/dev/null 2>&1 || true
    fi
}

# --- servers ---------------------------------------------------------------------------
# start_ftpd METHOD: a fresh ftpdlib for METHOD (ftpdlib-s3, ftpdlib-disk, s3:NAME) on
# SRV_PORT, its pid in SRV_PID.
start_ftpd() {
    local m=$1 log args=() senv=()
    log="$WORK/logs/$1-$(date +%s%N).log"
    SRV_PORT="$(free_port)"
    case "$m" in
        ftpdlib-disk) args=(-d "$WORK/disk") ;;
        ftpdlib-s3) args=(--storage "s3://$BUCKET/ftp" --s3-endpoint "$S3_ENDPOINT") ;;
        s3:*)
            local flags
            flags="$(sweep_flags "${m#s3:}")"
            local f
            read -r -a extra <<<"${flags//,/ }"
            args=(--storage "s3://$BUCKET/ftp" --s3-endpoint "$S3_ENDPOINT")
            for f in "${extra[@]}"; do
                # @NAME=VALUE: the server's environment (MALLOC_ARENA_MAX=2, ...).
                if [ "${f:0:1}" = @ ]; then senv+=("${f:1}"); else args+=("$f"); fi
            done ;;
        *) say "unknown method $m"; exit 2 ;;
    esac
    setsid env "${senv[@]}" "$FTPDLIB_BIN" -i "$HOST" -p "$SRV_PORT" -w -u "$USER_NAME" \
        -P "$USER_PASS" --max-cons 0 --max-cons-per-ip 0 "${args[@]}" >"$log" 2>&1 &
    track_started "$m" "$SRV_PORT" "$log" 30
    PROBE_RT=()
    if [[ "$m" == s3:rt* ]]; then
        # The diagnostic column: the reactor thread(s) and the probe under SCHED_FIFO, so
        # that neither waits for a CPU behind the gateway and the clients; the NOOP delay
        # left is the reactor's own.
        local t
        for t in /proc/"$SRV_PID"/task/*; do
            grep -q '^ftpd-reactor' "$t/comm" 2>/dev/null && chrt -f -p 10 "${t##*/}"
        done
        PROBE_RT=(--probe-rt)
    fi
}
sweep_flags() {
    local s
    for s in $SWEEP; do [ "${s%%=*}" = "$1" ] && { echo "${s#*=}"; return; }; done
}
proc_cpu() { awk '{ print ($14 + $15) }' "/proc/$1/stat"; }
proc_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
reset_hwm() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null || true; }
now() { date +%s.%N; }
CLK_TCK="$(getconf CLK_TCK)"

EMIT_TO="$RAW"
emit() { echo "$1" >>"$EMIT_TO"; }

# --- single stream ---------------------------------------------------------------------
# single METHOD ROUND: one upload and one download of big.bin; two JSON lines.
single() {
    local m=$1 r=$2 name="s$2-$RANDOM.bin" base t0 t1 out secs c0 c1 rss hwm got
    base='"wl":"single","method":"'$m'","round":'$r
    case "$m" in
        ftpdlib-*|s3:*)
            start_ftpd "$m" || { emit "{$base,\"error\":\"server did not start\"}"; return 0; }
            local url="ftp://$HOST:$SRV_PORT/$name" auth="$USER_NAME:$USER_PASS"
            sleep 0.3
            rss="$(proc_kib "$SRV_PID" VmRSS)"
            for op in stor retr; do
                reset_hwm "$SRV_PID"
                c0="$(proc_cpu "$SRV_PID")"
                if [ "$op" = stor ]; then
                    out="$(timeout 600 curl -sS --user "$auth" -T "$WORK/big.bin" "$url" \
                        -w '%{time_total} %{size_upload}' 2>>"$WORK/logs/curl.log")" || out="x 0"
                else
                    out="$(timeout 600 curl -sS --user "$auth" -o "$WORK/dl/$name" "$url" \
                        -w '%{time_total} %{size_download}' 2>>"$WORK/logs/curl.log")" || out="x 0"
                    rm -f "$WORK/dl/$name"
                fi
                c1="$(proc_cpu "$SRV_PID")"
                hwm="$(proc_kib "$SRV_PID" VmHWM)"
                read -r secs got <<<"$out"
                if [ "$got" = "$((SIZE_MB << 20))" ]; then
                    emit "{$base,\"op\":\"$op\",\"seconds\":$secs,\"mib_s\":$(awk -v s="$secs" -v m="$SIZE_MB" 'BEGIN{print m/s}'),\"cpu_s\":$(awk -v a="$c0" -v b="$c1" -v t="$CLK_TCK" 'BEGIN{print (b-a)/t}'),\"rss_before_kib\":$rss,\"hwm_kib\":$hwm}"
                else
                    emit "{$base,\"op\":\"$op\",\"error\":\"curl: $got bytes\"}"
                    say "single $op on $m: curl moved $got bytes"
                fi
            done
            stop_server
            if [ "$m" = ftpdlib-disk ]; then rm -f "$WORK/disk/"*; else clean "ftp/"; fi
            ;;
        rclone)
            for op in stor retr; do
                t0="$(now)"
                if [ "$op" = stor ]; then
                    timeout 600 "${RCLONE[@]}" copyto "$WORK/big.bin" "obj:$BUCKET/rc/$name" 2>>"$WORK/logs/rclone.log" && got=ok || got=""
                else
                    timeout 600 "${RCLONE[@]}" copyto "obj:$BUCKET/rc/$name" "$WORK/dl/$name" 2>>"$WORK/logs/rclone.log" && got=ok || got=""
                    [ "$(stat -c %s "$WORK/dl/$name" 2>/dev/null)" = "$((SIZE_MB << 20))" ] || got=""
                    rm -f "$WORK/dl/$name"
                fi
                t1="$(now)"
                if [ -n "$got" ]; then
                    emit "{$base,\"op\":\"$op\",\"seconds\":$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}'),\"mib_s\":$(awk -v a="$t0" -v b="$t1" -v m="$SIZE_MB" 'BEGIN{print m/(b-a)}')}"
                else
                    emit "{$base,\"op\":\"$op\",\"error\":\"rclone failed\"}"
                fi
            done
            clean "rc/"
            ;;
        boto3)
            for op in stor retr; do
                local file="$WORK/big.bin" o=up
                [ "$op" = retr ] && { file="$WORK/dl/$name"; o=down; }
                out="$(timeout 600 "$PYTHON" "$CLIENT" boto3-one --endpoint "$S3_ENDPOINT" \
                    --bucket "$BUCKET" --key "b3/$name" --op "$o" --file "$file" 2>>"$WORK/logs/boto3.log")" || out=""
                if [ "$op" = retr ] && [ "$(stat -c %s "$file" 2>/dev/null)" != "$((SIZE_MB << 20))" ]; then out=""; fi
                rm -f "$WORK/dl/$name"
                if [ -n "$out" ]; then
                    secs="$("$PYTHON" -c 'import json, sys; print(json.loads(sys.argv[1])["seconds"])' "$out")"
                    emit "{$base,\"op\":\"$op\",\"seconds\":$secs,\"mib_s\":$(awk -v s="$secs" -v m="$SIZE_MB" 'BEGIN{print m/s}')}"
                else
                    emit "{$base,\"op\":\"$op\",\"error\":\"boto3 failed\"}"
                fi
            done
            clean "b3/"
            ;;
    esac
}

# --- concurrent --------------------------------------------------------------------------
# conc METHOD ROUND: CONC uploads at once, then CONC downloads at once; two JSON lines.
conc() {
    local m=$1 r=$2 base out t0 t1 pfx="k$2x$RANDOM-" size=$((CONC_MB << 20))
    base='"wl":"conc","method":"'$m'","round":'$r
    case "$m" in
        ftpdlib-*|s3:*)
            start_ftpd "$m" || { emit "{$base,\"error\":\"server did not start\"}"; return 0; }
            sleep 0.3
            for op in stor retr; do
                reset_hwm "$SRV_PID"
                out="$(timeout 900 "$PYTHON" "$CLIENT" ftp-conc --port "$SRV_PORT" --user "$USER_NAME" \
                    --password "$USER_PASS" --op "$op" -n "$CONC" --size "$size" --src "$WORK/conc.bin" \
                    --pid "$SRV_PID" --probe-port "$SRV_PORT" --probe-ms "$PROBE_MS" \
                    --name-prefix "$pfx" "${PROBE_RT[@]}" 2>>"$WORK/logs/client.log")" || out=""
                [ "${out:0:1}" = "{" ] || out='{"error":"the client gave no result"}'
                emit "{$base,\"op\":\"$op\",${out:1}"
            done
            stop_server
            if [ "$m" = ftpdlib-disk ]; then rm -f "$WORK/disk/"*; else clean "ftp/"; fi
            ;;
        boto3)
            # The probe goes to an idle ftpdlib-s3: what this load does to any process.
            start_ftpd ftpdlib-s3 || true
            for op in up down; do
                out="$(timeout 900 "$PYTHON" "$CLIENT" boto3-conc --endpoint "$S3_ENDPOINT" \
                    --bucket "$BUCKET" --prefix b3c/ --op "$op" -n "$CONC" --size "$size" \
                    --src "$WORK/conc.bin" --dst "$WORK/dl" --name-prefix "$pfx" \
                    --port "$SRV_PORT" --user "$USER_NAME" --password "$USER_PASS" \
                    --probe-port "${SRV_PORT:-0}" --probe-ms "$PROBE_MS" 2>>"$WORK/logs/client.log")" || out=""
                [ "${out:0:1}" = "{" ] || out='{"error":"the client gave no result"}'
                local o=stor
                [ "$op" = down ] && o=retr
                emit "{$base,\"op\":\"$o\",${out:1}"
            done
            stop_server
            clean "b3c/"
            ;;
        rclone)
            for op in stor retr; do
                t0="$(now)"
                if [ "$op" = stor ]; then
                    timeout 900 "${RCLONE[@]}" copy --transfers "$CONC" "$WORK/up" "obj:$BUCKET/rcc/" \
                        2>>"$WORK/logs/rclone.log" && out=ok || out=""
                else
                    timeout 900 "${RCLONE[@]}" copy --transfers "$CONC" "obj:$BUCKET/rcc/" "$WORK/dl" \
                        2>>"$WORK/logs/rclone.log" && out=ok || out=""
                    [ "$(du -sb "$WORK/dl" | cut -f1)" -ge $((CONC * size)) ] || out=""
                    rm -rf "${WORK:?}/dl/"*
                fi
                t1="$(now)"
                if [ -n "$out" ]; then
                    emit "{$base,\"op\":\"$op\",\"n\":$CONC,\"ok\":$CONC,\"size\":$size,\"wall_s\":$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}'),\"mib_s\":$(awk -v a="$t0" -v b="$t1" -v n="$CONC" -v m="$CONC_MB" 'BEGIN{print n*m/(b-a)}')}"
                else
                    emit "{$base,\"op\":\"$op\",\"error\":\"rclone failed\"}"
                fi
            done
            clean "rcc/"
            ;;
    esac
}

# --- the rounds --------------------------------------------------------------------------
read -r -a MAIN <<<"$METHODS"
SW=()
for s in $SWEEP; do SW+=("s3:${s%%=*}"); done
START_S=$(date +%s)
if [ "$WARMUP_ROUNDS" -gt 0 ]; then
    # The first transfers after Ceph's start run slower whatever the column (the cluster
    # still settles): a round of the main columns first, its lines kept apart.
    EMIT_TO="$WORK/warmup.jsonl"
    for m in "${MAIN[@]}"; do
        say "warm-up: $m"
        single "$m" 0
        conc "$m" 0
    done
    EMIT_TO="$RAW"
fi
for round in $(seq "$ROUNDS"); do
    cols=("${MAIN[@]}")
    [ "$round" -le "$SWEEP_ROUNDS" ] && cols+=("${SW[@]}")
    nc=${#cols[@]}
    order=()
    for k in $(seq 0 $((nc - 1))); do order+=("${cols[$(( (k + round - 1) % nc ))]}"); done
    say "round $round/$ROUNDS: ${order[*]}"
    for m in "${order[@]}"; do
        say "  $m: single"
        single "$m" "$round"
        say "  $m: $CONC at once"
        conc "$m" "$round"
    done
done
BENCH_S=$(( $(date +%s) - START_S ))
cp "$RAW" "$OUT_JSONL"
[ ! -s "$WORK/warmup.jsonl" ] || cp "$WORK/warmup.jsonl" "${OUT_JSONL%.jsonl}-warmup.jsonl"

# --- report --------------------------------------------------------------------------------
bench_machine
export RAW OUT_MD RUN_DATE REV FTPDLIB_BIN ROUNDS SIZE_MB CONC CONC_MB PROBE_MS SWEEP SWEEP_ROUNDS
export MACHINE MACHINE_MEM BENCH_S CEPH_NOTE S3_ENDPOINT
RCLONE_VERSION="$(rclone version 2>/dev/null | awk 'NR == 1')"
BOTO3_VERSION="$("$PYTHON" -c 'import boto3; print(boto3.__version__)')"
CURL_VERSION="$(curl --version | awk 'NR == 1 { print $1, $2 }')"
export RCLONE_VERSION BOTO3_VERSION CURL_VERSION
"$PYTHON" "$HERE/object/report.py"
say "results in $OUT_MD (raw: $OUT_JSONL)"
cat "$OUT_MD"
