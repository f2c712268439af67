#!/usr/bin/env bash
# Click capture under real traffic (framecart-bench): pgbench's anchor; full speed, with
# the CPU per click and every view's catch-up; each view's lag at a fixed rate; the
# relay's backlog and restore. The installation under load is one release `framecart
# serve` with every role, on a NATS 2.15 of its own (filtered consumers); arguments go to
# framecart-bench (`--help`), e.g. `--url http://host:8080 --database-url postgres://…`
# to load a running server instead.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
export FRAMECART_NATS_SERVER="${FRAMECART_NATS_SERVER:-$(scripts/nats-server.sh)}"
# The server under measurement and the load generator are release builds: the generator
# shares the cores with what it measures (as a test build it cost twice the CPU a click).
cargo build --release --locked -p framecart-api --bin framecart
cargo build --release --locked -p framecart-tests --bins
# `--bin framecart-bench-scale` first runs that bench instead (scripts/bench-scale.sh).
bench=framecart-bench
if [ "${1:-}" = --bin ]; then bench="$2"; shift 2; fi
FRAMECART_BIN="${FRAMECART_BIN:-$CARGO_TARGET_DIR/release/framecart}" exec "$CARGO_TARGET_DIR/release/$bench" "$@"
