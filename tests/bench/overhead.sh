#!/usr/bin/env bash
# Benchmark of the wrapper's overhead and peak RSS (targets, as in the README's introduction:
# under 2 ms added and under 6 MiB): builds the release binary and compares
# `proc_wrapper --offline-mode -- true` with `true`.
# Usage: tests/bench/overhead.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet -p proc_wrapper_cli -p procwrapper-tests --bins
ls -l target/release/proc_wrapper | awk '{print "release binary size: " $5 " bytes"}'
exec target/release/bench_overhead target/release/proc_wrapper "${1:-500}"
