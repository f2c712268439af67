#!/usr/bin/env bash
# Set-up for the studio's browser tests, idempotent: Debian's Chromium and the npm
# packages pinned in package-lock.json (playwright-core only). The studio itself needs
# neither: it is plain files that `framecart serve` embeds.
set -euo pipefail
cd "$(dirname "$0")/.."

# Chromium, and the extension's packages its test harness uses, come from its set-up.
../extension/scripts/setup.sh

stamp=node_modules/.lock-sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "studio setup: npm ci" >&2
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi
