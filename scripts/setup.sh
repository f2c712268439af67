#!/usr/bin/env bash
# Set-up of a machine for Framecart, idempotent: starts PostgreSQL and NATS (JetStream)
# when they are down, waits until both answer, and prints the environment to use.
# Source it (`. scripts/setup.sh`) or run it; scripts/run.sh and scripts/test.sh call it.
set -euo pipefail

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else "$@"; fi
}

# FFmpeg (ffprobe measures uploads, ffmpeg gives frames), from Debian, when it is missing.
need_ffmpeg() {
  if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
    echo "setup: installing FFmpeg from Debian" >&2
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq ffmpeg >/dev/null
  fi
}

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
nats_up() { (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; }

if ! pg_up; then
  echo "setup: starting PostgreSQL" >&2
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start || true
fi
if ! nats_up; then
  echo "setup: starting NATS with JetStream" >&2
  as_root mkdir -p /var/lib/nats-server
  as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
fi
for _ in $(seq 1 60); do
  if pg_up && nats_up; then break; fi
  sleep 0.5
done
pg_up || { echo "setup: PostgreSQL does not answer on 127.0.0.1:5432" >&2; exit 1; }
nats_up || { echo "setup: NATS does not answer on 127.0.0.1:4222" >&2; exit 1; }

# Builds are kept outside the clone, so CI runs on a clean clone stay incremental.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/framecart/target}"
mkdir -p "$CARGO_TARGET_DIR"
echo "setup: PostgreSQL and NATS are up; CARGO_TARGET_DIR=$CARGO_TARGET_DIR" >&2
