#!/usr/bin/env bash
# Set-up for the studio's browser tests, idempotent: Debian's Chromium and the npm
# packages pinned in package-lock.json (playwright-core only). The studio itself needs
# neither: it is plain files that `framecart serve` embeds.
set -euo pipefail
cd "$(dirname "$0")/.."

# Chromium, and the extension's packages its test harness uses, come from its set-up.
../extension/scripts/setup.sh

../scripts/npm-ci.sh .
