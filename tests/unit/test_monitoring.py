"""The [http] endpoint's parts on typed records: what "ready" means, the metric families, the
server's answers and bounds (a real HTTP server on a loopback port, real prometheus_client),
and the stats windows the endpoint and the stats payload share."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from expressiond.config import HttpConfig
from expressiond.counters import LATENCY_BUCKETS_S, Histogram, LatencyWindow
from expressiond.daemon.records import (
    CameraHealth,
    CameraStats,
    Health,
    InferenceStats,
    Observation,
    RuntimeStats,
    ServiceStats,
)
from expressiond.errors import EXIT_CONFIG, ConfigError
from expressiond.monitoring import MonitorServer, server
from expressiond.monitoring.readiness import STALE_AFTER_S, readiness
from expressiond.sinks import SinkHealth
from expressiond.sources.capture import CaptureStats

NOW = 1000.0


def _capture(name: str, connected: bool = True, finished: bool = False) -> CaptureStats:
    return CaptureStats(
        camera=name,
        source="/x.avi",
        kind="file",
        connected=connected,
        finished=finished,
        frames_read=120,
        frames_published=110,
        frames_dropped=10,
        frames_skipped=0,
        bad_frames=2,
        frames_converted=0,
        reconnects=1,
        open_failures=3,
        loops=0,
        fps=9.5,
        last_frame_age_s=0.1,
    )


def _observation(
    cameras: dict[str, tuple[bool, float | None]] | None = None,
    sinks: tuple[SinkHealth, ...] = (),
    phase: str = "running",
    at: float = NOW,
    budget: float = 5.0,
) -> Observation:
    """``cameras``: name -> (connected, down_s)."""
    cameras = {"door": (True, None)} if cameras is None else cameras
    hist = Histogram()
    for v in (0.004, 0.004, 0.02, 3.0):
        hist.observe(v)
    inference = InferenceStats(
        device="CPU",
        precision="FP32",
        num_requests=2,
        detector={},
        classifier={},
        frames=100,
        faces=150,
        errors=1,
        in_flight=2,
        execution_devices=("CPU",),
        latency={"detector": hist.snapshot(), "classifier": Histogram().snapshot()},
        models={"detector": "omz/face-detection-retail-0005", "classifier": "face-api/expression"},
    )
    runtime = RuntimeStats(
        cameras=tuple(
            CameraStats(
                capture=_capture(n, connected=c),
                fps=8.0,
                latency_p50_ms=20.0,
                latency_p95_ms=30.0,
                latency_p99_ms=None,
            )
            for n, (c, _d) in cameras.items()
        ),
        inference=inference,
        tracker={},
    )
    stats = ServiceStats(
        device_id="box-a",
        version="9.9",
        uptime_s=12.5,
        events_emitted=7,
        events_dropped=0,
        runtime=runtime,
        events_by={("door", "start"): 4, ("door", "end"): 3},
    )
    health = Health(
        last_result_age_s=0.1,
        in_flight=0,
        cameras=tuple(CameraHealth(n, c, False, None, d) for n, (c, d) in cameras.items()),
        failure=None,
        ended=False,
    )
    return Observation(
        at_mono=at,
        phase=phase,
        device_id="box-a",
        version="9.9",
        stats=stats if phase != "starting" else None,
        health=health if phase != "starting" else None,
        sinks=sinks,
        camera_budget_s={n: budget for n in cameras},
    )


MQTT_UP = SinkHealth("mqtt", connected=True, spooling=True, spool_depth=0, sent=9, dropped=0)
MQTT_SPOOLING = SinkHealth("mqtt", connected=False, spooling=True, spool_depth=42)
MQTT_LOSING = SinkHealth("mqtt", connected=False, spooling=False, spool_depth=42, dropped=3)


# --- readiness ------------------------------------------------------------------------------
def test_ready_when_running_with_cameras_up_and_events_delivered_or_spooled():
    for sink in (MQTT_UP, MQTT_SPOOLING):
        body = readiness(_observation(sinks=(sink,)), NOW + 0.5)
        assert body["ready"] is True, body
    body = readiness(_observation(sinks=(MQTT_SPOOLING,)), NOW)
    assert body["checks"]["sinks"]["by_name"]["mqtt"] == {
        "ok": True,
        "connected": False,
        "spooling": True,
        "spool_depth": 42,
    }
    assert readiness(_observation(), NOW)["ready"] is True  # no sink with a link: nothing to check


def test_not_ready_when_the_broker_is_away_and_the_spool_cannot_store():
    body = readiness(_observation(sinks=(MQTT_LOSING,)), NOW)
    assert body["ready"] is False and body["checks"]["sinks"]["ok"] is False
    assert body["checks"]["cameras"]["ok"] is True and body["checks"]["models"]["ok"] is True


def test_a_camera_may_be_down_for_its_budget_then_readiness_fails():
    within = readiness(_observation({"door": (True, None), "yard": (False, 4.9)}), NOW)
    assert within["ready"] is True
    assert within["checks"]["cameras"]["by_name"]["yard"] == {
        "ok": True,
        "state": "reconnecting",
        "down_s": 4.9,
        "budget_s": 5.0,
    }
    beyond = readiness(_observation({"door": (True, None), "yard": (False, 5.1)}), NOW)
    assert beyond["ready"] is False
    cams = beyond["checks"]["cameras"]
    assert cams["ok"] is False and cams["by_name"]["yard"]["state"] == "down"
    assert cams["by_name"]["door"] == {"ok": True, "state": "connected", "down_s": None, "budget_s": 5.0}


def test_not_ready_while_starting_stopping_or_when_the_observations_stop():
    assert readiness(None, NOW) == {"ready": False, "phase": "starting", "checks": {}}
    assert readiness(_observation(phase="starting"), NOW)["checks"]["models"] == {
        "ok": False,
        "phase": "starting",
    }
    assert readiness(_observation(phase="stopping"), NOW)["ready"] is False
    stale = readiness(_observation(), NOW + STALE_AFTER_S + 1)
    assert stale["ready"] is False and stale["checks"]["observation"]["ok"] is False


# --- metrics --------------------------------------------------------------------------------
def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _scrape(obs: Observation | None) -> dict[tuple[str, tuple], float]:
    from prometheus_client import CollectorRegistry, generate_latest

    from expressiond.monitoring.metrics import ObservationCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(ObservationCollector(lambda: obs, lambda: NOW))
    return _samples(generate_latest(registry).decode())


def test_metric_families_carry_the_observation():
    obs = _observation({"door": (True, None), "yard": (False, 9.0)}, sinks=(MQTT_SPOOLING,))
    m = _scrape(obs)
    door, yard = (("camera", "door"),), (("camera", "yard"),)
    assert m[("expressiond_ready", ())] == 0.0  # yard is down beyond its 5 s budget
    assert m[("expressiond_camera_connected", door)] == 1.0
    assert m[("expressiond_camera_connected", yard)] == 0.0
    assert m[("expressiond_camera_up", yard)] == 0.0 and m[("expressiond_camera_down_seconds", yard)] == 9.0
    assert m[("expressiond_capture_fps", door)] == 9.5 and m[("expressiond_inference_fps", door)] == 8.0
    assert m[("expressiond_latency_seconds", (("camera", "door"), ("quantile", "0.5")))] == 0.02
    assert ("expressiond_latency_seconds", (("camera", "door"), ("quantile", "0.99"))) not in m
    assert m[("expressiond_frames_read_total", door)] == 120
    assert m[("expressiond_frames_dropped_total", door)] == 10
    assert m[("expressiond_bad_frames_total", door)] == 2
    assert m[("expressiond_camera_reconnects_total", door)] == 1
    assert m[("expressiond_events_total", (("camera", "door"), ("type", "start")))] == 4
    assert m[("expressiond_events_total", (("camera", "door"), ("type", "end")))] == 3
    assert m[("expressiond_inference_frames_total", ())] == 100 and m[("expressiond_faces_total", ())] == 150
    assert m[("expressiond_inference_errors_total", ())] == 1
    assert m[("expressiond_broker_connected", (("sink", "mqtt"),))] == 0.0
    assert m[("expressiond_spooling", (("sink", "mqtt"),))] == 1.0
    assert m[("expressiond_spool_depth", (("sink", "mqtt"),))] == 42
    info = [k for k in m if k[0] == "expressiond_inference_info"]
    assert len(info) == 1 and dict(info[0][1])["execution_devices"] == "CPU"
    assert dict(info[0][1])["detector"] == "omz/face-detection-retail-0005"
    det = (("model", "omz/face-detection-retail-0005"), ("role", "detector"))
    assert m[("expressiond_inference_latency_seconds_count", det)] == 4
    assert m[("expressiond_inference_latency_seconds_sum", det)] == pytest.approx(3.028)
    bucket = lambda le: m[("expressiond_inference_latency_seconds_bucket", tuple(sorted((*det, ("le", le)))))]  # noqa: E731
    assert (bucket("0.0025"), bucket("0.005"), bucket("0.025"), bucket("2.5"), bucket("+Inf")) == (
        0,
        2,
        3,
        3,
        4,
    )
    cls = (("model", "face-api/expression"), ("role", "classifier"))
    assert m[("expressiond_inference_latency_seconds_count", cls)] == 0


def test_metrics_while_starting_say_not_ready_and_nothing_else_of_the_runtime():
    assert _scrape(None) == {}
    m = _scrape(_observation(phase="starting", sinks=(MQTT_UP,)))
    assert m[("expressiond_ready", ())] == 0.0
    assert m[("expressiond_broker_connected", (("sink", "mqtt"),))] == 1.0
    assert not [k for k in m if k[0].startswith(("expressiond_frames", "expressiond_inference"))]


# --- the stats windows -----------------------------------------------------------------------
def test_latency_percentiles_use_the_same_window_as_fps():
    window = LatencyWindow()
    for i in range(50):  # slow results long ago
        window.add(0.500, NOW - 100 + i * 0.1)
    for i in range(11):  # fast ones in the last 30 s, 10 per second
        window.add(0.010, NOW - 1 + i * 0.1)
    s = window.summary(NOW, window_s=30.0)
    assert s["fps"] == pytest.approx(10.0)
    assert s["latency_p50_ms"] == 10.0 and s["latency_p99_ms"] == 10.0  # the old 500 ms are out
    empty = window.summary(NOW + 60, window_s=30.0)
    assert empty == {"fps": 0.0, "latency_p50_ms": None, "latency_p95_ms": None, "latency_p99_ms": None}


def test_histogram_counts_per_bucket_with_prometheus_le_semantics():
    h = Histogram((0.01, 0.1))
    for v in (0.01, 0.05, 0.1, 0.2, 0.001):
        h.observe(v)
    snap = h.snapshot()
    assert snap.buckets == ((0.01, 2), (0.1, 4), (float("inf"), 5))  # <= le, cumulative
    assert snap.count == 5 and snap.sum == pytest.approx(0.361)
    assert Histogram().snapshot().buckets[-1] == (float("inf"), 0)
    assert len(Histogram().snapshot().buckets) == len(LATENCY_BUCKETS_S) + 1


# --- the server -----------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int, path: str, host: str = "127.0.0.1") -> tuple[int, str, bytes]:
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read()


@pytest.fixture
def monitor():
    servers = []

    def make(listen: str) -> MonitorServer:
        m = MonitorServer(HttpConfig(listen=listen)).start()
        servers.append(m)
        return m

    yield make
    for m in servers:
        m.close()
        assert not m._thread.is_alive()


def test_server_answers_the_three_paths_from_the_latest_observation(monitor):
    port = _free_port()
    m = monitor(f"127.0.0.1:{port}")
    status, ctype, body = _get(port, "/readyz")
    assert (status, ctype) == (503, "application/json") and json.loads(body)["phase"] == "starting"
    status, _, body = _get(port, "/healthz")
    assert status == 200 and json.loads(body)["alive"] is True
    m.update(_observation(sinks=(MQTT_UP,), at=time.monotonic()))
    status, _, body = _get(port, "/readyz")
    assert status == 200 and json.loads(body)["ready"] is True
    status, ctype, body = _get(port, "/metrics")
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    assert _samples(body.decode())[("expressiond_ready", ())] == 1.0
    m.update(_observation(sinks=(MQTT_LOSING,), at=time.monotonic()))
    status, _, body = _get(port, "/readyz?verbose=1")
    assert status == 503 and json.loads(body)["checks"]["sinks"]["ok"] is False
    assert _get(port, "/")[0] == 404 and _get(port, "/metrics/x")[0] == 404


def test_server_on_ipv6_loopback(monitor):
    if not socket.has_ipv6:
        pytest.skip("not applicable: no IPv6 in this kernel")
    port = _free_port()
    try:
        monitor(f"[::1]:{port}")
    except ConfigError as exc:
        pytest.skip(f"not applicable: ::1 not configured here ({exc})")
    assert _get(port, "/healthz", host="::1")[0] == 200


def test_a_stalled_client_delays_others_only_by_the_request_timeout(monitor, monkeypatch):
    monkeypatch.setattr(server._Handler, "timeout", 0.5)
    port = _free_port()
    monitor(f"127.0.0.1:{port}")
    with socket.create_connection(("127.0.0.1", port)) as stalled:
        stalled.sendall(b"GET /metr")  # and nothing more
        t0 = time.monotonic()
        assert _get(port, "/healthz")[0] == 200
        assert time.monotonic() - t0 < 5.0


def test_a_port_in_use_is_a_config_error_naming_the_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError) as info:
            MonitorServer(HttpConfig(listen=f"127.0.0.1:{port}"), where="box.toml:31: http.listen")
    assert str(info.value).startswith(f"box.toml:31: http.listen: cannot listen on 127.0.0.1:{port} (")
    assert "choose a free port" in str(info.value) and info.value.exit_code == EXIT_CONFIG
