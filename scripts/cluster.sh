#!/usr/bin/env bash
# Framecart scaled out, on this one machine, to try what runs where (README, "Running on
# several machines"): a three-node JetStream cluster on loopback, the stream and the
# media store with three replicas, and `framecart serve` processes with separate roles:
#
#   api-1, api-2     --roles api                            http://127.0.0.1:8001, :8002
#   core             --roles relay,projections,processes    health on :8011
#   core-standby     --roles relay,projections,processes    health on :8012 (takes over)
#   detector         --roles detector                       health on :8013, own media folder
#
# Everything lives under $FRAMECART_CLUSTER_DIR (default ~/.cache/framecart/cluster): the
# NATS stores, each process's media folder and log. PostgreSQL is the machine's
# (DATABASE_URL, default the local `postgres` database); the namespace is `cluster`.
# Ctrl-C stops everything. Try `kill -9` on any one process or NATS node while it runs
# (their pids are printed), and `framecart projections status` to see who holds what.
#   scripts/cluster.sh               build (release) and start
#   scripts/cluster.sh --fresh       remove the NATS stores and media folders first
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
need_ffmpeg
dir="${FRAMECART_CLUSTER_DIR:-$HOME/.cache/framecart/cluster}"
if [ "${1:-}" = "--fresh" ]; then rm -rf "$dir"; fi
mkdir -p "$dir"
nats_server="${FRAMECART_NATS_SERVER:-$(scripts/nats-server.sh)}"
cargo build --release --locked --bin framecart
bin="$CARGO_TARGET_DIR/release/framecart"
"$bin" model fetch

pids=()
stop() {
  trap - INT TERM EXIT
  echo "cluster: stopping" >&2
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

# Three NATS servers: client ports 4301-4303, cluster routes on 6301-6303.
routes="nats://127.0.0.1:6301,nats://127.0.0.1:6302,nats://127.0.0.1:6303"
for n in 1 2 3; do
  mkdir -p "$dir/nats$n"
  "$nats_server" -js -a 127.0.0.1 -p "430$n" -sd "$dir/nats$n" -n "node$n" \
    --cluster_name framecart --cluster "nats://127.0.0.1:630$n" --routes "$routes" \
    >"$dir/nats$n.log" 2>&1 &
  pids+=($!)
  echo "cluster: NATS node$n on 127.0.0.1:430$n (pid $!)" >&2
done

export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export FRAMECART_NAMESPACE="${FRAMECART_NAMESPACE:-cluster}"
export FRAMECART_STREAM_REPLICAS=3
# Every api process must sign and check tokens with the same secret.
export FRAMECART_TOKEN_SECRET="${FRAMECART_TOKEN_SECRET:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
export FRAMECART_MASTER_KEY="${FRAMECART_MASTER_KEY:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
export FRAMECART_ADMIN_EMAIL="${FRAMECART_ADMIN_EMAIL:-admin@framecart.local}"
export FRAMECART_ADMIN_PASSWORD="${FRAMECART_ADMIN_PASSWORD:-change this cluster password}"

# name, roles, health or API port, home NATS node
start() {
  local name=$1 roles=$2 port=$3 home=$4
  local nats="nats://127.0.0.1:430$home"
  for n in 1 2 3; do [ "$n" = "$home" ] || nats="$nats,nats://127.0.0.1:430$n"; done
  mkdir -p "$dir/media-${5:-$name}"
  NATS_URL="$nats" FRAMECART_ROLES="$roles" FRAMECART_INSTANCE="$name" FRAMECART_BIND="127.0.0.1:$port" \
    FRAMECART_MEDIA_DIR="$dir/media-${5:-$name}" \
    "$bin" serve >"$dir/$name.log" 2>&1 &
  pids+=($!)
  echo "cluster: $name ($roles) on 127.0.0.1:$port (pid $!), log $dir/$name.log" >&2
}
start core relay,projections,processes 8011 1
sleep 2
start core-standby relay,projections,processes 8012 2 core
start api-1 api 8001 1
start api-2 api 8002 2
start detector detector 8013 3

for port in 8001 8002 8011 8012 8013; do
  for _ in $(seq 1 120); do
    if curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then break; fi
    sleep 0.5
  done
done
echo "cluster: ready. API at http://127.0.0.1:8001 and :8002 (admin $FRAMECART_ADMIN_EMAIL)." >&2
echo "cluster: who holds what: NATS_URL=nats://127.0.0.1:4301 FRAMECART_NAMESPACE=$FRAMECART_NAMESPACE $bin projections status" >&2
wait
