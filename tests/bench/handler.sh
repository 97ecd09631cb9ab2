#!/usr/bin/env bash
# Benchmark of issue 6: the time the Rust Lambda handler wrapper and ManagedCall add per call,
# against the local fake API server.
# Usage: tests/bench/handler.sh [CALLS]
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet -p procwrapper-tests --bin bench_handler
target/release/bench_handler "${1:-500}"
