# Shared by the benchmark scripts: builds the integration tests in release
# mode and runs one of them, bounded in time, keeping its output.
#
# run_api_test FILTER SUMMARY_PATTERN TIMEOUT_SECS OUTPUT_FILE
#   prints the lines matching SUMMARY_PATTERN (the tail of the output when
#   there are none) and returns the test's exit status (124 on timeout).

run_api_test() {
  local filter="$1" pattern="$2" timeout_secs="$3" output="$4"
  local build run
  if command -v cargo-nextest >/dev/null 2>&1; then
    build=(cargo nextest run --release -p backup-gateway --test api --no-run)
    run=(cargo nextest run --release -p backup-gateway --test api "$filter" --no-capture)
  else
    build=(cargo test --release -p backup-gateway --test api --no-run)
    run=(cargo test --release -p backup-gateway --test api "$filter" -- --nocapture)
  fi
  echo "== building (release)"
  "${build[@]}"
  echo "== running $filter (bound ${timeout_secs}s)"
  local started status=0
  started=$(date +%s)
  timeout "$timeout_secs" "${run[@]}" >"$output" 2>&1 || status=$?
  if ! grep -E "$pattern" "$output"; then
    echo "no summary line; the test's output follows" >&2
    tail -n 60 "$output" >&2
  fi
  echo "== exit status $status after $(( $(date +%s) - started ))s; output in $output"
  return "$status"
}

# number FLAG VALUE: exits with status 2 unless VALUE is a whole number.
number() {
  case "$2" in ''|*[!0-9]*) echo "$1 wants a number, got '$2'" >&2; exit 2;; esac
}
