"""The [http] endpoint of the real daemon: real OpenVINO on the CPU, a real mosquitto, a
video file as the camera. /metrics is scraped and parsed with prometheus_client's own parser
while events flow; /readyz turns 503 while the camera's file is gone for longer than the
camera's budget (reconnect_max_s) and 200 again once it is back; a broker outage with a
working spool keeps it ready (the readiness definition: "broker reachable or spooling")."""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import pytest
from broker import free_port
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))
from faultkit import Daemon, daemon_toml  # noqa: E402

pytestmark = pytest.mark.integration


def short_clip(demo: Path, out: Path, step: int = 4) -> Path:
    """Every ``step``-th frame of the sample clip (every photo, each for under a second): a
    looping file that makes events and reopens every few seconds, so a file renamed away is
    noticed soon."""
    src = cv2.VideoCapture(str(demo))
    frames = []
    while True:
        ok, image = src.read()
        if not ok:
            break
        frames.append(image)
    src.release()
    assert len(frames) >= 10 * step, f"{demo}: only {len(frames)} frames"
    size = (frames[0].shape[1], frames[0].shape[0])
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    for image in frames[::step]:
        writer.write(image)
    writer.release()
    return out


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""  # not listening (yet)


def wait_ready(port: int, want: int, timeout: float, d: Daemon) -> dict:
    """Poll /readyz until it answers ``want``; its last JSON body (bounded by timeout)."""
    deadline = time.monotonic() + timeout
    status, body = 0, b""
    while time.monotonic() < deadline and d.alive:
        status, body = get(port, "/readyz")
        if status == want:
            return json.loads(body)
        time.sleep(0.2)
    raise AssertionError(f"/readyz never answered {want} in {timeout:.0f} s (last {status} {body[:500]!r})")


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    status, body = get(port, "/metrics")
    assert status == 200, status
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def by_name(metrics: dict, name: str) -> dict[tuple, float]:
    return {labels: v for (n, labels), v in metrics.items() if n == name}


@pytest.fixture
def monitored(tmp_path, models_dir, broker):
    clip = short_clip(models_dir / "samples" / "demo.avi", tmp_path / "hall.avi")
    port = free_port()
    toml = daemon_toml(
        models_dir=models_dir, cache_dir=None, source=clip, broker=broker, spool=tmp_path / "spool.db", fps=10
    )
    config = tmp_path / "box.toml"
    config.write_text(toml + f'\n[http]\nlisten = "127.0.0.1:{port}"\n')
    d = Daemon(tmp_path / "daemon", config).start()
    yield d, port, clip
    d.cleanup()


def test_metrics_and_readiness_during_a_run_and_a_camera_outage(monitored, broker):
    d, port, clip = monitored
    body = wait_ready(port, 200, 120, d)
    assert body["checks"]["models"]["ok"] is True  # compiled: ready even while the file opens
    assert body["checks"]["cameras"]["by_name"]["door"]["state"] in ("connected", "reconnecting")
    assert d.wait_produced(3, 60), d.log()[-3000:]
    time.sleep(1.5)  # the next observation (once a second) counts them
    body = json.loads(get(port, "/readyz")[1])
    assert body["ready"] is True and body["checks"]["sinks"]["by_name"]["mqtt"]["connected"] is True
    first = scrape(port)
    door = (("camera", "door"),)
    assert first[("expressiond_ready", ())] == 1.0
    assert first[("expressiond_camera_connected", door)] == 1.0
    assert first[("expressiond_broker_connected", (("sink", "mqtt"),))] == 1.0
    assert first[("expressiond_spooling", (("sink", "mqtt"),))] == 1.0
    assert first[("expressiond_frames_read_total", door)] > 0
    assert (
        first[("expressiond_inference_frames_total", ())] > 0 and first[("expressiond_faces_total", ())] > 0
    )
    assert first[("expressiond_capture_fps", door)] > 0 and first[("expressiond_inference_fps", door)] > 0
    info = by_name(first, "expressiond_inference_info")
    assert [dict(k)["execution_devices"] for k in info] == ["CPU"], info
    events = by_name(first, "expressiond_events_total")
    assert events and {dict(k)["camera"] for k in events} == {"door"}
    assert {dict(k)["type"] for k in events} <= {"start", "change", "end"}
    assert 0 < sum(events.values()) <= len(d.produced())  # what was emitted by the observation
    for role in ("detector", "classifier"):
        counts = {
            dict(k)["le"]: v
            for k, v in by_name(first, "expressiond_inference_latency_seconds_bucket").items()
            if dict(k)["role"] == role
        }
        total = by_name(first, "expressiond_inference_latency_seconds_count")
        n = next(v for k, v in total.items() if dict(k)["role"] == role)
        assert n > 0 and counts["+Inf"] == n, (role, counts)
        values = [counts[le] for le in sorted(counts, key=float)]
        assert values == sorted(values), counts  # cumulative
    time.sleep(1.5)
    second = scrape(port)
    assert (
        second[("expressiond_inference_frames_total", ())] > first[("expressiond_inference_frames_total", ())]
    )

    # the broker goes away: the spool keeps the events, so the box stays ready
    broker.stop()
    deadline = time.monotonic() + 30
    while scrape(port)[("expressiond_broker_connected", (("sink", "mqtt"),))] != 0.0:
        assert time.monotonic() < deadline, "the broker outage never showed in /metrics"
        time.sleep(0.3)
    status, body = get(port, "/readyz")
    assert status == 200, body
    sink = json.loads(body)["checks"]["sinks"]["by_name"]["mqtt"]
    assert sink["connected"] is False and sink["spooling"] is True
    broker.start()

    # the camera's file goes away: 503 once it has been down longer than its 1 s budget
    away = clip.with_suffix(".away")
    clip.rename(away)
    body = wait_ready(port, 503, 30, d)
    cam = body["checks"]["cameras"]["by_name"]["door"]
    assert cam["state"] == "down" and cam["down_s"] > cam["budget_s"] == 1.0, cam
    down = scrape(port)
    assert (
        down[("expressiond_camera_connected", door)] == 0.0 and down[("expressiond_camera_up", door)] == 0.0
    )
    assert down[("expressiond_ready", ())] == 0.0
    assert get(port, "/healthz")[0] == 200  # alive all the same
    away.rename(clip)
    body = wait_ready(port, 200, 30, d)
    assert body["checks"]["cameras"]["by_name"]["door"]["state"] == "connected"
    assert scrape(port)[("expressiond_camera_reconnects_total", door)] >= 1

    assert d.terminate() == 0, d.log()[-3000:]
    assert get(port, "/healthz")[0] == 0  # the port is closed with the daemon
