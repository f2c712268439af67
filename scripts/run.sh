#!/usr/bin/env bash
# Framecart's main job on a fresh machine: set-up (PostgreSQL and NATS up, FFmpeg for
# uploads and frames, the detector's model), a release build, then `framecart serve`
# (the API, the relay, the projections, the matcher and a detector worker) with the
# settings from the environment (see `framecart serve --help`). Extra arguments go to
# `framecart serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
need_ffmpeg
cargo build --release --locked --bin framecart
# The model's weights, fetched once and checked by size and hash on every start.
"$CARGO_TARGET_DIR/release/framecart" model fetch
exec "$CARGO_TARGET_DIR/release/framecart" serve "$@"
