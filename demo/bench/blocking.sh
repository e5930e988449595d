#!/usr/bin/env bash
# blocking.sh: does the server keep answering one session while others make it work?
#
# "The other session's NOOP latency": session B logs in and sends NOOP every 2 ms,
# timing each round trip, while session(s) A do the work below. A reactor that blocks
# (a whole directory listing, a password hash or a slow filesystem call on its one
# thread) shows up as B's p99 and max. Rows, each against ftpdlib and pyftpdlib 2.x:
#
#   1. A lists a directory of 200,000 empty files: LIST, MLSD and NLST (three rows),
#      the same listing again and again, at most LIST_REPEAT times or LIST_SECONDS.
#   2. 20 clients log in at once, again and again for LOGIN_SECONDS, as a user whose
#      password is stored as a yescrypt ($y$) crypt(3) hash (made with
#      `ftpdlib hash-password`); also logins per second for the whole server.
#      pyftpdlib has no crypt(3) hashes: it runs the approach of pyftpdlib's tutorial,
#      a DummyAuthorizer subclass comparing md5 hex digests, so its column is a cheap
#      hash and says so.
#   3. 50 busy clients, each looping LIST, RETR of a 4 KiB file, STOR of a 4 KiB file,
#      MKD and RMD for BUSY_SECONDS, against storage that sleeps SLOW_MS (50) ms in every
#      call. pyftpdlib gets an AbstractedFS subclass that sleeps in each storage call
#      (open, listdir, stat, lstat, mkdir, rmdir, remove, rename, chmod, utime,
#      readlink, isfile, isdir, islink, getsize, getmtime, lexists, chdir, validpath).
#      ftpdlib runs demo/slow_ftpd.rs, OsFilesystem wrapped in the same sleep per call
#      (and per batch of directory entries), or whatever SLOW_SERVER_CMD starts.
#      A reference row runs the same busy clients on ordinary storage.
#
# B records only the round trips made while A works, one per NOOP: a stall of 700 ms is
# one sample, so where the server stalls B gets few samples and its p99 is its max.
#
# Everything runs on 127.0.0.1; every server is started here (each in its own process
# group) and stopped on exit; every loop is bounded in time and count.
#
# Usage: demo/bench/blocking.sh [--out FILE.md] [--quick] [--no-pyftpdlib]
#   --out FILE.md  results file (default demo/bench/results/blocking-<UTC date>.md);
#                  the raw JSON lines go beside it as FILE.jsonl
#   --quick        a smoke test: 20,000 files, 3 s per workload
#
# Environment:
#   FTPDLIB_BIN    server binary (default: cargo build --release, target/release/ftpdlib)
#   FTPDLIB_ARGS   extra flags for every ftpdlib started, e.g. "--io-threads 2"
#   FTPDLIB_LOGIN_VARIANTS  extra runs of row 2, one per ';'-separated set of flags,
#                  added to FTPDLIB_ARGS, e.g. "--io-threads 1;--io-threads 2" gives
#                  hashed logins per second with 1 and with 2 workers
#   SLOW_SERVER_CMD  command that starts ftpdlib with storage sleeping SLOW_MS ms per
#                  call, in the foreground, run with bash -c (default: the slow_ftpd
#                  example, built with cargo build --release). These are substituted:
#                  {port} (listen on 127.0.0.1 at this port), {root} (the directory to
#                  serve), {users} (a --users file with the accounts below), {user} and
#                  {pass} (the account the busy clients log in as, with write access),
#                  {slow_ms} (SLOW_MS); it runs from the repository's top directory.
#                  The default is
#                    target/release/examples/slow_ftpd --delay-ms {slow_ms} --port {port}
#                      --dir {root} --user {user} --password {pass}
#   SLOW_MS        the sleep per storage call in row 3 (default 50)
#   FILES LIST_REPEAT LIST_SECONDS   row 1: 200000 files, 3 listings, 20 s
#   LOGIN_CLIENTS LOGIN_SECONDS      row 2: 20 clients, 10 s
#   BUSY_CLIENTS BUSY_SECONDS        row 3: 50 clients, 15 s
#   PYTHON         python3 for the client and the venv (default python3)
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

