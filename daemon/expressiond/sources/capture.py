"""One camera: a named thread that reads its source into a latest-frame slot, and, for a live
source, a watcher that reconnects it when a read hangs.

Files and image folders are paced at the configured fps as if they were a camera; live sources
are read as fast as they deliver (so their buffers never fill) and frames beyond the fps cap are
skipped (by the source itself when it can skip before converting: ``caps_frames``, streams). A
file or folder with ``realtime = false`` is read losslessly instead: the next frame is decoded
only once the previous one was taken, so every frame is analysed, as fast as inference goes. A
lost source is reopened with capped, jittered exponential backoff; the thread never dies on a
bad frame. Which class reads the source is the registry's choice (registry.py).

Live sources are watched for reads that hang (stall.py: ``StallWatch``): a hung reader is
abandoned (``abandon``) and a new one with a new source object takes over (``start_reader``);
the abandoned one closes its own source if its read ever returns, and never touches the slot.

Thread: "capture-<camera>" reads the source and counts (one per reader; an abandoned one only
closes its source); "watch-<camera>" (stall.py) abandons and starts readers; ``stats()`` is
called from the service's thread. State the readers and the watcher share is under ``_lock``.
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
from typing import Any

import cv2

from expressiond.counters import Counters
from expressiond.events import Frame
from expressiond.sources.base import Read, SourceOptions, SourceUnavailable, redact
from expressiond.sources.frames import normalise_image
from expressiond.sources.records import CaptureStats
from expressiond.sources.registry import make_source
from expressiond.sources.slot import LatestFrameSlot
from expressiond.sources.stall import Reader, StallWatch

log = logging.getLogger(__name__)


BACKOFF_START_S = 0.5
_WARN_KEYS_MAX = 1000


class CameraCapture:
    """Reads one camera in thread "capture-<name>" into ``slot``.

    ``camera`` is duck-typed like config.CameraConfig (name, source, fps, loop, width,
    height, reconnect_max_s, and optionally realtime, stall_intervals, fourcc, decode,
    rtsp_transport); a relative source must already be resolved by the caller.
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
        self._options = SourceOptions.of(camera)
        self._period = 1.0 / float(camera.fps)
        self._backoff_max = max(0.05, float(camera.reconnect_max_s))
        self._backoff_start = min(backoff_start_s, self._backoff_max)
        self._delay = self._backoff_start
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._reader: Reader | None = self._new_reader()
        source = self._reader.source
        self.kind = source.kind
        self._caps_frames = source.caps_frames
        resize = (int(camera.width), int(camera.height)) if camera.width else None
        self._resize = None if self._caps_frames else resize
        # realtime = false (files, folders): no pacing, no drops; the schema refuses it for live
        self._lossless = not source.live and not getattr(camera, "realtime", True)
        self._paced = not source.live and not self._lossless
        self._stop = threading.Event()
        self._finished = threading.Event()
        self.watch = StallWatch(self, getattr(camera, "stall_intervals", None)) if source.live else None
        self._up = threading.Event()  # the source is open (read by health and stats)
        self._opened_once = False
        self._described: dict[str, Any] = {}
        self._outage_since: float | None = None
        self._outage_logged = False
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
            "stalls",
        )

    def _new_reader(self) -> Reader:
        return Reader(make_source(self._cam.source, self._options), self._run, f"capture-{self.name}")

    # lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._reader.thread.start()
        if self.watch is not None:
            self.watch.start()

    def stop(self, timeout: float = 2.0) -> bool:
        """Ask the threads to end and join the reader; True if it ended within timeout (a
        reader hung in its source does not: it is left to end, or not, on its own)."""
        self._stop.set()
        ended = self.join(timeout)
        if self.watch is not None:
            self.watch.join(1.0)
        self.slot.close()
        return ended

    def join(self, timeout: float | None = None) -> bool:
        reader = self._reader
        if reader is None:
            return True
        if reader.thread.ident is not None:
            reader.thread.join(timeout)
        return not reader.thread.is_alive()

    @property
    def finished(self) -> bool:
        """The source reached its end (a file or folder without loop)."""
        return self._finished.is_set()

    @property
    def connected(self) -> bool:
        return self._up.is_set()

    def stats(self) -> CaptureStats:
        with self._lock:
            times, last, info = list(self._publish_times), self._last_mono, dict(self._described)
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
            stalls=c["stalls"],
            source_info=info,
        )

    # used by the stall watch ("watch-<camera>") ------------------------------------------
    @property
    def period(self) -> float:
        """The frame interval, 1/fps."""
        return self._period

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def reader(self) -> Reader | None:
        """The current reader (None while a replacement waits for hung ones to end)."""
        return self._reader

    def abandon(self, reader: Reader, busy: tuple[str, float]) -> bool:
        """Give up ``reader``, stuck in its source since ``busy``: the camera is down (an
        outage, a stall counted) until a new reader connects. False if it moved on meanwhile."""
        with self._lock:
            if reader is not self._reader or reader.busy != busy:
                return False
            reader.abandoned.set()
            self._up.clear()
            self._reader = None
            if self._outage_since is None:
                self._outage_since = time.monotonic()
            self._outage_logged = True  # the watch says why
        self.counts.add("stalls")
        return True

    def start_reader(self) -> None:
        """A new reader with a new source object, after ``abandon``."""
        if self._reader is not None or self._stop.is_set():
            return
        reader = self._new_reader()
        with self._lock:
            self._reader = reader
        reader.thread.start()

    def log(self, level: int, msg: str, *args: Any) -> None:
        """A log line about this camera (journal field CAMERA)."""
        log.log(level, msg, *args, extra={"camera": self.name})

    # "capture-<camera>" thread ---------------------------------------------------------
    def _run(self, r: Reader) -> None:
        try:
            while not self._stop.is_set() and not r.abandoned.is_set():
                if not self._up.is_set() and not self._connect(r):
                    break
                try:
                    if not self._step(r):
                        break
                except Exception:  # never let one frame kill the camera
                    log.exception("camera %s: unexpected capture error; reopening", self.name)
                    self._lose(r, "unexpected error")
        finally:
            r.source.close()
            if not r.abandoned.is_set():
                self._up.clear()
                self.slot.close()

    def _connect(self, r: Reader) -> bool:
        """Open the source, waiting with backoff while it fails; False if stopped or abandoned."""
        while not self._stop.is_set() and not r.abandoned.is_set():
            if self._outage_since is not None and self._stop.wait(self._next_backoff()):
                return False
            try:
                r.call("open", r.source.open)
            except (SourceUnavailable, cv2.error, OSError) as exc:
                if r.abandoned.is_set():
                    return False
                self.counts.add("open_failures")
                if self._outage_since is None:
                    self._outage_since = time.monotonic()
                if not self._outage_logged:
                    self._outage_logged = True
                    self.log(
                        logging.WARNING,
                        "camera %s: %s; retrying with backoff up to %.0f s",
                        self.name,
                        exc,
                        self._backoff_max,
                    )
                else:
                    log.debug("camera %s: still unavailable: %s", self.name, exc)
                continue
            info = r.source.describe()
            with self._lock:
                if r.abandoned.is_set():
                    return False
                self._up.set()
                self._described = info
            self._published_at_open = self.slot.counts()[0]
            now = time.monotonic()
            # a looping file keeps its rhythm across the reopen; a live source starts afresh
            self._next_due = max(self._next_due, now) if self._paced else now
            if not self._opened_once:
                self._opened_once = True
                self.log(logging.INFO, "camera %s: opened %s source %s%s", *self._opened(info))
            return True
        return False

    def _opened(self, info: dict[str, Any]) -> tuple[Any, ...]:
        shown = ", ".join(f"{k} {v}" for k, v in info.items() if v not in ("", None))
        return self.name, self.kind, redact(self._cam.source), f" ({shown})" if shown else ""

    def _next_backoff(self) -> float:
        wait = min(self._backoff_max, self._delay * self._rng.uniform(0.75, 1.25))
        self._delay = min(self._backoff_max, self._delay * 2)
        return wait

    def _lose(self, r: Reader, reason: str) -> None:
        r.source.close()
        with self._lock:
            if r.abandoned.is_set():
                return
            self._up.clear()
        if self._outage_since is None:
            self._outage_since = time.monotonic()
        if not self._outage_logged:
            self._outage_logged = True
            self.log(
                logging.WARNING,
                "camera %s: lost %s source %s (%s); reconnecting with backoff up to %.0f s",
                self.name,
                self.kind,
                redact(self._cam.source),
                reason,
                self._backoff_max,
            )

    def _recovered(self) -> None:
        self._delay = self._backoff_start
        self._outage_logged = False
        if self._outage_since is not None:
            self.counts.add("reconnects", self._was_up)  # not for a source that was never up
            self.log(
                logging.INFO,
                "camera %s: source back after %.1f s",
                self.name,
                time.monotonic() - self._outage_since,
            )
            self._outage_since = None

    def _warn_once(self, key: str, msg: str, *args: Any, level: int = logging.WARNING) -> None:
        if key in self._warned or len(self._warned) >= _WARN_KEYS_MAX:
            log.debug(msg, *args)
        else:
            self._warned.add(key)
            self.log(level, msg, *args)

    def _step(self, r: Reader) -> bool:
        """Read and hand off one frame; False when the source ended for good (or this reader
        was abandoned)."""
        if self._lossless and not self.slot.wait_empty(self._stop):
            return True
        if self._paced:
            wait = self._next_due - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                return True
        got: Read = r.call("read", r.source.read)
        if r.abandoned.is_set():
            return False
        now_mono, now_wall = time.monotonic(), time.time()
        if got.status == "end":
            return self._ended(r)
        if got.status == "fail":
            self._lose(r, f"read failed: {got.detail}" if got.detail else "read failed")
            return True
        index = self.counts.add("frames_read") - 1
        if got.status == "skip":  # the source's own cap dropped it, unconverted
            self.counts.add("frames_skipped")
            return True
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
        elif not self._lossless and not self._caps_frames:
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
        with self._lock:
            if r.abandoned.is_set():
                return False
            self.slot.put(Frame(self.name, index, now_mono, now_wall, image))
            self._last_mono = now_mono
            self._publish_times.append(now_mono)
        self._was_up = True
        return True

    def _ended(self, r: Reader) -> bool:
        """A file or folder reached its end: loop, or finish."""
        if self._cam.loop and self.slot.counts()[0] == self._published_at_open:
            self._lose(r, "a whole pass gave no usable frame")  # back off instead of spinning
            return True
        r.source.close()
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
