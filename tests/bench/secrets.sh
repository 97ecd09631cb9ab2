#!/usr/bin/env bash
# Benchmark of secret fetching (README "Secrets and configuration", "Fetching": a secret
# referenced many times is fetched once): 50 variables referencing 5 secrets in moto must
# cause exactly 5 fetches, counted at the emulator; and the wall time of concurrent vs
# one-by-one fetching.
# Usage: tests/bench/secrets.sh [RUNS] [LATENCY_MS]
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/services.sh
trap stop_services EXIT
setup_venv
start_moto
export AWS_ENDPOINT_URL="$PROC_WRAPPER_TEST_MOTO_URL" AWS_ACCESS_KEY_ID=testing \
  AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-2 AWS_EC2_METADATA_DISABLED=true
cargo build --release --quiet -p procwrapper-tests --bin bench_secrets
recorder() { "$VENV/bin/python" -c "import urllib.request as u,sys; r=u.urlopen(u.Request('$PROC_WRAPPER_TEST_MOTO_URL/moto-api/recorder/$1', method='$2')); sys.stdout.write(r.read().decode())"; }
recorder reset-recording POST >/dev/null
recorder start-recording POST >/dev/null
target/release/bench_secrets count
recorder stop-recording POST >/dev/null
fetches=$(recorder download-recording GET | grep -c 'secretsmanager.GetSecretValue' || true)
echo "GetSecretValue requests seen by moto for that resolution: $fetches (target: exactly 5)"
target/release/bench_secrets time "${1:-20}" "${2:-20}"
