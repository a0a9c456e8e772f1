"""Frame sources: one named thread per camera feeding a latest-frame slot.

The slot holds one frame because inference, not capture, is the bottleneck: a newer frame
replaces an unconsumed older one (counted as dropped) so the pipeline always works on the
freshest image and latency never grows. Files and image folders are paced at the configured
fps as if they were a camera; live sources are read as fast as they deliver (so their
buffers never fill) and frames beyond the fps cap are skipped. A file or folder with
``realtime = false`` is read losslessly instead: the next frame is decoded only once the
previous one was taken, so every frame is analysed, as fast as inference goes. A lost source is
reopened with capped, jittered exponential backoff; the thread never dies on a bad frame.
"""

from __future__ import annotations

import collections
import logging
import os
import random
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from .events import Frame

log = logging.getLogger(__name__)

MAX_SIDE = 8192  # larger frames are refused: nobody streams that, it is a broken header
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
BACKOFF_START_S = 0.5
STREAM_TIMEOUT_MS = 5000  # open/read timeout for network streams, so stop() is never stuck long
_WARN_KEYS_MAX = 1000


def source_kind(spec: str) -> str:
    """Classify a camera source spec: "v4l2", "stream", "folder" or "file"."""
    s = spec.strip()
    if s.isdigit() or s.startswith("/dev/"):
        return "v4l2"
    scheme = s.split("://", 1)[0].lower() if "://" in s else ""
    if scheme in STREAM_SCHEMES:
        return "stream"
    if os.path.isdir(s) or s.endswith(("/", os.sep)):
        return "folder"
    return "file"


def redact(spec: str) -> str:
    """Hide credentials in stream URLs before they reach a log line or a stats payload."""
    return re.sub(r"://[^/@]*@", "://***@", spec)


def source_problem(spec: str) -> str | None:
    """Why a file or folder source cannot be opened now (for check-config), else None.

    Devices and streams are not probed: they may well be absent at check time.
    """
    kind = source_kind(spec)
    if kind not in ("file", "folder"):
        return None
    source = _FolderSource(spec) if kind == "folder" else _VideoSource(spec, kind, None, None)
    try:
        source.open()
    except SourceUnavailable as exc:
        return str(exc)
    source.close()
    return None


def normalise_image(image: Any) -> tuple[np.ndarray | None, str]:
    """Make any decoded image u8 BGR (H, W, 3).

    Returns (image, note): note names the conversion made ("" if none); image is None when the
    frame is unusable and note then says why.
    """
    if not isinstance(image, np.ndarray) or image.size == 0 or image.ndim not in (2, 3):
        return None, "empty or malformed frame"
    h, w = image.shape[:2]
    if h > MAX_SIDE or w > MAX_SIDE:
        return None, f"frame {w}x{h} larger than {MAX_SIDE} px on a side"
    notes = []
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
        notes.append("16-bit scaled to 8-bit")
    elif image.dtype.kind == "f":
        scale = 255.0 if float(np.nanmax(image)) <= 1.0 else 1.0
        image = np.clip(np.nan_to_num(image) * scale, 0, 255).astype(np.uint8)
        notes.append("float scaled to 8-bit")
    elif image.dtype != np.uint8:
        return None, f"unsupported pixel type {image.dtype}"
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels == 1:
        image = cv2.cvtColor(image.reshape(h, w), cv2.COLOR_GRAY2BGR)
        notes.append("gray converted to BGR")
    elif channels == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        notes.append("alpha dropped")
    elif channels != 3:
        return None, f"unsupported channel count {channels}"
    return np.ascontiguousarray(image), ", ".join(notes)


def jpeg_complete(data: np.ndarray) -> bool:
    """True when the last scan (SOS) of a JPEG is followed by an EOI marker.

    Entropy-coded data byte-stuffs 0xFF, so FFDA/FFD9 only occur as real markers; a truncated
    file has no EOI after its last scan (libjpeg would silently pad it with grey).
    """
    raw = data.tobytes()
    sos = raw.rfind(b"\xff\xda")
    return sos >= 0 and raw.find(b"\xff\xd9", sos) >= 0


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

    def put(self, frame: Frame) -> bool:
        """Store frame; True if it replaced an unconsumed one."""
        with self._cond:
            replaced = self._frame is not None
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

    @property
    def closed(self) -> bool:
        return self._closed


class SourceUnavailable(Exception):
    """A source cannot be opened now; the message is for the operator."""


@dataclass
class _Read:
    status: str  # ok | bad | end | fail
    image: np.ndarray | None = None
    detail: str = ""


