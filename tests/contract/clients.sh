#!/usr/bin/env bash
# Contract check: API clients GENERATED from openapi/openapi.json, with no hand
# edits, do the whole job against the running demo gateway.
#
#   bash tests/contract/clients.sh
#
# Needs target/debug/backup-gateway (`cargo build`; or BACKUP_GATEWAY_BIN),
# python3 (3.11+), Node.js 20+ with npm, and the PyPI and npm registries the
# first time (later runs reuse what is installed under target/contract/clients/).
#
# For each language it generates a client into target/contract/clients/
# (git-ignored, never committed) and runs a driver that uses only that client:
#   python      openapi-python-client, `mypy --strict`, then
#               python -> tests/contract/clients/python/drive.py
#   typescript  openapi-typescript + openapi-fetch, strict `tsc --noEmit`,
#               then tsc -> node -> tests/contract/clients/typescript/drive.ts
# Each driver (a) asks /readyz and lists (and pages) tenant-a's snapshots,
# (b) creates backups (202 + typed job + Location; with no body; with an
# Idempotency-Key, retried), (c) long-polls the jobs (?wait=) until
# `succeeded`, (d) pages GET /jobs?state=succeeded&limit=1 along
# next_page_token and filters by snapshot, (e) gets typed Problem bodies for
# 404s, 409 snapshot-busy, 409 job-not-cancellable, 422 and 401, (f) starts a
# webhook receiver of its own on 127.0.0.1, subscribes it to job.succeeded
# (201 + secret + Location), lists (and pages) and gets the webhook, creates a
# backup with a callback_url (callback_secret, links.callback), waits until
# both deliveries succeed, verifies what the receiver got (the JobEventView
# bodies, the Standard Webhooks signatures with each secret, the timestamps),
# reads the delivery, rotates the secret, deletes the webhook (then 404
# webhook-not-found) and gets 400 webhook-target-not-allowed for a URL outside
# the demo's allow-list.
# A generator warning about the document fails the check too.
#
# CONTRACT_CLIENT_LANGS="python typescript" picks the languages (default both);
# CONTRACT_OPENAPI=FILE generates from another document (to try a fix to it).
# Exits non-zero when any language failed; the last line sums them up.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# CONTRACT_OPENAPI names another document to generate from (to try a fix to
# the document before making it; the server still answers as it does).
SPEC="${CONTRACT_OPENAPI:-$ROOT/openapi/openapi.json}"
HERE="$ROOT/tests/contract/clients"
WORK="$ROOT/target/contract/clients"
LANGS="${CONTRACT_CLIENT_LANGS:-python typescript}"
# A driver that hangs (a long poll never answered, say) is stopped after this.
DRIVER_TIMEOUT=300

started=$SECONDS
log() { echo "clients.sh: $*"; }
die() {
  echo "clients.sh: FAIL: $*" >&2
  exit 1
}

command -v python3 >/dev/null || die "python3 is not installed"
command -v node >/dev/null || die "node is not installed (Node.js 20+ is needed)"
command -v npm >/dev/null || die "npm is not installed"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] || die "Node.js 20+ is needed, found $(node --version)"
[ -f "$SPEC" ] || die "no OpenAPI document at $SPEC"

mkdir -p "$WORK"

# shellcheck source=tests/contract/demo.sh
source "$ROOT/tests/contract/demo.sh"
log "starting the demo gateway"
# shellcheck disable=SC2119 # the demo takes no extra flags here
start_demo || die "the demo gateway did not start"
log "demo at $GATEWAY ($("${BACKUP_GATEWAY_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/backup-gateway}" --version 2>/dev/null || echo backup-gateway))"
log "document: ${SPEC#"$ROOT"/} (sha256 $(sha256sum "$SPEC" | cut -c1-16))"

# A generator's output, kept in a file; shown when it warns or fails.
show_log() {
  sed 's/^/    | /' "$1"
}

# --- Python: openapi-python-client ------------------------------------------
python_check() {
  local venv="$WORK/venv" out="$WORK/python" genlog="$WORK/python-generate.log"
  log "python: installing the pinned generator into ${venv#"$ROOT"/}"
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" || return 1
  fi
  if ! cmp -s "$HERE/python/requirements.txt" "$venv/.contract-requirements.txt"; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/python/requirements.txt" || {
      echo "clients.sh: python: pip install -r tests/contract/clients/python/requirements.txt failed" >&2
      return 1
    }
    cp "$HERE/python/requirements.txt" "$venv/.contract-requirements.txt"
  fi

  log "python: generating backup_gateway_client from ${SPEC#"$ROOT"/} ($("$venv/bin/openapi-python-client" --version))"
  rm -rf "$out"
  mkdir -p "$out"
  # The venv's bin first: the generator's post-hooks run its own ruff.
  if ! PATH="$venv/bin:$PATH" "$venv/bin/openapi-python-client" generate \
    --path "$SPEC" --config "$HERE/python/config.yaml" --meta none \
    --output-path "$out/backup_gateway_client" >"$genlog" 2>&1; then
    show_log "$genlog" >&2
    echo "clients.sh: python: openapi-python-client could not generate a client from the document" >&2
    return 1
  fi
  if grep -qi 'warning' "$genlog"; then
    show_log "$genlog" >&2
    echo "clients.sh: python: openapi-python-client warned about the document (parts of the client are missing)" >&2
    return 1
  fi
  [ -f "$out/backup_gateway_client/__init__.py" ] || {
    echo "clients.sh: python: no package was generated" >&2
    return 1
  }

  log "python: mypy --strict drive.py against the generated package"
  (cd "$HERE/python" && PYTHONPATH="$out" MYPYPATH="$out" "$venv/bin/mypy" --strict --python-version 3.11 \
    --cache-dir "$WORK/mypy-cache" drive.py) || {
    echo "clients.sh: python: drive.py does not type-check against the generated client" >&2
    return 1
  }

  log "python: running tests/contract/clients/python/drive.py"
  PYTHONPATH="$out" PYTHONDONTWRITEBYTECODE=1 timeout "$DRIVER_TIMEOUT" "$venv/bin/python" "$HERE/python/drive.py" || {
    echo "clients.sh: python: drive.py failed (exit $?; 124 is the ${DRIVER_TIMEOUT} s timeout)" >&2
    return 1
  }
}

