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

FACEAPI_SPEC="@vladmandic/face-api@1.7.15"
FACEAPI_SHA512="sha512-WDMmK3CfNLo8jylWqMoQgf4nIst3M0fzx1dnac96wv/dvMTN4DxC/Pq1DGtduDk1lktCamQ3MIDXFnvrdHTXDw=="

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
BACKEND="${BACKEND:-cpu}"
OUT="$HERE/faceapi_reference.json"

die() { echo "record.sh: $*" >&2; exit 1; }

command -v node >/dev/null || die "node not found: apt-get install -y nodejs npm (node >= 18)"
command -v npm >/dev/null || die "npm not found: apt-get install -y npm"
node -e 'process.exit(+process.versions.node.split(".")[0] >= 18 ? 0 : 1)' \
  || die "node $(node --version) is too old: need >= 18"
[ -x "$PYTHON" ] || die "no python at $PYTHON: set PYTHON=/path/to/python (with opencv + numpy)"
"$PYTHON" -c 'import cv2, numpy' 2>/dev/null || die "$PYTHON lacks opencv-python or numpy"
case "$BACKEND" in cpu|wasm) ;; *) die "BACKEND must be cpu or wasm, not $BACKEND" ;; esac

TMP="$(mktemp -d "${TMPDIR:-/tmp}/faceapi-golden.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

# 1. The lock file must pin the same face-api tarball as this script.
locked="$(node -e '
  const lock = require(process.argv[1]);
  const p = lock.packages["node_modules/@vladmandic/face-api"] || {};
  process.stdout.write(`${p.version} ${p.integrity}`);
' "$HERE/package-lock.json")"
[ "$locked" = "1.7.15 $FACEAPI_SHA512" ] \
  || die "package-lock.json pins '$locked', expected '1.7.15 $FACEAPI_SHA512'"

# 2. Hash the face-api tarball ourselves (npm ci checks it too, against the lock file).
(cd "$TMP" && npm pack --silent "$FACEAPI_SPEC" >/dev/null)
tarball="$(ls "$TMP"/vladmandic-face-api-1.7.15.tgz)"
actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
[ "$actual" = "$FACEAPI_SHA512" ] || die "face-api tarball hash $actual != pinned $FACEAPI_SHA512"
echo "record.sh: face-api 1.7.15 tarball integrity OK" >&2

# 3. Exact install from the lock file (no install scripts are needed).
(cd "$HERE" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
PKG="$HERE/node_modules/@vladmandic/face-api"

# 4. Pixels decoded by OpenCV, never by node.
"$PYTHON" "$HERE/dump_pixels.py" "$TMP/pixels" "$PKG"/demo/sample{1,2,3,4,5,6}.jpg

# 5. Record, then replace the committed file only on success.
# (tfjs prints a banner suggesting tfjs-node, which cannot be installed here: keep it quiet.)
if ! node "$HERE/record_faceapi.mjs" --pixels "$TMP/pixels" --models "$PKG/model" \
    --out "$TMP/faceapi_reference.json" --backend "$BACKEND" 2>"$TMP/node.err" >&2; then
  cat "$TMP/node.err" >&2
  die "record_faceapi.mjs failed"
fi
grep -v -e '^=*$' -e 'Hi, looks like you are running TensorFlow.js' "$TMP/node.err" >&2 || true
mv "$TMP/faceapi_reference.json" "$OUT"
echo "record.sh: wrote $OUT" >&2
