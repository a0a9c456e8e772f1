"""Snapshots (daemon/snapshots.py): only cameras that ask get one, at most one per interval,
never for an end; the JPEG decodes, is the face (or the boxed frame), and is bounded."""

from __future__ import annotations

import time
from types import SimpleNamespace

import cv2
import numpy as np

from expressiond.daemon.snapshots import SnapshotPolicy, encode
from expressiond.events import ExpressionEvent


def cam(name, mode, interval=5.0, max_side=480, quality=80):
    return SimpleNamespace(
        name=name,
        snapshot=mode,
        snapshot_interval=interval,
        snapshot_max_side=max_side,
        snapshot_quality=quality,
    )


def event(kind, box=(0.25, 0.25, 0.25, 0.25), track=1, camera="door"):
    return ExpressionEvent(
        device_id="d", camera=camera, frame=1, track=track, type=kind, expression="happy",
        confidence=0.9, scores={"happy": 0.9}, previous=None, box=box, timestamp=time.time(),
        reason="gone" if kind == "end" else None,
    )  # fmt: skip


def test_only_start_and_change_of_cameras_that_ask_and_at_most_one_per_interval():
    now = [100.0]
    policy = SnapshotPolicy([cam("door", "face"), cam("hall", "off")], clock=lambda: now[0])
    image = np.zeros((480, 640, 3), np.uint8)
    assert policy.pick("hall", [event("start", camera="hall")], image, {}) is None
    assert policy.pick("door", [event("end")], image, {}) is None
    assert policy.pick("door", [event("start")], image, {}) is not None
    now[0] += 4.9
    assert policy.pick("door", [event("change")], image, {}) is None
    now[0] += 0.2
    assert policy.pick("door", [event("change")], image, {}) is not None
    assert (policy.taken, policy.skipped) == (2, 1)
    assert policy.wants_pixels("door") and not policy.wants_pixels("hall")


def test_face_snapshot_is_the_face_region_and_frame_snapshot_is_bounded():
    image = np.zeros((1080, 1920, 3), np.uint8)
    image[400:600, 800:1000] = (0, 0, 255)  # the "face": a red square
    box = (800 / 1920, 400 / 1080, 200 / 1920, 200 / 1080)
    state = {"tracks": [{"track": 2, "expression": "sad", "box": [0.1, 0.1, 0.1, 0.1]}]}
    face = SnapshotPolicy([cam("door", "face")]).pick("door", [event("start", box)], image, state)
    jpeg = encode(face)
    assert jpeg[:3] == b"\xff\xd8\xff"
    pic = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert pic.shape[:2] == (280, 280)  # 200 px grown by 1.4, under max_side: not scaled
    centre = pic[100:180, 100:180].reshape(-1, 3).mean(axis=0)
    assert centre[2] > 200 and centre[0] < 40  # red in the middle: the face, not elsewhere
    frame = SnapshotPolicy([cam("door", "frame", max_side=320, quality=60)]).pick(
        "door", [event("start", box)], image, state
    )
    assert frame.boxes[1][0] == 192.0 and frame.labels == ("happy", "sad")
    jpeg = encode(frame)
    pic = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert pic.shape[:2] == (180, 320)
    assert len(jpeg) < 20_000
