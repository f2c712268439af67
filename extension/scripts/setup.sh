#!/usr/bin/env bash
# Set-up for the extension's tests, idempotent: Debian's Chromium (the browser the
# tests drive) and the npm packages pinned in package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

if [ ! -x /usr/bin/chromium ]; then
  echo "extension setup: installing Debian's chromium" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

# npm ci when node_modules is missing or was installed from another lock file. No
# install scripts are needed: playwright-core drives the system's Chromium.
../scripts/npm-ci.sh .