class _VideoSource:
    """Anything cv2.VideoCapture opens: V4L2 device/index, network stream, video file."""

    def __init__(self, spec: str, kind: str, width: int | None, height: int | None):
        self.spec, self.kind, self.width, self.height = spec, kind, width, height
        self.live = kind in ("v4l2", "stream")
        self._cap: cv2.VideoCapture | None = None

    def open(self) -> None:
        spec = self.spec.strip()
        if self.kind == "v4l2":
            path = f"/dev/video{spec}" if spec.isdigit() else spec
            if not os.path.exists(path):
                raise SourceUnavailable(
                    f"V4L2 device {path} does not exist (camera unplugged? see `ls /dev/video*`)"
                )
            cap = cv2.VideoCapture(int(spec) if spec.isdigit() else spec, cv2.CAP_V4L2)
            if cap.isOpened():
                cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a stale queue
                if self.width and self.height:
                    cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
                    cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            hint = "busy, or the service user lacks access (group video)?"
        elif self.kind == "stream":
            cap = cv2.VideoCapture(
                spec,
                cv2.CAP_FFMPEG,
                [
                    cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                    STREAM_TIMEOUT_MS,
                    cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                    STREAM_TIMEOUT_MS,
                ],
            )
            hint = "is the stream up and the URL right?"
        else:
            if not os.path.isfile(spec):
                raise SourceUnavailable(f"video file {spec} does not exist")
            cap = cv2.VideoCapture(spec)
            hint = "not a video OpenCV can decode?"
        if not cap.isOpened():
            cap.release()
            raise SourceUnavailable(f"cannot open {self.kind} source {redact(spec)} ({hint})")
        self._cap = cap

    def read(self) -> _Read:
        if self._cap is None:
            return _Read("fail")
        ok, image = self._cap.read()
        if not ok:
            return _Read("fail" if self.live else "end")
        return _Read("ok", image)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class _FolderSource:
    """Image files of one folder in name order; the listing is refreshed at every pass."""

    kind = "folder"
    live = False

    def __init__(self, path: str):
        self.path = path
        self._files: list[str] = []
        self._pos = 0

    def open(self) -> None:
        if not os.path.isdir(self.path):
            raise SourceUnavailable(f"image folder {self.path} does not exist")
        names = sorted(n for n in os.listdir(self.path) if n.lower().endswith(IMAGE_SUFFIXES))
        if not names:
            raise SourceUnavailable(f"image folder {self.path} has no .jpg/.jpeg/.png/.bmp files")
        self._files, self._pos = names, 0

    def read(self) -> _Read:
        if self._pos >= len(self._files):
            return _Read("end")
        name = self._files[self._pos]
        self._pos += 1
        try:
            data = np.fromfile(os.path.join(self.path, name), dtype=np.uint8)
        except OSError as exc:
            return _Read("bad", detail=f"{name}: {exc.strerror or exc}")
        if data.size == 0:
            return _Read("bad", detail=f"{name}: empty file")
        if name.lower().endswith((".jpg", ".jpeg")) and not jpeg_complete(data):
            return _Read("bad", detail=f"{name}: truncated JPEG")
        try:
            image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        except cv2.error as exc:  # e.g. a header claiming more pixels than OpenCV will decode
            why = str(exc).rsplit("error: ", 1)[-1].strip().splitlines()[0][:100]
            return _Read("bad", detail=f"{name}: not a decodable image ({why})")
        if image is None:
            return _Read("bad", detail=f"{name}: not a decodable image")
        return _Read("ok", image, detail=name)

    def close(self) -> None:
        self._files, self._pos = [], 0


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
        self.kind = source_kind(camera.source)
        self._cam = camera
        self._period = 1.0 / float(camera.fps)
        self._resize = (int(camera.width), int(camera.height)) if camera.width else None
        self._backoff_max = max(0.05, float(camera.reconnect_max_s))
        self._backoff_start = min(backoff_start_s, self._backoff_max)
        self._delay = self._backoff_start
        self._rng = rng or random.Random()
        self._source: _VideoSource | _FolderSource = (
            _FolderSource(camera.source)
            if self.kind == "folder"
            else _VideoSource(camera.source, self.kind, camera.width, camera.height)
        )
        # realtime = false (files, folders): no pacing, no drops; the schema refuses it for live
        self._lossless = not self._source.live and not getattr(camera, "realtime", True)
        self._paced = not self._source.live and not self._lossless
        self._stop = threading.Event()
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"capture-{self.name}", daemon=True)
        self._connected = False
        self._opened_once = False
        self._outage_since: float | None = None
        self._next_due = 0.0
        self._published_at_open = 0
        self._was_up = False
        self._last_mono: float | None = None
        self._publish_times: collections.deque[float] = collections.deque(maxlen=32)
        self._warned: set[str] = set()
        self.frames_read = self.frames_skipped = self.bad_frames = self.frames_converted = 0
        self.reconnects = self.open_failures = self.loops = 0

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
        return self._connected

    def stats(self) -> dict[str, Any]:
        times = self._publish_times.copy()  # atomic under the GIL, unlike iterating
        span = times[-1] - times[0] if len(times) > 2 else 0.0
        fps = (len(times) - 1) / span if span > 0 else 0.0
        last = self._last_mono
        return {
            "camera": self.name,
            "source": redact(self._cam.source),
            "kind": self.kind,
            "connected": self._connected,
            "finished": self.finished,
            "frames_read": self.frames_read,
            "frames_published": self.slot.published,
            "frames_dropped": self.slot.dropped,
            "frames_skipped": self.frames_skipped,
            "bad_frames": self.bad_frames,
            "frames_converted": self.frames_converted,
            "reconnects": self.reconnects,
            "open_failures": self.open_failures,
            "loops": self.loops,
            "fps": round(fps, 2),
            "last_frame_age_s": None if last is None else round(time.monotonic() - last, 3),
        }

    # thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if not self._connected and not self._connect():
                    break
                try:
                    if not self._step():
                        break
                except Exception:  # never let one frame kill the camera
                    log.exception("camera %s: unexpected capture error; reopening", self.name)
                    self._lose("unexpected error")
        finally:
            self._source.close()
            self._connected = False
            self.slot.close()

    def _connect(self) -> bool:
        """Open the source, waiting with backoff while it fails; False if stopped."""
        while not self._stop.is_set():
            if self._outage_since is not None and self._stop.wait(self._next_backoff()):
                return False
            try:
                self._source.open()
            except (SourceUnavailable, cv2.error, OSError) as exc:
                self.open_failures += 1
                if self._outage_since is None:
                    self._outage_since = time.monotonic()
                    log.warning(
                        "camera %s: %s; retrying with backoff up to %.0f s", self.name, exc, self._backoff_max
                    )
                else:
                    log.debug("camera %s: still unavailable: %s", self.name, exc)
                continue
            self._connected = True
            self._published_at_open = self.slot.published
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
        self._connected = False
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
            self.reconnects += self._was_up  # not for a source that was never up
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
            if self._cam.loop and self.slot.published == self._published_at_open:
                self._lose("a whole pass gave no usable frame")  # back off instead of spinning
                return True
            self._source.close()
            self._connected = False
            if self._cam.loop:
                self.loops += 1
                return True
            self._finished.set()
            log.info(
                "camera %s: end of %s %s after %d frames",
                self.name,
                self.kind,
                self._cam.source,
                self.frames_read,
            )
            return False
        if got.status == "fail":
            self._lose("read failed")
            return True
        index = self.frames_read
        self.frames_read += 1
        image, note = normalise_image(got.image) if got.status == "ok" else (None, got.detail)
        if image is None:
            self.bad_frames += 1
            # folder files warn once per file name, other kinds of bad frame once per kind
            key = note if got.status == "bad" else note.split(" ", 1)[0]
            if got.status == "ok" and got.detail:
                note = f"{got.detail}: {note}"
            self._warn_once(key, "camera %s: skipped bad frame %d: %s", self.name, index, note)
            return True
        self._recovered()  # a usable frame, not just an open, ends an outage
        if note:
            self.frames_converted += 1
            self._warn_once(
                "conv:" + note, "camera %s: frames need conversion (%s)", self.name, note, level=logging.INFO
            )
        if self._paced:
            self._next_due = max(self._next_due + self._period, now_mono)
        elif not self._lossless:
            tolerance = 0.2 * self._period
            if now_mono < self._next_due - tolerance:
                self.frames_skipped += 1
                return True
            self._next_due = max(self._next_due, now_mono - tolerance) + self._period
        if self._resize and (image.shape[1], image.shape[0]) != self._resize:
            shrink = image.shape[1] > self._resize[0]
            image = cv2.resize(
                image, self._resize, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
            )
        self.slot.put(Frame(self.name, index, now_mono, now_wall, image))
        self._last_mono, self._was_up = now_mono, True
        self._publish_times.append(now_mono)
        return True
