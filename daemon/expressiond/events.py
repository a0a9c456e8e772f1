"""The typed hand-offs between the parts: Frame -> Face -> FrameResult -> ExpressionEvent.

Each payload's JSON form lives next to its dataclass. ``ExpressionEvent.to_json`` is the MQTT
event payload and the ``run --stdout`` line; its ``schema`` number changes only when a field
is removed or changes meaning (adding a field keeps the number).

Thread: none of its own; the records are frozen, made in one thread and handed to the next
through the latest-frame slot, the pipeline's queue and the service's event queue.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

EVENT_SCHEMA = 1
EVENT_TYPES = ("start", "change", "end")
# Why a track ended (``reason`` of an ``end`` event; None for start and change):
# "gone": the face was not seen for [tracking] max_missed_frames frames;
# "stop": the daemon stopped, reloaded or the camera's input ended, and closed it;
# "restart": the previous run ended without closing it (SIGKILL, crash, power cut, watchdog),
# so it was closed when the daemon started again.
END_REASONS = ("gone", "stop", "restart")

Box = tuple[float, float, float, float]  # x, y, width, height


@dataclass(frozen=True)
class Frame:
    """One captured image. ``image`` is u8 BGR (H, W, 3) exactly as OpenCV delivers it."""

    camera: str
    index: int  # per-camera frame number, from 0, in capture order
    captured_mono: float  # time.monotonic() at capture, for latency
    captured_wall: float  # time.time() at capture, for the event timestamp
    image: np.ndarray = field(repr=False, compare=False)

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


@dataclass(frozen=True)
class Face:
    """One detected face: box in pixels of the frame, detector score, expression scores."""

    box: Box
    score: float
    scores: dict[str, float] = field(default_factory=dict)  # label -> probability

    @property
    def expression(self) -> str | None:
        return max(self.scores, key=self.scores.__getitem__) if self.scores else None

    @property
    def confidence(self) -> float:
        return max(self.scores.values()) if self.scores else 0.0


@dataclass(frozen=True)
class FrameResult:
    """All faces of one frame, handed from inference to the tracker in frame order."""

    camera: str
    index: int
    captured_mono: float
    captured_wall: float
    width: int
    height: int
    faces: tuple[Face, ...]
    done_mono: float = 0.0  # time.monotonic() when the last face was classified
    # the frame's pixels (a reference, not a copy), for snapshots; None when not kept
    image: np.ndarray | None = field(default=None, repr=False, compare=False)


def utc_iso(ts: float) -> str:
    """RFC 3339 UTC timestamp with milliseconds and a Z suffix."""
    return (
        datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def new_event_id() -> str:
    """A unique id per event, so consumers can drop QoS 1 re-deliveries."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class ExpressionEvent:
    """A track started showing, changed, or stopped showing an expression."""

    device_id: str
    camera: str
    frame: int  # the camera's frame number in this run (from 0 at each start/reload): not an id
    track: int  # unique per device across reloads and restarts (tracking.TrackIds)
    type: str  # start | change | end
    expression: str
    confidence: float
    scores: dict[str, float]
    previous: str | None
    box: Box  # normalised to 0..1 of the frame: x, y, width, height
    timestamp: float  # wall clock, seconds since the epoch
    id: str = field(default_factory=new_event_id)
    reason: str | None = None  # end events: one of END_REASONS

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"event type must be one of {EVENT_TYPES}, not {self.type!r}")
        if (self.reason is None) != (self.type != "end") or (self.reason and self.reason not in END_REASONS):
            raise ValueError(f"an end event has a reason of {END_REASONS}, others none; got {self.reason!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": EVENT_SCHEMA,
            "id": self.id,
            "ts": utc_iso(self.timestamp),
            "device_id": self.device_id,
            "camera": self.camera,
            "frame": self.frame,
            "track": self.track,
            "type": self.type,
            "expression": self.expression,
            "confidence": round(float(self.confidence), 4),
            "scores": {k: round(float(v), 4) for k, v in self.scores.items()},
            "previous": self.previous,
            "box": [round(float(v), 4) for v in self.box],
            "reason": self.reason,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExpressionEvent:
        """Inverse of to_dict (the spool stores the JSON form)."""
        if d.get("schema") != EVENT_SCHEMA:
            raise ValueError(f"unsupported event schema {d.get('schema')!r}")
        ts = datetime.fromisoformat(d["ts"].replace("Z", "+00:00")).timestamp()
        return cls(
            device_id=d["device_id"],
            camera=d["camera"],
            frame=int(d["frame"]),
            track=int(d["track"]),
            type=d["type"],
            expression=d["expression"],
            confidence=float(d["confidence"]),
            scores={k: float(v) for k, v in d["scores"].items()},
            previous=d["previous"],
            box=tuple(float(v) for v in d["box"]),  # type: ignore[arg-type]
            timestamp=ts,
            id=d["id"],
            reason=d.get("reason", "stop" if d["type"] == "end" else None),
        )
