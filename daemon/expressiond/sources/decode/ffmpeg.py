"""Decoding in an ffmpeg child process: VAAPI on the iGPU (``hwaccel=True``), or the same
pipeline in software (how the tests run it: no iGPU here).

    ffmpeg -hwaccel vaapi -hwaccel_device /dev/dri/renderD128 -hwaccel_output_format vaapi
           -i URL -filter_complex "[0:v]select=CAP:outputs=2[keep][skip];
                                   [skip]metadata=add+print,nullsink;
                                   [keep]scale_vaapi=W:H,hwdownload,format=nv12,format=bgr24[out]"
           -map [out] -fps_mode passthrough -f rawvideo pipe:1

Frames stay on the GPU until the fps cap (``select`` with the rule of FpsCap: 1 keeps a frame,
2 sends it to the skip branch) has dropped those above it: the skipped ones are never copied
back (``hwdownload``) nor converted; the kept ones are scaled on the GPU (``scale_vaapi``)
when the camera has a size, then converted to BGR once. The skip branch prints one line per
skipped frame on stderr: ``read()`` returns those as skipped, so they count (frames_skipped)
and prove the camera alive, as with PyAV. ``-fps_mode passthrough`` (FFmpeg >= 5.1) keeps
ffmpeg from duplicating frames to fill the gaps the cap leaves.

Frames are read from the pipe as raw BGR (size from ffmpeg's own "Output #0" stream line),
each read bounded by ``timeout_s``: no frame and no skipped frame for that long is a failure
(the camera then reconnects: a new process). Every line of ffmpeg's stderr that is shown is
redacted (it quotes the URL). ffmpeg is closed by closing the pipe, SIGTERM, then SIGKILL: never
more than about a second. If the daemon dies, ffmpeg's next write fails (EPIPE) and it exits;
under systemd the unit's cgroup is killed anyway.

A timeline that goes back within one session (not seen from RTSP cameras: a reconnect is a
new process) would pause the output until it catches up again.

Thread: ``open``/``read``/``close`` in the camera's "capture-<name>" thread; one
"ffmpeg-<name>" thread per process reads its stderr (counters under ``_lock``).
"""

from __future__ import annotations

import collections
import logging
import os
import re
import select
import subprocess
import threading
import time
from typing import TYPE_CHECKING

from expressiond.sources.base import redact
from expressiond.sources.decode.common import DecodeOpenError, DecodeOptions, is_network, is_rtsp

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

SKIP_KEY = "expressiond_skipped"
MAX_SIDE = 8192
CLOSE_GRACE_S = 1.0
OPEN_TIMEOUTS = 3  # an open may take this many timeout_s (PyAV's are per step too)
_STREAM_RE = re.compile(r"^\s*Stream #\d+:\d+\S*: Video: (\w+)")
_SIZE_RE = re.compile(r", (\d{1,5})x(\d{1,5})[ ,\[]")
_PREFIX_RE = re.compile(r"^\[[^\]]* @ 0x[0-9a-f]+\] ")
_URL_PREFIX_RE = re.compile(r"^\S+://\S*?: ")
F_SETPIPE_SZ = 1031  # Linux fcntl: a 1 MiB pipe, fewer wake-ups per frame


def cap_expression(max_fps: float) -> str:
    """FpsCap's rule as a ``select`` expression: ld(0) is the next due time; a frame up to 20 %
    of a period early still counts; without timestamps every frame is kept."""
    period = 1.0 / max_fps
    tol = 0.2 * period
    return f"if(isnan(t),1,if(gte(t,ld(0)-{tol:.6f}),1+0*st(0,max(ld(0),t-{tol:.6f})+{period:.6f}),2))"


def filter_graph(options: DecodeOptions, hwaccel: bool) -> str:
    chain = []
    if options.size:
        w, h = options.size
        chain.append(f"scale_vaapi=w={w}:h={h}:format=nv12" if hwaccel else f"scale={w}:{h}:flags=area")
    if hwaccel:
        chain += ["hwdownload", "format=nv12"]
    chain.append("format=bgr24")
    keep = ",".join(chain)
    if not options.max_fps:
        return f"[0:v]{keep}[out]"
    skip = f"metadata=mode=add:key={SKIP_KEY}:value=1,metadata=mode=print,nullsink"
    return (
        f"[0:v]select='{cap_expression(options.max_fps)}':outputs=2[keep][skip];"
        f"[skip]{skip};[keep]{keep}[out]"
    )


