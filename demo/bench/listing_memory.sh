#!/usr/bin/env bash
# listing_memory.sh: how much memory a server takes to send a listing of a huge directory
# to a client that reads slowly.
#
# A directory of FILES (1,000,000) empty files is made on tmpfs (/dev/shm when there),
# beside a directory of 100. For each of LIST, MLSD and NLST of the big directory, a
# server is started fresh and demo/bench/listing_memory.py logs in, lists the 100-entry
# directory with NLST (the baseline), then the big one, reading READ_KIB KiB and pausing
# PAUSE_MS ms in turn, while it samples the server's VmRSS and VmHWM from
# /proc/PID/status every 10 ms. Reported per listing: RSS before, peak and after, and
# the peak growth in MiB. Servers: ftpdlib (this build) and pyftpdlib 2.x from a fresh
# venv (plain FTPServer, DummyAuthorizer), in the same run.
#
# Everything listens on and connects to 127.0.0.1 only; every server is started here (in
# its own process group) and stopped after its listing and on exit; each listing stops
# after LIST_SECONDS at the latest and each client run is under timeout(1). The
# directories are removed at the end.
#
# Usage: demo/bench/listing_memory.sh [--out FILE.md] [--quick] [--no-pyftpdlib]
#   --out FILE.md   results file (default demo/bench/results/listing-memory-<UTC date>.md);
#                   the raw JSON lines go beside it as FILE.jsonl
#   --quick         a smoke test: 20,000 files
#   --no-pyftpdlib  ftpdlib only
#
# Environment:
#   FTPDLIB_BIN   server binary (default: cargo build --release, target/release/ftpdlib)
#   FILES         entries of the big directory (default 1000000, at most 2000000)
#   READ_KIB      the client's read size in KiB (default 64)
#   PAUSE_MS      the client's pause after each read in ms (default 10)
#   LIST_SECONDS  time limit of one listing (default 300)
#   PYTHON        python3 for the client, the venv and the report (default python3)
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

USE_PY=1 # with a pyftpdlib column, unless --no-pyftpdlib
while [ $# -gt 0 ]; do bench_option "$@"; shift "$TOOK"; done
[ "$QUICK" = 1 ] && : "${FILES:=20000}"
: "${FILES:=1000000}" "${READ_KIB:=64}" "${PAUSE_MS:=10}" "${LIST_SECONDS:=300}"
for v in "$FILES" "$READ_KIB" "$PAUSE_MS" "$LIST_SECONDS"; do
    case "$v" in ''|*[!0-9]*) echo "listing_memory.sh: numbers must be non-negative integers" >&2; exit 2 ;; esac
done
if ! { [ "$FILES" -le 2000000 ] && [ "$LIST_SECONDS" -le 900 ] && [ "$READ_KIB" -ge 1 ] &&
    [ "$READ_KIB" -le 16384 ] && [ "$PAUSE_MS" -le 1000 ]; }; then
    echo "listing_memory.sh: at most 2,000,000 files, 900 s per listing, 1-16384 KiB reads, 1000 ms pauses" >&2
    exit 2
fi

CLIENT="$HERE/listing_memory.py"
bench_out_md listing-memory

bench_workdir listmem tmpfs
mkdir -p "$WORK/root/big" "$WORK/root/small"
ROOT="$WORK/root"
RAW="$WORK/results.jsonl"
: >"$RAW"

bench_build_ftpdlib FTPDLIB_BIN
[ -x "$FTPDLIB_BIN" ] || { say "no ftpdlib binary at $FTPDLIB_BIN"; exit 1; }
REV="$(git -C "$REPO" rev-parse --short HEAD)"
SRC_REV="$(git -C "$REPO" log -1 --format=%h HEAD -- src)" # the last commit that changed src/

if [ "$USE_PY" = 1 ] && ! bench_pyftpdlib 'pyftpdlib>=2,<3' "pyftpdlib 2.x"; then
    say "pyftpdlib did not install: ftpdlib only"
    USE_PY=0
fi
cat >"$WORK/pyftpd.py" <<'PYEOF'
import sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer
host, port, root, user, password = sys.argv[1:6]
auth = DummyAuthorizer()
auth.add_user(user, password, root, perm="elr")
FTPHandler.authorizer = auth
server = FTPServer((host, int(port)), FTPHandler)
server.serve_forever()
PYEOF

say "making $FILES empty files in $ROOT/big"
T_MAKE=$(date +%s)
"$PYTHON" - "$ROOT/big" "$FILES" "$ROOT/small" <<'PYEOF'
import os, sys
big, n, small = sys.argv[1], int(sys.argv[2]), sys.argv[3]
flags = os.O_CREAT | os.O_WRONLY | os.O_EXCL | os.O_CLOEXEC
fd = os.open(big, os.O_RDONLY | os.O_DIRECTORY)
for i in range(n):
    os.close(os.open(f"file-{i:07d}.txt", flags, 0o644, dir_fd=fd))
