#!/bin/bash
# Install expressiond from this checkout as a systemd service. Run as root on the target box.
#
#   systemd/install.sh [--prefix DIR] [--no-enable] [--models-from DIR] [--wheelhouse DIR]
#
#   --prefix DIR        where the venv goes (default /opt/expressiond)
#   --no-enable         install, but do not enable the service
#   --models-from DIR   copy already built models (e.g. the checkout's models/ir) instead of
#                       running `expressiond models build` (which needs npm and the network)
#   --wheelhouse DIR    install Python packages only from the wheels/sdists in DIR (offline;
#                       make one with: pip download -d DIR '.[systemd]' setuptools wheel)
#   PYTHON=...          the interpreter of the venv (default /usr/bin/python3, >= 3.10)
#
# What it does: a venv in PREFIX with the package (non-editable, extra "systemd"); the models
# in PREFIX/share/expressiond/models; user and groups (sysusers.d), /etc/expressiond and the
# credential link (tmpfiles.d); the default config only if there is none; the unit and the
# NCS2 udev rule; daemon-reload; enable (never start). Everything outside PREFIX goes to /etc:
# /usr belongs to the package manager. Safe to run again: unchanged parts say "up to date",
# an operator's /etc/expressiond/expressiond.toml is never overwritten.
set -euo pipefail
umask 022

PREFIX=/opt/expressiond
ENABLE=1
MODELS_FROM=
WHEELHOUSE=
# The system Python by default, not the first python3 in PATH (a pyenv shim under /root):
# the venv's interpreter must stay reachable under the unit's ProtectHome=yes and PrivateTmp=yes.
PYTHON=${PYTHON:-$(command -v /usr/bin/python3 || echo python3)}
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

UNIT_DST=/etc/systemd/system/expressiond.service
SYSUSERS_DST=/etc/sysusers.d/expressiond.conf
TMPFILES_DST=/etc/tmpfiles.d/expressiond.conf
UDEV_DST=/etc/udev/rules.d/60-expressiond-ncs2.rules
CONFIG_DST=/etc/expressiond/expressiond.toml

die() { echo "install.sh: error: $*" >&2; exit 1; }
say() { printf '  %-10s %s\n' "$1" "$2"; }
usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

while [ $# -gt 0 ]; do
  case $1 in
    --prefix) PREFIX=${2:?--prefix needs a directory}; shift 2 ;;
    --prefix=*) PREFIX=${1#*=}; shift ;;
    --no-enable) ENABLE=0; shift ;;
    --models-from) MODELS_FROM=${2:?--models-from needs a directory}; shift 2 ;;
    --models-from=*) MODELS_FROM=${1#*=}; shift ;;
    --wheelhouse) WHEELHOUSE=${2:?--wheelhouse needs a directory}; shift 2 ;;
    --wheelhouse=*) WHEELHOUSE=${1#*=}; shift ;;
    -h|--help) usage 0 ;;
    *) echo "install.sh: unknown argument: $1" >&2; usage 2 ;;
  esac
done

[ "$(id -u)" = 0 ] || die "run as root (it creates a system user and writes to /etc)"
case $PREFIX in /?*) ;; *) die "--prefix must be an absolute path, not '$PREFIX'" ;; esac
PREFIX=${PREFIX%/}
MODELS=$PREFIX/share/expressiond/models
[ -f "$SRC/pyproject.toml" ] && [ -d "$SRC/daemon/expressiond" ] \
  || die "$SRC is not an expressiond checkout (no pyproject.toml / daemon/expressiond)"
for f in systemd/expressiond.service systemd/expressiond.sysusers systemd/expressiond.tmpfiles \
         systemd/60-expressiond-ncs2.rules config/expressiond.toml; do
  [ -f "$SRC/$f" ] || die "$SRC/$f is missing from the checkout"
done
for tool in systemctl systemd-sysusers systemd-tmpfiles runuser "$PYTHON"; do
  command -v "$tool" >/dev/null || die "$tool not found: this needs a systemd system with python3"
