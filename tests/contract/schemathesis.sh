#!/usr/bin/env bash
# Contract check: Schemathesis (pinned in tests/contract/schemathesis/
# requirements.txt) against the running demo gateway, with every check.
#
#   bash tests/contract/schemathesis.sh
#
# Needs target/debug/backup-gateway (`cargo build`; or BACKUP_GATEWAY_BIN),
# python3 3.11+ (Schemathesis 4.32 needs it) and PyPI the first time (later
# runs reuse the venv under target/contract/schemathesis/, git-ignored).
#
# Two runs against one fresh demo (`serve --demo`, rate limit off, long polls
# capped at 2 s so that a fuzzed `?wait=` cannot stall the run; the served
# document's `wait` maximum follows that cap), after one full backup of each
# of tenant-a's snapshots (an incremental one needs an earlier backup):
#   1. all checks (`--checks all`) as tenant-a, on the document the gateway
#      serves at /openapi.json, with every phase: examples, coverage,
#      fuzzing, and stateful (Schemathesis infers links from the 202's
#      Location and from the response schemas, and follows the document's
#      own `links` when it has some). Settings: schemathesis/schemathesis.toml
#      (fixed seed and examples per operation; no state kept between runs).
#   2. `object_level_authorization`, which needs two identities and so does
#      nothing in run 1: tenant-a and tenant-b as peers, each reading the
#      other's objects. Settings: schemathesis/object-level-authorization.toml.
# After each run the NDJSON report is summed up (checks run and failed,
# failures grouped with a curl command each) by schemathesis/summarize.py.
# Reports: target/contract/schemathesis/report/.
#
# SCHEMATHESIS_TIMEOUT bounds each run's wall time in seconds (default 600);
# SCHEMATHESIS_MAX_EXAMPLES overrides the examples per operation of run 1.
# Exits non-zero when either run found a failure or an error (or timed out);
# no check is excluded or relaxed. schemathesis/hooks.py gives cases the two
# values no schema can describe (a real page token, a fresh Idempotency-Key)
# wherever the generated value fits the schema; values made to break it go
# as generated.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/tests/contract/schemathesis"
WORK="$ROOT/target/contract/schemathesis"
VENV="$WORK/venv"
REPORTS="$WORK/report"
TIME_LIMIT="${SCHEMATHESIS_TIMEOUT:-600}"

started=$SECONDS
log() { echo "schemathesis.sh: $*"; }
die() {
  echo "schemathesis.sh: FAIL: $*" >&2
  exit 1
}

command -v python3 >/dev/null || die "python3 is not installed"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "python3 3.11+ is needed, found $(python3 --version)"
command -v curl >/dev/null || die "curl is not installed"
command -v timeout >/dev/null || die "timeout (coreutils) is not installed"

# --- Schemathesis, pinned, in a venv of its own -------------------------------
mkdir -p "$WORK"
if [ ! -x "$VENV/bin/python" ]; then
  log "creating the venv ${VENV#"$ROOT"/}"
  python3 -m venv "$VENV" || die "python3 -m venv failed"
fi
if ! cmp -s "$HERE/requirements.txt" "$VENV/.contract-requirements.txt"; then
  log "installing tests/contract/schemathesis/requirements.txt"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements.txt" ||
    die "pip install -r tests/contract/schemathesis/requirements.txt failed"
  cp "$HERE/requirements.txt" "$VENV/.contract-requirements.txt"
fi
ST="$VENV/bin/schemathesis"
log "$("$ST" --version)"

# --- the demo ----------------------------------------------------------------
# shellcheck source=tests/contract/demo.sh
source "$ROOT/tests/contract/demo.sh"
log "starting the demo gateway"
start_demo --rate-limit 0 --max-wait 2s || die "the demo gateway did not start"
log "demo at $GATEWAY"

# A precondition the document states but no schema can: an incremental
# backup needs an earlier `available` backup of the volume, or Cinder refuses
# it (422). Give each of tenant-a's volumes one full backup first, so that
# `incremental: true`, valid by the schema, can be accepted; it also gives
# the first phases real job ids to draw on. Two webhooks come first (to a
# port nobody listens on: their deliveries stay pending), so that the
# listings of webhooks and of deliveries have pages to give tokens of.
log "priming: two webhooks, and one full backup of each of tenant-a's snapshots"
export PAGE_TOKENS="$WORK/page-tokens.json"
"$VENV/bin/python" - <<'EOF' || die "priming the demo failed"
import json, os, time, urllib.request

gateway, token = os.environ["GATEWAY"], os.environ["TOKEN_A"]


