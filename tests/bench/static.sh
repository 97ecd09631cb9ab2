#!/usr/bin/env bash
# Issue 8's numbers: the size of each static release binary, and the start-up overhead and
# memory of the static x86_64 binary compared with the dynamic (glibc) build.
# Usage: tests/bench/static.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/services.sh
build_static
cargo build --release --quiet -p proc_wrapper_cli -p procwrapper-tests --bins
for t in "${STATIC_TARGETS[@]}"; do
  printf 'static %-28s %9s bytes (target <= 6 MB)\n' "$t" "$(stat -c %s "target/$t/dist/proc_wrapper")"
done
printf 'dynamic x86_64-unknown-linux-gnu    %9s bytes\n' "$(stat -c %s target/release/proc_wrapper)"
echo "--- static (musl) x86_64:"
target/release/bench_overhead "target/x86_64-unknown-linux-musl/dist/proc_wrapper" "${1:-500}" | tail -n 2
echo "--- dynamic (glibc) x86_64:"
target/release/bench_overhead target/release/proc_wrapper "${1:-500}" | tail -n 2
