#!/usr/bin/env bash
# Runs one cargo-fuzz target for a bounded time and says how many inputs it tried.
#
#   fuzz/run.sh TARGET [SECONDS]     # SECONDS default 600
#   fuzz/run.sh all [SECONDS]        # every target in turn, SECONDS each
#
# Targets: parsers (command line, paths, rates, masquerade rules, permissions, times),
# session (the session core under any ordering of lines and owner events; seeds in
# seeds/session/, made from the integration tests by make-seeds.py), listing (LIST, NLST,
# MLSD of arbitrary names), users_file (the command's --users parser), tls_control (AUTH
# TLS with pipelined bytes, commands over TLS, CCC; real sockets). Needs the nightly
# toolchain and cargo-fuzz (installed here if missing). New inputs go to corpus/TARGET
# (not in git); a crash stops the run, is saved under artifacts/TARGET/ and makes this
# script fail: add it to tests/regressions/fuzz.rs.
set -euo pipefail
cd "$(dirname "$0")"

targets=(parsers session listing users_file tls_control)
target=${1:?usage: fuzz/run.sh TARGET|all [SECONDS] (targets: ${targets[*]})}
seconds=${2:-600}

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: the nightly toolchain is needed (rustup toolchain install nightly)" >&2
    exit 1
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

run_one() {
    local t=$1 log
    mkdir -p "corpus/$t" "seeds/$t"
    log=$(mktemp)
    # -print_final_stats gives the executions; the corpus directories come after the
    # options: new inputs are written to the first.
    if ! cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        rm -f "$log"
        echo "fuzz/run.sh: $t found a crash (see artifacts/$t/)" >&2
        return 1
    fi
    local runs
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    echo "$t: ${runs:-?} executions in ${seconds} s, no crash"
    rm -f "$log"
}

if [ "$target" = all ]; then
    for t in "${targets[@]}"; do run_one "$t"; done
else
    run_one "$target"
fi
