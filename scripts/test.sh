#!/usr/bin/env bash
# The whole test suite on a fresh machine: set-up, then every test of every crate
# (aggregate and unit tests, store and projection tests, black-box API tests against
# real PostgreSQL and NATS), then the parts that have their own runners.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
for part in detector extension studio; do
  if [ -x "$part/scripts/setup.sh" ]; then "$part/scripts/setup.sh"; fi
done
# The process-level suites (faults, scale-out on a three-node JetStream cluster) run the
# official nats-server 2.15.1, pinned (several filter subjects per consumer need 2.10+);
# the other tests use the machine's NATS at NATS_URL (Debian's 2.9.10 on these machines),
# so both versions are covered.
FRAMECART_NATS_SERVER="${FRAMECART_NATS_SERVER:-$(scripts/nats-server.sh)}"
export FRAMECART_NATS_SERVER
# Everything first, the `framecart` binary included (the fault suite and the extension's
# tests run it); the tests then build nothing more (same targets and features).
cargo build --locked --workspace --all-targets
cargo test --workspace --locked --all-targets "$@"
# The browser extension's unit and browser tests, against the real `framecart` binary.
FRAMECART_BIN="$CARGO_TARGET_DIR/debug/framecart" extension/scripts/test.sh
# Framecart Studio's browser tests, against the same binary.
FRAMECART_BIN="$CARGO_TARGET_DIR/debug/framecart" studio/scripts/test.sh
