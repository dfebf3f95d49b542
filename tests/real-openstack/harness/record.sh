#!/usr/bin/env bash
# Re-record the exchanges against the running harness (./up.sh) into the
# repository's test data: exchanges.md and exchanges/*.json.
# Usage: ./record.sh [DIR]   (default: sim/tests/recordings of this repository)
# Records into $RUN/recorded/ first; DIR's exchanges.md and exchanges/ are
# replaced only when the recording succeeded (DIR's README.md stays).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/lib/common.sh"
DEST="${1:-$HROOT/../../../sim/tests/recordings}"
[ -d "$DEST" ] || { echo "no folder $DEST" >&2; exit 1; }
DEST="$(cd "$DEST" && pwd)"
OUT="$RUN/recorded"; rm -rf "$OUT"; mkdir -p "$OUT/exchanges"
"$BIN/python" "$HROOT/lib/record_exchanges.py" "$RUN" "$OUT"
rm -rf "$DEST/exchanges" "$DEST/exchanges.md"
cp -R "$OUT/exchanges" "$OUT/exchanges.md" "$DEST/"
echo "recorded into $DEST (exchanges.md, exchanges/); see its README for what follows"
