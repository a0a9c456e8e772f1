"""The discovery's templates rendered as Home Assistant renders them (tests/ha_render.py:
Jinja2 with HA's filters and ``value_json``), for every entity, on the payloads the daemon
makes: start/change/end events, the state with faces, without faces and at start, the stats.
Above all: an automation on ``happy`` fires on a happy start or change, never on an end."""

from __future__ import annotations

import json

import pytest
from ha_render import attributes, binary_sensor_state, event_fired, render, sensor_state

from expressiond.events import ExpressionEvent
from expressiond.sinks.mqtt.discovery import discovery_payload
from expressiond.sinks.mqtt.topics import Topics
from expressiond.tracking import ExpressionTracker, idle_state, restart_end

LABELS = ["neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"]
DEV, CAM = "nuc-hall", "door"


@pytest.fixture(scope="module")
def comps() -> dict:
    d = discovery_payload(Topics("expressiond", DEV), [CAM], LABELS, "1.0", snapshots=[CAM])
    return {key.removeprefix(f"{DEV}_{CAM}_"): comp for key, comp in d["components"].items()}


def event(kind: str, expression: str, previous: str | None = None, reason: str | None = None, track=7):
    scores = {label: (0.8 if label == expression else 0.2 / 6) for label in LABELS}
    return ExpressionEvent(
        device_id=DEV,
        camera=CAM,
        frame=12,
        track=track,
        type=kind,
        expression=expression,
        confidence=0.8,
        scores=scores,
        previous=previous,
        box=(0.1, 0.2, 0.3, 0.4),
        timestamp=1_700_000_000.0,
        reason=reason,
    )


def test_start_and_change_fire_the_expression_end_fires_end(comps):
    ev = comps["expression_event"]
    start = event_fired(ev, event("start", "happy").to_json())
    change = event_fired(ev, event("change", "sad", previous="happy").to_json())
    end = event_fired(ev, event("end", "sad", reason="gone").to_json())
    assert start is not None and change is not None and end is not None, "HA would refuse one"
    assert (start["event_type"], start["type"], start["expression"]) == ("happy", "start", "happy")
    assert (change["event_type"], change["previous"]) == ("sad", "happy")
    assert (end["event_type"], end["type"], end["expression"], end["reason"]) == ("end", "end", "sad", "gone")
    assert start["track"] == 7 and start["confidence"] == 0.8 and len(start["id"]) == 32
    assert start["reason"] is None


def test_an_automation_on_happy_never_runs_when_the_happy_face_leaves(comps):
    """The README's automation: fires when the event entity's event_type is "happy"."""
    ev = comps["expression_event"]
    last = event("change", "happy", previous="neutral")
    story = [
        event("start", "neutral"),
        last,
        event("end", "happy", reason="gone"),
        event("start", "happy", track=8),
        event("end", "happy", reason="stop", track=8),
        restart_end(event("start", "happy", track=9), 1_700_000_100.0),
    ]
    fired = [event_fired(ev, e.to_json())["event_type"] == "happy" for e in story]
    assert fired == [False, True, False, True, False, False]


def test_an_event_without_reason_from_an_older_spool_still_renders(comps):
    payload = json.loads(event("start", "happy").to_json())
    del payload["reason"]
    assert event_fired(comps["expression_event"], json.dumps(payload))["reason"] is None


def test_state_sensors_with_faces_without_and_at_start(comps):
    tracker = ExpressionTracker(_Cfg(), DEV)
    with_faces = {
        **idle_state(DEV, CAM, 1_700_000_000.0, 40),
        "count": 2,
        "tracks": [
            {"track": 3, "expression": "sad", "confidence": 0.7, "box": [0, 0, 0.1, 0.1]},
            {"track": 4, "expression": "happy", "confidence": 0.9, "box": [0.5, 0, 0.1, 0.1]},
        ],
    }
    at_start = idle_state(DEV, CAM, 1_700_000_000.0)
    never_seen = tracker.current_state(CAM)
    for state, expression, count, present in (
        (with_faces, "happy", "2", "on"),
        (at_start, "none", "0", "off"),
        (never_seen, "none", "0", "off"),
    ):
        payload = json.dumps(state)
        assert sensor_state(comps["expression"], payload) == expression
        assert sensor_state(comps["faces"], payload) == count
        assert binary_sensor_state(comps["presence"], payload) == present
        attrs = attributes(comps["expression"], payload)
        assert attrs["count"] == int(count) and len(attrs["tracks"]) == int(count)


def test_fps_sensor_reads_its_camera_and_tolerates_stats_without_it(comps):
    fps = comps["fps"]
    assert sensor_state(fps, json.dumps({"cameras": {CAM: {"fps": 9.87}}})) == "9.9"
    assert sensor_state(fps, json.dumps({"cameras": {"hall": {"fps": 5}}})) == "None"
    assert sensor_state(fps, json.dumps({"uptime_s": 3})) == "None"


def test_connectivity_follows_the_cameras_connected_flag_in_stats(comps):
    link = comps["connectivity"]
    assert link["device_class"] == "connectivity" and link["state_topic"] == f"expressiond/{DEV}/stats"
    assert binary_sensor_state(link, json.dumps({"cameras": {CAM: {"fps": 9, "connected": True}}})) == "on"
    assert binary_sensor_state(link, json.dumps({"cameras": {CAM: {"fps": 0, "connected": False}}})) == "off"
    # another camera's stats or none at all: unknown, never a guess
    assert binary_sensor_state(link, json.dumps({"cameras": {"hall": {"connected": True}}})) is None
    assert binary_sensor_state(link, json.dumps({"uptime_s": 3})) is None


def test_every_component_has_qos_1_and_the_image_reads_the_snapshot_topic(comps):
    assert {name: comp["qos"] for name, comp in comps.items()} == dict.fromkeys(comps, 1)
    assert comps["snapshot"]["image_topic"] == f"expressiond/{DEV}/{CAM}/snapshot"
    assert comps["presence"]["device_class"] == "occupancy"


def test_the_renderer_is_strict_where_home_assistant_is():
    with pytest.raises(ValueError, match="no default"):
        render("{{ value_json.count | int }}", '{"count": "many"}')
    assert render("{{ value_json.count | int(0) }}", '{"count": "many"}') == "0"
    assert render("{{ value }}", b"not json ") == "not json"


class _Cfg:
    iou_threshold = 0.3
    max_missed_frames = 10
    ema_alpha = 0.4
    enter_threshold = 0.6
    exit_threshold = 0.4
    min_duration_frames = 3
