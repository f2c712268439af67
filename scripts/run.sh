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
# Personal data is sealed under keys that the master key wraps. Without one set, a local
# one is made once and kept outside the clone and the database (losing it loses every
# sealed value; production sets FRAMECART_MASTER_KEY from its secret store).
if [ -z "${FRAMECART_MASTER_KEY:-}" ]; then
  key_file="${XDG_CONFIG_HOME:-$HOME/.config}/framecart/master-key"
  if [ ! -s "$key_file" ]; then
    mkdir -p "$(dirname "$key_file")"
    (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$key_file")
    echo "run.sh: made a local master key in $key_file (keep it; back it up apart from the database)" >&2
  fi
  FRAMECART_MASTER_KEY="$(cat "$key_file")"
  export FRAMECART_MASTER_KEY
fi
exec "$CARGO_TARGET_DIR/release/framecart" serve "$@"
