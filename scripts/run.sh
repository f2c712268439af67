#!/usr/bin/env bash
# Framecart's main job on a fresh machine: set-up, a release build, then `framecart serve`
# (the API, the relay and the projections) with the settings from the environment
# (see `framecart serve --help`). Extra arguments go to `framecart serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
cargo build --release --locked --bin framecart
exec "$CARGO_TARGET_DIR/release/framecart" serve "$@"
