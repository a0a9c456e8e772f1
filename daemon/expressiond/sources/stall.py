"""Per-camera stall watch: a live camera whose read has not returned for ``stall_intervals``
frame intervals (1/fps, at least STALL_MIN_S) while connected is stalled, whatever the other
cameras do.

A hung read (a V4L2 driver, a stream that neither sends nor fails) cannot be interrupted from
outside its thread, so the watch works from its own thread, "watch-<camera>": it abandons the
reader (CameraCapture.abandon: the camera counts a stall, shows not connected and is in an
outage), says so (journal field CAMERA), and starts a new reader with a new source object
(CameraCapture.start_reader), which reconnects with the usual backoff. The abandoned reader
closes its own source if its read ever returns, then ends. At most MAX_HUNG readers of a
camera may hang at once; past that the camera stays down, said once, until one of them
returns: hung threads and handles cannot pile up. An open that hangs (longer than any timeout
of the sources: OPEN_HANG_MIN_S) is abandoned the same way.

Files and folders are not watched: a local read that hangs is the daemon's own stall, which
the systemd watchdog covers (daemon/records.py, Health.healthy).

Thread: "watch-<camera>" (``check`` may also be called by a test); a Reader's ``busy`` is
written by its reader thread and read here (one tuple, replaced whole).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from expressiond.sources.base import BaseSource

STALL_INTERVALS = 50  # the config's default for stall_intervals
STALL_MIN_S = 1.0
OPEN_HANG_MIN_S = 30.0  # an open may take a few timeouts (connect, DESCRIBE, SETUP, a fallback)
MAX_HUNG = 3


class Reader:
    """One reader thread of a camera and the source object it alone uses."""

    def __init__(self, source: BaseSource, target: Any, name: str):
        self.source = source
        self.abandoned = threading.Event()
        self.busy: tuple[str, float] | None = None  # ("open" | "read", since): inside the source
        self.thread = threading.Thread(target=target, args=(self,), name=name, daemon=True)

    def call(self, what: str, fn: Any) -> Any:
        """``fn()`` (the source's open or read) with this reader marked busy meanwhile."""
        self.busy = (what, time.monotonic())
        try:
            return fn()
        finally:
            self.busy = None


class StallWatch:
    """Watches one CameraCapture (duck-typed: name, period, stopping, reader, abandon,
    start_reader, log; capture.py)."""

    def __init__(self, capture: Any, stall_intervals: int | None = None):
        self.capture = capture
        self.stall_intervals = stall_intervals or STALL_INTERVALS
        self.stall_after_s = max(STALL_MIN_S, self.stall_intervals * capture.period)
        self.open_hang_s = max(OPEN_HANG_MIN_S, 3 * self.stall_after_s)
        self.hung: list[Reader] = []
        self._said_full = False
        self._thread = threading.Thread(target=self._run, name=f"watch-{capture.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread.ident is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        period = min(0.25, self.stall_after_s / 4)
        while not self.capture.stopping:
            time.sleep(period)
            self.check()

    def check(self, now: float | None = None) -> bool:
        """Abandon the current reader if it is stuck in its source (True), and start a reader
        when there is none and the hung ones allow it."""
        now = time.monotonic() if now is None else now
        cap = self.capture
        reader = cap.reader
        busy = reader.busy if reader is not None else None
        stalled = False
        if busy is not None:
            what, since = busy
            limit = self.stall_after_s if what == "read" else self.open_hang_s
            if now - since >= limit and cap.abandon(reader, busy):
                stalled = True
                self.hung.append(reader)
                self._say(what, now - since)
        if cap.reader is None and not cap.stopping:
            self.hung = [r for r in self.hung if r.thread.is_alive()]
            if len(self.hung) < MAX_HUNG:
                self._said_full = False
                cap.start_reader()
            elif not self._said_full:
                self._said_full = True
                cap.log(
                    logging.ERROR,
                    "camera %s: %d reads of this camera hang and never returned; no new attempt "
                    "until one does (replug the camera, or restart the service)",
                    cap.name,
                    len(self.hung),
                )
        return stalled

    def _say(self, what: str, hung_s: float) -> None:
        cap = self.capture
        if what == "read":
            cap.log(
                logging.WARNING,
                "camera %s: stalled: no frame for %.1f s while connected (%d frame intervals at %g fps); "
                "abandoning the hung read and reconnecting",
                cap.name,
                hung_s,
                round(hung_s / cap.period),
                1.0 / cap.period,
            )
        else:
            cap.log(
                logging.WARNING,
                "camera %s: opening the source hangs for %.0f s; abandoning it and retrying",
                cap.name,
                hung_s,
            )
