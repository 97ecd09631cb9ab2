#!/usr/bin/env bash
# The one command that runs every test of the workspace on a fresh machine:
#   tests/run.sh [extra cargo test arguments]
# It checks the dependency policy of deny.toml (cargo-deny, under tests/.tools), installs what
# the tests need (a Python venv with moto[server], cfn-lint, ziglang and the Python
# proc_wrapper 6.0.2 that the differential suite compares against under tests/.venv, cargo-zigbuild under tests/.tools, cargo-lambda, the musl targets, qemu-user),
# builds the static release binaries and the Lambda layer zips, starts two moto_servers on free loopback ports (the second
# checks signatures when a test turns its IAM authentication on), runs the whole suite
# against the real binaries, and stops what it started, whatever the outcome.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in cargo python3 unshare; do
  command -v "$tool" >/dev/null || { echo "tests/run.sh: '$tool' is required" >&2; exit 1; }
done

source tests/services.sh
trap stop_services EXIT
# The dependency policy (deny.toml) first: it is quick.
check_dependencies
setup_venv
# The layers first: `cargo lambda build` moves every binary of its target folder (the static
# proc_wrapper builds share it) into its own folder.
build_layers
build_static
setup_qemu
start_moto

# The end-to-end tests run example programs (the Lambda test function) as real binaries;
# `cargo test --all-targets` builds examples only as test harnesses.
cargo build --workspace --examples --quiet
cargo test --workspace --all-targets "$@"
"$VENV/bin/cfn-lint" template.yaml
