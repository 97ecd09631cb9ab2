#!/usr/bin/env bash
# Builds the release artifacts of proc_wrapper: static (musl) binaries for x86_64 and arm64
# Linux, stripped and size-tuned (profile `dist`), packaged as versioned archives with
# SHA-256 checksums in dist/.
#   cli/release.sh
# Needs cargo, rustup and python3; installs zig (PyPI ziglang) and cargo-zigbuild locally.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/services.sh
build_static
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
rm -rf dist && mkdir -p dist
for t in "${STATIC_TARGETS[@]}"; do
  name="proc_wrapper-$version-$t"
  mkdir -p "dist/$name"
  cp "target/$t/dist/proc_wrapper" LICENSE README.md "dist/$name/"
  tar -C dist -czf "dist/$name.tar.gz" "$name"
  rm -rf "dist/$name"
  printf '%s: %s bytes\n' "$t" "$(stat -c %s "target/$t/dist/proc_wrapper")"
done
(cd dist && sha256sum ./*.tar.gz > SHA256SUMS)
cat dist/SHA256SUMS
