"""The Prometheus metric families of /metrics, made from one Observation at scrape time.

A custom collector rather than prometheus_client's live metric objects: the numbers already
exist as typed records (the stats payload's), so nothing in the frame path calls into
prometheus_client, and a reload (a new Runtime, counters from zero) needs no bookkeeping here:
Prometheus' rate() handles a counter that starts again. Names are ``expressiond_*``; every
per-camera series has a ``camera`` label. README, "Monitoring", lists them.

Thread: ``collect`` runs in the endpoint's "http" thread, on the Observation it was given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)

from expressiond.daemon.records import Observation
from expressiond.monitoring.readiness import camera_state, readiness

# (metric name, help, CaptureStats field) for the per-camera counters
CAMERA_COUNTERS = (
    ("expressiond_frames_read", "Frames read from the camera's source.", "frames_read"),
    (
        "expressiond_frames_dropped",
        "Frames replaced in the latest-frame slot before inference took them (inference slower "
        "than the camera).",
        "frames_dropped",
    ),
    ("expressiond_frames_skipped", "Frames of a live source skipped to keep to its fps.", "frames_skipped"),
    ("expressiond_bad_frames", "Frames that could not be decoded or used.", "bad_frames"),
    ("expressiond_camera_reconnects", "Times the camera's source came back after an outage.", "reconnects"),
)


class ObservationCollector:
    """A prometheus_client collector over whatever ``latest()`` returns."""

    def __init__(self, latest: Callable[[], Observation | None], clock: Callable[[], float]):
        self._latest = latest
        self._clock = clock

    def describe(self) -> list[Metric]:
        return []  # the families depend on the observation; no check at registration

    def collect(self) -> Iterator[Metric]:
        obs = self._latest()
        if obs is None:
            return
        now = self._clock()
        ready = GaugeMetricFamily("expressiond_ready", "1 when /readyz answers 200.")
        ready.add_metric([], 1.0 if readiness(obs, now)["ready"] else 0.0)
        yield ready
        info = InfoMetricFamily("expressiond_build", "The daemon's version and device_id.")
        info.add_metric([], {"version": obs.version, "device_id": obs.device_id, "phase": obs.phase})
        yield info
        yield from _sinks(obs)
        if obs.stats is None:
            return
        uptime = GaugeMetricFamily("expressiond_uptime_seconds", "Seconds since the daemon started.")
        uptime.add_metric([], obs.stats.uptime_s)
        yield uptime
        yield from _events(obs)
        if obs.stats.runtime is not None:
            yield from _cameras(obs)
            yield from _inference(obs)


def _events(obs: Observation) -> Iterator[Metric]:
    events = CounterMetricFamily(
        "expressiond_events", "Expression events handed to the sinks.", labels=["camera", "type"]
    )
    for (camera, kind), n in sorted(obs.stats.events_by.items()):
        events.add_metric([camera, kind], n)
    yield events
    dropped = CounterMetricFamily(
        "expressiond_events_dropped", "Events dropped because the sinks fell behind (queue full)."
    )
    dropped.add_metric([], obs.stats.events_dropped)
    yield dropped


def _cameras(obs: Observation) -> Iterator[Metric]:
    rt = obs.stats.runtime
    health = {c.name: c for c in obs.health.cameras} if obs.health else {}
    connected = GaugeMetricFamily(
        "expressiond_camera_connected", "1 while the camera's source is open.", labels=["camera"]
    )
    up = GaugeMetricFamily(
        "expressiond_camera_up",
        "1 when the camera is connected, finished, or reconnecting within its budget (the "
        "/readyz camera check).",
        labels=["camera"],
    )
    down = GaugeMetricFamily(
        "expressiond_camera_down_seconds",
        "How long the source has been down (0 while up).",
        labels=["camera"],
    )
    capture_fps = GaugeMetricFamily(
        "expressiond_capture_fps",
        "Frames handed to inference per second (last 32 frames).",
        labels=["camera"],
    )
    inference_fps = GaugeMetricFamily(
        "expressiond_inference_fps", "Inference results per second over the last 30 s.", labels=["camera"]
    )
    latency = GaugeMetricFamily(
        "expressiond_latency_seconds",
        "Capture to result latency over the last 30 s, by quantile.",
        labels=["camera", "quantile"],
    )
    counters = [(CounterMetricFamily(n, h, labels=["camera"]), field) for n, h, field in CAMERA_COUNTERS]
    for cam in rt.cameras:
        cap, name = cam.capture, cam.capture.camera
        h = health.get(name)
        connected.add_metric([name], 1.0 if cap.connected else 0.0)
        if h is not None:
            state = camera_state(h.connected, h.finished, h.down_s, obs.camera_budget_s.get(name, 0.0))
            up.add_metric([name], 0.0 if state == "down" else 1.0)
            down.add_metric([name], h.down_s or 0.0)
        capture_fps.add_metric([name], cap.fps)
        inference_fps.add_metric([name], cam.fps)
        for q, ms in (
            ("0.5", cam.latency_p50_ms),
            ("0.95", cam.latency_p95_ms),
            ("0.99", cam.latency_p99_ms),
        ):
            if ms is not None:
                latency.add_metric([name, q], round(ms / 1000.0, 6))
        for family, field in counters:
            family.add_metric([name], getattr(cap, field))
    yield from (connected, up, down, capture_fps, inference_fps, latency)
    yield from (family for family, _field in counters)


def _inference(obs: Observation) -> Iterator[Metric]:
    inf = obs.stats.runtime.inference
    info = InfoMetricFamily("expressiond_inference", "Inference device and precision, as asked and as run.")
    info.add_metric(
        [],
        {
            "device": inf.device,
            "precision": inf.precision,
            "execution_devices": ",".join(inf.execution_devices),
            "num_requests": str(inf.num_requests),
            "detector": inf.models.get("detector", ""),
            "classifier": inf.models.get("classifier", ""),
        },
    )
    yield info
    for name, doc, value in (
        ("expressiond_inference_frames", "Frames through detection and classification.", inf.frames),
        ("expressiond_faces", "Faces classified.", inf.faces),
        ("expressiond_inference_errors", "Frames whose inference failed or could not start.", inf.errors),
    ):
        family = CounterMetricFamily(name, doc)
        family.add_metric([], value)
        yield family
    in_flight = GaugeMetricFamily("expressiond_inference_in_flight", "Frames in inference now.")
    in_flight.add_metric([], inf.in_flight)
    yield in_flight
    hist = HistogramMetricFamily(
        "expressiond_inference_latency_seconds",
        "Inference time of each request as OpenVINO measures it, per model.",
        labels=["role", "model"],
    )
    for role, snap in sorted(inf.latency.items()):
        buckets = [("+Inf" if le == float("inf") else repr(le), n) for le, n in snap.buckets]
        hist.add_metric([role, inf.models.get(role, "")], buckets, sum_value=snap.sum)
    yield hist


def _sinks(obs: Observation) -> Iterator[Metric]:
    families = {
        "connected": GaugeMetricFamily(
            "expressiond_broker_connected",
            "1 while the sink's link (the MQTT broker) is up.",
            labels=["sink"],
        ),
        "spooling": GaugeMetricFamily(
            "expressiond_spooling", "1 while the sink's spool stores new events.", labels=["sink"]
        ),
        "spool_depth": GaugeMetricFamily(
            "expressiond_spool_depth", "Events waiting in the spool for the broker.", labels=["sink"]
        ),
        "sent": CounterMetricFamily(
            "expressiond_sink_sent", "Messages the far end acknowledged.", labels=["sink"]
        ),
        "dropped": CounterMetricFamily(
            "expressiond_sink_dropped",
            "Events that will never be delivered (spool full, refused by the broker).",
            labels=["sink"],
        ),
    }
    for s in obs.sinks:
        for key, family in families.items():
            family.add_metric([s.name], float(getattr(s, key)))
    yield from families.values()
