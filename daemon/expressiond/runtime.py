"""One generation of the frame path for one config: cameras -> async inference -> tracker.

A reload builds a new Runtime from the new config and stops the old one; the sinks (MQTT
connection, spool) outlive it. Threads: one "capture-<camera>" per camera (capture.py), the
"frames" feeder here, OpenVINO's callback threads and the "inference-coordinator".
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable

import numpy as np

from . import faults
from .capture import CameraCapture
from .config_types import Config
from .devices import effective_precision
from .events import ExpressionEvent, Frame, FrameResult
from .inference.engine import CompiledNet, compile_net
from .inference.metadata import resolve_model
from .inference.ovcompat import property_value
from .inference.pipeline import AsyncPipeline, DetectorParams
from .tracking import ExpressionTracker

log = logging.getLogger(__name__)

# This many frames in a row that fail to start inference mean the device (or the pipeline) is
# gone for good: the runtime gives up and the service exits 1, so that systemd restarts it.
MAX_FAILED_SUBMITS = 25


def compile_models(cfg: Config) -> tuple[CompiledNet, CompiledNet]:
    inf = cfg.inference
    models_dir = cfg.models_path()
    nets = []
    for role, model in (("detector", cfg.detector), ("classifier", cfg.classifier)):
        device = cfg.model_device(model)
        precision = effective_precision(device, cfg.model_precision(model))  # MYRIAD: FP16
        files = resolve_model(model.model, models_dir, precision)
        options = (
            {"flip": model.flip, "crop": model.crop, "margin": model.margin, "fit_crops": True}
            if role == "classifier"
            else {}
        )
        nets.append(
            compile_net(files, role, device, precision, inf.performance_hint, inf.cache_dir, **options)
        )
    return nets[0], nets[1]


def resolve_num_requests(cfg: Config, detector: CompiledNet) -> int:
    if cfg.inference.num_requests == "auto":
        return int(property_value(detector.compiled, "OPTIMAL_NUMBER_OF_INFER_REQUESTS", 1) or 1)
    return int(cfg.inference.num_requests)


def warm_up(detector: CompiledNet, classifier: CompiledNet) -> float:
    """One inference per model before READY, so the first camera frame is not the slow one."""
    t0 = time.monotonic()
    frame, face = np.zeros((480, 640, 3), np.uint8), np.zeros((112, 112, 3), np.uint8)
    detector.compiled.create_infer_request().infer({0: detector.adapter.prepare(frame)})
    classifier.compiled.create_infer_request().infer({0: classifier.adapter.prepare(face)})
    return time.monotonic() - t0


class LatencyWindow:
    """Capture-to-result latencies of the last N frames, for percentiles in stats."""

    def __init__(self, size: int = 2000):
        self._values: collections.deque[float] = collections.deque(maxlen=size)
        self._times: collections.deque[float] = collections.deque(maxlen=size)

    def add(self, latency_s: float, at: float) -> None:
        self._values.append(latency_s)
        self._times.append(at)

    def summary(self, now: float, window_s: float = 30.0) -> dict:
        values = np.array(self._values, dtype=np.float64) * 1000
        times = np.array(self._times, dtype=np.float64)
        recent = times[times > now - window_s]
        span = (recent[-1] - recent[0]) if len(recent) > 1 else 0.0
        out = {"fps": round((len(recent) - 1) / span, 2) if span > 0 else 0.0}
        for p in (50, 95, 99):
            out[f"latency_p{p}_ms"] = round(float(np.percentile(values, p)), 1) if len(values) else None
        return out


class Runtime:
    def __init__(self, cfg: Config, on_events: Callable[[list[ExpressionEvent], str, dict], None]):
        self.cfg = cfg
        self.tracker = ExpressionTracker(cfg.tracking, cfg.device_id)
        self._on_events = on_events
        self.detector, self.classifier = compile_models(cfg)
        self.warmup_s = warm_up(self.detector, self.classifier)
        self.num_requests = resolve_num_requests(cfg, self.detector)
        d = cfg.detector
        self.pipeline = AsyncPipeline(
            self.detector,
            self.classifier,
            self.num_requests,
            DetectorParams(
                input_size=int(self.detector.meta.postprocess.get("input_size", 512)),
                score_threshold=d.threshold,
                nms_iou=d.nms_iou,
                max_faces=d.max_faces,
                min_face_px=d.min_face_px,
            ),
            self._on_result,
        )
        models_dir = cfg.models_path()
        self.captures = [CameraCapture(_Resolved(cam, cam.resolve_source(models_dir))) for cam in cfg.cameras]
        self.latency = {cam.name: LatencyWindow() for cam in cfg.cameras}
        self.last_result_mono = time.monotonic()
        self.submitted = 0
        self.submit_errors = 0
        self._failed_in_row = 0
        self.failure: str | None = None  # set when inference cannot go on; the service exits 1
        self._faults = faults.active()  # test-only hooks (EXPRESSIOND_FAULTS), no-ops otherwise
        self._sources_drained = False
        self._stop = threading.Event()
        self._feeder = threading.Thread(target=self._feed, name="frames", daemon=True)

    def start(self) -> None:
        for cap in self.captures:
            cap.start()
        self._feeder.start()

    def _feed(self) -> None:
        """Round-robin over the cameras' latest-frame slots into the detector."""
        while not self._stop.is_set():
            got = False
            finished_before = all(c.finished for c in self.captures)
            for cap in self.captures:
                frame: Frame | None = cap.slot.get(timeout=0 if got else 0.02)
                if frame is not None:
                    got = True
                    self._submit(frame)
                if self._stop.is_set() or self.failure is not None:
                    return
            if finished_before and not got:
                self._sources_drained = True  # a finished source puts nothing after finishing
                self._stop.wait(0.05)

    def _submit(self, frame: Frame) -> None:
        """A frame whose inference cannot start is skipped and counted; the feeder goes on
        (an exception here used to end the "frames" thread and leave the daemon idle)."""
        try:
            self._faults.before_submit(self.submitted + self.submit_errors + 1)
            self.pipeline.submit(frame)
        except Exception as exc:  # noqa: BLE001 - any device/runtime error: skip the frame
            self.submit_errors += 1
            self._failed_in_row += 1
            if self._failed_in_row == 1:
                log.error(
                    "camera %s: inference failed on frame %d, frame skipped: %s",
                    frame.camera,
                    frame.index,
                    exc,
                )
            if self._failed_in_row >= MAX_FAILED_SUBMITS:
                self.failure = f"{self._failed_in_row} frames in a row failed to start inference ({exc})"
            return
        self._failed_in_row = 0
        self.submitted += 1

    def _on_result(self, result: FrameResult) -> None:
        now = time.monotonic()
        self.last_result_mono = now
        self.latency[result.camera].add(result.done_mono - result.captured_mono, now)
        events = self.tracker.update(result)
        if events:
            self._on_events(events, result.camera, self.tracker.current_state(result.camera))

    @property
    def ended(self) -> bool:
        """Every camera is a file/folder that reached its end and all frames are through."""
        return self._sources_drained and self.pipeline.in_flight == 0

    def stop(self, timeout: float = 10.0) -> None:
        self._faults.before_stop()
        for cap in self.captures:
            cap.stop(timeout=2.0)
        self._stop.set()
        self._feeder.join(timeout)
        if not self.pipeline.close(timeout):
            log.warning("inference did not drain within %.0f s", timeout)
        for cam in self.cfg.cameras:
            events = self.tracker.flush(cam.name)
            if events:
                self._on_events(events, cam.name, self.tracker.current_state(cam.name))

    def stats(self) -> dict:
        now = time.monotonic()
        cameras = {}
        for cap in self.captures:
            s = cap.stats()
            s.update(self.latency[cap.name].summary(now))
            cameras[cap.name] = s
        return {
            "cameras": cameras,
            "inference": {
                "device": self.cfg.inference.device,
                "precision": self.cfg.inference.precision,
                "num_requests": self.num_requests,
                "detector": self.detector.info,
                "classifier": self.classifier.info,
                "frames": self.pipeline.frames_done,
                "faces": self.pipeline.faces_done,
                "errors": self.pipeline.errors + self.submit_errors,
                "in_flight": self.pipeline.in_flight,
            },
            "tracker": self.tracker.stats(),
        }

    def execution_devices(self) -> list[str]:
        devs = self.detector.info.get("EXECUTION_DEVICES") or [self.detector.device]
        return list(devs) if isinstance(devs, list) else [str(devs)]


class _Resolved:
    """A CameraConfig with its source resolved (e.g. "samples" -> the sample folder)."""

    def __init__(self, cam, source: str):
        self._cam = cam
        self.source = source

    def __getattr__(self, name):
        return getattr(self._cam, name)
