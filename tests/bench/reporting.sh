#!/usr/bin/env bash
# Benchmarks of reporting (targets in tests/src/bin/bench_reporting.rs): the time a reported
# run adds against a local API server, and the UDP status message ingestion rate.
# Usage: tests/bench/reporting.sh [RUNS] [MESSAGES]
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet -p proc_wrapper_cli -p procwrapper-tests --bins
target/release/bench_reporting run target/release/proc_wrapper "${1:-200}"
target/release/bench_reporting udp target/release/proc_wrapper "${2:-200000}"
