"""What both decoders share: their options, the open error, the fps cap rule, and the
vocabulary the config checks (``DECODE_MODES``, ``RTSP_TRANSPORTS``).

No OpenCV, numpy or PyAV here: the config imports this module.

Thread: none of its own; an FpsCap belongs to its decoder's camera thread.
"""

from __future__ import annotations

from dataclasses import dataclass

from expressiond.sources.base import redact

DECODE_MODES = ("auto", "software", "vaapi")
RTSP_TRANSPORTS = ("tcp", "udp")
VA_DEVICE = "/dev/dri/renderD128"


class DecodeOpenError(Exception):
    """A source cannot be opened now; the message is for the operator (credentials redacted)."""


@dataclass(frozen=True)
class DecodeOptions:
    decode: str = "auto"
    rtsp_transport: str | None = None  # None: FFmpeg's default (UDP, then TCP)
    timeout_s: float = 5.0  # open and read: no data for this long is a failure
    max_fps: float | None = None  # None: every frame is converted (files paced by the caller)
    size: tuple[int, int] | None = None  # (width, height): scaled in the same pass as the conversion
    va_device: str = VA_DEVICE
    ffmpeg: str = "ffmpeg"  # the program of the VAAPI decoder (Debian's has VAAPI)
    threads: int = 0  # PyAV: 0 lets FFmpeg pick (one per core)
    # PyAV frame threads: more frames a second from one file, but a frame of latency per thread
    # and ~10 % more CPU per frame than slice threads. None: on for files, off for streams
    frame_threads: bool | None = None


class FpsCap:
    """Keeps at most ``max_fps`` frames a second of stream time, evenly: the rule of the
    capture's own cap (a frame up to 20 % of a period early still counts as due)."""

    def __init__(self, max_fps: float | None):
        self.period = 1.0 / max_fps if max_fps else 0.0
        self._next_due: float | None = None
        self._last: float | None = None

    def keep(self, t: float) -> bool:
        if not self.period:
            return True
        if self._next_due is None or self._last is None or not (self._last - 1.0 <= t <= self._last + 10.0):
            self._next_due = t  # first frame, or the timeline jumped: start afresh
        self._last = t
        tolerance = 0.2 * self.period
        if t < self._next_due - tolerance:
            return False
        self._next_due = max(self._next_due, t - tolerance) + self.period
        return True


def is_network(url: str) -> bool:
    """A URL other than file: (a live stream: its end is a failure, not the end of a file)."""
    return "://" in url and not url.lower().startswith("file:")


def is_rtsp(url: str) -> bool:
    return url.lower().startswith(("rtsp://", "rtsps://"))


def reason(exc: BaseException) -> str:
    """FFmpeg's words without the URL PyAV appends (it may carry credentials)."""
    text = getattr(exc, "strerror", None) or str(exc)
    return redact(str(text)).split(": '", 1)[0]
