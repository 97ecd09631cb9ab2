# Sourced by tests/run.sh and the benchmark scripts: installs and starts the services the
# tests need, and stops them on exit.
#   setup_venv   creates tests/.venv with moto[server] and cfn-lint (once)
#   start_moto   starts moto_server on a free loopback port and exports the variables that
#                point the tests (and the AWS SDK) at it
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
}

free_port() {
  "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start_moto() {
  local port log
  port=$(free_port)
  log="${TMPDIR:-/tmp}/moto_server.$port.log"
  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  SERVICE_PIDS+=($!)
  for _ in $(seq 1 300); do
    if "$VENV/bin/python" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/')" 2>/dev/null; then
      export PROC_WRAPPER_TEST_MOTO_URL="http://127.0.0.1:$port"
      echo "tests: moto_server on $PROC_WRAPPER_TEST_MOTO_URL" >&2
      return 0
    fi
    sleep 0.1
  done
  echo "tests: moto_server did not start; its log:" >&2
  cat "$log" >&2
  return 1
}

stop_services() {
  for pid in "${SERVICE_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${SERVICE_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
}
