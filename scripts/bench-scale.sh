#!/usr/bin/env bash
# What a click costs across framecart, Postgres and NATS with one filter per consumer
# (Debian's NATS 2.9.10) and with filter subjects (the official 2.15.1, pinned), and
# acknowledged clicks per second with one and with two `api` processes. Release builds;
# arguments go to framecart-bench-scale (`--help`).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
export FRAMECART_NATS_SERVER="${FRAMECART_NATS_SERVER:-$(scripts/nats-server.sh)}"
# The server under measurement is the release build. The load generator is built as the
# test suite builds everything (its dependencies optimised, its own code not): a release
# build of it alone would compile every dependency again with other features.
cargo build --release --locked -p framecart-api --bin framecart
cargo build --locked --workspace --all-targets
FRAMECART_BIN="$CARGO_TARGET_DIR/release/framecart" exec "$CARGO_TARGET_DIR/debug/framecart-bench-scale" "$@"