def call(method, path, body=None):
    request = urllib.request.Request(
        gateway + path,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        data=None if body is None else json.dumps(body).encode(),
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


hooks = [call("POST", "/webhooks", {"url": f"http://127.0.0.1:9/primed-{n}"})["id"] for n in range(2)]
snapshots = [s["id"] for s in call("GET", "/snapshots?limit=1000")["snapshots"]]
jobs = [call("POST", f"/snapshots/{s}/backups")["id"] for s in snapshots]
deadline = time.monotonic() + 60
for job in jobs:
    while (state := call("GET", f"/jobs/{job}?wait=2")["state"]) in ("queued", "running"):
        if time.monotonic() > deadline:
            raise SystemExit(f"job {job} still {state} after 60 s")
    if state != "succeeded":
        raise SystemExit(f"job {job} ended {state}")
# Page tokens of the webhook listings, given out now (the runs may delete
# these webhooks): the hooks use them (see hooks.py).
while len(call("GET", f"/webhooks/{hooks[0]}/deliveries?limit=2")["deliveries"]) < 2:
    if time.monotonic() > deadline:
        raise SystemExit("the primed webhook has no deliveries after 60 s")
    time.sleep(0.2)
tokens = {
    "/webhooks": call("GET", "/webhooks?limit=1")["next_page_token"],
    "/webhooks/{webhook_id}/deliveries": call("GET", f"/webhooks/{hooks[0]}/deliveries?limit=1")["next_page_token"],
}
with open(os.environ["PAGE_TOKENS"], "w", encoding="utf-8") as out:
    json.dump(tokens, out)
print(f"schemathesis.sh: primed {len(jobs)} snapshots and {len(hooks)} webhooks")
EOF

rm -rf "$REPORTS"
mkdir -p "$REPORTS"
# Values valid only by the server's word (a page token it gave out, a first
# use of an Idempotency-Key) are given by the hooks.
export SCHEMATHESIS_HOOKS=hooks
export PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}"
# Schemathesis and Hypothesis keep state in the current folder
# (.schemathesis/, .hypothesis/): keep it out of the work tree.
cd "$WORK"

# run NAME CONFIG [ARGS...]: one bounded Schemathesis run; its status is
# left in $status (0: no failure).
run() {
  local name="$1" config="$2"
  shift 2
  local started_run=$SECONDS
  log "run '$name' (at most ${TIME_LIMIT}s)"
  status=0
  timeout --kill-after=30 "$TIME_LIMIT" "$ST" --config-file "$config" run "$GATEWAY/openapi.json" \
    --no-color --report junit,ndjson --report-dir "$REPORTS/$name" "$@" || status=$?
  if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    echo "schemathesis.sh: run '$name' did not finish within ${TIME_LIMIT}s" >&2
  fi
  local ndjson
  for ndjson in "$REPORTS/$name"/ndjson-*.ndjson; do
    [ -f "$ndjson" ] || continue
    echo
    log "run '$name', summed up:"
    GATEWAY="$GATEWAY" TOKEN_A="$TOKEN_A" TOKEN_B="$TOKEN_B" \
      "$VENV/bin/python" "$HERE/summarize.py" "$ndjson" | sed 's/^/    /' || true
  done
  log "run '$name': exit status $status, $((SECONDS - started_run))s"
}

# 1. Every check, as tenant-a.
main_args=(--checks all -H "Authorization: Bearer $TOKEN_A")
if [ -n "${SCHEMATHESIS_MAX_EXAMPLES:-}" ]; then
  main_args+=(--max-examples "$SCHEMATHESIS_MAX_EXAMPLES")
fi
run all-checks "$HERE/schemathesis.toml" "${main_args[@]}"
main_status=$status

# 2. Object-level authorization: tenant-a and tenant-b as peers. The auth
# file holds both tokens: it lives in the demo's folder, removed with it.
SCHEMATHESIS_WFC_AUTH="$DEMO_DIR/wfc-auth.json"
export SCHEMATHESIS_WFC_AUTH
(
  umask 077
  "$VENV/bin/python" - "$SCHEMATHESIS_WFC_AUTH" <<'EOF'
import json, os, sys
users = [("tenant-a", os.environ["TOKEN_A"]), ("tenant-b", os.environ["TOKEN_B"])]
auth = [
    {"name": name, "fixedHeaders": [{"name": "Authorization", "value": f"Bearer {token}"}]}
    for name, token in users
]
with open(sys.argv[1], "w", encoding="utf-8") as out:
    json.dump({"schemaVersion": "1.0.0", "auth": auth}, out)
EOF
)
run object-level-authorization "$HERE/object-level-authorization.toml" --checks object_level_authorization
bola_status=$status

echo
log "reports in ${REPORTS#"$ROOT"/}"
log "all-checks: exit $main_status; object-level-authorization: exit $bola_status; $((SECONDS - started))s in all"
if [ "$main_status" -ne 0 ] || [ "$bola_status" -ne 0 ]; then
  die "Schemathesis found failures, or a run did not finish (see above)"
fi
log "OK: no failure"
