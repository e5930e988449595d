#!/usr/bin/env bash
# compare.sh: benchmark ftpdlib against pyftpdlib (and vsftpd when it is
# installed) on this machine, in one run.
#
# Every server is started fresh on 127.0.0.1 for each round, with the same
# user, password and an empty temporary directory, and measured with the same
# ftpbench workloads.  The servers take turns (ftpdlib, pyftpdlib, vsftpd,
# ftpdlib, ...) so that they share the machine's noise, and the table shows
# the median of the rounds and the ratio ftpdlib/pyftpdlib.  The loopback
# limit (sendfile() over 127.0.0.1 with no FTP server at all) is measured in
# each round too, so RETR can be quoted as a fraction of it.
#
# Usage: demo/bench/compare.sh [--quick] [--out DIR] [--clients N] [--rounds R]
#                              [--size-mb MB] [--conc-size-mb MB] [--no-vsftpd]
#                              [--keep]
# Environment: FTPDLIB_BIN  server binary to test (default: built with
#                           cargo build --release, target/release/ftpdlib)
#              FTPBENCH_BIN benchmark client (default: built with
#                           cargo build --release --example ftpbench)
#              PYTHON       python3 used for the venv and the report (python3)
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

OUT=""
CLIENTS=""
ROUNDS=""
SIZE_MB=""
CONC_MB=""
USE_VSFTPD=1
KEEP=0
# --out names a directory here (results.md, results.json, raw/, ...), not a report file.
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT="${2:?--out needs a directory}"; shift ;;
        --out=*) OUT="${1#*=}" ;;
        --clients|-n) CLIENTS="${2:?--clients needs a number}"; shift ;;
        --rounds) ROUNDS="${2:?--rounds needs a number}"; shift ;;
        --size-mb) SIZE_MB="${2:?--size-mb needs a number}"; shift ;;
        --conc-size-mb) CONC_MB="${2:?--conc-size-mb needs a number}"; shift ;;
        --no-vsftpd) USE_VSFTPD=0 ;;
        --keep) KEEP=1 ;;
        *) bench_option "$@"; shift "$TOOK"; continue ;;
    esac
    shift
done

if [ "$QUICK" = 1 ]; then
    : "${CLIENTS:=50}" "${ROUNDS:=1}" "${SIZE_MB:=20}" "${CONC_MB:=2}"
else
    : "${CLIENTS:=1000}" "${ROUNDS:=3}" "${SIZE_MB:=100}" "${CONC_MB:=10}"
fi
for v in "$CLIENTS" "$ROUNDS" "$SIZE_MB" "$CONC_MB"; do
    case "$v" in ''|*[!0-9]*) echo "compare.sh: numbers must be positive integers" >&2; exit 2 ;; esac
done

TIMEOUT=120 # seconds, per workload

# The work directory, with the served directories, is in /tmp rather than on tmpfs: the
# STOR rows write to it. --keep keeps it.
bench_workdir compare
if [ -z "$OUT" ]; then
    OUT="$(mktemp -d /tmp/ftpdlib-bench-results.XXXXXX)"
fi
mkdir -p "$OUT/raw"
OUT="$(cd "$OUT" && pwd)"

# Enough descriptors for N control and N data connections on each side.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
need=$((CLIENTS * 2 + 512))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
    say "open-file limit $(ulimit -n) is below the $need needed for $CLIENTS clients"
    exit 1
fi

# --- build --------------------------------------------------------------------
# A missing FTPDLIB_BIN is found when ftpdlib is started: its rows fail, the others run.
bench_build_ftpdlib FTPDLIB_BIN
if [ -z "${FTPBENCH_BIN:-}" ]; then
    if grep -q '^name = "ftpbench"' "$REPO/Cargo.toml"; then
        bench_cargo "building ftpbench (cargo build --release --example ftpbench)" --example ftpbench
        FTPBENCH_BIN="$REPO/target/release/examples/ftpbench"
    else
        # The manifest does not list the example: build the single file as a
        # package of its own, with the versions pinned by the repository's lock.
        say "building ftpbench from demo/ftpbench.rs as a package of its own"
        mkdir -p "$WORK/ftpbench-build"
        cat > "$WORK/ftpbench-build/Cargo.toml" <<EOF
[package]
name = "ftpbench"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
mio = { version = "1", features = ["os-poll", "net"] }
libc = "0.2"
log = "0.4"

