"""The decoder of one stream camera: the backend its ``decode`` key and this box allow
(backend.py), with the fallback to software said once.

- "software": PyAV (pyav.py);
- "vaapi": the ffmpeg program with VAAPI (ffmpeg.py); when the box cannot (no render node, no
  access to it, an ffmpeg without VAAPI) it decodes in software, and a WARNING says why;
- "auto": vaapi when the box can, else software with an INFO line saying why (as on CI).

A VAAPI open that fails is tried again in software: if that opens, the device (or its driver,
or its lack of a decoder for the codec) was the problem and the camera stays in software, said
once; if it fails too, the source is the problem and its error is the one raised.

Thread: the camera's "capture-<name>" thread.
"""

from __future__ import annotations

import logging
from typing import Any

from expressiond.sources.decode.backend import choose_backend
from expressiond.sources.decode.common import DecodeOpenError, DecodeOptions

log = logging.getLogger(__name__)


class Decoder:
    """open(url) / read() -> (ok, image | None, t) / close(), with ``status``, ``error``,
    ``codec``, ``backend`` and the frame counters of the decoder in use."""

    def __init__(self, options: DecodeOptions | None = None, name: str = "camera"):
        self.options = options or DecodeOptions()
        self.name = name
        backend, self.fallback_reason = choose_backend(
            self.options.decode, self.options.va_device, self.options.ffmpeg
        )
        self._impl = self._make(backend)
        self._fallback_logged = False

    def _make(self, backend: str) -> Any:
        if backend == "vaapi":
            from expressiond.sources.decode.ffmpeg import FfmpegDecoder

            return FfmpegDecoder(self.options, self.name, hwaccel=True)
        from expressiond.sources.decode.pyav import AvDecoder

        return AvDecoder(self.options, self.name)

    def open(self, url: str) -> None:
        self._log_fallback()
        try:
            self._impl.open(url)
        except DecodeOpenError as exc:
            if self._impl.backend != "vaapi":
                raise
            software = self._make("software")
            software.open(url)  # raises when the source is the problem
            self._impl = software
            self.fallback_reason = f"VAAPI failed on {self.options.va_device} ({exc})"
            self._log_fallback()

    def _log_fallback(self) -> None:
        if self.fallback_reason and not self._fallback_logged:
            self._fallback_logged = True
            level = logging.WARNING if self.options.decode == "vaapi" else logging.INFO
            log.log(
                level,
                "camera %s: decoding in software: %s",
                self.name,
                self.fallback_reason,
                extra={"camera": self.name},
            )

    def read(self) -> tuple[bool, Any, float | None]:
        return self._impl.read()

    def close(self) -> None:
        self._impl.close()

    @property
    def impl(self) -> Any:
        """The decoder in use (an AvDecoder or an FfmpegDecoder)."""
        return self._impl

    def __getattr__(self, name: str) -> Any:  # status, error, codec, backend, counters
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._impl, name)