done
# Where the interpreter really lives (a venv's python is a symlink to it) and its version.
python_home() { "$1" -c 'import os, sys
print("%d.%d" % sys.version_info[:2], os.path.realpath(getattr(sys, "_base_executable", sys.executable)))'; }
unreachable() { case $1 in /root/*|/home/*|/run/user/*|/tmp/*|/var/tmp/*) return 0 ;; esac; return 1; }
read -r PY_VERSION PY_HOME < <(python_home "$PYTHON") || die "$PYTHON does not run"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || die "$PYTHON is Python $PY_VERSION: expressiond needs >= 3.10 (PYTHON=/path/to/python3.10+)"
unreachable "$PY_HOME" && die "$PYTHON is $PY_HOME, which the service cannot reach" \
  "(ProtectHome=yes, PrivateTmp=yes): use a system-wide Python, e.g. PYTHON=/usr/bin/python3"
if [ -x "$PREFIX/bin/python" ]; then
  read -r _ home < <(python_home "$PREFIX/bin/python") || home="?"
  unreachable "$home" && die "$PREFIX was made from $home, which the service cannot reach:" \
    "remove $PREFIX (rm -rf $PREFIX) and run this again"
fi
if [ -n "$MODELS_FROM" ]; then
  dir=$(cd "$MODELS_FROM" 2>/dev/null && pwd) || die "--models-from: no directory $MODELS_FROM"
  MODELS_FROM=$dir
  for m in face-api/ssd_mobilenetv1 face-api/expression human/emotion; do
    [ -f "$MODELS_FROM/$m/FP32/model.xml" ] || die "--models-from $MODELS_FROM has no $m/FP32/model.xml (build them with: expressiond models build --dir DIR)"
  done
fi
if [ -n "$WHEELHOUSE" ]; then
  dir=$(cd "$WHEELHOUSE" 2>/dev/null && pwd) || die "--wheelhouse: no directory $WHEELHOUSE"
  WHEELHOUSE=$dir
fi
SYSTEMD_RUNNING=0
[ -d /run/systemd/system ] && SYSTEMD_RUNNING=1
CHANGED=0
CODE_CHANGED=0
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# install_file SRC DST MODE NAME: copy when the content differs; says what it did.
install_file() {
  if cmp -s "$1" "$2"; then say "$4" "up to date ($2)"; return 1; fi
  install -D -m "$3" -o root -g root "$1" "$2"
  say "$4" "installed $2"; CHANGED=1; return 0
}

echo "expressiond: installing from $SRC into $PREFIX (Python $PY_VERSION, $PY_HOME)"

# --- 1. venv and package -------------------------------------------------------------------
if [ ! -x "$PREFIX/bin/python" ]; then
  "$PYTHON" -m venv "$PREFIX" \
    || die "'$PYTHON -m venv $PREFIX' failed (Debian/Ubuntu: apt-get install python3-venv)"
  say venv "created $PREFIX"; CHANGED=1
else
  say venv "up to date ($PREFIX)"
fi
# Fingerprint of what pip would install; the same checkout twice = nothing to do.
PKG_FILES=(pyproject.toml daemon)
[ -f "$SRC/README.md" ] && PKG_FILES+=(README.md)
fingerprint=$(cd "$SRC" && find "${PKG_FILES[@]}" -type f \
    ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*.egg-info/*' 2>/dev/null \
  | LC_ALL=C sort | xargs -d '\n' sha256sum | sha256sum | cut -d' ' -f1)
STAMP=$PREFIX/.expressiond-source
if [ -x "$PREFIX/bin/expressiond" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$fingerprint" ]; then
  say package "up to date ($("$PREFIX/bin/python" -c 'import expressiond; print(expressiond.__version__)' 2>/dev/null || echo '?'))"
else
  # Build from a copy: pip's in-tree build would leave build/ and *.egg-info in the checkout.
  mkdir "$TMP/src"
  (cd "$SRC" && tar -cf - --exclude=.git --exclude=.venv --exclude=models/ir --exclude=build \
     --exclude='*.egg-info' --exclude=__pycache__ --exclude=node_modules \
     "${PKG_FILES[@]}") | tar -C "$TMP/src" -xf -
  pip_args=(--disable-pip-version-check --quiet)
  [ -n "$WHEELHOUSE" ] && pip_args+=(--no-index --find-links "$WHEELHOUSE")
  if ! "$PREFIX/bin/python" -m pip install "${pip_args[@]}" "$TMP/src[systemd]"; then
    die "pip install failed (see above). The systemd extra (systemd-python) compiles against libsystemd: apt-get install gcc pkg-config libsystemd-dev python3-dev; offline boxes: --wheelhouse DIR"
  fi
  echo "$fingerprint" > "$STAMP"
  say package "installed $("$PREFIX/bin/python" -c 'import expressiond; print(expressiond.__version__)')"
  CHANGED=1; CODE_CHANGED=1
fi
"$PREFIX/bin/expressiond" --help >/dev/null 2>&1 \
  || die "$PREFIX/bin/expressiond does not run (is daemon/expressiond/cli.py complete in this checkout?)"
"$PREFIX/bin/expressiond" models build --help >/dev/null 2>&1 \
  || die "'expressiond models build' is not available in this checkout yet"

# --- 2. user, groups, directories ---------------------------------------------------------
install_file "$SRC/systemd/expressiond.sysusers" "$SYSUSERS_DST" 0644 sysusers || true
systemd-sysusers "$SYSUSERS_DST"
install_file "$SRC/systemd/expressiond.tmpfiles" "$TMPFILES_DST" 0644 tmpfiles || true
systemd-tmpfiles --create "$TMPFILES_DST"

# --- 3. config (never overwritten) ----------------------------------------------------------
if [ -e "$CONFIG_DST" ]; then
  if cmp -s "$SRC/config/expressiond.toml" "$CONFIG_DST"; then say config "up to date ($CONFIG_DST)"
  else say config "kept the existing $CONFIG_DST (the new default is $SRC/config/expressiond.toml)"; fi
else
  install -m 0640 -o root -g expressiond "$SRC/config/expressiond.toml" "$CONFIG_DST"
  say config "installed $CONFIG_DST (edit it: cameras, [mqtt])"; CHANGED=1
fi

# --- 4. models --------------------------------------------------------------------------------
if [ -n "$MODELS_FROM" ]; then
  if [ -d "$MODELS" ] && diff -rq "$MODELS_FROM" "$MODELS" >/dev/null 2>&1; then
    say models "up to date ($MODELS)"
  else
    mkdir -p "$(dirname "$MODELS")"
    rm -rf "$MODELS.new"
    cp -R "$MODELS_FROM" "$MODELS.new"
    chmod -R u=rwX,go=rX "$MODELS.new"
    rm -rf "$MODELS.old"; [ -d "$MODELS" ] && mv "$MODELS" "$MODELS.old"
    mv "$MODELS.new" "$MODELS"; rm -rf "$MODELS.old"
    say models "copied from $MODELS_FROM to $MODELS"; CHANGED=1; CODE_CHANGED=1
  fi
else
  say models "expressiond models build --dir $MODELS"
  listing() { find "$MODELS" -type f -printf '%P %s %T@\n' 2>/dev/null | LC_ALL=C sort | sha256sum; }
  before=$(listing)
  "$PREFIX/bin/expressiond" models build --dir "$MODELS" \
    || die "building the models failed (see above); or copy built ones: --models-from DIR"
  chmod -R u=rwX,go=rX "$MODELS"
  [ "$(listing)" = "$before" ] || { CHANGED=1; CODE_CHANGED=1; }
fi
# as the service user: also proves it can read the config and the models
if runuser -u expressiond -- env EXPRESSIOND_MODELS="$MODELS" \
     "$PREFIX/bin/expressiond" check-config --config "$CONFIG_DST" >"$TMP/check" 2>&1; then
  say check "$CONFIG_DST is valid"
else
  say check "WARNING: $CONFIG_DST needs attention before starting:"; sed 's/^/             /' "$TMP/check"
fi

# --- 5. unit and udev rule ----------------------------------------------------------------
sed "s#/opt/expressiond#$PREFIX#g" "$SRC/systemd/expressiond.service" > "$TMP/expressiond.service"
UNIT_CHANGED=0
install_file "$TMP/expressiond.service" "$UNIT_DST" 0644 unit && { UNIT_CHANGED=1; CODE_CHANGED=1; }
if install_file "$SRC/systemd/60-expressiond-ncs2.rules" "$UDEV_DST" 0644 udev; then
  if command -v udevadm >/dev/null && udevadm control --reload 2>/dev/null; then
    udevadm trigger --subsystem-match=usb --attr-match=idVendor=03e7 2>/dev/null || true
    say udev "rules reloaded"
  else
    say udev "udev is not running here: the rule applies from the next boot"
  fi
fi

# --- 6. systemd ------------------------------------------------------------------------------
if [ "$SYSTEMD_RUNNING" = 1 ]; then
  [ "$UNIT_CHANGED" = 1 ] && systemctl daemon-reload && say systemd "daemon-reload"
else
  say systemd "systemd is not running (chroot/image build): no daemon-reload"
fi
if [ "$ENABLE" = 1 ]; then
  if systemctl is-enabled --quiet expressiond.service 2>/dev/null; then
    say enable "up to date (enabled)"
  else
    systemctl enable --quiet expressiond.service; say enable "enabled (starts at boot)"; CHANGED=1
  fi
fi

if [ "$CHANGED" = 0 ]; then
  echo "expressiond: up to date, nothing changed"
else
  echo "expressiond: installed"
fi
if [ "$SYSTEMD_RUNNING" = 1 ] && systemctl is-active --quiet expressiond.service; then
  [ "$CODE_CHANGED" = 1 ] && echo "  expressiond is running the previous version: systemctl restart expressiond"
else
  echo "  start it:  systemctl start expressiond"
fi
echo "  logs:      journalctl -u expressiond -f        config: $CONFIG_DST"
echo "  MQTT password (optional): /etc/expressiond/mqtt-password, root-owned, chmod 600"
