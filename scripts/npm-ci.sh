#!/usr/bin/env bash
# `npm ci` in folder $1 (no install scripts), unless its node_modules was installed from
# the same package-lock.json already: idempotent and quick when nothing changed.
set -euo pipefail
cd "$1"
stamp=node_modules/.lock-sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "npm ci in $1" >&2
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi
