#!/usr/bin/env bash
# idle_sessions.sh: how much memory the server takes for N logged-in idle sessions.
#
#   demo/bench/idle_sessions.sh            # 10,000 sessions
#   demo/bench/idle_sessions.sh 2000       # another N
#
# Builds the release `ftpdlib`, starts it on 127.0.0.1 (a free port, an empty temporary
# home, --max-cons 0), raises the descriptor limit of both sides to what N sessions need
# (2N plus a margin; root may raise the hard limit, others get what theirs allows), and runs
# idle_sessions.py: N sessions log in from 127.0.0.1 ... 127.0.0.8 and stay idle, and the
# server's VmRSS is read before and after. The server is stopped on exit. docs/benchmarks.md
# keeps the figures ("Idle sessions").
set -euo pipefail
N="${1:-10000}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PYTHON="${PYTHON:-python3}"

# Each logged-in session holds two descriptors in the server: its control connection and
# its home directory (the anchor of its jail).
need=$((2 * N + 128))
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$need" ]; then
  ulimit -Hn "$need" 2>/dev/null || {
    echo "idle_sessions.sh: $N sessions need $need descriptors; the hard limit is $(ulimit -Hn)" >&2
    exit 1
  }
fi
ulimit -n "$need"

cargo build --release --quiet -p ftpdlib-daemon --manifest-path "$REPO/Cargo.toml"
BIN="${FTPDLIB_BIN:-$REPO/target/release/ftpdlib}"
home="$(mktemp -d)"
port="$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
pass="idle-$$"
"$BIN" -i 127.0.0.1 -p "$port" -d "$home" -u bench -P "$pass" --max-cons 0 2>"$home.log" &
srv=$!
trap 'kill "$srv" 2>/dev/null; wait "$srv" 2>/dev/null; rm -rf "$home" "$home.log"' EXIT
for _ in $(seq 100); do
  grep -q "starting FTP server" "$home.log" 2>/dev/null && break
  sleep 0.1
done
echo "ftpdlib $("$BIN" --version 2>/dev/null | head -1), $(uname -sr), $(nproc) cores, $(date -u +%Y-%m-%d)"
"$PYTHON" "$HERE/idle_sessions.py" --port "$port" --pid "$srv" --user bench --password "$pass" -n "$N"
