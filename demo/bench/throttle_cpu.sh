#!/usr/bin/env bash
# What throttled transfers cost while they wait: 100 downloads at 10 KiB/s each for 10 s,
# the server's CPU time read from /proc. Opt-in (not part of `cargo test`); loopback only.
# Arguments pass through: transfers, rate (64K, 1M, ...), seconds.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec cargo run --quiet --release --example throttle_cpu -- "$@"
