"""The latest-frame slot between a camera's thread and the inference feeder.

The slot holds one frame because inference, not capture, is the bottleneck: a newer frame
replaces an unconsumed older one (counted as dropped) so the pipeline always works on the
freshest image and latency never grows.

Thread: written by "capture-<camera>", read by the runtime's "frames" feeder; all state is
under the slot's condition (the counters too).
"""

from __future__ import annotations

import threading
import time

from expressiond.events import Frame


class LatestFrameSlot:
    """A hand-off of capacity one: put() replaces an unconsumed frame and counts the drop.

    ``wakeup`` (optional, shared by several slots) is set on every put/close so one consumer
    can wait for any camera and then get(0) from each.
    """

    def __init__(self, wakeup: threading.Event | None = None):
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._closed = False
        self._wakeup = wakeup
        self.dropped = 0
        self.published = 0
        self._waiting_since: float | None = None  # monotonic time a frame was first left untaken

    def put(self, frame: Frame) -> bool:
        """Store frame; True if it replaced an unconsumed one."""
        with self._cond:
            replaced = self._frame is not None
            if not replaced:
                self._waiting_since = time.monotonic()
            self.dropped += replaced
            self.published += 1
            self._frame = frame
            self._cond.notify_all()
        if self._wakeup is not None:
            self._wakeup.set()
        return replaced

    def get(self, timeout: float | None = None) -> Frame | None:
        """The latest frame, or None on timeout or once closed and empty."""
        with self._cond:
            if self._frame is None and not self._closed:
                self._cond.wait_for(lambda: self._frame is not None or self._closed, timeout)
            frame, self._frame = self._frame, None
            self._waiting_since = None
            if frame is not None:
                self._cond.notify_all()  # a lossless producer waits in wait_empty()
            return frame

    def wait_empty(self, stop: threading.Event, poll_s: float = 0.1) -> bool:
        """Block until the frame in the slot was taken; False if ``stop`` is set first."""
        with self._cond:
            while self._frame is not None and not self._closed:
                if stop.is_set():
                    return False
                self._cond.wait(poll_s)
            return not stop.is_set()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._wakeup is not None:
            self._wakeup.set()

    def waiting_s(self, now: float) -> float | None:
        """For how long frames have been waiting here untaken (replacements included), or None
        when the slot is empty: a consumer that no longer takes frames shows here."""
        with self._cond:
            return None if self._waiting_since is None else now - self._waiting_since

    def counts(self) -> tuple[int, int]:
        """(published, dropped), read under the slot's lock."""
        with self._cond:
            return self.published, self.dropped

    @property
    def closed(self) -> bool:
        return self._closed
