"""The extension points and the shared-state rules: config key declarations (one place, defaults,
keyword-only, the reload policy derived from them), the source registry and the Source
protocol (a new kind is one class plus one registry line: config and capture both take it),
the EventSink defaults and build_sinks, the detector registry, the counters that several
threads write, and the typed stats and health records."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time

import numpy as np
import pytest

from expressiond.config import (
    CameraConfig,
    ClassifierConfig,
    Config,
    DetectorConfig,
    InferenceConfig,
    LoggingConfig,
    MqttConfig,
    TlsConfig,
    TrackingConfig,
    keep_restart_values,
    parse_config,
    restart_changes,
)
from expressiond.config.keys import KEY, RESTART, default_of, keys
from expressiond.counters import Counters, LatencyWindow
from expressiond.daemon.faults import FaultPlan, from_environ
from expressiond.daemon.records import CameraHealth, CameraStats, Health, ServiceStats
from expressiond.errors import ConfigError
from expressiond.events import ExpressionEvent, Frame
from expressiond.inference import metadata
from expressiond.inference.detectors import DETECTOR_KINDS
from expressiond.sinks import SINKS, EventSink, SinkOptions, build_sinks
from expressiond.sinks.journal import JournalSink
from expressiond.sinks.mqtt import MqttSink
from expressiond.sinks.stdout import StdoutSink
from expressiond.sources import registry
from expressiond.sources.base import BaseSource, Read, Source, SourceUnavailable
from expressiond.sources.capture import CameraCapture, CaptureStats
from expressiond.sources.slot import LatestFrameSlot

CAM = '[[cameras]]\nname = "door"\nsource = "{}"\n'
TABLES = (
    InferenceConfig,
    DetectorConfig,
    ClassifierConfig,
    CameraConfig,
    TrackingConfig,
    TlsConfig,
    MqttConfig,
    LoggingConfig,
)


# --- config: each key declared once -------------------------------------------------------
def test_every_config_field_is_a_declared_key():
    for cls in (*TABLES, Config):
        undeclared = {f.name for f in dataclasses.fields(cls) if KEY not in f.metadata}
        assert undeclared <= {"source", "key_lines"}, (cls.__name__, undeclared)


def test_parsing_an_empty_table_gives_the_declared_defaults():
    """The schema has no defaults of its own: what a missing key becomes is its declaration."""
    cfg = parse_config('[mqtt]\n[mqtt.tls]\n[[cameras]]\nname = "a"\nsource = "0"\n')
    assert cfg.inference == InferenceConfig() and cfg.tracking == TrackingConfig()
    assert cfg.detector == DetectorConfig() and cfg.classifier == ClassifierConfig()
    assert cfg.logging == LoggingConfig() and cfg.mqtt.tls == TlsConfig()
    assert cfg.mqtt == MqttConfig(port=8883, tls=TlsConfig())  # the one cross-table default
    assert cfg.cameras == (CameraConfig(name="a", source="0"),)
    assert default_of(CameraConfig, "fps") == cfg.cameras[0].fps == 10.0
    with pytest.raises(KeyError, match="required"):
        default_of(CameraConfig, "name")


def test_config_objects_are_keyword_only():
    with pytest.raises(TypeError):
        InferenceConfig("CPU")  # type: ignore[misc]
    with pytest.raises(TypeError):
        CameraConfig("door", "0")  # type: ignore[misc]
    assert CameraConfig(name="door", source="0").loop is False


def test_a_key_under_the_other_model_table_names_its_table():
    with pytest.raises(ConfigError, match=r"classifier\.threshold: only the detector uses threshold"):
        parse_config(CAM.format("0") + "[classifier]\nthreshold = 0.4\n")
    with pytest.raises(ConfigError, match=r"detector\.flip: only the classifier uses flip"):
        parse_config(CAM.format("0") + "[detector]\nflip = false\n")


def test_the_reload_policy_comes_from_the_declarations():
    restart = {f.name for f, key in keys(Config) if key.reload == RESTART}
    assert restart == {"device_id", "mqtt", "http", "logging"}
    old = parse_config('device_id = "a"\n[mqtt]\nhost = "h1"\n' + CAM.format("0"))
    new = parse_config(
        'device_id = "b"\n[mqtt]\nhost = "h2"\n[tracking]\nema_alpha = 0.5\n' + CAM.format("1")
    )
    assert restart_changes(old, new) == ["device_id", "mqtt"]
    kept = keep_restart_values(old, new)
    assert (kept.device_id, kept.mqtt, kept.logging) == (old.device_id, old.mqtt, old.logging)
    assert kept.cameras == new.cameras and kept.tracking.ema_alpha == 0.5  # live keys apply
    assert restart_changes(old, old) == [] and keep_restart_values(old, old) is old


# --- sources: one registry, one vocabulary, one redaction ---------------------------------
SPECS = {
    "/dev/video0": "v4l2",
    "3": "v4l2",
    "rtsp://u:p@cam/1": "stream",
    "HTTPS://cam/x.mjpg": "stream",
    "clip.avi": "file",
    "photos/": "folder",
}


@pytest.mark.parametrize(("spec", "kind"), SPECS.items())
def test_config_and_capture_use_the_same_kinds(spec, kind):
    assert registry.kind_of(spec) == kind == CameraConfig(name="c", source=spec).source_kind
    assert registry.is_live(spec) is {c.kind: c for c in registry.SOURCE_KINDS}[kind].live
    live = kind in ("v4l2", "stream")
    text = CAM.format(spec) + "realtime = false\n"
    if live:
        with pytest.raises(ConfigError, match="realtime = false only applies"):
            parse_config(text)
    else:
        assert parse_config(text).cameras[0].realtime is False


def test_every_registered_kind_is_a_source():
    kinds = [cls.kind for cls in registry.SOURCE_KINDS]
    assert len(set(kinds)) == len(kinds) == 4
    for cls in registry.SOURCE_KINDS:
        assert isinstance(cls("x"), Source), cls
    assert registry.SOURCE_KINDS[-1].claims("anything at all")  # the catch-all is last


def test_unknown_url_schemes_are_refused_with_the_registered_list():
    with pytest.raises(ConfigError) as info:
        parse_config(CAM.format("gopher://cam/1"))
    assert 'URL scheme "gopher://" is not supported; use rtsp://, rtsps://' in str(info.value)


class PatternSource(BaseSource):
    """A made-up live kind ("pattern://WxH"), as a maintainer would add one: one class."""

    kind = "pattern"
    live = True
    schemes = ("pattern",)
    opened = 0

    def open(self) -> None:
        size = self.spec.split("://", 1)[1]
        if "x" not in size:
            raise SourceUnavailable(f"pattern source {self.spec}: write pattern://WxH")
        self.w, self.h = (int(v) for v in size.split("x"))
        type(self).opened += 1

    def read(self) -> Read:
        time.sleep(0.01)
        return Read("ok", np.full((self.h, self.w, 3), 127, np.uint8))

    def close(self) -> None:
        pass

    @classmethod
    def problem(cls, spec: str) -> str | None:
        return None if "x" in spec.split("://", 1)[1] else "write pattern://WxH"


def test_a_new_source_kind_is_one_class_and_one_registry_line(monkeypatch):
    monkeypatch.setattr(registry, "SOURCE_KINDS", (PatternSource, *registry.SOURCE_KINDS))
    with pytest.raises(ConfigError, match="write pattern://WxH"):
        parse_config(CAM.format("pattern://big"))
    cfg = parse_config(CAM.format("pattern://64x48") + "fps = 50\n")
    assert cfg.cameras[0].source_kind == "pattern"
    cap = CameraCapture(cfg.cameras[0])
    cap.start()
    try:
        frame = cap.slot.get(timeout=5)
    finally:
        assert cap.stop(3)
    assert frame is not None and frame.image.shape == (48, 64, 3)
    stats = cap.stats()
    assert isinstance(stats, CaptureStats) and stats.kind == "pattern" and stats.frames_read >= 1
    assert PatternSource.opened == 1


def test_one_redaction_for_config_json_logs_and_stats():
    url = "rtsp://viewer:hunter2@10.0.0.5:554/s"
    assert registry.redact(url) == "rtsp://viewer:***@10.0.0.5:554/s"
    cfg = parse_config(CAM.format(url))
    assert cfg.to_dict()["cameras"][0]["source"] == registry.redact(url)
    assert CameraCapture(cfg.cameras[0]).stats().source == registry.redact(url)


# --- sinks ----------------------------------------------------------------------------------
def _event(camera: str = "door") -> ExpressionEvent:
    return ExpressionEvent(
        device_id="box",
        camera=camera,
        frame=7,
        track=3,
        type="start",
        expression="happy",
        confidence=0.9,
        scores={"happy": 0.9, "sad": 0.1},
        previous=None,
        box=(0.1, 0.2, 0.3, 0.4),
        timestamp=1767225600.0,
    )


def test_the_sink_base_declares_the_whole_contract_as_no_ops():
    sink = EventSink()
    assert sink.build(parse_config(CAM.format("0")), SinkOptions()) is None
    assert sink.emit(_event()) is None and sink.publish_state("door", {}) is None
    assert sink.publish_stats({}) is None and sink.set_cameras(["door"]) is None
    assert sink.status() is None and sink.close() is None
    assert sink.stores_events is False and sink.store([_event()]) is None and sink.recover() is None
    assert sink.publish_snapshot("door", b"") is None


def test_build_sinks_follows_the_config_and_the_options():
    plain = parse_config(CAM.format("0"))
    with_mqtt = parse_config(CAM.format("0") + "[mqtt]\n")
    kinds = lambda sinks: [type(s) for s in sinks]  # noqa: E731
    assert (JournalSink, StdoutSink, MqttSink) == SINKS
    assert kinds(build_sinks(plain, SinkOptions())) == [JournalSink]
    assert kinds(build_sinks(plain, SinkOptions(stdout=True))) == [JournalSink, StdoutSink]
    assert kinds(build_sinks(with_mqtt, SinkOptions(stdout=True, mqtt=False))) == [JournalSink, StdoutSink]
    assert MqttSink.build(plain, SinkOptions(mqtt=True)) is None  # no [mqtt] table: no broker


def test_the_journal_sink_logs_each_event_with_its_fields(caplog):
    caplog.set_level(logging.INFO, logger="expressiond.sinks.journal")
    ev = _event()
    JournalSink().emit(ev)
    (record,) = caplog.records
    assert record.getMessage() == "door start: track 3 happy 0.90"
    assert record.journal == {
        "CAMERA": "door",
        "EXPRESSION": "happy",
        "TRACK": 3,
        "EVENT_ID": ev.id,
        "EVENT_TYPE": "start",
    }


# --- inference kinds ------------------------------------------------------------------------
def test_detector_kinds_come_from_one_registry():
    assert tuple(DETECTOR_KINDS) == metadata.OUTPUT_KINDS["detector"] == ("faceapi_ssd", "ssd_detection_out")
    for kind, cls in DETECTOR_KINDS.items():
        assert cls.output_kind == kind and callable(cls.decode)


# --- shared state between threads -----------------------------------------------------------
def _waits_for(lock, fn, *args) -> bool:
    """Whether ``fn(*args)`` in another thread waits while ``lock`` is held here, and runs
    once it is released: the proof that the update or read goes through that lock."""
    with lock:
        worker = threading.Thread(target=fn, args=args)
        worker.start()
        worker.join(0.3)
        waited = worker.is_alive()
    worker.join(10)
    return waited and not worker.is_alive()


def test_counters_go_through_their_lock():
    """Counters are written by a camera, the coordinator or the event thread and read by the
    main thread: every add and read takes the lock (``+=`` on a plain attribute is a
    read-modify-write that only the GIL's scheduling keeps whole)."""
    counts = Counters("a", "b")
    assert _waits_for(counts._lock, counts.add, "a")
    assert _waits_for(counts._lock, counts.snapshot)
    threads = [threading.Thread(target=lambda: [counts.add("b", 2) for _ in range(5000)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert counts.snapshot() == {"a": 1, "b": 40000}


def test_latency_window_and_slot_go_through_their_locks():
    window = LatencyWindow(size=10)
    assert _waits_for(window._lock, window.add, 0.02, time.monotonic())
    assert _waits_for(window._lock, window.summary, time.monotonic())
    summary = window.summary(time.monotonic())
    assert summary["latency_p50_ms"] == 20.0 and summary["fps"] == 0.0  # one sample: no rate
    slot = LatestFrameSlot()
    assert _waits_for(slot._cond, slot.counts)
    cap = CameraCapture(CameraConfig(name="c", source="/nonexistent/clip.avi"))
    assert _waits_for(cap._lock, cap.stats)


# --- the fault plan is an argument ----------------------------------------------------------
def test_the_fault_plan_comes_from_the_given_environment_only():
    assert from_environ({}) == FaultPlan() and not from_environ({})
    assert from_environ({"EXPRESSIOND_FAULTS": "stop-hang"}).stop_hang
    with pytest.raises(ConfigError, match="EXPRESSIOND_FAULTS"):
        from_environ({"EXPRESSIOND_FAULTS": "infer-raise:frame=0"})


# --- typed records --------------------------------------------------------------------------
def _capture_stats(**kw) -> CaptureStats:
    base = dict(
        camera="door",
        source="0",
        kind="v4l2",
        connected=True,
        finished=False,
        frames_read=10,
        frames_published=9,
        frames_dropped=1,
        frames_skipped=0,
        bad_frames=0,
        frames_converted=0,
        reconnects=0,
        open_failures=0,
        loops=0,
        fps=10.0,
        last_frame_age_s=0.1,
    )
    return CaptureStats(**{**base, **kw})


def test_stats_records_keep_the_payload_keys_and_order():
    cam = CameraStats(
        capture=_capture_stats(), fps=8.5, latency_p50_ms=20.0, latency_p95_ms=30.0, latency_p99_ms=40.0
    )
    d = cam.to_dict()
    assert list(d)[-4:] == ["last_frame_age_s", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms"]
    # the capture's rate and the inference rate both, at the capture's fps place (one used to
    # overwrite the other); "fps" stays the inference rate that consumers read
    assert list(d)[14:16] == ["capture_fps", "fps"] and (d["capture_fps"], d["fps"]) == (10.0, 8.5)
    svc = ServiceStats(
        device_id="box", version="x", uptime_s=1.0, events_emitted=3, events_dropped=1, runtime=None
    )
    assert svc.to_dict() == {
        "device_id": "box",
        "version": "x",
        "uptime_s": 1.0,
        "events": {"emitted": 3, "dropped": 1},
    }


def test_health_decides_the_watchdog_ping():
    up = CameraHealth("door", connected=True, finished=False, last_frame_age_s=0.2)
    down = CameraHealth("yard", connected=False, finished=False, last_frame_age_s=None)
    done = CameraHealth("file", connected=False, finished=True, last_frame_age_s=5.0)

    def health(age, in_flight, *cams):
        return Health(last_result_age_s=age, in_flight=in_flight, cameras=cams, failure=None, ended=False)

    assert health(1.0, 3, up).healthy(5.0)  # results flow
    assert not health(9.0, 1, down).healthy(5.0)  # a request that never completes
    assert health(9.0, 0, down, done).healthy(5.0)  # cameras visibly down or ended: not stuck
    stuck = health(9.0, 0, up, down)
    assert not stuck.healthy(5.0)  # a connected camera delivers nothing: a blocked read
    assert stuck.stall_report() == (
        "no inference result for 9.0 s, 0 frame(s) in flight; cameras: door connected, last "
        "frame 0.2 s ago; yard not connected"
    )


def test_a_stalled_live_camera_is_its_watch_s_business_not_the_watchdog_s():
    """One RTSP camera frozen while connected: its stall watch reconnects it; the watchdog keeps
    pinging. The inference path stays covered: frames left untaken, or a request that never
    completes, stop the pings whatever the cameras do."""
    frozen = CameraHealth("door", connected=True, finished=False, last_frame_age_s=4.0, watched=True)
    flowing = CameraHealth("yard", connected=True, finished=False, last_frame_age_s=0.1, watched=True)

    def health(age, in_flight, *cams):
        return Health(last_result_age_s=age, in_flight=in_flight, cameras=cams, failure=None, ended=False)

    assert health(9.0, 0, frozen).healthy(5.0)  # alone and frozen: still no watchdog kill
    assert health(0.2, 2, frozen, flowing).healthy(5.0)  # the other camera's results flow
    assert not health(9.0, 3, frozen).healthy(5.0)  # a request that never completes
    untaken = CameraHealth("yard", True, False, 0.1, watched=True, waiting_s=6.0)
    stuck = health(9.0, 0, frozen, untaken)
    assert not stuck.healthy(5.0)  # frames wait in a slot, nothing takes them: the feeder is stuck
    assert stuck.stall_report().endswith("yard connected, last frame 0.1 s ago, frames untaken for 6.0 s")
    assert health(9.0, 0, CameraHealth("yard", True, False, 0.1, watched=True, waiting_s=0.05)).healthy(5.0)


def test_the_slot_says_how_long_frames_wait_untaken():
    slot = LatestFrameSlot()
    assert slot.waiting_s(time.monotonic()) is None
    t0 = time.monotonic()
    slot.put(Frame("door", 0, t0, time.time(), np.zeros((2, 2, 3), np.uint8)))
    slot.put(Frame("door", 1, t0, time.time(), np.zeros((2, 2, 3), np.uint8)))  # a replacement
    assert 0.9 <= slot.waiting_s(time.monotonic() + 1.0) <= 1.1  # counted from the first put
    assert slot.get(0) is not None and slot.waiting_s(time.monotonic()) is None