os.close(fd)
for i in range(100):
    os.close(os.open(os.path.join(small, f"file-{i:03d}.txt"), flags, 0o644))
PYEOF
MAKE_S=$(( $(date +%s) - T_MAKE ))

start_server() { # KIND: starts it on a fresh port; sets SRV_PID and SRV_PORT
    local log="$WORK/logs/$1.log"
    SRV_PORT="$(free_port)"
    case "$1" in
        ftpdlib)
            setsid "$FTPDLIB_BIN" -i "$HOST" -p "$SRV_PORT" -d "$ROOT" \
                -u "$USER_NAME" -P "$USER_PASS" >>"$log" 2>&1 &
            ;;
        pyftpdlib)
            setsid "$PY" "$WORK/pyftpd.py" "$HOST" "$SRV_PORT" "$ROOT" "$USER_NAME" \
                "$USER_PASS" >>"$log" 2>&1 &
            ;;
    esac
    track_started "$1" "$SRV_PORT" "$log" || exit 1
}

SERVERS=(ftpdlib)
[ "$USE_PY" = 1 ] && SERVERS+=(pyftpdlib)
T_BENCH=$(date +%s)
for cmd in LIST MLSD NLST; do
    for srv in "${SERVERS[@]}"; do
        say "$cmd of $FILES entries from $srv"
        start_server "$srv"
        if ! timeout --kill-after=10 $((LIST_SECONDS * 2 + 60)) "$PYTHON" "$CLIENT" \
            --port "$SRV_PORT" --pid "$SRV_PID" --user "$USER_NAME" --password "$USER_PASS" \
            --listing NLST:small --listing "$cmd:big" --read-size $((READ_KIB * 1024)) \
            --pause "$(awk -v m="$PAUSE_MS" 'BEGIN { print m / 1000 }')" \
            --seconds "$LIST_SECONDS" --label "$srv" >>"$RAW" 2>>"$WORK/logs/client.log"; then
            say "the client failed against $srv; log:"
            tail -n 5 "$WORK/logs/client.log" >&2 || true
        fi
        stop_server
    done
done
BENCH_S=$(( $(date +%s) - T_BENCH ))
cp "$RAW" "$OUT_JSONL"

bench_machine
"$PYTHON" - "$RAW" "$OUT_MD" <<PYEOF
import json, sys
raw, out = sys.argv[1:3]
rows = [json.loads(l) for l in open(raw) if l.strip()]
servers = list(dict.fromkeys(r["label"] for r in rows))
mib = lambda kib: f"{kib / 1024:.1f}"
L = ["# Server memory while a slow client reads a listing of $FILES entries", ""]
L.append("- date: $RUN_DATE; command: \`demo/bench/listing_memory.sh\` (FILES=$FILES "
         "READ_KIB=$READ_KIB PAUSE_MS=$PAUSE_MS LIST_SECONDS=$LIST_SECONDS)")
L.append("- ftpdlib at $REV (src/ last changed in $SRC_REV), \`$FTPDLIB_BIN\`, default flags (worker pool of the default "
         "size); pyftpdlib $PYFTPDLIB_VERSION (fresh venv, FTPServer, DummyAuthorizer)")
L.append("- machine: $MACHINE; the files are empty, "
         "on tmpfs, made in $MAKE_S s; 127.0.0.1 only; $BENCH_S s of listings")
L.append("- each server started fresh for each command; one session lists the 100-entry "
         "directory with NLST, then the big directory, reading $READ_KIB KiB and pausing "
         "$PAUSE_MS ms in turn; VmRSS sampled every 10 ms from /proc/PID/status (VmHWM "
         "where it rose above every sample); before and after: after 0.5 s idle")
L.append("")
L.append("| server | listing | entries read | bytes | seconds | RSS before (MiB) | "
         "peak RSS (MiB) | RSS after (MiB) | peak growth (MiB) |")
L.append("|---|---|---|---|---|---|---|---|---|")
for s in servers:
    for r in rows:
        if r["label"] != s:
            continue
        size = {"small": "100", "big": "$FILES"}.get(r["path"], r["path"])
        what = f"{r['cmd']} of {size} entries" + ("" if r["complete"] else " (cut at the time limit)")
        L.append(f"| {s} | {what} | {r['lines']} | {r['bytes']} | {r['seconds']} | "
                 f"{mib(r['rss_before_kib'])} | {mib(r['rss_peak_kib'])} | "
                 f"{mib(r['rss_after_kib'])} | {r['peak_growth_mib']:.1f} |")
open(out, "w").write("\n".join(L) + "\n")
PYEOF
say "results in $OUT_MD (raw: $OUT_JSONL)"
cat "$OUT_MD"
