"""V4L2 cameras as far as this machine allows: there is no camera here, so what is tested is
every way a node can be wrong (missing, not a device, not a V4L2 device, no permission), each
one clear line through the real capture, and the format the camera is asked for and reports,
through a stand-in for OpenCV's VideoCapture (the one fake: a driver cannot exist here).
"""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace

import cv2
import pytest
from unprivileged import run_python

from expressiond.sources.base import SourceOptions, SourceUnavailable
from expressiond.sources.capture import CameraCapture
from expressiond.sources.device import DeviceSource, check_node, fourcc_text

LIST = "see `v4l2-ctl --list-devices`"


def test_a_regular_file_is_not_a_device(tmp_path):
    node = tmp_path / "video0"
    node.write_bytes(b"")
    with pytest.raises(SourceUnavailable) as err:
        check_node(str(node))
    assert str(err.value) == f"{node} is not a V4L2 device (not a character device); {LIST}"


def test_a_character_device_that_is_not_v4l2():
    with pytest.raises(SourceUnavailable) as err:
        DeviceSource("/dev/null").open()
    assert str(err.value) == f"/dev/null is not a V4L2 device (no answer to VIDIOC_QUERYCAP); {LIST}"


def test_permission_denied_says_group_video(tmp_path):
    node = tmp_path / "video7"
    node.write_bytes(b"")
    node.chmod(0)
    code = (
        "from expressiond.sources.device import check_node\n"
        "from expressiond.sources.base import SourceUnavailable\n"
        f"try:\n    check_node({str(node)!r})\nexcept SourceUnavailable as e:\n    print(e)\n"
    )
    r = run_python(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == (
        f"no permission to open V4L2 device {node}: the daemon's user needs group video (the "
        "unit's SupplementaryGroups=video; by hand: usermod -aG video USER, then log in again)"
    )


def test_each_mistake_is_one_warning_through_the_capture(tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="expressiond.sources.capture")
    cam = SimpleNamespace(name="desk", source="/dev/null", fps=10, loop=False, width=None, height=None)
    cam.reconnect_max_s = 1.0
    cap = CameraCapture(cam, backoff_start_s=0.1)
    assert cap.kind == "v4l2" and cap.watch is not None
    cap.start()
    try:
        time.sleep(1.5)
        s = cap.stats()
    finally:
        assert cap.stop(2.0)
    assert s.open_failures >= 3 and not s.connected and s.frames_read == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [
        f"camera desk: /dev/null is not a V4L2 device (no answer to VIDIOC_QUERYCAP); {LIST}; "
        "retrying with backoff up to 1 s"
    ]


class FakeDriverCapture:
    """Stands in for cv2.VideoCapture on a camera that only does 640x480 YUYV at 30 fps."""

    def __init__(self):
        self.calls: list[tuple[int, float]] = []

    def set(self, prop: int, value: float) -> bool:
        self.calls.append((prop, value))
        return True

    def get(self, prop: int) -> float:
        return {
            cv2.CAP_PROP_FRAME_WIDTH: 640.0,
            cv2.CAP_PROP_FRAME_HEIGHT: 480.0,
            cv2.CAP_PROP_FOURCC: float(cv2.VideoWriter_fourcc(*"YUYV")),
            cv2.CAP_PROP_FPS: 30.0,
        }.get(prop, 0.0)


def test_format_asked_read_back_and_reported(caplog):
    src = DeviceSource("/dev/video0", SourceOptions(name="desk", fourcc="MJPG", width=1280, height=720))
    fake = FakeDriverCapture()
    with caplog.at_level(logging.WARNING, logger="expressiond.sources.device"):
        src._apply_format(fake, "/dev/video0", "HD Webcam")
    props = [p for p, _ in fake.calls]
    assert props == [
        cv2.CAP_PROP_BUFFERSIZE,
        cv2.CAP_PROP_FOURCC,  # the format first: it decides which sizes exist
        cv2.CAP_PROP_FRAME_WIDTH,
        cv2.CAP_PROP_FRAME_HEIGHT,
    ]
    assert (cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG")) in fake.calls
    assert src.describe() == {"card": "HD Webcam", "width": 640, "height": 480, "fourcc": "YUYV", "fps": 30.0}
    [line] = caplog.records
    assert line.getMessage() == (
        "camera desk: /dev/video0 gives 640x480 YUYV, not the MJPG 1280x720 asked (frames are resized "
        "to width x height); see `v4l2-ctl -d /dev/video0 --list-formats-ext`"
    )
    assert line.camera == "desk"
    quiet = DeviceSource("/dev/video0", SourceOptions(name="desk", fourcc="YUYV", width=640, height=480))
    with caplog.at_level(logging.WARNING, logger="expressiond.sources.device"):
        quiet._apply_format(FakeDriverCapture(), "/dev/video0", "HD Webcam")
    assert len(caplog.records) == 1, "what was asked was given: nothing to say"


def test_fourcc_text():
    assert fourcc_text(float(cv2.VideoWriter_fourcc(*"MJPG"))) == "MJPG"
    assert fourcc_text(0.0) == "" and fourcc_text(-1.0) == ""
