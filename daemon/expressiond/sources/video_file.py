"""A video file OpenCV can decode (also the "samples" clip). Not live: played at fps, or every
frame with realtime = false; it ends (or loops) at its end.

Thread: the camera's "capture-<name>" thread.
"""

from __future__ import annotations

import os
from typing import Any

from expressiond.sources.base import SourceUnavailable
from expressiond.sources.opencv import OpenCvSource


class VideoFileSource(OpenCvSource):
    kind = "file"
    live = False

    @classmethod
    def claims(cls, spec: str, *, look: bool = True) -> bool:
        return True  # last in the registry: any spec no other kind claims is a file path

    def _capture(self, spec: str) -> tuple[Any, str]:
        import cv2

        if not os.path.isfile(spec):
            raise SourceUnavailable(f"video file {spec} does not exist")
        return cv2.VideoCapture(spec), "not a video OpenCV can decode?"