[[bin]]
name = "ftpbench"
path = "$REPO/demo/ftpbench.rs"

[workspace]
EOF
        [ -f "$REPO/Cargo.lock" ] && cp "$REPO/Cargo.lock" "$WORK/ftpbench-build/"
        (cd "$WORK/ftpbench-build" &&
            CARGO_TARGET_DIR="$REPO/target/ftpbench-standalone" cargo build --release --quiet)
        FTPBENCH_BIN="$REPO/target/ftpbench-standalone/release/ftpbench"
    fi
fi
[ -x "$FTPBENCH_BIN" ] || { say "no ftpbench at $FTPBENCH_BIN"; exit 1; }

# --- pyftpdlib, in a throw-away venv --------------------------------------------
bench_pyftpdlib pyftpdlib
if "$PY" -m pyftpdlib --help 2>/dev/null | grep -q -- '--max-cons-per-ip'; then
    PY_LIMIT_ARGS=(--max-cons 0 --max-cons-per-ip 0)
    PY_CMD=("$PY" -m pyftpdlib)
else
    # Older releases have no flag for the connection limits (512 by default):
    # a launcher that clears them and hands over to the usual entry point.
    cat > "$WORK/pyftpd_nolimit.py" <<'EOF'
import sys
from pyftpdlib import servers
from pyftpdlib.__main__ import main
servers.FTPServer.max_cons = 0
servers.FTPServer.max_cons_per_ip = 0
sys.argv[0] = "pyftpdlib"
main()
EOF
    PY_LIMIT_ARGS=()
    PY_CMD=("$PY" "$WORK/pyftpd_nolimit.py")
fi

# --- vsftpd ---------------------------------------------------------------------
VSFTPD=/usr/sbin/vsftpd
VSFTPD_NOTE=""
if [ "$USE_VSFTPD" = 0 ]; then
    VSFTPD_NOTE="vsftpd skipped (--no-vsftpd)"
elif [ ! -x "$VSFTPD" ]; then
    VSFTPD_NOTE="vsftpd not installed ($VSFTPD), column skipped"
elif [ "$(id -u)" != 0 ]; then
    VSFTPD_NOTE="vsftpd needs root to chroot its anonymous user, column skipped"
elif ! id ftp >/dev/null 2>&1; then
    VSFTPD_NOTE="vsftpd needs the system user ftp, column skipped"
fi
[ -z "$VSFTPD_NOTE" ] || { say "$VSFTPD_NOTE"; USE_VSFTPD=0; }

# start_server NAME ROUND: starts NAME on a fresh port and directory, sets
# SRV_PID, SRV_PORT and BENCH_ARGS (login and directory options for ftpbench).
start_server() {
    local name=$1 round=$2 root="$WORK/root-$1" log="$WORK/logs/$1-$2.log"
    rm -rf "$root"
    mkdir -p "$root"
    SRV_PORT="$(free_port)"
    BENCH_ARGS=(--user "$USER_NAME" --pass "$USER_PASS")
    case "$name" in
        ftpdlib)
            if [ ! -x "$FTPDLIB_BIN" ]; then
                say "no ftpdlib binary at $FTPDLIB_BIN"
                return 1
            fi
            setsid "$FTPDLIB_BIN" -i "$HOST" -p "$SRV_PORT" -w -d "$root" \
                -u "$USER_NAME" -P "$USER_PASS" --max-cons 0 --max-cons-per-ip 0 \
                >"$log" 2>&1 &
            ;;
        pyftpdlib)
            setsid "${PY_CMD[@]}" -i "$HOST" -p "$SRV_PORT" -w -d "$root" \
                -u "$USER_NAME" -P "$USER_PASS" "${PY_LIMIT_ARGS[@]}" \
                >"$log" 2>&1 &
            ;;
        vsftpd)
            # Anonymous and writable: the chroot root must not be writable by
            # the 'ftp' user, so uploads go to pub/.
            chmod 755 "$root"
            mkdir -p "$root/pub" "$WORK/vsftpd-empty"
            chown ftp:ftp "$root/pub"
            cat > "$WORK/vsftpd.conf" <<EOF