USE_PY=1 # with a pyftpdlib column, unless --no-pyftpdlib
while [ $# -gt 0 ]; do bench_option "$@"; shift "$TOOK"; done

if [ "$QUICK" = 1 ]; then
    : "${FILES:=20000}" "${LIST_SECONDS:=3}" "${LOGIN_SECONDS:=3}" "${BUSY_SECONDS:=3}"
fi
: "${FILES:=200000}" "${LIST_REPEAT:=3}" "${LIST_SECONDS:=20}"
: "${LOGIN_CLIENTS:=20}" "${LOGIN_SECONDS:=10}"
: "${BUSY_CLIENTS:=50}" "${BUSY_SECONDS:=15}" "${SLOW_MS:=50}"
for v in "$FILES" "$LIST_REPEAT" "$LIST_SECONDS" "$LOGIN_CLIENTS" "$LOGIN_SECONDS" \
    "$BUSY_CLIENTS" "$BUSY_SECONDS" "$SLOW_MS"; do
    case "$v" in ''|*[!0-9]*) echo "blocking.sh: numbers must be non-negative integers" >&2; exit 2 ;; esac
done
if ! { [ "$FILES" -le 1000000 ] && [ "$LIST_SECONDS" -le 300 ] && [ "$LOGIN_SECONDS" -le 300 ] &&
    [ "$BUSY_SECONDS" -le 300 ] && [ "$LOGIN_CLIENTS" -le 500 ] && [ "$BUSY_CLIENTS" -le 500 ]; }; then
    echo "blocking.sh: at most 1,000,000 files, 500 clients and 300 s per workload" >&2
    exit 2
fi

FTPDLIB_ARGS="${FTPDLIB_ARGS:-}"
FTPDLIB_LOGIN_VARIANTS="${FTPDLIB_LOGIN_VARIANTS:-}"
SLOW_SERVER_CMD="${SLOW_SERVER_CMD:-}"
CLIENT="$HERE/blocking.py"
HASH_USER=hashed
HASH_PASS="hashed-pw-$$"
bench_out_md blocking

# The 200,000 files live in memory when /dev/shm is there.
bench_workdir blocking tmpfs
mkdir -p "$WORK/root"
ROOT="$WORK/root"
RAW="$WORK/results.jsonl"
: >"$RAW"

# --- ftpdlib ------------------------------------------------------------------------
if [ -z "$SLOW_SERVER_CMD" ]; then
    bench_cargo "building the slow storage example (cargo build --release --example slow_ftpd)" \
        --example slow_ftpd
    SLOW_SERVER_CMD='target/release/examples/slow_ftpd --delay-ms {slow_ms} --port {port} --dir {root} --user {user} --password {pass}'
fi
bench_build_ftpdlib FTPDLIB_BIN
[ -x "$FTPDLIB_BIN" ] || { say "no ftpdlib binary at $FTPDLIB_BIN"; exit 1; }
read -r -a EXTRA_ARGS <<<"$FTPDLIB_ARGS"

HASH="$(printf '%s\n' "$HASH_PASS" | "$FTPDLIB_BIN" hash-password)"
# shellcheck disable=SC2016 # '$y$' is the literal prefix of a yescrypt hash
case "$HASH" in
    '$y$'*) ;;
    *) say "ftpdlib hash-password did not give a \$y\$ hash: $HASH"; exit 1 ;;
esac
USERS="$WORK/users.txt"
cat >"$USERS" <<EOF
# name:password:perms[:home]  (home: the served directory)
$USER_NAME:$USER_PASS:elradfmwMT
$HASH_USER:$HASH:elr
EOF

# --- pyftpdlib 2.x, in a throw-away venv ------------------------------------------------
PY_NOTE=""
if [ "$USE_PY" = 1 ]; then
    if ! bench_pyftpdlib 'pyftpdlib>=2,<3' "pyftpdlib 2.x"; then
        PY_NOTE="pyftpdlib did not install: no pyftpdlib column"
        USE_PY=0
    fi
else
    PY_NOTE="pyftpdlib skipped (--no-pyftpdlib)"
