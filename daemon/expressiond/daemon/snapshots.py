"""Snapshots for the cameras whose ``snapshot`` is not "off": which start/change event gets a
picture (at most one per camera per ``snapshot_interval`` seconds), and the picture: a JPEG
of the face (its box grown by FACE_MARGIN, square) or of the frame with every announced face
boxed and labelled, scaled down so that its longest side is at most ``snapshot_max_side``,
at ``snapshot_quality``. Cameras with "off" never get here: no pixels are kept or encoded.

Thread: ``SnapshotPolicy.pick`` on the tracker's thread ("inference-coordinator"): a clock
check and a reference to the frame, no pixel work; ``encode`` on the service's "events"
thread, so the JPEG encoding (a few ms) stays off the frame path. The policy's clock state
is touched by the tracker's thread only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from expressiond.events import Box, ExpressionEvent

FACE_MARGIN = 1.4  # the face crop: the box grown 40% about its centre, made square
FRAME_COLOUR = (0, 200, 255)  # BGR: amber boxes and labels on frame snapshots


@dataclass(frozen=True)
class SnapshotJob:
    """One picture to make: ``boxes``/``labels`` are in pixels of ``image``; the first box is
    the face of the event that asked for it."""

    camera: str
    mode: str  # "face" | "frame"
    image: np.ndarray = field(repr=False, compare=False)
    boxes: tuple[Box, ...]
    labels: tuple[str, ...]
    max_side: int
    quality: int


class SnapshotPolicy:
    """Per camera: the mode and bounds from the config, and when the last snapshot was taken."""

    def __init__(self, cameras: Iterable[Any], clock: Callable[[], float] = time.monotonic):
        self._cams = {c.name: c for c in cameras if c.snapshot != "off"}
        self._last: dict[str, float] = {}
        self._clock = clock
        self.taken = 0
        self.skipped = 0  # start/change events inside a camera's snapshot_interval

    def wants_pixels(self, camera: str) -> bool:
        return camera in self._cams

    def pick(
        self,
        camera: str,
        events: Sequence[ExpressionEvent],
        image: np.ndarray | None,
        state: dict[str, Any],
    ) -> SnapshotJob | None:
        cam = self._cams.get(camera)
        firing = [e for e in events if e.type in ("start", "change")]
        if cam is None or image is None or not firing:
            return None
        now = self._clock()
        last = self._last.get(camera)
        if last is not None and now - last < cam.snapshot_interval:
            self.skipped += 1
            return None
        self._last[camera] = now
        self.taken += 1
        height, width = image.shape[:2]
        best = max(firing, key=lambda e: e.confidence)
        boxes = [_pixels(best.box, width, height)]
        labels = [best.expression]
        if cam.snapshot == "frame":
            for t in state.get("tracks", ()):
                if t.get("track") != best.track:
                    boxes.append(_pixels(tuple(t["box"]), width, height))
                    labels.append(str(t.get("expression")))
        return SnapshotJob(
            camera,
            cam.snapshot,
            image,
            tuple(boxes),
            tuple(labels),
            cam.snapshot_max_side,
            cam.snapshot_quality,
        )


def _pixels(box: Sequence[float], width: int, height: int) -> Box:
    return (box[0] * width, box[1] * height, box[2] * width, box[3] * height)


def encode(job: SnapshotJob) -> bytes:
    """The JPEG bytes of the job's picture."""
    if job.mode == "face":
        picture = _face_crop(job.image, job.boxes[0])
    else:
        picture = job.image.copy()
        thickness = max(1, round(max(picture.shape[:2]) / 320))
        for (x, y, w, h), label in zip(job.boxes, job.labels, strict=True):
            p0, p1 = (round(x), round(y)), (round(x + w), round(y + h))
            cv2.rectangle(picture, p0, p1, FRAME_COLOUR, thickness)
            cv2.putText(
                picture, label, (p0[0], max(12, p0[1] - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                0.4 * thickness, FRAME_COLOUR, thickness,
            )  # fmt: skip
    picture = _fit(picture, job.max_side)
    ok, buf = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, int(job.quality)])
    if not ok:
        raise ValueError(f"camera {job.camera}: JPEG encoding failed")
    return buf.tobytes()


def _face_crop(image: np.ndarray, box: Box) -> np.ndarray:
    height, width = image.shape[:2]
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    half = max(box[2], box[3]) * FACE_MARGIN / 2
    x0, y0 = max(0, round(cx - half)), max(0, round(cy - half))
    x1, y1 = min(width, round(cx + half)), min(height, round(cy + half))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return image
    return image[y0:y1, x0:x1]


def _fit(image: np.ndarray, max_side: int) -> np.ndarray:
    side = max(image.shape[:2])
    if side <= max_side:
        return image
    scale = max_side / side
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