listen=YES
listen_ipv6=NO
listen_address=$HOST
listen_port=$SRV_PORT
background=NO
anonymous_enable=YES
local_enable=NO
write_enable=YES
anon_root=$root
no_anon_password=YES
anon_upload_enable=YES
anon_mkdir_write_enable=YES
anon_other_write_enable=YES
anon_world_readable_only=NO
anon_umask=022
pasv_enable=YES
pasv_address=$HOST
max_clients=0
max_per_ip=0
secure_chroot_dir=$WORK/vsftpd-empty
seccomp_sandbox=NO
isolate=NO
isolate_network=NO
xferlog_enable=NO
dirmessage_enable=NO
ftpd_banner=vsftpd ready
EOF
            BENCH_ARGS=(--user anonymous --pass ftpbench@ --dir pub)
            setsid "$VSFTPD" "$WORK/vsftpd.conf" >"$log" 2>&1 &
            ;;
    esac
    track_started "$name" "$SRV_PORT" "$log"
}

SERVERS=(ftpdlib pyftpdlib)
[ "$USE_VSFTPD" = 1 ] && SERVERS+=(vsftpd)

# --- FTPS rows: curl over TLS against ftpdlib and pyftpdlib's TLS_FTPHandler ---------
# Both servers use the test certificate shipped in tests/data and require TLS on the
# control and data connections; curl (--ssl-reqd, -k for the self-signed certificate)
# moves the single-stream file three times each way per round.
TLS_NOTE=""
TLS_CERT="$PWD/tests/data/cert.pem"
TLS_KEY="$PWD/tests/data/key.pem"
if ! command -v curl >/dev/null 2>&1; then
    TLS_NOTE="curl is not installed: no FTPS rows"
elif [ ! -f "$TLS_CERT" ] || [ ! -f "$TLS_KEY" ]; then
    TLS_NOTE="no test certificate in tests/data: no FTPS rows"
elif ! "$WORK/venv/bin/pip" install --quiet --disable-pip-version-check pyopenssl >/dev/null 2>&1; then
    TLS_NOTE="pyOpenSSL did not install: no FTPS rows"
fi
cat > "$WORK/pyftpd_tls.py" <<'PYEOF'
import logging, sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import TLS_FTPHandler
from pyftpdlib.servers import FTPServer
host, port, root, user, password, cert, key = sys.argv[1:8]
logging.basicConfig(level=logging.WARNING)
auth = DummyAuthorizer()
auth.add_user(user, password, root, perm="elradfmwMT")
handler = TLS_FTPHandler
handler.certfile, handler.keyfile = cert, key
handler.authorizer = auth
handler.tls_control_required = True
handler.tls_data_required = True
server = FTPServer((host, int(port)), handler)
server.max_cons = 0
server.max_cons_per_ip = 0
server.serve_forever()
PYEOF
[ -z "$TLS_NOTE" ] || say "$TLS_NOTE"

# tls_round NAME ROUND: FTPS RETR and STOR rows for NAME, appended to its raw file.
tls_round() {
    local name=$1 round=$2 root="$WORK/tls-root-$1" log="$WORK/logs/$1-tls-$2.log"
    local raw="$OUT/raw/$name-$round.jsonl" src="$WORK/tls-src.bin" port
    rm -rf "$root"
    mkdir -p "$root"
    [ -f "$src" ] || head -c "$((SIZE_MB << 20))" /dev/urandom >"$src"
    cp "$src" "$root/f.bin"
    port="$(free_port)"
    case "$name" in
        ftpdlib)
            setsid "$FTPDLIB_BIN" -i "$HOST" -p "$port" -w -d "$root" -u "$USER_NAME" \
                -P "$USER_PASS" --max-cons 0 --tls-cert "$TLS_CERT" --tls-key "$TLS_KEY" \
                --tls-control-required --tls-data-required >"$log" 2>&1 &
            ;;
        pyftpdlib)
            setsid "$PY" "$WORK/pyftpd_tls.py" "$HOST" "$port" "$root" "$USER_NAME" \
                "$USER_PASS" "$TLS_CERT" "$TLS_KEY" >"$log" 2>&1 &
            ;;
    esac
    track_started "$name (TLS)" "$port" "$log" || return 0
    local url="ftp://$USER_NAME:$USER_PASS@$HOST:$port" bps
    for _ in 1 2 3; do
        bps="$(curl -sS --ssl-reqd -k --max-time "$TIMEOUT" -o /dev/null \
            -w '%{speed_download}' "$url/f.bin" 2>>"$log")" || bps=""
        [ -n "$bps" ] && echo "{\"workload\":\"tls_retr_1\",\"value\":$(awk -v b="$bps" 'BEGIN{printf "%.2f", b/1048576}'),\"unit\":\"MiB/s\"}" >>"$raw"
        bps="$(curl -sS --ssl-reqd -k --max-time "$TIMEOUT" -o /dev/null -T "$src" \
            -w '%{speed_upload}' "$url/up.bin" 2>>"$log")" || bps=""
        if [ -n "$bps" ] && cmp -s "$src" "$root/up.bin"; then
            echo "{\"workload\":\"tls_stor_1\",\"value\":$(awk -v b="$bps" 'BEGIN{printf "%.2f", b/1048576}'),\"unit\":\"MiB/s\"}" >>"$raw"
        else
            echo '{"workload":"tls_stor_1","value":null,"unit":"MiB/s","error":"upload failed or differs"}' >>"$raw"
        fi
    done
    stop_server
}

