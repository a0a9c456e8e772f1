"""Software decoding with PyAV (FFmpeg in-process), and no work spent on frames the fps cap
drops. The "software" decoder of streams, and "auto" without an iGPU (backend.py).

The fps cap (``max_fps``, for live sources) works on the frames' timestamps, which for a
network stream are their arrival times (FFmpeg's ``use_wallclock_as_timestamps``: the
stream's own may not be real time, e.g. HTTP MJPEG gets made-up 25 fps ones):
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
frame still proves the camera is alive, which the per-camera stall check needs.

Thread: one decoder belongs to one camera thread ("capture-<name>").
"""

from __future__ import annotations

import collections
import logging
import math
import time
from typing import TYPE_CHECKING

import av

if TYPE_CHECKING:
    import numpy as np

from expressiond.sources.base import redact
from expressiond.sources.decode.common import (
    DecodeOpenError,
    DecodeOptions,
    FpsCap,
    is_network,
    is_rtsp,
    reason,
)

log = logging.getLogger(__name__)

PTS_BAD_MAX = 5  # this many non-increasing timestamps in a row: pace by arrival time instead
KEY_SLACK = 1.05  # key frames at most this x the cap's period apart: decode key frames only
KEY_GAPS = 4  # ... for this many gaps in a row
FULL_RANGE = 2  # AVCOL_RANGE_JPEG: yuvj420p, MJPEG; swscale handles it
# planes as one array -> OpenCV's conversion (cv2 is imported at the first frame, like the other
# sources' heavy imports, so that the registry reaches this module without loading OpenCV)
_CV_CONVERT = {"yuv420p": "COLOR_YUV2BGR_I420", "nv12": "COLOR_YUV2BGR_NV12"}


class AvDecoder:
    """One source (file or network URL) decoded to BGR frames; not thread-safe (one camera
    thread owns it)."""

    backend = "software"

    def __init__(self, options: DecodeOptions | None = None, name: str = "camera"):
        self.options = options or DecodeOptions()
        self.name = name
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
        container = self._open_container(url)
        stream = container.streams.video[0]
        ctx = stream.codec_context
        self._live = is_network(url)
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

    def _open_container(self, url: str):
        opts = self.options
        container_options = {}
        if is_network(url):  # cap on arrival time: a stream's own timestamps may be made up
            container_options["use_wallclock_as_timestamps"] = "1"
        if is_rtsp(url) and opts.rtsp_transport:
            container_options["rtsp_transport"] = opts.rtsp_transport
        timeout = opts.timeout_s
        try:
            container = av.open(url, options=container_options, timeout=(timeout, timeout))
        except av.error.ExitError as exc:
            raise DecodeOpenError(f"cannot open {redact(url)}: no answer within {timeout:g} s") from exc
        except (av.error.FFmpegError, OSError) as exc:
            raise DecodeOpenError(f"cannot open {redact(url)}: {reason(exc)}") from exc
        if not container.streams.video:
            container.close()
            raise DecodeOpenError(f"cannot open {redact(url)}: it has no video stream")
        return container

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
                return self._finish("fail", reason(exc))
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
                self.status, self.error = "bad", reason(exc)
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
        if size == (frame.width, frame.height):
            size = None
        if not size and even and frame.color_range != FULL_RANGE and frame.format.name in _CV_CONVERT:
            import cv2

            return cv2.cvtColor(frame.to_ndarray(), getattr(cv2, _CV_CONVERT[frame.format.name]))
        if size and (frame.width, frame.height) != size:
            shrink = size[0] < frame.width
            return frame.to_ndarray(
                format="bgr24", width=size[0], height=size[1], interpolation="AREA" if shrink else "BILINEAR"
            )
        return frame.to_ndarray(format="bgr24")
