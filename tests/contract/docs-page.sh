#!/usr/bin/env bash
# Contract check: the interactive API docs page (/docs/, Swagger UI compiled
# into the binary) in a REAL headless browser, against the running demo.
#
#   bash tests/contract/docs-page.sh
#
# Needs target/debug/backup-gateway (`cargo build`; or BACKUP_GATEWAY_BIN),
# Node.js 20+ with npm, curl, and Debian's Chromium: when /usr/bin/chromium
# is missing it is installed (`apt-get install -y chromium`, through sudo
# unless root). playwright-core (pinned in tests/contract/docs-page/
# package-lock.json) drives that Chromium; Playwright's own browsers are
# never downloaded. npm packages go to target/contract/docs-page/
# (git-ignored), installed with `npm ci` when the lock file changed.
#
# tests/contract/docs-page/check.mjs, in Chromium, proves that
#   1. the page at `/`'s links.docs loads, and every request it makes (CSS,
#      scripts, fonts, images, the document, Try it out) goes to the
#      gateway's own http://127.0.0.1:PORT: any other host fails the check
#      (Chromium resolves no other host name either);
#   2. it lists every operation of /openapi.json (method, path, operation
#      id), and no other;
#   3. Authorize with a pasted bearer token, then create_backup (POST
#      /snapshots/{snapshot_id}/backups) with Try it out, shows 202 and sends
#      the token;
# then curl, with the same token, checks that GET /jobs lists that job.
# Console messages and page errors are printed (an error fails the check
# unless DOCS_PAGE_ALLOW_CONSOLE_ERRORS=1), and so are notes on what a user
# may find wrong or confusing.
# Output: target/contract/docs-page.png (the page as it loads),
# target/contract/docs-page-try-it-out.png (create_backup after Execute) and
# target/contract/docs-page/result.json (every request, the console).
#
# The browser part is stopped after DOCS_PAGE_TIMEOUT seconds (default 90);
# installing Chromium or the npm packages is bounded too.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/tests/contract/docs-page"
WORK="$ROOT/target/contract/docs-page"
OUT="$ROOT/target/contract"
CHROMIUM=/usr/bin/chromium
SNAPSHOT_ID=000005a9-0000-4000-8000-a00000000001
TIME_LIMIT="${DOCS_PAGE_TIMEOUT:-90}"

started=$SECONDS
log() { echo "docs-page.sh: $*"; }
die() {
  echo "docs-page.sh: FAIL: $*" >&2
  exit 1
}

command -v curl >/dev/null || die "curl is not installed"
command -v timeout >/dev/null || die "timeout (coreutils) is not installed"
command -v node >/dev/null || die "node is not installed (Node.js 20+ is needed)"
command -v npm >/dev/null || die "npm is not installed"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] || die "Node.js 20+ is needed, found $(node --version)"

# --- Chromium (Debian's) --------------------------------------------------------
if [ ! -x "$CHROMIUM" ]; then
  log "no $CHROMIUM: apt-get install -y chromium"
  as_root=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "$CHROMIUM is missing, and installing it needs root or sudo"
    as_root=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  timeout 600 "${as_root[@]}" apt-get update -qq || die "apt-get update failed"
  timeout 900 "${as_root[@]}" apt-get install -y -qq chromium >/dev/null || die "apt-get install -y chromium failed"
  [ -x "$CHROMIUM" ] || die "apt-get installed chromium, but there is no $CHROMIUM"
fi
# Debian's launcher script complains on stderr on some /dev/shm setups.
log "$("$CHROMIUM" --version 2>/dev/null)"

# --- playwright-core, pinned ----------------------------------------------------
mkdir -p "$WORK"
cp "$HERE/package.json" "$HERE/package-lock.json" "$HERE/check.mjs" "$WORK/"
if ! cmp -s "$HERE/package-lock.json" "$WORK/node_modules/.contract-package-lock.json"; then
  log "npm ci (tests/contract/docs-page/package-lock.json) in ${WORK#"$ROOT"/}"
  (cd "$WORK" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 timeout 300 npm ci --no-audit --no-fund --loglevel=error) ||
    die "npm ci failed"
  cp "$HERE/package-lock.json" "$WORK/node_modules/.contract-package-lock.json"
fi
log "playwright-core $(node -p 'require(process.argv[1]).version' "$WORK/node_modules/playwright-core/package.json"), node $(node --version)"

# --- the demo ---------------------------------------------------------------------
# shellcheck source=tests/contract/demo.sh
source "$ROOT/tests/contract/demo.sh"
log "starting the demo gateway"
# shellcheck disable=SC2119 # the demo takes no extra flags here
start_demo || die "the demo gateway did not start"
log "demo at $GATEWAY"

# --- the page, in Chromium ----------------------------------------------------------
result="$WORK/result.json"
rm -f "$result" "$OUT/docs-page.png" "$OUT/docs-page-try-it-out.png"
status=0
(cd "$WORK" && GATEWAY="$GATEWAY" TOKEN="$TOKEN_A" CHROMIUM="$CHROMIUM" OUT_DIR="$OUT" RESULT="$result" \
  SNAPSHOT_ID="$SNAPSHOT_ID" timeout --kill-after=10 "$TIME_LIMIT" node check.mjs) || status=$?
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
  die "the browser check did not finish within ${TIME_LIMIT}s"
fi
if [ "$status" -ne 0 ]; then
  echo "docs-page.sh: the gateway's log, its last 20 records:" >&2
  grep -E '^[0-9]{4}-' "$DEMO_DIR/gateway.log" | tail -n 20 | sed 's/^/    | /' >&2 || true
  die "the docs page check failed (see above; ${result#"$ROOT"/} has every request)"
fi

# --- the server's own state: GET /jobs (curl, the same token) lists the job ----------
job_id="$(node -p 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).job_id ?? ""' "$result")"
[ -n "$job_id" ] || die "no job id in ${result#"$ROOT"/}"
jobs="$(curl -fsS --max-time 10 -H "Authorization: Bearer $TOKEN_A" "$GATEWAY/jobs")" ||
  die "curl GET /jobs failed"
# shellcheck disable=SC2016 # JavaScript, not shell
listed="$(JOBS="$jobs" node -p '
  const job = JSON.parse(process.env.JOBS).jobs.find((j) => j.id === process.argv[1]);
  job ? `${job.state} ${job.snapshot_id} ${job.request?.name ?? ""}` : ""' "$job_id")"
[ -n "$listed" ] || die "GET /jobs does not list the job $job_id that the page created: $jobs"
read -r job_state job_snapshot job_name <<<"$listed"
[ "$job_snapshot" = "$SNAPSHOT_ID" ] || die "job $job_id is of snapshot $job_snapshot, not $SNAPSHOT_ID"
[ "$job_name" = "docs-page-check" ] || die "job $job_id was not made with the page's body (name: '$job_name')"
log "curl GET /jobs (the same token) lists job $job_id: $job_state, snapshot $job_snapshot, name $job_name"

log "screenshots: ${OUT#"$ROOT"/}/docs-page.png, ${OUT#"$ROOT"/}/docs-page-try-it-out.png"
log "OK in $((SECONDS - started))s"