say "clients=$CLIENTS rounds=$ROUNDS single-stream=${SIZE_MB}MiB concurrent=${CONC_MB}MiB servers=${SERVERS[*]}"
say "results go to $OUT"
START_TIME=$(date +%s)
for round in $(seq "$ROUNDS"); do
    say "round $round/$ROUNDS: loopback limit"
    "$FTPBENCH_BIN" --loopback-limit --size-mb "$SIZE_MB" --json \
        >"$OUT/raw/loopback-$round.jsonl" 2>>"$WORK/logs/ftpbench.log" || true
    for name in "${SERVERS[@]}"; do
        raw="$OUT/raw/$name-$round.jsonl"
        if ! start_server "$name" "$round"; then
            echo '{"workload":"start","value":null,"unit":"","error":"server did not start"}' >"$raw"
            continue
        fi
        say "round $round/$ROUNDS: $name (pid $SRV_PID, port $SRV_PORT)"
        "$FTPBENCH_BIN" --host "$HOST" --port "$SRV_PORT" "${BENCH_ARGS[@]}" \
            -n "$CLIENTS" --size-mb "$SIZE_MB" --conc-size-mb "$CONC_MB" \
            --pid "$SRV_PID" --timeout "$TIMEOUT" --json \
            >"$raw" 2>>"$WORK/logs/ftpbench.log" || say "$name: some workloads failed (see $raw)"
        stop_server
    done
    if [ -z "$TLS_NOTE" ]; then
        for name in ftpdlib pyftpdlib; do
            say "round $round/$ROUNDS: $name over TLS"
            tls_round "$name" "$round"
        done
    fi
done
ELAPSED=$(( $(date +%s) - START_TIME ))

# --- report ------------------------------------------------------------------------
bench_machine
VSFTPD_VERSION="$( (dpkg-query -W -f '${Version}' vsftpd 2>/dev/null) || echo unknown)"
export OUT CLIENTS ROUNDS SIZE_MB CONC_MB ELAPSED PYFTPDLIB_VERSION VSFTPD_VERSION VSFTPD_NOTE TLS_NOTE
export MACHINE_CPU MACHINE_MEM FTPDLIB_BIN
SERVER_LIST="${SERVERS[*]}"
RUN_DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)" # this report has always given the end of the run
export MACHINE_NPROC MACHINE_KERNEL SERVER_LIST RUN_DATE
export COMMAND_LINE="demo/bench/compare.sh --clients $CLIENTS --rounds $ROUNDS --size-mb $SIZE_MB --conc-size-mb $CONC_MB"

"$PYTHON" - <<'EOF'
import glob, json, os, statistics

out = os.environ["OUT"]
servers = os.environ["SERVER_LIST"].split()
n = os.environ["CLIENTS"]