def command(url: str, options: DecodeOptions, hwaccel: bool) -> list[str]:
    """The ffmpeg command line (it holds the URL: never log it, see ``shown``)."""
    argv = [options.ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info"]
    if is_network(url):  # cap on arrival time, as pyav.py does
        argv += ["-use_wallclock_as_timestamps", "1"]
    if is_rtsp(url) and options.rtsp_transport:
        argv += ["-rtsp_transport", options.rtsp_transport]
    if hwaccel:
        argv += ["-hwaccel", "vaapi", "-hwaccel_device", options.va_device, "-hwaccel_output_format", "vaapi"]
    argv += ["-i", url, "-an", "-sn", "-dn", "-filter_complex", filter_graph(options, hwaccel)]
    argv += ["-map", "[out]", "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "bgr24", "pipe:1"]
    return argv


def shown(argv: list[str]) -> str:
    return " ".join(redact(a) for a in argv)


class FfmpegDecoder:
    """The AvDecoder interface (open, read -> (ok, image, t), close, status, error, counters)
    over an ffmpeg process. Not thread-safe: one camera thread owns it."""

    def __init__(self, options: DecodeOptions | None = None, name: str = "camera", *, hwaccel: bool = True):
        self.options = options or DecodeOptions()
        self.name = name
        self.hwaccel = hwaccel
        self.backend = "vaapi" if hwaccel else "software"
        self._proc: subprocess.Popen | None = None
        self._err_thread: threading.Thread | None = None
        self._lock = threading.Lock()  # the fields the stderr thread writes
        self._skipped_seen = 0
        self._resized = False
        self._lines: collections.deque[str] = collections.deque(maxlen=6)
        self._header = threading.Event()
        self._skipped_taken = 0
        self._live = False
        self._url = ""
        self._partial: np.ndarray | None = None
        self._got = 0
        self.codec = ""
        self.size: tuple[int, int] | None = None
        self.status = "closed"  # of the last read: frame | skipped | end | fail
        self.error = ""
        self.frames_decoded = self.frames_converted = self.frames_skipped = self.packets_skipped = 0

    # lifecycle ----------------------------------------------------------------------------
    def open(self, url: str) -> None:
        self.close()
        self._live, self._url = is_network(url), url
        argv = command(url, self.options, self.hwaccel)
        self._skipped_seen = self._skipped_taken = 0
        self._resized = False
        self._lines.clear()
        self._header = threading.Event()
        self.codec, self.size = "", None
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0
            )
        except OSError as exc:
            raise DecodeOpenError(f"cannot start {argv[0]} to decode {redact(url)}: {exc.strerror}") from None
        self._proc = proc
        try:
            import fcntl

            fcntl.fcntl(proc.stdout.fileno(), F_SETPIPE_SZ, 1 << 20)
        except OSError:
            pass  # the default 64 KiB pipe works too
        header = self._header
        self._err_thread = threading.Thread(
            target=self._read_stderr, args=(proc.stderr, header), name=f"ffmpeg-{self.name}", daemon=True
        )
        self._err_thread.start()
        # connect, describe/set up, probe the stream up to a key frame: each may take a timeout
        open_s = OPEN_TIMEOUTS * self.options.timeout_s
        deadline = time.monotonic() + open_s
        while not header.wait(0.05):
            if proc.poll() is not None or time.monotonic() >= deadline:
                break
        if not header.is_set():
            answered = proc.poll() is not None
            self.close()
            why = self._why(url) if answered else f"no stream within {open_s:g} s"
            raise DecodeOpenError(f"cannot open {redact(url)}: {why or 'ffmpeg exited'}")
        self.status, self.error = "open", ""
        log.debug("camera %s: %s", self.name, shown(argv))

    def close(self) -> None:
        proc, self._proc = self._proc, None
        self._partial, self._got = None, 0
        if proc is not None:
            proc.stdout.close()  # a write in progress fails (EPIPE) instead of blocking
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(CLOSE_GRACE_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            if self._err_thread is not None:
                self._err_thread.join(1.0)
            proc.stderr.close()
        self.status = "closed"

    @property
    def hw_active(self) -> bool:
        return self.hwaccel and self._proc is not None

    # reading ------------------------------------------------------------------------------
    def read(self) -> tuple[bool, np.ndarray | None, float | None]:
        """(True, BGR image, arrival time) for a kept frame; (True, None, None) for one the cap
        skipped (``status`` "skipped"); (False, None, None) at the end of a file ("end") or
        when the stream failed ("fail", ``error``)."""
        proc = self._proc
        if proc is None or self.size is None:
            return self._finish("fail", "not open")
        if self._got == 0 and self._take_skipped():
            return True, None, None
        w, h = self.size
        if self._partial is None:
            import numpy as np  # here, not at the top: the registry reaches this module

            self._partial, self._got = np.empty((h, w, 3), np.uint8), 0
        view = memoryview(self._partial).cast("B")
        fd = proc.stdout.fileno()
        timeout = self.options.timeout_s
        deadline = time.monotonic() + timeout
        while self._got < len(view):
            if self._resized:
                return self._finish("fail", "the stream changed its frame size")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return self._finish("fail", f"no data for {timeout:g} s")
            ready, _, _ = select.select([fd], [], [], min(0.1, remaining))
            if not ready:
                if self._got == 0 and self._take_skipped():
                    return True, None, None
                continue
            n = os.readv(fd, [view[self._got :]])
            if n == 0:
                return self._ended()
            self._got += n
            deadline = time.monotonic() + timeout
        image, self._partial, self._got = self._partial, None, 0
        self.frames_decoded += 1
        self.frames_converted += 1
        self.status = "frame"
        return True, image, time.monotonic()

    def _take_skipped(self) -> bool:
        with self._lock:
            if self._skipped_seen <= self._skipped_taken:
                return False
            self._skipped_taken += 1
        self.frames_decoded += 1
        self.frames_skipped += 1
        self.status = "skipped"
        return True

    def _ended(self) -> tuple[bool, None, None]:
        proc = self._proc
        try:
            rc = proc.wait(CLOSE_GRACE_S) if proc is not None else None
        except subprocess.TimeoutExpired:
            rc = None
        if self._err_thread is not None:
            self._err_thread.join(1.0)
        why = self._why(self._url)
        if self._live:
            return self._finish("fail", f"the stream ended ({why})" if why else "the stream ended")
        if rc == 0 and self._got == 0:
            return self._finish("end")
        return self._finish("fail", why or f"ffmpeg exited {rc}")

    def _finish(self, status: str, error: str = "") -> tuple[bool, None, None]:
        self.status, self.error = status, error
        return False, None, None

    # "ffmpeg-<name>" thread ---------------------------------------------------------------
    def _read_stderr(self, pipe, header: threading.Event) -> None:
        section = ""
        try:
            for raw in iter(pipe.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip()
                if "] frame:" in line:  # the skip branch: one line per skipped frame
                    with self._lock:
                        self._skipped_seen += 1
                    continue
                if SKIP_KEY in line or not line.strip():
                    continue
                if line.startswith(("Input #", "Output #")):
                    section = line[:2]
                    continue
                stream = _STREAM_RE.match(line)
                if stream:
                    self._stream_line(section, stream.group(1), line, header)
                    continue
                if "changed from size" in line and header.is_set():
                    self._resized = True
                if line.startswith((" ", "Stream mapping", "Press [q]")):
                    continue  # the banner's indented details
                self._lines.append(_PREFIX_RE.sub("", redact(line)))
        except (OSError, ValueError):
            pass  # the pipe was closed under us: the process is gone

    def _stream_line(self, section: str, codec: str, line: str, header: threading.Event) -> None:
        if section == "In" and not self.codec:
            self.codec = codec
        elif section == "Ou" and not header.is_set():
            size = _SIZE_RE.search(line.split("Video:", 1)[1])
            if size and 0 < int(size.group(1)) <= MAX_SIDE and 0 < int(size.group(2)) <= MAX_SIDE:
                self.size = (int(size.group(1)), int(size.group(2)))
                header.set()

    def _why(self, url: str = "") -> str:
        """ffmpeg's last words (redacted, without the URL it starts them with)."""
        lines = list(self._lines)
        if not lines:
            return ""
        last = lines[-1].removeprefix(redact(url) + ": ") if url else lines[-1]
        return _URL_PREFIX_RE.sub("", last)
