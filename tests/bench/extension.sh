#!/usr/bin/env bash
# Benchmarks of cloudreactor-extension (targets in tests/src/bin/bench_extension.rs): the
# stripped static binary per architecture (from the layer zips), process start to the first
# /next and the idle RSS, the time the Runtime API proxy adds to a round trip, the time added
# after the runtime's response with the API server reachable (frequent, sporadic, sporadic with
# the handler wrapper, sporadic through the exec wrapper and the proxy), slow and down, and
# what the backlog delivers after an outage or a slow server.
# Usage: tests/bench/extension.sh [STARTS] [INVOCATIONS] [LOAD_INVOCATIONS] [ROUND_TRIPS]
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/services.sh
build_layers
echo "--- stripped static binaries (layer zips: $(dirname "$PROC_WRAPPER_TEST_LAYER_X86_64"))"
for arch in x86_64 arm64; do
  zip="dist/cloudreactor-extension-$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)-$arch.zip"
  size=$(python3 -c "import zipfile,sys; z=zipfile.ZipFile(sys.argv[1]); print(z.getinfo('extensions/cloudreactor-extension').file_size)" "$zip")
  printf '%-8s binary %8d bytes (%.2f MB, target <= 5 MB), layer zip %8d bytes\n' \
    "$arch" "$size" "$(python3 -c "print($size/1e6)")" "$(stat -c %s "$zip")"
done
# The benchmark runs the x86_64 static binary of the layer, as Lambda would.
ext="target/layer-x86_64/extensions/cloudreactor-extension"
cargo build --release --quiet -p cloudreactor-extension --example test_function
cargo build --release --quiet -p procwrapper-tests --bin bench_extension
fn="target/release/examples/test_function"
echo "--- start-up"
target/release/bench_extension "$ext" "$fn" startup "${1:-50}"
echo "--- Runtime API proxy"
target/release/bench_extension "$ext" "$fn" roundtrip "${4:-2000}"
echo "--- per invocation"
for mode in up up-sporadic wrapped-sporadic proxy-sporadic; do
  target/release/bench_extension "$ext" "$fn" invocations "${2:-500}" "$mode"
done
echo "--- load: API server slow (1 s per answer), then down; back to back, then 5 ms apart"
for pause in 0 5; do
  target/release/bench_extension "$ext" "$fn" invocations "${3:-1000}" slow "$pause"
  target/release/bench_extension "$ext" "$fn" invocations "${3:-1000}" down "$pause"
done
echo "--- outage, then recovery: 503 with Retry-After: 1, then 1 s per answer, during the invocations"
target/release/bench_extension "$ext" "$fn" invocations "${3:-1000}" outage
target/release/bench_extension "$ext" "$fn" invocations "${3:-1000}" slow-then-fast
