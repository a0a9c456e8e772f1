"""A V4L2 camera: /dev/videoN or its index N. Live: the newest frame, never a stale queue.

Before OpenCV opens it, the node is checked so that the usual mistakes get a line that says
what to do: a path that does not exist (unplugged), no permission (the service user is not in
group video), something that is not a V4L2 device (a regular file, /dev/null), and a V4L2 node
that cannot capture (a USB camera's second, metadata node). The camera's ``fourcc``, ``width``
and ``height`` are asked of the driver (CAP_PROP_*), read back, and reported (``describe``:
the log line at open and the stats); a driver that gives something else gets a warning.

Thread: the camera's "capture-<name>" thread.
"""

from __future__ import annotations

import fcntl
import logging
import os
import stat
import struct
from typing import Any

from expressiond.sources.base import SourceUnavailable
from expressiond.sources.opencv import OpenCvSource

log = logging.getLogger(__name__)

VIDIOC_QUERYCAP = 0x80685600  # _IOR('V', 0, struct v4l2_capability), 104 bytes
CAP_VIDEO_CAPTURE, CAP_VIDEO_CAPTURE_MPLANE, CAP_DEVICE_CAPS = 0x1, 0x1000, 0x80000000
LIST = "see `v4l2-ctl --list-devices`"


def fourcc_text(code: float) -> str:
    """OpenCV's CAP_PROP_FOURCC (a float) as its four characters ("" when unknown)."""
    value = int(code)
    text = "".join(chr((value >> (8 * i)) & 0xFF) for i in range(4))
    return text if value > 0 and text.isprintable() else ""


def check_node(path: str) -> str:
    """The V4L2 card name of ``path``, or SourceUnavailable saying what is wrong and what to do."""
    if not os.path.exists(path):
        raise SourceUnavailable(f"V4L2 device {path} does not exist (camera unplugged? see `ls /dev/video*`)")
    try:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    except PermissionError:
        raise SourceUnavailable(
            f"no permission to open V4L2 device {path}: the daemon's user needs group video (the "
            "unit's SupplementaryGroups=video; by hand: usermod -aG video USER, then log in again)"
        ) from None
    except OSError as exc:
        raise SourceUnavailable(
            f"cannot open V4L2 device {path}: {exc.strerror} (in use by another program?)"
        ) from None
    try:
        if not stat.S_ISCHR(os.fstat(fd).st_mode):
            raise SourceUnavailable(f"{path} is not a V4L2 device (not a character device); {LIST}")
        buf = bytearray(104)
        try:
            fcntl.ioctl(fd, VIDIOC_QUERYCAP, buf)
        except OSError:
            raise SourceUnavailable(
                f"{path} is not a V4L2 device (no answer to VIDIOC_QUERYCAP); {LIST}"
            ) from None
        card = buf[16:48].split(b"\0", 1)[0].decode("utf-8", "replace")
        caps, device_caps = struct.unpack_from("<II", buf, 84)
        caps = device_caps if caps & CAP_DEVICE_CAPS else caps
        if not caps & (CAP_VIDEO_CAPTURE | CAP_VIDEO_CAPTURE_MPLANE):
            raise SourceUnavailable(
                f"{path} ({card}) is not a video capture node (a camera's metadata node?); "
                f"use its other /dev/video node: {LIST}"
            )
        return card
    finally:
        os.close(fd)


class DeviceSource(OpenCvSource):
    kind = "v4l2"
    live = True

    _info: dict[str, Any] = {}

    @classmethod
    def claims(cls, spec: str, *, look: bool = True) -> bool:
        text = spec.strip()
        return text.isdigit() or text.startswith("/dev/")

    def _capture(self, spec: str) -> tuple[Any, str]:
        import cv2

        path = f"/dev/video{spec}" if spec.isdigit() else spec
        card = check_node(path)
        cap = cv2.VideoCapture(path, cv2.CAP_V4L2)
        if cap.isOpened():
            self._apply_format(cap, path, card)
        return cap, "busy, or the service user lacks access (group video)?"

    def _apply_format(self, cap: Any, path: str, card: str) -> None:
        import cv2

        o = self.options
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a stale queue
        if o.fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*o.fourcc))
        if o.width and o.height:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, o.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, o.height)
        got = {
            "card": card,
            "width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            "fourcc": fourcc_text(cap.get(cv2.CAP_PROP_FOURCC)),
            "fps": round(float(cap.get(cv2.CAP_PROP_FPS)), 2),
        }
        self._info = got
        asked = []
        if o.fourcc and got["fourcc"] != o.fourcc:
            asked.append(o.fourcc)
        if o.width and o.height and (got["width"], got["height"]) != (o.width, o.height):
            asked.append(f"{o.width}x{o.height}")
        if asked:
            log.warning(
                "camera %s: %s gives %dx%d %s, not the %s asked (frames are resized to width x height); "
                "see `v4l2-ctl -d %s --list-formats-ext`",
                o.name,
                path,
                got["width"],
                got["height"],
                got["fourcc"] or "?",
                " ".join(asked),
                path,
                extra={"camera": o.name},
            )

    def describe(self) -> dict[str, Any]:
        return dict(self._info)
