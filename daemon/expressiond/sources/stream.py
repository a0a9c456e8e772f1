"""A network stream (RTSP, HTTP MJPEG, RTMP, SRT, ...), decoded by the camera's ``decode``
backend (decode/: PyAV in software, or the ffmpeg program with VAAPI). Live.

The decoder applies the camera's fps cap and size itself: frames above the cap come back as
"skip" reads, never converted to BGR (nor, where the codec allows, decoded), so the capture
neither caps nor resizes them again (``caps_frames``). ``rtsp_transport`` (tcp, the default,
or udp) applies to rtsp:// and rtsps://. Opening and reading are bounded by
``STREAM_TIMEOUT_S``: a server that stops sending is a failed read, and the camera reconnects.

Thread: the camera's "capture-<name>" thread.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from expressiond.sources.base import BaseSource, Read, SourceOptions, SourceUnavailable, url_scheme

STREAM_TIMEOUT_S = 5.0  # open/read timeout for network streams, so stop() is never stuck long


class StreamSource(BaseSource):
    kind = "stream"
    live = True
    schemes = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
    caps_frames = True

    def __init__(self, spec: str, options: SourceOptions | None = None):
        super().__init__(spec, options)
        self._decoder: Any = None

    @classmethod
    def problem(cls, spec: str) -> str | None:
        try:
            host = urlsplit(spec).hostname
        except ValueError:
            host = None
        if host:
            return None
        shown = json.dumps(spec, ensure_ascii=False)
        shown = shown if len(shown) <= 80 else shown[:76] + '..."'
        return f"URL {shown} has no host; write {url_scheme(spec)}://HOST[:PORT]/PATH"

    def _make_decoder(self) -> Any:
        from expressiond.sources.decode import DecodeOptions, Decoder

        o = self.options
        return Decoder(
            DecodeOptions(
                decode=o.decode,
                rtsp_transport=o.rtsp_transport,
                timeout_s=STREAM_TIMEOUT_S,
                max_fps=o.fps,
                size=(o.width, o.height) if o.width and o.height else None,
            ),
            o.name,
        )

    def open(self) -> None:
        from expressiond.sources.decode import DecodeOpenError

        if self._decoder is None:
            self._decoder = self._make_decoder()
        try:
            self._decoder.open(self.spec.strip())
        except DecodeOpenError as exc:
            raise SourceUnavailable(f"{exc} (is the stream up and the URL right?)") from None

    def read(self) -> Read:
        if self._decoder is None:
            return Read("fail", detail="not open")
        ok, image, _t = self._decoder.read()
        status = self._decoder.status
        if not ok:
            return Read("fail", detail=self._decoder.error or status)
        if image is not None:
            return Read("ok", image)
        if status == "skipped":
            return Read("skip")
        return Read("bad", detail=self._decoder.error or "a frame that would not decode")

    def close(self) -> None:
        if self._decoder is not None:
            self._decoder.close()

    def describe(self) -> dict[str, Any]:
        if self._decoder is None:
            return {}
        info: dict[str, Any] = {"decoder": self._decoder.backend, "codec": self._decoder.codec}
        if url_scheme(self.spec) in ("rtsp", "rtsps"):
            info["transport"] = self.options.rtsp_transport
        return info
