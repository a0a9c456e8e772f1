"""One camera: a named thread that reads its source into a latest-frame slot.

Files and image folders are paced at the configured fps as if they were a camera; live sources
are read as fast as they deliver (so their buffers never fill) and frames beyond the fps cap are
skipped. A file or folder with ``realtime = false`` is read losslessly instead: the next frame
is decoded only once the previous one was taken, so every frame is analysed, as fast as
inference goes. A lost source is reopened with capped, jittered exponential backoff; the thread
never dies on a bad frame. Which class reads the source is the registry's choice (registry.py).

Thread: "capture-<camera>" reads the source and counts; ``stats()`` is called from the
service's thread and reads the counters through their lock.
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

import cv2

from expressiond.counters import Counters
from expressiond.events import Frame
from expressiond.sources.base import BaseSource, SourceUnavailable, redact
from expressiond.sources.frames import normalise_image
from expressiond.sources.registry import make_source
from expressiond.sources.slot import LatestFrameSlot

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaptureStats:
    """One camera's counters (the capture part of the stats payload's camera entry)."""

    camera: str
    source: str  # redacted
    kind: str
    connected: bool
    finished: bool
    frames_read: int
    frames_published: int
    frames_dropped: int
    frames_skipped: int
    bad_frames: int
    frames_converted: int
    reconnects: int
    open_failures: int
    loops: int
    fps: float  # frames handed to the slot per second, over the last 32
    last_frame_age_s: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


BACKOFF_START_S = 0.5
_WARN_KEYS_MAX = 1000


class CameraCapture:
    """Reads one camera in thread "capture-<name>" into ``slot``.

    ``camera`` is duck-typed like config.CameraConfig (name, source, fps, loop, width,
    height, reconnect_max_s); a relative source must already be resolved by the caller.
    """

    def __init__(
        self,
        camera: Any,
        *,
        slot: LatestFrameSlot | None = None,
        backoff_start_s: float = BACKOFF_START_S,
        rng: random.Random | None = None,
    ):
        self.name: str = camera.name
        self.slot = slot if slot is not None else LatestFrameSlot()
        self._cam = camera
        self._period = 1.0 / float(camera.fps)
        self._resize = (int(camera.width), int(camera.height)) if camera.width else None
        self._backoff_max = max(0.05, float(camera.reconnect_max_s))
        self._backoff_start = min(backoff_start_s, self._backoff_max)
        self._delay = self._backoff_start
        self._rng = rng or random.Random()
        self._source: BaseSource = make_source(camera.source, camera.width, camera.height)
        self.kind = self._source.kind
        # realtime = false (files, folders): no pacing, no drops; the schema refuses it for live
        self._lossless = not self._source.live and not getattr(camera, "realtime", True)
        self._paced = not self._source.live and not self._lossless
        self._stop = threading.Event()
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"capture-{self.name}", daemon=True)
        self._up = threading.Event()  # the source is open (read by health and stats)
        self._opened_once = False
        self._outage_since: float | None = None
        self._next_due = 0.0
        self._published_at_open = 0
        self._was_up = False
        self._last_mono: float | None = None
        self._publish_times: collections.deque[float] = collections.deque(maxlen=32)
        self._warned: set[str] = set()
        self.counts = Counters(
            "frames_read",
            "frames_skipped",
            "bad_frames",
            "frames_converted",
            "reconnects",
            "open_failures",
            "loops",
        )
        self._stats_lock = threading.Lock()  # _last_mono and _publish_times, read by stats()

    # lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> bool:
        """Ask the thread to end and join it; True if it ended within timeout."""
        self._stop.set()
        return self.join(timeout)

    def join(self, timeout: float | None = None) -> bool:
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def finished(self) -> bool:
        """The source reached its end (a file or folder without loop)."""
        return self._finished.is_set()

    @property
    def connected(self) -> bool:
        return self._up.is_set()

    def stats(self) -> CaptureStats:
        with self._stats_lock:
            times, last = list(self._publish_times), self._last_mono
        span = times[-1] - times[0] if len(times) > 2 else 0.0
        fps = (len(times) - 1) / span if span > 0 else 0.0
        published, dropped = self.slot.counts()
        c = self.counts.snapshot()
        return CaptureStats(
            camera=self.name,
            source=redact(self._cam.source),
            kind=self.kind,
            connected=self._up.is_set(),
            finished=self.finished,
            frames_read=c["frames_read"],
            frames_published=published,
            frames_dropped=dropped,
            frames_skipped=c["frames_skipped"],
            bad_frames=c["bad_frames"],
            frames_converted=c["frames_converted"],
            reconnects=c["reconnects"],
            open_failures=c["open_failures"],
            loops=c["loops"],
            fps=round(fps, 2),
            last_frame_age_s=None if last is None else round(time.monotonic() - last, 3),
        )

    # thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if not self._up.is_set() and not self._connect():
                    break
                try:
                    if not self._step():
                        break
                except Exception:  # never let one frame kill the camera
                    log.exception("camera %s: unexpected capture error; reopening", self.name)
                    self._lose("unexpected error")
        finally:
            self._source.close()
            self._up.clear()
            self.slot.close()

    def _connect(self) -> bool:
        """Open the source, waiting with backoff while it fails; False if stopped."""
        while not self._stop.is_set():
            if self._outage_since is not None and self._stop.wait(self._next_backoff()):
                return False
            try:
                self._source.open()
            except (SourceUnavailable, cv2.error, OSError) as exc:
                self.counts.add("open_failures")
                if self._outage_since is None:
                    self._outage_since = time.monotonic()
                    log.warning(
                        "camera %s: %s; retrying with backoff up to %.0f s", self.name, exc, self._backoff_max
                    )
                else:
                    log.debug("camera %s: still unavailable: %s", self.name, exc)
                continue
            self._up.set()
            self._published_at_open = self.slot.counts()[0]
            now = time.monotonic()
            # a looping file keeps its rhythm across the reopen; a live source starts afresh
            self._next_due = max(self._next_due, now) if self._paced else now
            if not self._opened_once:
                self._opened_once = True
                log.info("camera %s: opened %s source %s", self.name, self.kind, redact(self._cam.source))
            return True
        return False

    def _next_backoff(self) -> float:
        wait = min(self._backoff_max, self._delay * self._rng.uniform(0.75, 1.25))
        self._delay = min(self._backoff_max, self._delay * 2)
        return wait

    def _lose(self, reason: str) -> None:
        self._source.close()
        self._up.clear()
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            log.warning(
                "camera %s: lost %s source %s (%s); reconnecting with backoff up to %.0f s",
                self.name,
                self.kind,
                redact(self._cam.source),
                reason,
                self._backoff_max,
            )

    def _recovered(self) -> None:
        self._delay = self._backoff_start
        if self._outage_since is not None:
            self.counts.add("reconnects", self._was_up)  # not for a source that was never up
            log.info("camera %s: source back after %.1f s", self.name, time.monotonic() - self._outage_since)
            self._outage_since = None

    def _warn_once(self, key: str, msg: str, *args: Any, level: int = logging.WARNING) -> None:
        if key in self._warned or len(self._warned) >= _WARN_KEYS_MAX:
            log.debug(msg, *args)
        else:
            self._warned.add(key)
            log.log(level, msg, *args)

    def _step(self) -> bool:
        """Read and hand off one frame; False when the source ended for good."""
        if self._lossless and not self.slot.wait_empty(self._stop):
            return True
        if self._paced:
            wait = self._next_due - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                return True
        got = self._source.read()
        now_mono, now_wall = time.monotonic(), time.time()
        if got.status == "end":
            if self._cam.loop and self.slot.counts()[0] == self._published_at_open:
                self._lose("a whole pass gave no usable frame")  # back off instead of spinning
                return True
            self._source.close()
            self._up.clear()
            if self._cam.loop:
                self.counts.add("loops")
                return True
            self._finished.set()
            log.info(
                "camera %s: end of %s %s after %d frames",
                self.name,
                self.kind,
                self._cam.source,
                self.counts["frames_read"],
            )
            return False
        if got.status == "fail":
            self._lose("read failed")
            return True
        index = self.counts.add("frames_read") - 1
        image, note = normalise_image(got.image) if got.status == "ok" else (None, got.detail)
        if image is None:
            self.counts.add("bad_frames")
            # folder files warn once per file name, other kinds of bad frame once per kind
            key = note if got.status == "bad" else note.split(" ", 1)[0]
            if got.status == "ok" and got.detail:
                note = f"{got.detail}: {note}"
            self._warn_once(key, "camera %s: skipped bad frame %d: %s", self.name, index, note)
            return True
        self._recovered()  # a usable frame, not just an open, ends an outage
        if note:
            self.counts.add("frames_converted")
            self._warn_once(
                "conv:" + note, "camera %s: frames need conversion (%s)", self.name, note, level=logging.INFO
            )
        if self._paced:
            self._next_due = max(self._next_due + self._period, now_mono)
        elif not self._lossless:
            tolerance = 0.2 * self._period
            if now_mono < self._next_due - tolerance:
                self.counts.add("frames_skipped")
                return True
            self._next_due = max(self._next_due, now_mono - tolerance) + self._period
        if self._resize and (image.shape[1], image.shape[0]) != self._resize:
            shrink = image.shape[1] > self._resize[0]
            image = cv2.resize(
                image, self._resize, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
            )
        self.slot.put(Frame(self.name, index, now_mono, now_wall, image))
        with self._stats_lock:
            self._last_mono = now_mono
            self._publish_times.append(now_mono)
        self._was_up = True
        return True
