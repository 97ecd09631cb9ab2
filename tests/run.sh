#!/usr/bin/env bash
# The one command that runs every test of the workspace on a fresh machine:
#   tests/run.sh
# It prepares what the tests need (later: a Python venv with moto and cfn-lint, and the
# services they start), runs the whole suite against the real binaries, and stops what it
# started, whatever the outcome. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in cargo unshare; do
  command -v "$tool" >/dev/null || { echo "tests/run.sh: '$tool' is required" >&2; exit 1; }
done

cleanup() { :; }
trap cleanup EXIT

cargo test --workspace --all-targets "$@"
