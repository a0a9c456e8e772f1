"""One generation of the frame path for one config: cameras -> async inference -> tracker.

A reload builds a new Runtime from the new config and stops the old one; the sinks (MQTT
connection, spool) outlive it. The Service sees a runtime only through ``start``, ``stop``,
``health()``, ``stats()`` (typed records, records.py), ``labels`` and ``release()``.

Thread: one "capture-<camera>" per camera (sources/capture.py), the "frames" feeder here,
OpenVINO's callback threads and the "inference-coordinator" (inference/pipeline.py); the
service's main thread calls the public methods. State written by the feeder or the coordinator
and read by the main thread is under ``_lock`` or in Counters/LatencyWindow.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable

from expressiond.config.model import Config
from expressiond.counters import Counters, LatencyWindow
from expressiond.daemon.faults import FaultPlan
from expressiond.daemon.records import CameraHealth, CameraStats, Health, InferenceStats, RuntimeStats
from expressiond.daemon.snapshots import SnapshotJob, SnapshotPolicy
from expressiond.events import ExpressionEvent, Frame, FrameResult
from expressiond.inference import engine
from expressiond.inference.factory import compile_models, make_pipeline, resolve_num_requests, warm_up
from expressiond.sources.capture import CameraCapture
from expressiond.tracking import ExpressionTracker, TrackIds

log = logging.getLogger(__name__)
RELEASE_GRACE_S = 0.3  # see release()

# This many frames in a row that fail to start inference mean the device (or the pipeline) is
# gone for good: the runtime gives up and the service exits 1, so that systemd restarts it.
MAX_FAILED_SUBMITS = 25

# (events, camera, its state after them, the snapshot to make or None); called on the thread
# the tracker made the events on, which must make them durable before it returns
EventsCallback = Callable[[list[ExpressionEvent], str, dict, "SnapshotJob | None"], None]


class Runtime:
    def __init__(
        self,
        cfg: Config,
        on_events: EventsCallback,
        *,
        faults: FaultPlan | None = None,
        track_ids: TrackIds | None = None,
    ):
        """Compile and warm up the models and make the cameras (not started yet). ``faults``
        is the test-only fault plan (daemon/faults.py); None or empty: no fault. ``track_ids``:
        the process's track-id counter (the service's, so ids go on across reloads)."""
        self.cfg = cfg
        self.tracker = ExpressionTracker(cfg.tracking, cfg.device_id, track_ids)
        self.snapshots = SnapshotPolicy(cfg.cameras)
        self._on_events = on_events
        self._faults = faults or FaultPlan()
        self._detector, self._classifier = compile_models(cfg)
        self.warmup_s = warm_up(self._detector, self._classifier)
        self.num_requests = resolve_num_requests(cfg, self._detector)
        self._pipeline = make_pipeline(
            cfg, self._detector, self._classifier, self.num_requests, self._on_result
        )
        models_dir = cfg.models_path()
        self._captures = [
            CameraCapture(_Resolved(cam, cam.resolve_source(models_dir))) for cam in cfg.cameras
        ]
        self._latency = {cam.name: LatencyWindow() for cam in cfg.cameras}
        self._counts = Counters("submitted", "submit_errors")
        self._lock = threading.Lock()  # the fields below: written by feeder/coordinator
        self._last_result_mono = self._started_mono = time.monotonic()
        self._failed_in_row = 0
        self._failure: str | None = None  # set when inference cannot go on; the service exits 1
        self._sources_drained = False
        self._stop = threading.Event()
        self._feeder = threading.Thread(target=self._feed, name="frames", daemon=True)
        self._log_compiled()

    def _log_compiled(self) -> None:
        inf = self.cfg.inference
        log.info(
            "inference: asked device=%s precision=%s num_requests=%s hint=%s; OpenVINO reports "
            "detector %s, classifier %s; using %d requests; warm-up %.2f s",
            inf.device,
            inf.precision,
            inf.num_requests,
            inf.performance_hint,
            self._detector.info,
            self._classifier.info,
            self.num_requests,
            self.warmup_s,
            extra={"device": ",".join(self.execution_devices())},
        )

    # --- what the service uses ----------------------------------------------------------------
    @property
    def labels(self) -> tuple[str, ...]:
        """The labels events carry (an ensemble: the 7 expression labels; one model: its own)."""
        return self._classifier.labels

    def start(self) -> None:
        self._started_mono = time.monotonic()
        for cap in self._captures:
            cap.start()
        self._feeder.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._faults.before_stop()
        for cap in self._captures:
            cap.stop(timeout=2.0)
        self._stop.set()
        self._feeder.join(timeout)
        if not self._pipeline.close(timeout):
            log.warning("inference did not drain within %.0f s", timeout)
        for cam in self.cfg.cameras:
            events = self.tracker.flush(cam.name)
            if events:
                self._on_events(events, cam.name, self.tracker.current_state(cam.name), None)

    def release(self) -> None:
        """Drop every OpenVINO object now, in this thread, the shared Core included: call it
        once, after stop(), when the process is done with inference. Left to the garbage
        collector they may be destroyed on an OpenVINO worker thread or during interpreter
        shutdown, which aborts the process (exit 134) after an otherwise clean stop."""
        # OpenVINO marks a request done (wait_all returns) a moment before its worker thread lets
        # go of it; a last reference dropped here in that moment leaves the worker to destroy
        # the executor it runs on: std::system_error "Resource deadlock avoided", abort (exit
        # 134). Pinned to one core that was 6 of 70 stops; with this pause 0 of 30 (and the
        # stop test in the slow tier).
        time.sleep(RELEASE_GRACE_S)
        self._pipeline = self._detector = self._classifier = None  # type: ignore[assignment]
        engine.release_core()
        gc.collect()

    def health(self, now: float | None = None) -> Health:
        now = time.monotonic() if now is None else now
        with self._lock:
            last, failure, drained = self._last_result_mono, self._failure, self._sources_drained
        in_flight = self._pipeline.in_flight
        cameras = []
        for cap in self._captures:
            s = cap.stats()
            down = None
            if not (s.connected or s.finished):
                down = s.last_frame_age_s if s.last_frame_age_s is not None else now - self._started_mono
            cameras.append(
                CameraHealth(
                    cap.name,
                    s.connected,
                    s.finished,
                    s.last_frame_age_s,
                    down,
                    watched=cap.watch is not None,
                    waiting_s=cap.slot.waiting_s(now),
                )
            )
        return Health(
            last_result_age_s=now - last,
            in_flight=in_flight,
            cameras=tuple(cameras),
            failure=failure,
            ended=drained and in_flight == 0,
        )

    def stats(self) -> RuntimeStats:
        now = time.monotonic()
        cameras = []
        for cap in self._captures:
            summary = self._latency[cap.name].summary(now)
            cameras.append(CameraStats(capture=cap.stats(), **summary))
        counts = self._counts.snapshot()
        pipe = self._pipeline
        inference = InferenceStats(
            device=self.cfg.inference.device,
            precision=self.cfg.inference.precision,
            num_requests=self.num_requests,
            detector=self._detector.info,
            classifier=self._classifier.info,
            frames=pipe.frames_done,
            faces=pipe.faces_done,
            errors=pipe.errors + counts["submit_errors"],
            in_flight=pipe.in_flight,
            execution_devices=tuple(self.execution_devices()),
            latency={role: h.snapshot() for role, h in pipe.latency.items()},
            models={
                "detector": self.cfg.detector.model,
                "classifier": "+".join(m.model for m in self.cfg.classifier.members),  # ensemble: a+b
            },
        )
        return RuntimeStats(cameras=tuple(cameras), inference=inference, tracker=self.tracker.stats())

    def execution_devices(self) -> list[str]:
        devs = self._detector.info.get("EXECUTION_DEVICES") or [self._detector.device]
        return list(devs) if isinstance(devs, list) else [str(devs)]

    # --- "frames" feeder thread ----------------------------------------------------------------
    def _feed(self) -> None:
        """Round-robin over the cameras' latest-frame slots into the detector."""
        while not self._stop.is_set():
            got = False
            finished_before = all(c.finished for c in self._captures)
            for cap in self._captures:
                frame: Frame | None = cap.slot.get(timeout=0 if got else 0.02)
                if frame is not None:
                    got = True
                    self._submit(frame)
                if self._stop.is_set() or self._failed():
                    return
            if finished_before and not got:
                with self._lock:
                    self._sources_drained = True  # a finished source puts nothing after finishing
                self._stop.wait(0.05)

    def _failed(self) -> bool:
        with self._lock:
            return self._failure is not None

    def _submit(self, frame: Frame) -> None:
        """A frame whose inference cannot start is skipped and counted; the feeder goes on
        (an exception here used to end the "frames" thread and leave the daemon idle)."""
        counts = self._counts.snapshot()
        try:
            self._faults.before_submit(counts["submitted"] + counts["submit_errors"] + 1)
            self._pipeline.submit(frame)
        except Exception as exc:  # noqa: BLE001 - any device/runtime error: skip the frame
            self._counts.add("submit_errors")
            with self._lock:
                self._failed_in_row += 1
                in_row = self._failed_in_row
                if in_row >= MAX_FAILED_SUBMITS:
                    self._failure = f"{in_row} frames in a row failed to start inference ({exc})"
            if in_row == 1:
                log.error(
                    "camera %s: inference failed on frame %d, frame skipped: %s",
                    frame.camera,
                    frame.index,
                    exc,
                )
            return
        with self._lock:
            self._failed_in_row = 0
        self._counts.add("submitted")

    # --- "inference-coordinator" thread --------------------------------------------------------
    def _on_result(self, result: FrameResult) -> None:
        now = time.monotonic()
        with self._lock:
            self._last_result_mono = now
        self._latency[result.camera].add(result.done_mono - result.captured_mono, now)
        events = self.tracker.update(result)
        if events:
            state = self.tracker.current_state(result.camera)
            snapshot = self.snapshots.pick(result.camera, events, result.image, state)
            self._on_events(events, result.camera, state, snapshot)


class _Resolved:
    """A CameraConfig with its source resolved (e.g. "samples" -> the sample clip)."""

    def __init__(self, cam, source: str):
        self._cam = cam
        self.source = source

    def __getattr__(self, name):
        return getattr(self._cam, name)
