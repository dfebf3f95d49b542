# Sourced by the contract checks: starts `backup-gateway serve --demo` on a
# free loopback port in a folder of its own (so it never touches the
# repository's data/), waits until it is ready, and exports GATEWAY,
# TOKEN_A and TOKEN_B. The demo stops when the sourcing script exits.
#
# BACKUP_GATEWAY_BIN names the binary (default: target/debug/backup-gateway
# of this repository, or of CARGO_TARGET_DIR when set; built by the caller).

CONTRACT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# A TCP port nothing listens on now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

stop_demo() {
  if [ -n "${DEMO_PID:-}" ] && kill -0 "$DEMO_PID" 2>/dev/null; then
    kill -TERM "$DEMO_PID" 2>/dev/null || true
    wait "$DEMO_PID" 2>/dev/null || true
  fi
  if [ -n "${DEMO_DIR:-}" ]; then
    rm -rf "$DEMO_DIR"
  fi
}

# start_demo [EXTRA_FLAGS...]
start_demo() {
  local bin="${BACKUP_GATEWAY_BIN:-${CARGO_TARGET_DIR:-$CONTRACT_ROOT/target}/debug/backup-gateway}"
  if [ ! -x "$bin" ]; then
    echo "no gateway binary at $bin: run \`cargo build\` first, or set BACKUP_GATEWAY_BIN" >&2
    return 1
  fi
  DEMO_DIR="$(mktemp -d)"
  local port
  port="$(free_port)"
  # The demo on its embedded defaults only: a BACKUP_GATEWAY_* setting of
  # the caller's shell (a real JWT secret, say) never reaches it.
  (cd "$DEMO_DIR" && unset "${!BACKUP_GATEWAY_@}" && exec "$bin" serve --demo --listen "127.0.0.1:$port" "$@") \
    >"$DEMO_DIR/gateway.log" 2>&1 &
  DEMO_PID=$!
  trap stop_demo EXIT
  local _
  for _ in $(seq 1 300); do
    if [ -f "$DEMO_DIR/data/demo.env" ] && curl -fs "http://127.0.0.1:$port/readyz" >/dev/null; then
      # shellcheck disable=SC1091
      source "$DEMO_DIR/data/demo.env"
      export GATEWAY TOKEN_A TOKEN_B
      return 0
    fi
    if ! kill -0 "$DEMO_PID" 2>/dev/null; then
      break
    fi
    sleep 0.1
  done
  echo "the demo did not become ready; its log follows" >&2
  cat "$DEMO_DIR/gateway.log" >&2
  return 1
}