# (workload, label, unit, which way is better)
ROWS = [
    ("stor_1", "STOR, one stream", "MiB/s", "higher"),
    ("retr_1", "RETR, one stream", "MiB/s", "higher"),
    ("retr_1_pct", "RETR, one stream, share of the loopback limit", "%", "higher"),
    ("login_n", f"{n} clients connect and log in", "s", "lower"),
    ("stor_1_idle", f"STOR, one stream, {n} idle sessions", "MiB/s", "higher"),
    ("retr_1_idle", f"RETR, one stream, {n} idle sessions", "MiB/s", "higher"),
    ("retr_n_time", f"{n} concurrent RETR", "s", "lower"),
    ("retr_n_rate", f"{n} concurrent RETR, aggregate", "MiB/s", "higher"),
    ("stor_n_time", f"{n} concurrent STOR", "s", "lower"),
    ("stor_n_rate", f"{n} concurrent STOR, aggregate", "MiB/s", "higher"),
    ("quit_n", f"{n} concurrent QUIT", "s", "lower"),
    ("logins_per_s", "logins per second (sequential sessions)", "1/s", "higher"),
    ("list_per_s", "LIST of 1000 files per second", "1/s", "higher"),
    ("rss_idle", "server memory, idle", "MiB", "lower"),
    ("rss_sessions", f"server memory, {n} sessions logged in", "MiB", "lower"),
    ("rss_transfer", f"server memory, peak during {n} RETR", "MiB", "lower"),
    ("tls_stor_1", "FTPS (PROT P) STOR, one stream, curl", "MiB/s", "higher"),
    ("tls_retr_1", "FTPS (PROT P) RETR, one stream, curl", "MiB/s", "higher"),
]

def load(path):
    rows = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    try:
                        rows.append(json.loads(line))
                    except ValueError:
                        pass
    except OSError:
        pass
    return rows

runs = []
values = {}   # (server, workload) -> [values]
errors = {}   # (server, workload) -> [errors]
for path in sorted(glob.glob(os.path.join(out, "raw", "*.jsonl"))):
    base = os.path.basename(path)[: -len(".jsonl")]
    server, _, rnd = base.rpartition("-")
    for r in load(path):
        r = dict(r, server=server, round=int(rnd))
        runs.append(r)
        key = (server, r.get("workload"))
        if r.get("value") is None:
            errors.setdefault(key, []).append(r.get("error", "failed"))
        else:
            values.setdefault(key, []).append(float(r["value"]))

def med(server, w):
    v = values.get((server, w))
    return statistics.median(v) if v else None

loop = med("loopback", "loopback_limit")
medians = {}
for s in servers:
    medians[s] = {w: med(s, w) for (w, *_rest) in ROWS}
    r1 = medians[s].get("retr_1")
    medians[s]["retr_1_pct"] = 100.0 * r1 / loop if (r1 and loop) else None
medians["loopback"] = {"loopback_limit": loop}

def fmt(v):
    if v is None:
        return "–"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}" if v >= 0.01 else f"{v:.2g}"

head = ["workload", "unit", "better"] + servers + ["ftpdlib/pyftpdlib"]
lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
for w, label, unit, better in ROWS:
    cells = [label, unit, better]
    for s in servers:
        v = medians[s].get(w)
        cell = fmt(v)
        if v is None and (s, w) in errors:
            cell = "failed"
        cells.append(cell)
    a, b = medians.get("ftpdlib", {}).get(w), medians.get("pyftpdlib", {}).get(w)
    cells.append(f"{a / b:.2f}" if (a is not None and b) else "–")
    lines.append("| " + " | ".join(cells) + " |")
table = "\n".join(lines)

fail_notes = []
for (s, w), errs in sorted(errors.items()):
    fail_notes.append(f"- {s} {w}: {len(errs)} failed run(s); first error: {errs[0]}")

env = os.environ
md = []
md.append(f"# ftpdlib vs pyftpdlib{' vs vsftpd' if 'vsftpd' in servers else ''}\n")
md.append(f"Run {env['RUN_DATE']}, {env['ROUNDS']} round(s), servers in turn "
          f"({', '.join(servers)}), medians of the rounds; total {env['ELAPSED']} s.\n")
md.append(f"- machine: {env['MACHINE_NPROC']} cores, {env['MACHINE_CPU']}, "
          f"kernel {env['MACHINE_KERNEL']}, {env['MACHINE_MEM']} memory")
md.append(f"- pyftpdlib {env['PYFTPDLIB_VERSION']} (fresh venv); vsftpd {env['VSFTPD_VERSION'] if 'vsftpd' in servers else '(not run)'}; "
          f"ftpdlib binary {env['FTPDLIB_BIN']}")
md.append(f"- {n} clients, single-stream file {env['SIZE_MB']} MiB, concurrent files "
          f"{env['CONC_MB']} MiB each; memory is VmRSS of the server process and its children")
md.append(f"- loopback limit (sendfile() over 127.0.0.1 to a reader, no FTP server; "
          f"median): {fmt(loop)} MiB/s")