fi
# A small pyftpdlib launcher: md5 authorizer (pyftpdlib's tutorial approach) and, when
# asked, storage that sleeps in every call.
cat >"$WORK/pyftpd_blocking.py" <<'PYEOF'
import hashlib, sys, time
from pyftpdlib.authorizers import AuthenticationFailed, DummyAuthorizer
from pyftpdlib.filesystems import AbstractedFS
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer

host, port, root, users_file, slow_ms = sys.argv[1:6]

def md5hex(s):
    return hashlib.md5(s.encode("latin1")).hexdigest()

class Md5Authorizer(DummyAuthorizer):
    """The user table holds md5 hex digests; a login compares digests."""
    def validate_authentication(self, username, password, handler):
        entry = self.user_table.get(username)
        if entry is None or entry["pwd"] != md5hex(password):
            raise AuthenticationFailed("Authentication failed.")

auth = Md5Authorizer()
for line in open(users_file):
    line = line.strip()
    if line and not line.startswith("#"):
        name, password, perm = line.split(":")[:3]
        auth.add_user(name, md5hex(password), root, perm=perm)

class Handler(FTPHandler):
    authorizer = auth

delay = float(slow_ms) / 1000.0
if delay > 0:
    STORAGE_CALLS = ["open", "listdir", "listdirinfo", "stat", "lstat", "mkdir", "rmdir",
                     "remove", "rename", "chmod", "utime", "readlink", "isfile", "isdir",
                     "islink", "getsize", "getmtime", "lexists", "chdir", "validpath"]

    def sleeping(name):
        plain = getattr(AbstractedFS, name)
        def call(self, *args, **kwargs):
            time.sleep(delay)
            return plain(self, *args, **kwargs)
        return call

    SlowFS = type("SlowFS", (AbstractedFS,),
                  {n: sleeping(n) for n in STORAGE_CALLS if hasattr(AbstractedFS, n)})
    Handler.abstracted_fs = SlowFS

server = FTPServer((host, int(port)), Handler)
server.max_cons = 0
server.max_cons_per_ip = 0
server.serve_forever()
PYEOF
# The pyftpdlib launcher reads plain passwords from its own users file.
printf '%s:%s:elradfmwMT\n%s:%s:elr\n' "$USER_NAME" "$USER_PASS" "$HASH_USER" "$HASH_PASS" \
    >"$WORK/py-users.txt"

