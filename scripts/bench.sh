#!/usr/bin/env bash
# Click capture under real traffic (framecart-bench): pgbench's anchor, full speed with
# every view's catch-up, each view's lag at a fixed rate, the relay's backlog and restore.
# The installation under load runs in the bench's process, with all roles; arguments go
# to framecart-bench (`--help`), e.g. `--url http://host:8080 --database-url postgres://…`
# to load a running `framecart serve` instead.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
# NATS 2.10 or later filters each consumer on exactly what it applies.
export FRAMECART_TEST_NATS_URL="${FRAMECART_TEST_NATS_URL:-nats://127.0.0.1:4222}"
cargo build --locked --workspace --all-targets
exec "$CARGO_TARGET_DIR/debug/framecart-bench" "$@"
