"""State that survives the daemon: against the real daemon and a real mosquitto.

- right after start every camera's retained state says count 0, also over the state a killed
  run left retained and on a camera that never sees a face;
- a SIGKILL with faces in view, then a restart: every track the killed run left open gets an
  ``end`` (reason "restart"), the restarted run's track ids are all new;
- a power cut, simulated by SIGKILL of the whole process group right after the tracker made an
  event, three times in a row: 0 events lost, counted at the tracker (the trace, faultkit.py).
"""

from __future__ import annotations

import json
import time

import cv2
import numpy as np
import pytest
from broker import Collector
from faultkit import BASE, CAMERA, settle_and_tally, wait_delivered
from ha_render import binary_sensor_state, sensor_state

from expressiond.sinks.mqtt.discovery import discovery_payload
from expressiond.sinks.mqtt.topics import Topics

pytestmark = pytest.mark.integration
STATE = f"{BASE}/{CAMERA}/state"


def open_tracks(trace: list[dict]) -> dict[int, dict]:
    """Tracks whose last traced event is not an end, by id."""
    last: dict[int, dict] = {}
    for e in trace:
        last[e["track"]] = e
    return {tid: e for tid, e in last.items() if e["type"] != "end"}


def states(col: Collector, since: float = 0.0) -> list[dict]:
    return [json.loads(m.payload) for m in col.snapshot(lambda t: t == STATE) if m.t >= since]


def test_state_is_count_0_right_after_start_over_a_stale_one(broker, watched, tmp_path, fault_row):
    """A camera that never sees a face: its state is count 0 at once (not "unknown"), and it
    replaces the retained state a killed run left with faces in it."""
    stale = {"device_id": "faultbox", "camera": CAMERA, "count": 1, "tracks": [{"track": 5}]}
    seed = Collector(broker, [STATE]).start()
    seed.client.publish(STATE, json.dumps(stale), qos=1, retain=True).wait_for_publish(5)
    seed.stop()
    blank = tmp_path / "blank"
    blank.mkdir()
    cv2.imwrite(str(blank / "wall.png"), np.full((480, 640, 3), 128, np.uint8))
    col, d = watched("idle", source=blank, fps=5)
    assert col.wait_for(lambda ms: any(s["count"] == 0 for s in states(col)), 10), d.log()[-2000:]
    late = Collector(broker, [STATE]).start()  # what Home Assistant gets when it subscribes now
    assert late.wait_for(lambda ms: len(ms) >= 1, 10)
    retained = json.loads(late.messages[0].payload)
    late.stop()
    comps = discovery_payload(Topics("expressiond", "faultbox"), [CAMERA], ["happy"], "t")["components"]
    payload = late.messages[0].payload
    assert retained["count"] == 0 and retained["tracks"] == [] and retained["ts"]
    assert sensor_state(comps[f"faultbox_{CAMERA}_faces"], payload) == "0"
    assert binary_sensor_state(comps[f"faultbox_{CAMERA}_presence"], payload) == "off"
    assert sensor_state(comps[f"faultbox_{CAMERA}_expression"], payload) == "none"
    assert d.produced() == []
    assert d.terminate() == 0


def test_sigkill_with_faces_in_view_then_restart_ends_every_open_track(broker, watched, fault_row):
    col, d = watched("openkill")
    deadline = time.monotonic() + 60
    while not open_tracks(d.produced()) and time.monotonic() < deadline:
        time.sleep(0.01)
    d.kill()  # faces in view: at least one track started and not ended
    killed = d.produced()
    left = open_tracks(killed)
    assert left, "the kill must leave a track open"
    t_restart = time.monotonic()
    d.start().wait_ready()
    assert d.wait_log(r"previous run ended without closing \d+ tracks", 5), d.log(1)
    second = d.produced()[len(killed) :]
    ends = [e for e in second if e["type"] == "end" and e["reason"] == "restart"]
    assert {e["track"] for e in ends} == set(left), (ends, left)
    assert [e["expression"] for e in sorted(ends, key=lambda e: e["track"])] == [
        left[t]["expression"] for t in sorted(left)
    ]
    assert d.wait_more(4, 60) >= 4
    new_ids = {e["track"] for e in d.produced()[len(killed) :] if e["reason"] != "restart"}
    assert new_ids and min(new_ids) > max(e["track"] for e in killed), "a track id was reused"
    first_state = states(col, since=t_restart)[0]
    assert first_state["count"] == 0, "the dead run's faces must not stay in the state"
    t = settle_and_tally(d, col)
    fault_row.update(
        key="sigkill-open-tracks",
        fault="SIGKILL with faces in view",
        how=f"SIGKILL while {len(left)} track(s) were open, then a restart on the same spool",
        result=f"restart sent end (reason restart) for all {len(left)} open track(s) and count 0 "
        f"before new events; new track ids start at {min(new_ids)} (killed run's highest "
        f"{max(e['track'] for e in killed)})",
        **t.row(),
        details={"open_tracks": sorted(left), "new_track_ids": sorted(new_ids)[:10]},
    )
    assert t.lost == 0 and t.in_order, t


def test_power_cut_right_after_events_loses_none(broker, watched, fault_row):
    """SIGKILL of the whole process group within milliseconds of the tracker making an event
    (the events of that step are then still on their way to the broker), three times, each
    followed by a restart on the same spool. SIGKILL keeps the page cache, a real power cut
    does not: what makes that safe is the fsync of each commit (synchronous=FULL), which this
    test cannot pull the plug on (README, "MQTT")."""
    col, d = watched("powercut")
    cuts, traced_at_cut, left_open = 3, [], 0
    for cut in range(cuts):  # armed after 0, 1, 2 events of the run: cuts at different phases
        assert d.wait_produced(len(d.produced()) + cut, 60), d.log()[-2000:]
        traced_at_cut.append(d.kill_after_next_event(group=True))
        left_open += len(open_tracks(d.produced()))  # each restart ends the earlier ones
        d.start().wait_ready()
    assert d.wait_more(3, 60) >= 3
    restart_ends = [e for e in d.produced() if e["reason"] == "restart"]
    t = settle_and_tally(d, col)
    assert wait_delivered(col, [e["id"] for e in d.produced()], 30)
    fault_row.update(
        key="power-cut",
        fault="power cut right after events (simulated)",
        how=f"SIGKILL of the daemon's whole process group within ms of the tracker making an "
        f"event, {cuts} times, each followed by a restart on the same spool; broker up",
        result=f"{len(restart_ends)} tracks left open by the cuts ended at the next start "
        "(reason restart); every traced event delivered",
        **t.row(),
        details={"events_traced_at_each_cut": traced_at_cut},
    )
    assert t.lost == 0 and t.in_order, t
    assert len(restart_ends) == left_open >= 1, (restart_ends, left_open)
