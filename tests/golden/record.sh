#!/usr/bin/env bash
# Regenerate tests/golden/faceapi_reference.json from the ORIGINAL face-api JS models.
#
#   bash tests/golden/record.sh
#
# Needs node >= 18 + npm (npm registry reachable) and a Python with opencv-python + numpy
# ($PYTHON, default <repo>/.venv/bin/python). Installs the pinned packages from
# package-lock.json into tests/golden/node_modules (gitignored), checks the face-api tarball
# against the pinned sha512, decodes the demo JPEGs with OpenCV, runs face-api on the pure-JS
# tfjs CPU backend and replaces faceapi_reference.json only when everything succeeded.
# BACKEND=wasm records with the tfjs wasm backend instead (for comparison only; the committed
# recording is made with cpu). Takes about 3 minutes on a 2-core machine.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
BACKEND="${BACKEND:-cpu}"
ME="record.sh"
# shellcheck source=record_lib.sh
. "$HERE/record_lib.sh"

check_tools
install_pinned "@vladmandic/face-api" 1.7.15 \
  "sha512-WDMmK3CfNLo8jylWqMoQgf4nIst3M0fzx1dnac96wv/dvMTN4DxC/Pq1DGtduDk1lktCamQ3MIDXFnvrdHTXDw=="
PKG="$HERE/node_modules/@vladmandic/face-api"

# Pixels decoded by OpenCV, never by node.
"$PYTHON" "$HERE/dump_pixels.py" "$TMP/pixels" "$PKG"/demo/sample{1,2,3,4,5,6}.jpg

run_recorder record_faceapi.mjs "$HERE/faceapi_reference.json" --pixels "$TMP/pixels" --models "$PKG/model"
