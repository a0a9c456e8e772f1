"""A V4L2 camera: /dev/videoN or its index N. Live: the newest frame, never a stale queue.

Thread: the camera's "capture-<name>" thread.
"""

from __future__ import annotations

import os
from typing import Any

from expressiond.sources.base import SourceUnavailable
from expressiond.sources.opencv import OpenCvSource


class DeviceSource(OpenCvSource):
    kind = "v4l2"
    live = True

    @classmethod
    def claims(cls, spec: str, *, look: bool = True) -> bool:
        text = spec.strip()
        return text.isdigit() or text.startswith("/dev/")

    def _capture(self, spec: str) -> tuple[Any, str]:
        import cv2

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
        return cap, "busy, or the service user lacks access (group video)?"