# start_server KIND TAG [EXTRA FLAGS...]: KIND is ftpdlib, pyftpdlib, pyftpdlib-slow or
# ftpdlib-slow; sets SRV_PID and SRV_PORT.
start_server() {
    local kind=$1 tag=$2; shift 2
    local log="$WORK/logs/$kind-$tag.log" wait=15
    SRV_PORT="$(free_port)"
    case "$kind" in
        ftpdlib)
            setsid "$FTPDLIB_BIN" -i "$HOST" -p "$SRV_PORT" -d "$ROOT" --users "$USERS" \
                --max-cons 0 --max-cons-per-ip 0 ${EXTRA_ARGS[@]+"${EXTRA_ARGS[@]}"} "$@" \
                >"$log" 2>&1 &
            ;;
        pyftpdlib)
            setsid "$PY" "$WORK/pyftpd_blocking.py" "$HOST" "$SRV_PORT" "$ROOT" \
                "$WORK/py-users.txt" 0 >"$log" 2>&1 &
            ;;
        pyftpdlib-slow)
            setsid "$PY" "$WORK/pyftpd_blocking.py" "$HOST" "$SRV_PORT" "$ROOT" \
                "$WORK/py-users.txt" "$SLOW_MS" >"$log" 2>&1 &
            ;;
        ftpdlib-slow)
            local cmd=$SLOW_SERVER_CMD
            cmd=${cmd//\{port\}/$SRV_PORT}
            cmd=${cmd//\{root\}/$ROOT}
            cmd=${cmd//\{users\}/$USERS}
            cmd=${cmd//\{user\}/$USER_NAME}
            cmd=${cmd//\{pass\}/$USER_PASS}
            cmd=${cmd//\{slow_ms\}/$SLOW_MS}
            echo "$cmd" >"$log"
            (cd "$REPO" && exec setsid bash -c "exec $cmd") >>"$log" 2>&1 &
            wait=60
            ;;
    esac
    track_started "$kind" "$SRV_PORT" "$log" "$wait"
}

# fail_row SCENARIO SERVER WHAT: a row cell that says what went wrong (or n/a).
fail_row() {
    "$PYTHON" -c 'import json,sys; print(json.dumps({"scenario":sys.argv[1],"server":sys.argv[2],sys.argv[3]:sys.argv[4]}))' \
        "$1" "$2" "$3" "$4" >>"$RAW"
}

# client MODE SCENARIO SERVER SECONDS [ARGS...]: runs blocking.py against SRV_PORT,
# appending its JSON line to the raw results; bounded by timeout(1) as well.
client() {
    local mode=$1 scenario=$2 server=$3 secs=$4; shift 4
    local line
    if line="$(timeout --kill-after=10 "$((secs * 4 + 180))" "$PYTHON" "$CLIENT" "$mode" \
        --port "$SRV_PORT" --user "$USER_NAME" --pass "$USER_PASS" --seconds "$secs" \
        --scenario "$scenario" --server "$server" "$@" 2>>"$WORK/logs/client.log" | tail -n 1)" &&
        [ "${line:0:1}" = "{" ]; then
        echo "$line" >>"$RAW"
    else
        say "$scenario on $server: the client failed (see below)"
        tail -n 5 "$WORK/logs/client.log" >&2 || true
        fail_row "$scenario" "$server" error "client failed"
    fi
}

SERVERS=(ftpdlib)
[ "$USE_PY" = 1 ] && SERVERS+=(pyftpdlib)

say "making $FILES empty files under $WORK (once, for every server)"
"$PYTHON" "$CLIENT" prepare --root "$ROOT" --files "$FILES"
START=$(date +%s)

# --- 1. big listings -------------------------------------------------------------------
FILES_LABEL="$(printf "%'d" "$FILES" 2>/dev/null || echo "$FILES")"
for name in "${SERVERS[@]}"; do
    if ! start_server "$name" list; then
        for c in LIST MLSD NLST; do fail_row "1. $c of $FILES_LABEL files" "$name" error "did not start"; done
        continue
    fi
    for c in LIST MLSD NLST; do
        say "1. $c of $FILES files on $name (port $SRV_PORT)"
        client list "1. $c of $FILES_LABEL files" "$name" "$LIST_SECONDS" \
            --cmd "$c" --path big --expect "$FILES" --repeat "$LIST_REPEAT"
    done
    stop_server
done

# --- 2. hashed logins --------------------------------------------------------------------
LOGIN_LABEL="2. $LOGIN_CLIENTS clients logging in again and again, \$y\$ hash"
login_row() { # SERVER LABEL [FTPDLIB FLAGS...]
    local name=$1 label=$2; shift 2
    local kind=$name
    [ "$name" = pyftpdlib ] || kind=ftpdlib
    if ! start_server "$kind" login "$@"; then
        fail_row "$label" "$name" error "did not start"
        return 0
    fi
    say "$label on $name (port $SRV_PORT)"
    client login "$label" "$name" "$LOGIN_SECONDS" --clients "$LOGIN_CLIENTS" \
        --login-user "$HASH_USER" --login-pass "$HASH_PASS"
    stop_server
}
for name in "${SERVERS[@]}"; do login_row "$name" "$LOGIN_LABEL"; done
if [ -n "$FTPDLIB_LOGIN_VARIANTS" ]; then
    IFS=';' read -r -a VARIANTS <<<"$FTPDLIB_LOGIN_VARIANTS"
    for v in "${VARIANTS[@]}"; do
        read -r -a vargs <<<"$v"
        [ "${#vargs[@]}" -gt 0 ] || continue
        login_row ftpdlib "$LOGIN_LABEL, ftpdlib ${vargs[*]}" "${vargs[@]}"
    done
fi

# --- 3. busy clients, slow storage and ordinary storage -----------------------------------
SLOW_LABEL="3. $BUSY_CLIENTS busy clients, storage sleeping $SLOW_MS ms per call"
BUSY_LABEL="3b. $BUSY_CLIENTS busy clients, ordinary storage (reference)"
busy_row() { # KIND SERVER LABEL
    local kind=$1 name=$2 label=$3
    "$PYTHON" "$CLIENT" prepare --root "$ROOT" --busy "$BUSY_CLIENTS"
    if ! start_server "$kind" busy; then
        fail_row "$label" "$name" error "did not start"
        return 0
    fi
    say "$label on $name (port $SRV_PORT)"
    client busy "$label" "$name" "$BUSY_SECONDS" --clients "$BUSY_CLIENTS"
    stop_server
}
busy_row ftpdlib-slow ftpdlib "$SLOW_LABEL"
[ "$USE_PY" = 1 ] && busy_row pyftpdlib-slow pyftpdlib "$SLOW_LABEL"
for name in "${SERVERS[@]}"; do busy_row "$name" "$name" "$BUSY_LABEL"; done
ELAPSED=$(( $(date +%s) - START ))

# --- report --------------------------------------------------------------------------------
REV="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
# HEAD may be a commit that only touched benchmarks: name the server code's own too.
SRC_REV="$(git -C "$REPO" log -1 --format=%h -- src Cargo.toml Cargo.lock 2>/dev/null || true)"
[ -z "$SRC_REV" ] || [ "$SRC_REV" = "$REV" ] || REV="$REV (server code last changed in $SRC_REV)"
if [ -n "$(git -C "$REPO" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ]; then
    REV="$REV (with uncommitted changes in src/ or Cargo.*)"
fi
TABLE="$WORK/table.md"
bench_machine
"$PYTHON" "$CLIENT" report --results "$RAW" --out "$TABLE" >/dev/null
{
    echo "# Other session's NOOP latency while the server works"
    echo
    echo "- date: $RUN_DATE; ftpdlib at \`git rev-parse --short HEAD\` = $REV"
    echo "- ftpdlib binary: ${FTPDLIB_BIN#"$REPO"/}${FTPDLIB_ARGS:+, FTPDLIB_ARGS=\"$FTPDLIB_ARGS\"}; pyftpdlib $PYFTPDLIB_VERSION (fresh venv, FTPServer, default logging)"
    echo "- machine: $MACHINE; files on $(df --output=fstype "$WORK" 2>/dev/null | tail -n 1 | tr -d ' ') ($(dirname "$WORK"))"
    echo "- session B: NOOP every 2 ms on its own connection (a process of its own), round trips in ms; 127.0.0.1 only; $ELAPSED s of workloads"
    echo "- row 1: session A lists $FILES_LABEL empty files, at most $LIST_REPEAT times or $LIST_SECONDS s"
    echo "- row 2: $LOGIN_CLIENTS clients connect, USER, PASS, QUIT in a loop for $LOGIN_SECONDS s. ftpdlib checks a yescrypt (\$y\$) hash from its --users file; **pyftpdlib has no crypt(3) hashes and checks an md5 hex digest** (a DummyAuthorizer subclass, the approach of pyftpdlib's tutorial), so its row shows the server without the cost of a slow hash"
    echo "- row 3: $BUSY_CLIENTS clients loop LIST, RETR 4 KiB, STOR 4 KiB, MKD, RMD for $BUSY_SECONDS s; storage sleeps $SLOW_MS ms per call (pyftpdlib: an AbstractedFS subclass sleeping in each storage call; ftpdlib: \`$SLOW_SERVER_CMD\`)"
    [ -z "$PY_NOTE" ] || echo "- note: $PY_NOTE"
    echo
    echo "Command: \`demo/bench/blocking.sh$( [ "$QUICK" = 1 ] && echo " --quick")\` (FILES=$FILES LIST_REPEAT=$LIST_REPEAT LIST_SECONDS=$LIST_SECONDS LOGIN_CLIENTS=$LOGIN_CLIENTS LOGIN_SECONDS=$LOGIN_SECONDS BUSY_CLIENTS=$BUSY_CLIENTS BUSY_SECONDS=$BUSY_SECONDS SLOW_MS=$SLOW_MS${FTPDLIB_LOGIN_VARIANTS:+ FTPDLIB_LOGIN_VARIANTS=\"$FTPDLIB_LOGIN_VARIANTS\"})"
    echo
    cat "$TABLE"
} >"$OUT_MD"
cp "$RAW" "$OUT_JSONL"
cat "$OUT_MD"
say "results: $OUT_MD (raw: $OUT_JSONL)"
