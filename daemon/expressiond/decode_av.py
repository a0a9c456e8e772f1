"""Video decoding with PyAV (FFmpeg): hardware decode when there is one, and no work spent on
frames the fps cap drops.

``decode = "auto" | "software" | "vaapi"`` per camera. "vaapi" decodes on the iGPU through
FFmpeg's VAAPI hwaccel (/dev/dri/renderD128); "auto" uses it when present. When it is not (no
render node, no access to it, or an FFmpeg built without VAAPI) decoding falls back to
software with one log line saying why and what to do. Note: the PyPI wheels of PyAV (checked:
17.1, 18.1) bundle an FFmpeg built without VAAPI on Linux, so with them the fallback always
happens; VAAPI needs a PyAV built against a system FFmpeg >= 7 with VAAPI.

The fps cap (``max_fps``, for live sources) works on the stream's timestamps:
- every frame above the cap is returned as skipped (image None) without its YUV->BGR
  conversion (15-30 % of a 1080p H.264 frame's software cost, benchmarks/decode.py);
- packets are not even decoded where that is correct: for intra-only codecs (MJPEG, the usual
  USB and many IP camera format) each packet is a picture of its own, and for H.264/H.265
  when key frames come at least as often as the cap wants frames (e.g. a 1 s GOP and
  ``fps = 1``): then only key frames are decoded. Otherwise every packet must be decoded: a
  P-frame is a difference to the frame before it, so dropping one corrupts every frame up to
  the next key frame (1-4 s on cameras). IP cameras seldom send B-frames, so skipping
  non-reference frames (``skip_frame = NONREF``) would save next to nothing.

``read()`` returns one result per frame (or skipped packet) as ``(ok, image, pts)``; a skipped
frame still proves the camera is alive, which a per-camera stall check needs.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import time
from dataclasses import dataclass

import av
import cv2
import numpy as np

from .capture import redact

log = logging.getLogger(__name__)

DECODE_MODES = ("auto", "software", "vaapi")
RTSP_TRANSPORTS = ("tcp", "udp")
VA_DEVICE = "/dev/dri/renderD128"
PTS_BAD_MAX = 5  # this many non-increasing timestamps in a row: pace by arrival time instead
KEY_SLACK = 1.05  # key frames at most this x the cap's period apart: decode key frames only
KEY_GAPS = 4  # ... for this many gaps in a row
FULL_RANGE = 2  # AVCOL_RANGE_JPEG: yuvj420p, MJPEG; swscale handles it
_CV_CONVERT = {"yuv420p": cv2.COLOR_YUV2BGR_I420, "nv12": cv2.COLOR_YUV2BGR_NV12}  # planes as one array


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
    threads: int = 0  # 0: FFmpeg picks (one per core)
    # frame threads: more frames a second from one file, but a frame of latency per thread and
    # ~10 % more CPU per frame than slice threads. None: on for files, off for network streams
    frame_threads: bool | None = None


def choose_backend(decode: str, va_device: str = VA_DEVICE) -> tuple[str, str]:
    """("vaapi" | "software", why not vaapi: "" when vaapi was chosen or not asked for)."""
    if decode not in DECODE_MODES:
        raise ValueError(f"decode must be one of {', '.join(DECODE_MODES)}, not {decode!r}")
    if decode == "software":
        return "software", ""
    if "vaapi" not in av.codec.hwaccel.hwdevices_available():
        return "software", (
            f"this PyAV's FFmpeg ({av.__version__}) has no VAAPI (the PyPI wheels do not): "
            "install PyAV built against a system FFmpeg with VAAPI"
        )
    if not os.path.exists(va_device):
        return "software", f"no VA device {va_device} (no Intel/AMD GPU, or its driver is not loaded)"
    if not os.access(va_device, os.R_OK | os.W_OK):
        return "software", f"no access to {va_device}: add the service user to group render"
    return "vaapi", ""


class FpsCap:
    """Keeps at most ``max_fps`` frames a second of stream time, evenly: the rule of the
    OpenCV path (a frame up to 20 % of a period early still counts as due)."""

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


class AvDecoder:
    """One source (file or network URL) decoded to BGR frames; not thread-safe (one camera
    thread owns it)."""

    def __init__(self, options: DecodeOptions | None = None, name: str = "camera"):
        self.options = options or DecodeOptions()
        self.name = name
        self.backend, self.fallback_reason = choose_backend(self.options.decode, self.options.va_device)
        self._fallback_logged = False
        self._warned_codecs: set[str] = set()
        self._container = None
        self._stream = None
        self._packets = None
        self._pending: list = []
        self._cap = FpsCap(self.options.max_fps)  # on decoded frames
        self._packet_cap = FpsCap(self.options.max_fps)  # on packets, when decoding key frames only
        self._key_gaps: collections.deque[float] = collections.deque(maxlen=KEY_GAPS)
        self._intra_only = False
        self._live = False
        self._last_key: float | None = None
        self._key_only = False
        self._clock_pts = True
        self._bad_pts = 0
        self._last_t: float | None = None
        self.status = "closed"  # of the last read: frame | skipped | bad | end | fail
        self.error = ""
        self.frames_decoded = self.frames_converted = self.frames_skipped = self.packets_skipped = 0

    # lifecycle ----------------------------------------------------------------------------
    def open(self, url: str) -> None:
        self.close()
        opts = self.options
        self._log_fallback()
        container = None
        if self.backend == "vaapi":
            try:
                container = self._open_container(url, "vaapi")
            except DecodeOpenError as exc:  # the device, or the source? software tells
                container = self._open_container(url, "software")
                self.backend, self.fallback_reason = "software", f"VAAPI failed on {opts.va_device} ({exc})"
                self._log_fallback()
        if container is None:
            container = self._open_container(url, "software")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        if self.backend == "vaapi" and not ctx.is_hwaccel and ctx.name not in self._warned_codecs:
            self._warned_codecs.add(ctx.name)
            log.info("camera %s: VAAPI has no %s decoder: decoding it in software", self.name, ctx.name)
        self._live = "://" in url and not url.lower().startswith("file:")
        frame_threads = not self._live if opts.frame_threads is None else opts.frame_threads
        ctx.thread_type = "AUTO" if frame_threads else "SLICE"
        ctx.thread_count = opts.threads
        self._container, self._stream = container, stream
        self._packets = container.demux(stream)
        self._intra_only = bool(ctx.codec.intra_only)
        # a new connection starts a new timeline
        self._cap, self._packet_cap = FpsCap(opts.max_fps), FpsCap(opts.max_fps)
        self._key_only = self._intra_only and bool(self._cap.period)
        self._last_key, self._last_t, self._bad_pts, self._clock_pts = None, None, 0, True
        self._key_gaps.clear()
        self._pending = []
        self.status, self.error = "open", ""

    def _log_fallback(self) -> None:
        if self.backend == "software" and self.fallback_reason and not self._fallback_logged:
            self._fallback_logged = True
            level = logging.WARNING if self.options.decode == "vaapi" else logging.INFO
            log.log(level, "camera %s: decoding in software: %s", self.name, self.fallback_reason)

    def _open_container(self, url: str, backend: str):
        opts = self.options
        container_options = {}
        if url.lower().startswith(("rtsp://", "rtsps://")) and opts.rtsp_transport:
            container_options["rtsp_transport"] = opts.rtsp_transport
        hwaccel = None
        if backend == "vaapi":
            hwaccel = av.codec.hwaccel.HWAccel("vaapi", opts.va_device, allow_software_fallback=True)
        timeout = opts.timeout_s
        try:
            container = av.open(url, options=container_options, timeout=(timeout, timeout), hwaccel=hwaccel)
        except av.error.ExitError as exc:
            raise DecodeOpenError(f"cannot open {redact(url)}: no answer within {timeout:g} s") from exc
        except (av.error.FFmpegError, OSError) as exc:
            raise DecodeOpenError(f"cannot open {redact(url)}: {_reason(exc)}") from exc
        if not container.streams.video:
            container.close()
            raise DecodeOpenError(f"cannot open {redact(url)}: it has no video stream")
        return container

    @property
    def hw_active(self) -> bool:
        """Frames of the open stream are decoded on the GPU."""
        return self._stream is not None and bool(self._stream.codec_context.is_hwaccel)

    def close(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except av.error.FFmpegError:
                pass
        self._container = self._stream = self._packets = None
        self._pending = []
        self.status = "closed"

    @property
    def codec(self) -> str:
        return self._stream.codec_context.name if self._stream is not None else ""

    # reading ------------------------------------------------------------------------------
    def read(self) -> tuple[bool, np.ndarray | None, float | None]:
        """(True, BGR image, pts) for a frame kept by the cap; (True, None, pts) for one it
        dropped (``status`` "skipped") or a frame that would not decode ("bad"); (False, None,
        None) at the end of a file ("end") or when the source failed or a network stream ended
        ("fail", ``error``)."""
        while not self._pending:
            if self._packets is None:
                return self._finish("fail", "not open")
            try:
                packet = next(self._packets)
            except StopIteration:
                return self._finish("fail", "the stream ended") if self._live else self._finish("end")
            except av.error.ExitError:
                return self._finish("fail", f"no data for {self.options.timeout_s:g} s")
            except (av.error.FFmpegError, OSError) as exc:
                return self._finish("fail", _reason(exc))
            flush = packet.size == 0  # the demuxer's last (empty) packet drains the decoder
            if not flush:
                t = self._packet_time(packet)
                if self._skip_packet(packet, t):
                    self.packets_skipped += 1
                    self.frames_skipped += 1
                    self.status = "skipped"
                    return True, None, t
            try:
                self._pending = list(self._stream.decode(packet))  # sets the frames' time base
            except av.error.FFmpegError as exc:
                self.status, self.error = "bad", _reason(exc)
                return True, None, None
            if flush and not self._pending:
                return self._finish("fail", "the stream ended") if self._live else self._finish("end")
        frame = self._pending.pop(0)
        self.frames_decoded += 1
        t = self._time(frame.time)
        if not self._cap.keep(t):
            self.frames_skipped += 1
            self.status = "skipped"
            return True, None, t
        image = self._to_bgr(frame)
        self.frames_converted += 1
        self.status = "frame"
        return True, image, t

    def _finish(self, status: str, error: str = "") -> tuple[bool, None, None]:
        self.status, self.error = status, error
        return False, None, None

    def _packet_time(self, packet) -> float:
        """A packet's time (decode order), or its arrival time when it has none."""
        ts = packet.pts if packet.pts is not None else packet.dts
        return float(ts * packet.time_base) if ts is not None and self._clock_pts else time.monotonic()

    def _time(self, t: float | None) -> float:
        """A decoded frame's time, or the arrival time when the stream's timestamps are unusable
        (missing, or not advancing for PTS_BAD_MAX frames in a row)."""
        if self._clock_pts and t is not None and not math.isnan(t):
            if self._last_t is not None and t <= self._last_t:
                self._bad_pts += 1
                if self._bad_pts >= PTS_BAD_MAX:
                    self._clock_pts = False
                    log.info("camera %s: timestamps do not advance; pacing by arrival time", self.name)
            else:
                self._bad_pts = 0
            self._last_t = t
            if self._clock_pts:
                return t
        return time.monotonic()

    def _skip_packet(self, packet, t: float) -> bool:
        """True for a packet that need not be decoded at all (see the module's docstring)."""
        if not self._cap.period:
            return False
        if packet.is_keyframe and not self._intra_only:
            if self._last_key is not None:
                self._key_gaps.append(t - self._last_key)
            self._last_key = t
            # a steady GOP no longer than the cap's period, not a scene cut's extra key frame
            gaps = self._key_gaps
            key_only = len(gaps) == gaps.maxlen and all(0 < g <= self._cap.period * KEY_SLACK for g in gaps)
            if key_only != self._key_only:  # switching here, at a key frame, is safe
                self._key_only = key_only
                log.debug("camera %s: decoding %s", self.name, "key frames only" if key_only else "all")
        if not self._key_only:
            return False
        return not packet.is_keyframe or not self._packet_cap.keep(t)

    def _to_bgr(self, frame) -> np.ndarray:
        """BGR like OpenCV's VideoCapture gives (BT.601, within a level of rounding). The usual
        limited-range 4:2:0 goes through OpenCV's converter: 3-4x cheaper than swscale's here."""
        size = self.options.size
        even = frame.width % 2 == 0 and frame.height % 2 == 0
        if not size and even and frame.color_range != FULL_RANGE and frame.format.name in _CV_CONVERT:
            return cv2.cvtColor(frame.to_ndarray(), _CV_CONVERT[frame.format.name])
        if size and (frame.width, frame.height) != size:
            shrink = size[0] < frame.width
            return frame.to_ndarray(
                format="bgr24", width=size[0], height=size[1], interpolation="AREA" if shrink else "BILINEAR"
            )
        return frame.to_ndarray(format="bgr24")


def _reason(exc: BaseException) -> str:
    """FFmpeg's words without the URL PyAV appends (it may carry credentials)."""
    text = getattr(exc, "strerror", None) or str(exc)
    return redact(str(text)).split(": '", 1)[0]
