#!/usr/bin/env bash
# What a click costs across framecart, Postgres and NATS with one filter per consumer
# (Debian's NATS 2.9.10) and with filter subjects (the official 2.15.1, pinned), and
# acknowledged clicks per second with one and with two `api` processes. Release builds;
# arguments go to framecart-bench-scale (`--help`).
# The same build as scripts/bench.sh.
exec "$(dirname "$0")/bench.sh" --bin framecart-bench-scale "$@"
