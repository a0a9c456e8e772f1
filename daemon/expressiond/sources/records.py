"""What a camera reports: ``CaptureStats``, the capture part of the stats payload's camera
entry (daemon/records.py nests it).

Thread: an immutable record, made by CameraCapture.stats() from counters read under locks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class CaptureStats:
    """One camera's counters (the capture part of the stats payload's camera entry)."""

    camera: str
    source: str  # redacted
    kind: str
    connected: bool
    finished: bool
    frames_read: int
    frames_published: int
    frames_dropped: int
    frames_skipped: int
    bad_frames: int
    frames_converted: int
    reconnects: int
    open_failures: int
    loops: int
    fps: float  # frames handed to the slot per second, over the last 32
    last_frame_age_s: float | None
    stalls: int = 0  # reads (or opens) abandoned because they hung
    source_info: dict[str, Any] = field(default_factory=dict)  # what the source applied (describe())

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["last_frame_age_s"] = out.pop("last_frame_age_s")  # last, as it has always been
        return out
