#!/usr/bin/env bash
# The extension's tests: the pure modules' unit tests, then the browser tests (the
# unchanged extension in Debian's Chromium, posting to a real `framecart serve`).
#
# Needs scripts/setup.sh done, PostgreSQL on 127.0.0.1:5432 and NATS with JetStream on
# 127.0.0.1:4222 (the project's scripts/setup.sh starts both), and the server binary:
# FRAMECART_BIN, by default $CARGO_TARGET_DIR/debug/framecart, which is built here.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/framecart/target}"
export FRAMECART_BIN="${FRAMECART_BIN:-$CARGO_TARGET_DIR/debug/framecart}"
if [ "$FRAMECART_BIN" = "$CARGO_TARGET_DIR/debug/framecart" ] && command -v cargo >/dev/null; then
  # `cargo test` does not build the api crate's binary, and an old one would test old
  # code: bring it up to date (a no-op when it is). With the targets and features of the
  # test run (`--workspace --all-targets`): `--bin framecart` alone would build the
  # dependencies a second time, with other features.
  (cd .. && cargo build --locked --quiet --workspace --all-targets)
fi
if [ ! -x "$FRAMECART_BIN" ]; then
  echo "extension tests: no framecart binary at $FRAMECART_BIN" >&2
  exit 1
fi

node --test test/unit/*.test.js
# One file at a time: each browser test run starts its own Chromium and server.
node --test --test-concurrency=1 test/browser/*.test.js
