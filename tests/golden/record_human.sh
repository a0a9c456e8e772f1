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

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
BACKEND="${BACKEND:-cpu}"
ME="record_human.sh"
# shellcheck source=record_lib.sh
. "$HERE/record_lib.sh"

check_tools
# The same tarball and hash as `expressiond models build` checks.
install_pinned "@vladmandic/human" 3.3.6 \
  "sha512-Nr5mPfq1gQ+uKeXY5uM3Fj8UxvF5CEh2s6txM5wRThqaW0mF9huooOuZSrT8hhGho0hGaXLFdAwfD/2+teCv6A=="

# Face inputs from face-api's sample photos, decoded by OpenCV, never by node.
"$PYTHON" "$HERE/human_inputs.py" "$TMP/inputs" "$HERE/node_modules/@vladmandic/face-api"

run_recorder record_human.mjs "$HERE/human_reference.json" --inputs "$TMP/inputs" \
  --model "$HERE/node_modules/@vladmandic/human/models/emotion.json"
