#!/usr/bin/env bash
# Runs the fault suite (tests/tests/faults.rs) and prints its table: per scenario, the
# clicks acknowledged, lost and duplicated, the answers during the fault, and the time
# to recover. Each test also appends its row to $CARGO_TARGET_DIR/fault-table.md, so a
# plain `./scripts/test.sh` leaves the table there too. Extra arguments go to the test
# binary (a test name to run one scenario).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
# Same targets and features as scripts/test.sh, so nothing is built twice. With
# --all-targets, --test does not narrow what `cargo test` runs: run the binary itself.
built=$(cargo test --workspace --locked --all-targets --no-run 2>&1) || { echo "$built" >&2; exit 1; }
suite=$(echo "$built" | sed -n 's/^ *Executable tests\/faults\.rs (\(.*\))$/\1/p')
[ -x "$suite" ] || { echo "fault-table: no tests/faults.rs executable in cargo's output" >&2; exit 1; }
rm -f "$CARGO_TARGET_DIR/fault-table.md"
status=0
"$suite" --test-threads=2 "$@" >"$CARGO_TARGET_DIR/fault-suite.log" 2>&1 || status=$?
if [ "$status" != 0 ]; then
  tail -n 80 "$CARGO_TARGET_DIR/fault-suite.log" >&2
  echo "fault-table: the suite failed; its whole output is in $CARGO_TARGET_DIR/fault-suite.log" >&2
fi
grep -E '^test result' "$CARGO_TARGET_DIR/fault-suite.log" >&2 || true
cat "$CARGO_TARGET_DIR/fault-table.md" 2>/dev/null || true
exit "$status"
