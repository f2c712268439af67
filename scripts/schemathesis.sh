#!/usr/bin/env bash
# Fuzzes the API from its OpenAPI document with schemathesis, anonymously and as an admin,
# against a real `framecart serve` on a database and namespace of its own (removed after).
# Fails on a 5xx, a response that breaks its schema, or an undocumented status code.
#   scripts/schemathesis.sh [extra schemathesis options, e.g. -n 100]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
venv="$HOME/.cache/framecart/schemathesis-venv"
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "schemathesis==4.32.5"
fi
cargo build --locked --workspace --all-targets
db="framecart_fuzz_$$"
port=$((20000 + $$ % 20000))
media="$(mktemp -d)"
password="fuzzing admin password $$"
psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $db"
DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" FRAMECART_NAMESPACE="fuzz$$" FRAMECART_MEDIA_DIR="$media" \
  FRAMECART_MASTER_KEY="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" FRAMECART_BIND="127.0.0.1:$port" FRAMECART_ADMIN_EMAIL=admin@fuzz.test FRAMECART_ADMIN_PASSWORD="$password" \
  FRAMECART_DETECTOR_WORKERS=0 RUST_LOG=warn "$CARGO_TARGET_DIR/debug/framecart" serve >"$media/server.log" 2>&1 &
server=$!
cleanup() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
  rm -rf "$media"
}
trap cleanup EXIT
base="http://127.0.0.1:$port"
for _ in $(seq 1 60); do curl -sf "$base/readyz" >/dev/null && break; sleep 0.5; done
token=$(curl -sf -X POST "$base/api/v1/sessions" -H 'content-type: application/json' \
  -d "{\"email\":\"admin@fuzz.test\",\"password\":\"$password\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
checks=not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance
st() { "$venv/bin/schemathesis" run "$base/api/openapi.json" --checks "$checks" --phases examples,coverage,fuzzing -n 30 "$@"; }
status=0
echo "== anonymous"
st "$@" || status=1
echo "== as admin (signing out everywhere is left out: it would end the run's own session)"
st -H "Authorization: Bearer $token" --exclude-name "DELETE /api/v1/sessions" "$@" || status=1
exit $status
