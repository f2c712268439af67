#!/usr/bin/env bash
# The studio's browser tests, against the real `framecart` binary (FRAMECART_BIN, by
# default $CARGO_TARGET_DIR/debug/framecart, which scripts/test.sh builds first). Needs
# scripts/setup.sh done (scripts/test.sh does it), PostgreSQL and NATS up, and the
# detector's model and test media (detector/scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/framecart/target}"
export FRAMECART_BIN="${FRAMECART_BIN:-$CARGO_TARGET_DIR/debug/framecart}"
if [ ! -x "$FRAMECART_BIN" ]; then
  echo "studio tests: no framecart binary at $FRAMECART_BIN" >&2
  exit 1
fi
node --test --test-concurrency=1 test/*.test.js
