#!/usr/bin/env bash
# Regenerate tests/golden/human_reference.json from the ORIGINAL human emotion model.
#
#   bash tests/golden/record_human.sh
#
# Needs node >= 18 + npm (npm registry reachable), openssl, and a Python with opencv-python +
# numpy ($PYTHON, default <repo>/.venv/bin/python). Installs the pinned packages from
# package-lock.json into tests/golden/node_modules (gitignored), checks the human tarball
# against the pinned sha512 (the one `expressiond models build` checks), makes the face inputs
# from face-api's sample photos and faceapi_reference.json (human_inputs.py), runs the model on
# the pure-JS tfjs CPU backend and replaces human_reference.json only when all succeeded.
# BACKEND=wasm records with the wasm backend instead (comparison only). About a minute.
set -euo pipefail

HUMAN_SPEC="@vladmandic/human@3.3.6"
HUMAN_SHA512="sha512-Nr5mPfq1gQ+uKeXY5uM3Fj8UxvF5CEh2s6txM5wRThqaW0mF9huooOuZSrT8hhGho0hGaXLFdAwfD/2+teCv6A=="

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
BACKEND="${BACKEND:-cpu}"
OUT="$HERE/human_reference.json"

die() { echo "record_human.sh: $*" >&2; exit 1; }

command -v node >/dev/null || die "node not found: apt-get install -y nodejs npm (node >= 18)"
command -v npm >/dev/null || die "npm not found: apt-get install -y npm"
node -e 'process.exit(+process.versions.node.split(".")[0] >= 18 ? 0 : 1)' \
  || die "node $(node --version) is too old: need >= 18"
[ -x "$PYTHON" ] || die "no python at $PYTHON: set PYTHON=/path/to/python (with opencv + numpy)"
"$PYTHON" -c 'import cv2, numpy' 2>/dev/null || die "$PYTHON lacks opencv-python or numpy"
case "$BACKEND" in cpu|wasm) ;; *) die "BACKEND must be cpu or wasm, not $BACKEND" ;; esac

TMP="$(mktemp -d "${TMPDIR:-/tmp}/human-golden.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

# 1. The lock file must pin the same human tarball as this script (and as models build).
locked="$(node -e '
  const lock = require(process.argv[1]);
  const p = lock.packages["node_modules/@vladmandic/human"] || {};
  process.stdout.write(`${p.version} ${p.integrity}`);
' "$HERE/package-lock.json")"
[ "$locked" = "3.3.6 $HUMAN_SHA512" ] \
  || die "package-lock.json pins '$locked', expected '3.3.6 $HUMAN_SHA512'"

# 2. Hash the human tarball ourselves (npm ci checks it too, against the lock file).
(cd "$TMP" && npm pack --silent "$HUMAN_SPEC" >/dev/null)
actual="sha512-$(openssl dgst -sha512 -binary "$TMP/vladmandic-human-3.3.6.tgz" | base64 -w0)"
[ "$actual" = "$HUMAN_SHA512" ] || die "human tarball hash $actual != pinned $HUMAN_SHA512"
echo "record_human.sh: human 3.3.6 tarball integrity OK" >&2

# 3. Exact install from the lock file (no install scripts are needed).
(cd "$HERE" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)

# 4. Face inputs from face-api's sample photos, decoded by OpenCV, never by node.
"$PYTHON" "$HERE/human_inputs.py" "$TMP/inputs" "$HERE/node_modules/@vladmandic/face-api"

# 5. Record, then replace the committed file only on success.
if ! node "$HERE/record_human.mjs" --inputs "$TMP/inputs" \
    --model "$HERE/node_modules/@vladmandic/human/models/emotion.json" \
    --out "$TMP/human_reference.json" --backend "$BACKEND" 2>"$TMP/node.err" >&2; then
  cat "$TMP/node.err" >&2
  die "record_human.mjs failed"
fi
grep -v -e '^=*$' -e 'Hi, looks like you are running TensorFlow.js' "$TMP/node.err" >&2 || true
mv "$TMP/human_reference.json" "$OUT"
echo "record_human.sh: wrote $OUT" >&2
