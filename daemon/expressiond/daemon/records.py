"""The typed records a Runtime and the Service report: stats (the MQTT stats payload, the
``run --stats-json`` file) and health (the watchdog's question). ``to_dict`` gives the JSON
form, with the same keys, nesting and order the payload has always had.

Thread: immutable records, made in the main thread from counters read under their locks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from expressiond.counters import HistogramSnapshot
from expressiond.sinks.base import SinkHealth
from expressiond.sources.capture import CaptureStats


@dataclass(frozen=True)
class CameraStats:
    """A camera's capture counters, and its inference rate and latency (capture to result)."""

    capture: CaptureStats
    fps: float  # inference results per second over the last 30 s
    latency_p50_ms: float | None  # capture to result, over the same 30 s
    latency_p95_ms: float | None
    latency_p99_ms: float | None

    def to_dict(self) -> dict[str, Any]:
        """The capture's keys with its rate as ``capture_fps`` (frames handed to inference per
        second), then ``fps``: the inference rate (results per second), as it always was."""
        out: dict[str, Any] = {}
        for key, value in self.capture.to_dict().items():
            if key == "fps":
                out["capture_fps"] = value
                out["fps"] = self.fps
            else:
                out[key] = value
        out.update(
            latency_p50_ms=self.latency_p50_ms,
            latency_p95_ms=self.latency_p95_ms,
            latency_p99_ms=self.latency_p99_ms,
        )
        return out


@dataclass(frozen=True)
class InferenceStats:
    device: str  # as configured
    precision: str
    num_requests: int
    detector: dict[str, Any]  # what OpenVINO reports for each compiled model
    classifier: dict[str, Any]
    frames: int
    faces: int
    errors: int
    in_flight: int
    execution_devices: tuple[str, ...]
    # per role ("detector", "classifier"): request start to result, since the start; the
    # metrics endpoint's histograms (not in the stats payload)
    latency: Mapping[str, HistogramSnapshot] = field(default_factory=dict)
    models: Mapping[str, str] = field(default_factory=dict)  # role -> configured model

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "precision": self.precision,
            "num_requests": self.num_requests,
            "detector": self.detector,
            "classifier": self.classifier,
            "frames": self.frames,
            "faces": self.faces,
            "errors": self.errors,
            "in_flight": self.in_flight,
            "execution_devices": list(self.execution_devices),
        }


@dataclass(frozen=True)
class RuntimeStats:
    cameras: tuple[CameraStats, ...]
    inference: InferenceStats
    tracker: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "cameras": {c.capture.camera: c.to_dict() for c in self.cameras},
            "inference": self.inference.to_dict(),
            "tracker": dict(self.tracker),
        }


@dataclass(frozen=True)
class ServiceStats:
    """The stats payload: the service's own numbers, and the running generation's."""

    device_id: str
    version: str
    uptime_s: float
    events_emitted: int
    events_dropped: int
    runtime: RuntimeStats | None
    # (camera, type) -> events handed to the sinks; the metrics endpoint's (not in the payload)
    events_by: Mapping[tuple[str, ...], int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "device_id": self.device_id,
            "version": self.version,
            "uptime_s": self.uptime_s,
            "events": {"emitted": self.events_emitted, "dropped": self.events_dropped},
        }
        if self.runtime is not None:
            out.update(self.runtime.to_dict())
        return out


@dataclass(frozen=True)
class CameraHealth:
    name: str
    connected: bool
    finished: bool
    last_frame_age_s: float | None
    # how long the source has been down: since its last frame, or since the runtime started
    # when it never gave one; None while connected or after a file ended
    down_s: float | None = None


@dataclass(frozen=True)
class Health:
    """What the watchdog asks of a runtime, read at one instant."""

    last_result_age_s: float  # since the last inference result (or the start)
    in_flight: int
    cameras: tuple[CameraHealth, ...]
    failure: str | None  # inference cannot go on: the service exits 1
    ended: bool  # every source is a file or folder that ended, and every frame is through

    def healthy(self, window_s: float) -> bool:
        """Whether to ping the watchdog: inference completed within the window, or nothing is
        waiting and every silent camera is visibly reconnecting (a camera that is down is not
        a stuck daemon). A read that blocks forever, or a device that never completes a
        request, stops the pings and systemd restarts us."""
        if self.last_result_age_s < window_s:
            return True
        if self.in_flight:
            return False
        return all(c.finished or not c.connected for c in self.cameras)

    def stall_report(self) -> str:
        """Why healthy() said no, for the log line before systemd's watchdog kill."""
        cams = [
            f"{c.name} {'connected' if c.connected else 'not connected'}"
            + ("" if c.last_frame_age_s is None else f", last frame {c.last_frame_age_s:.1f} s ago")
            for c in self.cameras
        ]
        return (
            f"no inference result for {self.last_result_age_s:.1f} s, "
            f"{self.in_flight} frame(s) in flight; cameras: {'; '.join(cams)}"
        )


@dataclass(frozen=True)
class Observation:
    """What the metrics and health endpoint serves, taken by the service's main thread about
    once a second: the endpoint's thread reads only this, never a runtime or a sink."""

    at_mono: float
    phase: str  # "starting" (compiling models), "running", "stopping"
    device_id: str
    version: str
    stats: ServiceStats | None  # None while starting
    health: Health | None
    sinks: tuple[SinkHealth, ...]
    camera_budget_s: Mapping[str, float]  # camera -> how long it may be down and still ready
