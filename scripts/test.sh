#!/usr/bin/env bash
# The whole test suite on a fresh machine: set-up, then every test of every crate
# (aggregate and unit tests, store and projection tests, black-box API tests against
# real PostgreSQL and NATS).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
cargo test --workspace --locked --all-targets "$@"
