# Shared steps of the golden recorders (record.sh, record_human.sh): sourced, not run.
# The caller sets HERE, PYTHON, BACKEND and ME (its name for messages) first.
# Needs node >= 18 + npm (npm registry reachable), openssl, and a Python with opencv + numpy.

die() { echo "$ME: $*" >&2; exit 1; }

# The tools a recording needs; makes $TMP (removed on exit).
check_tools() {
  command -v node >/dev/null || die "node not found: apt-get install -y nodejs npm (node >= 18)"
  command -v npm >/dev/null || die "npm not found: apt-get install -y npm"
  node -e 'process.exit(+process.versions.node.split(".")[0] >= 18 ? 0 : 1)' \
    || die "node $(node --version) is too old: need >= 18"
  [ -x "$PYTHON" ] || die "no python at $PYTHON: set PYTHON=/path/to/python (with opencv + numpy)"
  "$PYTHON" -c 'import cv2, numpy' 2>/dev/null || die "$PYTHON lacks opencv-python or numpy"
  case "$BACKEND" in cpu|wasm) ;; *) die "BACKEND must be cpu or wasm, not $BACKEND" ;; esac
  TMP="$(mktemp -d "${TMPDIR:-/tmp}/${ME%.sh}.XXXXXX")"
  trap 'rm -rf "$TMP"' EXIT
}

# install_pinned NAME VERSION SHA512: the lock file must pin this tarball, the tarball from the
# registry must hash to it (npm ci checks it too, against the lock file), then an exact install
# from the lock file into $HERE/node_modules (no install scripts are needed).
install_pinned() {
  local name="$1" version="$2" sha="$3" locked actual
  locked="$(node -e '
    const lock = require(process.argv[1]);
    const p = lock.packages["node_modules/" + process.argv[2]] || {};
    process.stdout.write(`${p.version} ${p.integrity}`);
  ' "$HERE/package-lock.json" "$name")"
  [ "$locked" = "$version $sha" ] || die "package-lock.json pins '$locked' for $name, expected '$version $sha'"
  (cd "$TMP" && npm pack --silent "$name@$version" >/dev/null)
  local tarball="$TMP/$(echo "${name#@}" | tr / -)-$version.tgz"
  [ -f "$tarball" ] || die "npm pack did not write $tarball"
  actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
  [ "$actual" = "$sha" ] || die "$name tarball hash $actual != pinned $sha"
  echo "$ME: $name $version tarball integrity OK" >&2
  (cd "$HERE" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
}

# run_recorder SCRIPT.mjs OUT ARGS...: run the node recorder into $TMP, then replace OUT only
# on success. (tfjs prints a banner suggesting tfjs-node, which cannot be installed here.)
run_recorder() {
  local script="$1" out="$2"
  shift 2
  local tmp_out="$TMP/$(basename "$out")"
  if ! node "$HERE/$script" "$@" --out "$tmp_out" --backend "$BACKEND" 2>"$TMP/node.err" >&2; then
    cat "$TMP/node.err" >&2
    die "$script failed"
  fi
  grep -v -e '^=*$' -e 'Hi, looks like you are running TensorFlow.js' "$TMP/node.err" >&2 || true
  mv "$tmp_out" "$out"
  echo "$ME: wrote $out" >&2
}
