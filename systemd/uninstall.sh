#!/bin/bash
# Remove what systemd/install.sh installed. Run as root.
#
#   systemd/uninstall.sh [--purge] [--prefix DIR]
#
# Stops and disables the service; removes the unit, the udev rule, the sysusers.d and
# tmpfiles.d snippets, the credential link, the model cache and the venv (PREFIX, default
# /opt/expressiond). Keeps the operator's data: /etc/expressiond (config, MQTT password),
# /var/lib/expressiond (event spool) and unit drop-ins, unless --purge.
# The expressiond user and group stay (files elsewhere may still carry its uid): remove them
# with `userdel expressiond` if you are sure.
set -euo pipefail

PREFIX=/opt/expressiond
PURGE=0
while [ $# -gt 0 ]; do
  case $1 in
    --purge) PURGE=1; shift ;;
    --prefix) PREFIX=${2:?--prefix needs a directory}; shift 2 ;;
    --prefix=*) PREFIX=${1#*=}; shift ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "uninstall.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done
die() { echo "uninstall.sh: error: $*" >&2; exit 1; }
say() { printf '  %-10s %s\n' "$1" "$2"; }
[ "$(id -u)" = 0 ] || die "run as root"
case $PREFIX in /?*) ;; *) die "--prefix must be an absolute path, not '$PREFIX'" ;; esac
PREFIX=${PREFIX%/}
# refuse before touching anything when PREFIX is not our venv (a mistyped --prefix)
if [ -e "$PREFIX" ] && { [ ! -f "$PREFIX/pyvenv.cfg" ] || { [ ! -e "$PREFIX/.expressiond-source" ] \
     && [ ! -e "$PREFIX/bin/expressiond" ] && [ "$PREFIX" != /opt/expressiond ]; }; }; then
  die "$PREFIX does not look like expressiond's venv (no pyvenv.cfg and bin/expressiond): not removing anything"
fi
REMOVED=0
CRED_LINK=/etc/credstore/expressiond-mqtt-password

remove() {  # remove PATH...: files, links or directories that exist
  local p
  for p in "$@"; do
    if [ -e "$p" ] || [ -L "$p" ]; then rm -rf -- "$p"; say removed "$p"; REMOVED=1; fi
  done
}

echo "expressiond: uninstalling$([ "$PURGE" = 1 ] && echo ' (purge)')"
if [ -d /run/systemd/system ]; then
  if systemctl cat expressiond.service >/dev/null 2>&1; then
    systemctl disable --now --quiet expressiond.service 2>/dev/null || true
    say service "stopped and disabled"
    REMOVED=1
  fi
elif [ -e /etc/systemd/system/expressiond.service ]; then
  systemctl disable --quiet expressiond.service 2>/dev/null || true
fi

remove /etc/systemd/system/expressiond.service /etc/udev/rules.d/60-expressiond-ncs2.rules \
       /etc/sysusers.d/expressiond.conf /etc/tmpfiles.d/expressiond.conf /var/cache/expressiond
# the credential link install.sh made; a real file there is the operator's (kept unless purge)
if [ -L "$CRED_LINK" ] || [ "$PURGE" = 1 ]; then remove "$CRED_LINK"; fi
rmdir /etc/credstore 2>/dev/null && say removed "/etc/credstore (was empty)" || true

[ ! -e "$PREFIX" ] || remove "$PREFIX"

if [ "$PURGE" = 1 ]; then
  remove /etc/expressiond /var/lib/expressiond /etc/systemd/system/expressiond.service.d
else
  for keep in /etc/expressiond /var/lib/expressiond /etc/systemd/system/expressiond.service.d; do
    if [ -e "$keep" ]; then say kept "$keep (--purge removes it)"; fi
  done
fi

if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl reset-failed expressiond.service 2>/dev/null || true
fi
if command -v udevadm >/dev/null; then udevadm control --reload 2>/dev/null || true; fi
if getent passwd expressiond >/dev/null; then say kept "user expressiond (userdel expressiond to remove it)"; fi

if [ "$REMOVED" = 0 ]; then echo "expressiond: nothing to remove"; else echo "expressiond: uninstalled"; fi
