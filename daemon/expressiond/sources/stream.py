"""A network stream (RTSP, HTTP MJPEG, RTMP, SRT, ...) through OpenCV's FFmpeg back end, with
open and read timeouts so that stopping the camera is never stuck for long. Live.

Thread: the camera's "capture-<name>" thread.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from expressiond.sources.base import url_scheme
from expressiond.sources.opencv import OpenCvSource

STREAM_TIMEOUT_MS = 5000  # open/read timeout for network streams, so stop() is never stuck long


class StreamSource(OpenCvSource):
    kind = "stream"
    live = True
    schemes = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")

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

    def _capture(self, spec: str) -> tuple[Any, str]:
        import cv2

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
        return cap, "is the stream up and the URL right?"
