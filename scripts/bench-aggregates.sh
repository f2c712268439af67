#!/usr/bin/env bash
# A command's cost as its aggregate's history grows (framecart-bench-aggregates): orders
# on one product at 0, 100k and 1M events; a detection run's store time per batch at
# batch 100 and at batch 10,000, and its share of a one-hour run. Postgres only (a
# database of its own); release build. Arguments go to the bench (`--help`).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
cargo build --release --locked -p framecart-tests --bin framecart-bench-aggregates
exec "$CARGO_TARGET_DIR/release/framecart-bench-aggregates" "$@"
