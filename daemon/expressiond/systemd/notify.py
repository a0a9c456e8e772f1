"""sd_notify over $NOTIFY_SOCKET: READY, STATUS, WATCHDOG, RELOADING, STOPPING.

The protocol is one AF_UNIX datagram of ``KEY=value`` lines, so ``Notifier`` speaks it directly
(no libsystemd needed, works on any Python). Without $NOTIFY_SOCKET (a shell, a test) every
call is a no-op that returns False.

Thread: any; each message is one sendto() under the notifier's lock.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)


def _notify_address(value: str) -> str | None:
    """$NOTIFY_SOCKET -> a sendto() address: '@name' is abstract, '/path' a file socket."""
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # e.g. vsock: (systemd >= 254): not for a daemon on the host


class Notifier:
    """Sends sd_notify messages to the service manager; a no-op when not run by systemd.

    Thread-safe: each message is one sendto() on one datagram socket. A failed send is
    logged once and reported as False; it never raises, because losing a STATUS line must
    not take the pipeline down (a lost WATCHDOG=1 is what the watchdog is there to catch).
    """

    def __init__(self, address: str | None = None, environ: Mapping[str, str] | None = None):
        self._environ = os.environ if environ is None else environ
        raw = self._environ.get("NOTIFY_SOCKET", "") if address is None else address
        self._address = _notify_address(raw) if raw else None
        if raw and self._address is None:
            log.warning("NOTIFY_SOCKET=%s is not a unix socket address; not notifying", raw)
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=value`` lines as one datagram; True when it was sent."""
        if self._address is None:
            return False
        payload = "\n".join(assignments).encode("utf-8")
        try:
            with self._lock:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(payload, self._address)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning("sd_notify to %r failed: %s", self._address, exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Startup (or a reload) is complete: models compiled and warmed up."""
        return self.notify("READY=1", *_status_line(status))

    def status(self, text: str) -> bool:
        """One line for `systemctl status`."""
        return self.notify(*_status_line(text))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def reloading(self, status: str | None = None) -> bool:
        """A reload (SIGHUP) started; send ready() when it is done."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}", *_status_line(status))

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *_status_line(status))

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for more start/stop time (e.g. a first GPU compile without a model cache)."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")

    def watchdog_interval(self) -> float | None:
        """The watchdog timeout in seconds, or None when no watchdog applies to this process.

        Ping at least twice per interval (systemd's recommendation): a ping every
        ``interval / 2`` at the latest.
        """
        usec = self._environ.get("WATCHDOG_USEC", "")
        pid = self._environ.get("WATCHDOG_PID", "")
        if pid:
            try:
                if int(pid) != os.getpid():
                    return None
            except ValueError:
                return None
        try:
            value = int(usec)
        except ValueError:
            return None
        return value / 1_000_000 if value > 0 else None

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def _status_line(text: str | None) -> list[str]:
    if text is None:
        return []
    return ["STATUS=" + " ".join(text.splitlines())]