# --- TypeScript: openapi-typescript + openapi-fetch -------------------------
typescript_check() {
  local dir="$WORK/typescript" genlog="$WORK/typescript-generate.log"
  mkdir -p "$dir"
  cp "$HERE/typescript/package.json" "$HERE/typescript/package-lock.json" \
    "$HERE/typescript/tsconfig.json" "$HERE/typescript/drive.ts" "$dir/"
  if ! cmp -s "$HERE/typescript/package-lock.json" "$dir/node_modules/.contract-package-lock.json"; then
    log "typescript: npm ci (the pinned package-lock.json) in ${dir#"$ROOT"/}"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) || {
      echo "clients.sh: typescript: npm ci failed" >&2
      return 1
    }
    cp "$HERE/typescript/package-lock.json" "$dir/node_modules/.contract-package-lock.json"
  fi

  log "typescript: generating generated/schema.d.ts from ${SPEC#"$ROOT"/}"
  rm -rf "$dir/generated" "$dir/dist"
  if ! (cd "$dir" && ./node_modules/.bin/openapi-typescript "$SPEC" -o generated/schema.d.ts) >"$genlog" 2>&1; then
    show_log "$genlog" >&2
    echo "clients.sh: typescript: openapi-typescript could not generate types from the document" >&2
    return 1
  fi
  if grep -Eqi 'warn|⚠|✘' "$genlog"; then
    show_log "$genlog" >&2
    echo "clients.sh: typescript: openapi-typescript warned about the document" >&2
    return 1
  fi

  log "typescript: tsc --noEmit (strict)"
  (cd "$dir" && ./node_modules/.bin/tsc --noEmit -p .) || {
    echo "clients.sh: typescript: drive.ts does not type-check against the generated types" >&2
    return 1
  }
  (cd "$dir" && ./node_modules/.bin/tsc -p .) || {
    echo "clients.sh: typescript: tsc could not compile drive.ts" >&2
    return 1
  }
  log "typescript: running drive.ts (node $(node --version))"
  (cd "$dir" && timeout "$DRIVER_TIMEOUT" node dist/drive.js) || {
    echo "clients.sh: typescript: drive.ts failed (exit $?; 124 is the ${DRIVER_TIMEOUT} s timeout)" >&2
    return 1
  }
}

ok_langs=()
bad_langs=()
for lang in $LANGS; do
  case "$lang" in
    python | typescript) ;;
    *) die "unknown language '$lang' in CONTRACT_CLIENT_LANGS (python, typescript)" ;;
  esac
  t0=$SECONDS
  # A subshell with errexit of its own (inside an `if` bash would ignore it):
  # a failing language stops there, and the others still run.
  set +e
  (
    set -e
    "${lang}_check"
  )
  rc=$?
  set -e
  if [ "$rc" -eq 0 ]; then
    ok_langs+=("$lang")
    log "$lang: passed ($((SECONDS - t0)) s)"
  else
    bad_langs+=("$lang")
    echo "clients.sh: $lang: FAILED ($((SECONDS - t0)) s)" >&2
  fi
done

log "checked: clients generated from ${SPEC#"$ROOT"/}, with no hand edits: readyz, list (and page) snapshots, create backups (202 + job + Location), long-poll jobs to \`succeeded\`, page filtered job lists, retry with an Idempotency-Key, read typed Problem errors (404, 409 snapshot-busy, 409 job-not-cancellable, 422 idempotency-key-reused, 401), and subscribe a webhook and a create's callback_url, receive and verify their signed deliveries, list deliveries, rotate the secret and delete (404 webhook-not-found, 400 webhook-target-not-allowed)"
log "took $((SECONDS - started)) s"
if [ "${#bad_langs[@]}" -gt 0 ]; then
  echo "clients.sh: the gateway's log, its last 40 records:" >&2
  grep -E '^[0-9]{4}-' "$DEMO_DIR/gateway.log" | tail -n 40 | sed 's/^/    | /' >&2 || true
  echo "clients.sh: FAIL: the generated client(s) failed: ${bad_langs[*]} (see above)" >&2
  echo "clients: ${#ok_langs[@]} passed, ${#bad_langs[@]} failed"
  exit 1
fi
echo "clients: ${#ok_langs[@]} passed, 0 failed"