md.append(f"- command: `{env['COMMAND_LINE']}`\n")
if env.get("VSFTPD_NOTE"):
    md.append(f"Note: {env['VSFTPD_NOTE']}.\n")
if env.get("TLS_NOTE"):
    md.append(f"Note: {env['TLS_NOTE']}.\n")
md.append(table + "\n")
if fail_notes:
    md.append("Failures:\n\n" + "\n".join(fail_notes) + "\n")
text = "\n".join(md)
with open(os.path.join(out, "results.md"), "w") as f:
    f.write(text)
with open(os.path.join(out, "results.json"), "w") as f:
    json.dump({
        "date": env["RUN_DATE"],
        "machine": {"nproc": int(env["MACHINE_NPROC"]), "cpu": env["MACHINE_CPU"],
                    "kernel": env["MACHINE_KERNEL"], "memory": env["MACHINE_MEM"]},
        "config": {"clients": int(n), "rounds": int(env["ROUNDS"]),
                   "size_mb": int(env["SIZE_MB"]), "conc_size_mb": int(env["CONC_MB"]),
                   "servers": servers, "pyftpdlib": env["PYFTPDLIB_VERSION"],
                   "vsftpd": env["VSFTPD_VERSION"] if "vsftpd" in servers else None},
        "medians": medians,
        "runs": runs,
    }, f, indent=1)

# Chart data: speed-up over pyftpdlib, higher is better for every row.
with open(os.path.join(out, "chart.dat"), "w") as f:
    others = [s for s in servers if s != "pyftpdlib"]
    f.write("# workload " + " ".join(others) + "\n")
    for w, label, unit, better in ROWS:
        if w == "retr_1_pct":
            continue
        b = medians.get("pyftpdlib", {}).get(w)
        vals = []
        for s in others:
            a = medians[s].get(w)
            if a is None or not b:
                vals.append("NaN")
            else:
                vals.append(f"{(a / b) if better == 'higher' else (b / a):.4f}")
        f.write(f"{w} " + " ".join(vals) + "\n")
print(text)
EOF

# --- chart -----------------------------------------------------------------------
others=()
for s in "${SERVERS[@]}"; do [ "$s" = pyftpdlib ] || others+=("$s"); done
if command -v gnuplot >/dev/null 2>&1; then
    plots=""
    col=2
    for s in "${others[@]}"; do
        plots+="${plots:+, }'$OUT/chart.dat' using $col:xtic(1) title '$s'"
        col=$((col + 1))
    done
    if gnuplot 2>>"$WORK/logs/gnuplot.log" <<EOF
set terminal pngcairo size 1100,550 noenhanced
set output '$OUT/chart.png'
set title 'Speed-up over pyftpdlib (higher is better; 1 = as fast as pyftpdlib)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y 2
set grid ytics
set xtics rotate by -35 left
set key outside right top
set datafile missing 'NaN'
set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2
plot $plots
EOF
    then
        say "chart: $OUT/chart.png"
    else
        say "gnuplot failed, no chart (see $WORK/logs/gnuplot.log)"
    fi
elif "$PYTHON" -c 'import matplotlib' 2>/dev/null; then
    OUT="$OUT" "$PYTHON" - <<'EOF'
import os
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
out = os.environ["OUT"]
rows = [l.split() for l in open(os.path.join(out, "chart.dat"))]
names, data = rows[0][2:], rows[1:]
fig, ax = plt.subplots(figsize=(11, 5.5))
width = 0.8 / max(1, len(names))
for k, name in enumerate(names):
    ax.bar([i + k * width for i in range(len(data))],
           [float(r[k + 1]) for r in data], width, label=name)
ax.set_xticks([i + 0.4 - width / 2 for i in range(len(data))])
ax.set_xticklabels([r[0] for r in data], rotation=35, ha="right")
ax.set_yscale("log", base=2)
ax.axhline(1, linestyle="--", color="grey")
ax.set_title("Speed-up over pyftpdlib (higher is better; 1 = as fast as pyftpdlib)")
ax.legend()
fig.tight_layout()
fig.savefig(os.path.join(out, "chart.png"))
EOF
    say "chart: $OUT/chart.png"
else
    say "neither gnuplot nor matplotlib found: no chart (data in $OUT/chart.dat)"
fi
say "results: $OUT/results.md and $OUT/results.json"
