"""Publisher against a real mosquitto on loopback: payloads, order, status/will, state, stats,
Home Assistant discovery, broker refusals, spool bounds. No fakes."""

from __future__ import annotations

import json
import logging
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from broker import LABELS, Broker, event_payloads, make_event, proc_env, wait_until
from needs import need
from paho.mqtt.enums import CallbackAPIVersion

from expressiond.events import EVENT_SCHEMA, ExpressionEvent
from expressiond.sinks.mqtt import remove_discovery

pytestmark = pytest.mark.integration
EVENTS = "expressiond/dev1/+/event"
STATUS = "expressiond/dev1/status"


def publish_raw(broker: Broker, topic: str, payload: bytes, retain: bool = False) -> None:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="raw-publisher")
    c.connect(broker.host, broker.port)
    c.loop_start()
    try:
        c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)
    finally:
        c.disconnect()
        c.loop_stop()


def test_events_arrive_in_order_with_the_documented_schema(
    broker, collector_factory, mqtt_cfg, publisher_factory, tmp_path
):
    col = collector_factory(broker, [EVENTS])
    cfg = mqtt_cfg(broker)
    pub = publisher_factory(cfg, cameras=("door", "hall"))
    sent: list[ExpressionEvent] = []
    for i in range(300):
        ev = make_event(i, camera="door" if i % 3 else "hall")
        pub.emit(ev)
        sent.append(ev)
    assert col.wait_for(lambda ms: len(ms) >= 300, 30), f"got {len(col.messages)} of 300"
    msgs = col.snapshot()
    assert [m.topic for m in msgs] == [f"expressiond/dev1/{e.camera}/event" for e in sent]
    assert [m.payload.decode() for m in msgs] == [e.to_json() for e in sent]
    first = json.loads(msgs[0].payload)
    assert first["schema"] == EVENT_SCHEMA == 1
    assert set(first) == {
        "schema",
        "id",
        "ts",
        "device_id",
        "camera",
        "frame",
        "track",
        "type",
        "expression",
        "confidence",
        "scores",
        "previous",
        "box",
        "reason",
    }
    assert first["ts"].endswith("Z") and set(first["scores"]) == set(LABELS)
    assert not any(m.retain for m in msgs)
    assert wait_until(lambda: pub.spool_depth == 0, 10)
    assert pub.stats()["sent"] == 300 and pub.dropped == 0
    pub.close()
    rows = sqlite3.connect(cfg.spool_path).execute("SELECT COUNT(*) FROM spool").fetchone()[0]
    assert rows == 0, "acknowledged events must be deleted from the spool"


def test_status_online_then_offline_on_close(broker, collector_factory, mqtt_cfg, publisher_factory):
    col = collector_factory(broker, [STATUS])
    pub = publisher_factory(mqtt_cfg(broker))
    assert col.wait_for(lambda ms: [m.payload for m in ms] == [b"online"], 10)
    assert pub.connected
    pub.close()
    assert not pub.connected
    assert col.wait_for(lambda ms: [m.payload for m in ms] == [b"online", b"offline"], 10)
    late = collector_factory(broker, [STATUS])  # retained: a late subscriber sees offline
    assert late.wait_for(lambda ms: len(ms) == 1, 10)
    assert late.messages[0].payload == b"offline" and late.messages[0].retain


def test_will_fires_when_the_publisher_process_is_killed(broker, collector_factory, proc_cmd, tmp_path):
    col = collector_factory(broker, [STATUS])
    cmd = proc_cmd(broker, tmp_path / "spool.db", tmp_path / "ids", count=5, max_seconds=60)
    proc = subprocess.Popen(cmd, env=proc_env(), stderr=subprocess.PIPE)
    try:
        assert col.wait_for(lambda ms: b"online" in [m.payload for m in ms], 20)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert col.wait_for(lambda ms: [m.payload for m in ms] == [b"online", b"offline"], 15)
    finally:
        proc.kill()
        proc.wait(10)


def test_state_is_retained_and_stats_carry_publisher_fields(
    broker, collector_factory, mqtt_cfg, publisher_factory
):
    pub = publisher_factory(mqtt_cfg(broker))
    pub.publish_state("door", {"expression": "happy", "faces": 1})
    pub.publish_stats({"cameras": {"door": {"fps": 9.5}}})
    stats_col = collector_factory(broker, ["expressiond/dev1/stats"])
    assert wait_until(lambda: pub.connected, 10)
    pub.publish_stats({"cameras": {"door": {"fps": 10.0}}})
    assert stats_col.wait_for(
        lambda ms: any(json.loads(m.payload)["cameras"]["door"]["fps"] == 10.0 for m in ms), 10
    )
    stats = json.loads(stats_col.messages[-1].payload)
    for key in ("spool_depth", "dropped", "connected", "reconnects"):
        assert key in stats["mqtt"], key
    assert stats["mqtt"]["connected"] is True and stats["mqtt"]["dropped"] == 0
    late = collector_factory(broker, ["expressiond/dev1/door/state"])
    assert late.wait_for(lambda ms: len(ms) == 1, 10)
    assert late.messages[0].retain
    assert json.loads(late.messages[0].payload) == {"expression": "happy", "faces": 1}


def test_home_assistant_discovery_sent_resent_and_removed(
    broker, collector_factory, mqtt_cfg, publisher_factory
):
    cfg_topic = "homeassistant/device/dev1/config"
    col = collector_factory(broker, [cfg_topic])
    pub = publisher_factory(mqtt_cfg(broker), cameras=("door", "hall"))
    assert col.wait_for(lambda ms: len(ms) == 1, 10)
    disc = json.loads(col.messages[0].payload)
    assert disc["device"]["identifiers"] == ["expressiond_dev1"]
    assert disc["device"]["sw_version"] == "0.1.0-test"
    assert {"name", "model", "manufacturer"} <= set(disc["device"])
    assert disc["origin"]["name"] == "expressiond"
    assert disc["availability"][0]["topic"] == STATUS
    events = [c for c in disc["components"].values() if c["platform"] == "event"]
    assert sorted(c["state_topic"] for c in events) == [
        "expressiond/dev1/door/event",
        "expressiond/dev1/hall/event",
    ]
    assert all(c["event_types"] == [*LABELS, "end"] for c in events)
    sensors = [c for c in disc["components"].values() if c["platform"] == "sensor"]
    assert len(sensors) == 6 and all(c["unique_id"] for c in sensors)  # expression, faces, fps
    binary = [c for c in disc["components"].values() if c["platform"] == "binary_sensor"]
    by_class = {
        cls: sorted(c["state_topic"] for c in binary if c["device_class"] == cls)
        for cls in ("occupancy", "connectivity")
    }
    assert (
        by_class
        == {
            "occupancy": ["expressiond/dev1/door/state", "expressiond/dev1/hall/state"],  # face present
            "connectivity": ["expressiond/dev1/stats"] * 2,  # camera connected
        }
        and len(binary) == 4
    )

    publish_raw(broker, "homeassistant/status", b"online")
    assert col.wait_for(lambda ms: len(ms) == 2, 10), "discovery not re-sent on HA online"

    # Hostile payloads on the subscribed topic: ignored, the publisher keeps working.
    publish_raw(broker, "homeassistant/status", b"online" + b" " * (70 * 1024))
    publish_raw(broker, "homeassistant/status", b"\xff\xfe\x00online")
    publish_raw(broker, "homeassistant/status", b"offline")
    assert wait_until(lambda: pub.ignored_messages >= 3, 10)
    time.sleep(1.5)
    assert len(col.messages) == 2
    assert pub.connected
    pub.emit(make_event(1))
    assert wait_until(lambda: pub.spool_depth == 0, 10)

    pub.close()
    assert remove_discovery(mqtt_cfg(broker), "dev1", ["door", "hall"], timeout=10) == 0
    assert col.wait_for(lambda ms: len(ms) == 3 and ms[-1].payload == b"", 10)
    late = collector_factory(broker, [cfg_topic])
    time.sleep(1.0)
    assert late.messages == [], "retained discovery config must be gone after removal"


def test_turning_discovery_off_in_the_config_removes_the_device(
    broker, collector_factory, mqtt_cfg, publisher_factory
):
    cfg_topic = "homeassistant/device/dev1/config"
    col = collector_factory(broker, [cfg_topic])
    pub = publisher_factory(mqtt_cfg(broker), cameras=("door",))
    assert col.wait_for(lambda ms: len(ms) == 1 and ms[0].payload, 10)
    pub.close()
    off = mqtt_cfg(broker, ha_discovery=False)
    pub = publisher_factory(off, cameras=("door",))
    assert col.wait_for(lambda ms: len(ms) == 2 and ms[-1].payload == b"", 10)
    pub.close()
    late = collector_factory(broker, [cfg_topic])
    time.sleep(1.0)
    assert late.messages == [], "the retained discovery config must be gone"


def test_camera_change_resends_discovery_and_deletes_cameras_gone(
    broker, collector_factory, mqtt_cfg, publisher_factory
):
    """What a SIGHUP reload that renames door -> hall and adds yard does to the publisher
    (Service.reload calls set_cameras): the retained device config names the new cameras
    and carries the old one's components with only ``platform`` (HA deletes them); the
    device itself is never emptied. Then door comes back: it is a full entry again."""
    cfg_topic = "homeassistant/device/dev1/config"
    col = collector_factory(broker, [cfg_topic])
    pub = publisher_factory(mqtt_cfg(broker), cameras=("door",))
    assert col.wait_for(lambda ms: len(ms) == 1, 10)
    pub.set_cameras(["hall", "yard"])
    assert col.wait_for(lambda ms: len(ms) == 2, 10), "discovery not re-sent after the change"
    assert all(m.payload for m in col.messages), "the device config must never be emptied"

    late = collector_factory(broker, [cfg_topic])
    assert late.wait_for(lambda ms: len(ms) == 1, 10)
    assert late.messages[0].retain
    comps = json.loads(late.messages[0].payload)["components"]
    assert comps["dev1_door_expression_event"] == {"platform": "event"}
    assert comps["dev1_door_expression"] == {"platform": "sensor"}
    assert comps["dev1_door_fps"] == {"platform": "sensor"}
    for cam in ("hall", "yard"):
        assert comps[f"dev1_{cam}_expression_event"]["state_topic"] == f"expressiond/dev1/{cam}/event"
        assert comps[f"dev1_{cam}_expression_event"]["event_types"] == [*LABELS, "end"]
        assert comps[f"dev1_{cam}_fps"]["unique_id"] == f"expressiond_dev1_{cam}_fps"
    assert comps["dev1_door_connectivity"] == {"platform": "binary_sensor"}
    assert len(comps) == 21  # 7 components per camera (door's reduced to "platform")

    pub.set_cameras(["door"])
    assert col.wait_for(lambda ms: len(ms) == 3, 10)
    comps = json.loads(col.messages[-1].payload)["components"]
    assert comps["dev1_door_expression_event"]["state_topic"] == "expressiond/dev1/door/event"
    assert comps["dev1_hall_expression_event"] == {"platform": "event"}
    assert comps["dev1_yard_fps"] == {"platform": "sensor"}
    assert pub.connected


def test_camera_change_with_discovery_off_sends_no_config(
    broker, collector_factory, mqtt_cfg, publisher_factory
):
    cfg_topic = "homeassistant/device/dev1/config"
    col = collector_factory(broker, [cfg_topic])
    pub = publisher_factory(mqtt_cfg(broker, ha_discovery=False), cameras=("door",))
    assert col.wait_for(lambda ms: len(ms) == 1 and ms[0].payload == b"", 10)
    pub.set_cameras(["hall"])
    pub.publish_stats({"marker": 1})  # goes out after anything set_cameras would have queued
    stats = collector_factory(broker, ["expressiond/dev1/stats"])
    assert stats.wait_for(lambda ms: len(ms) >= 1, 10)
    time.sleep(0.5)
    assert [m.payload for m in col.messages] == [b""], "ha_discovery = false: no config sent"


def test_broker_outage_in_process_keeps_order(broker, collector_factory, mqtt_cfg, publisher_factory):
    col = collector_factory(broker, [EVENTS], client_id="outage-col", persistent=True)
    pub = publisher_factory(mqtt_cfg(broker))
    events = [make_event(i) for i in range(120)]
    for ev in events[:40]:
        pub.emit(ev)
    assert col.wait_for(lambda ms: len(ms) >= 40, 15)
    broker.stop()
    assert wait_until(lambda: not pub.connected, 10)
    for ev in events[40:]:
        pub.emit(ev)
    assert pub.spool_depth == 80
    broker.start()
    assert col.wait_for(lambda ms: {json.loads(m.payload)["id"] for m in ms} >= {e.id for e in events}, 30)
    got = [p["id"] for p in event_payloads(col)]
    first = list(dict.fromkeys(got))
    assert first == [e.id for e in events]
    assert pub.stats()["reconnects"] == 1
    assert wait_until(lambda: pub.spool_depth == 0, 10)


def test_events_refused_by_the_broker_acl_are_counted_and_do_not_block(
    broker_factory, collector_factory, mqtt_cfg, publisher_factory, caplog
):
    acl = (
        "topic write expressiond/dev1/status\ntopic write expressiond/dev1/+/state\n"
        "topic write homeassistant/#\ntopic read #\n"
    )
    broker = broker_factory(acl=acl)
    col = collector_factory(broker, ["expressiond/#"])
    caplog.set_level(logging.INFO, logger="expressiond")
    pub = publisher_factory(mqtt_cfg(broker))
    for i in range(10):
        pub.emit(make_event(i))
    pub.publish_state("door", {"expression": "sad"})
    assert wait_until(lambda: pub.rejected == 10, 15), pub.stats()
    assert pub.spool_depth == 0 and pub.dropped == 10
    assert col.wait_for(lambda ms: any(m.topic.endswith("/state") for m in ms), 10)
    assert not [m for m in col.snapshot() if m.topic.endswith("/event")]
    refusals = [r for r in caplog.records if "refused events" in r.getMessage()]
    assert len(refusals) == 1 and refusals[0].levelno == logging.ERROR
    assert "ACL" in refusals[0].getMessage()


def test_full_spool_drops_the_oldest_and_counts_them(
    broker, collector_factory, mqtt_cfg, publisher_factory, caplog
):
    col = collector_factory(broker, [EVENTS], client_id="drop-col", persistent=True)
    broker.stop()
    caplog.set_level(logging.WARNING, logger="expressiond")
    pub = publisher_factory(mqtt_cfg(broker, spool_max_events=20))
    events = [make_event(i) for i in range(50)]
    for ev in events:
        pub.emit(ev)
    assert pub.spool_depth == 20 and pub.dropped == 30
    assert any("spool" in r.getMessage() and "full" in r.getMessage() for r in caplog.records)
    broker.start()
    assert col.wait_for(lambda ms: len(ms) >= 20, 30)
    time.sleep(0.5)
    assert [p["id"] for p in event_payloads(col)] == [e.id for e in events[30:]]
    assert pub.stats()["dropped_spool_full"] == 30


def test_spool_dir_and_file_are_private(broker, mqtt_cfg, publisher_factory, tmp_path):
    spool = tmp_path / "new" / "state" / "spool.db"
    pub = publisher_factory(mqtt_cfg(broker, spool_path=spool))
    pub.emit(make_event(0))
    assert wait_until(lambda: pub.spool_depth == 0, 10)
    assert spool.parent.stat().st_mode & 0o777 == 0o700
    for p in spool.parent.iterdir():
        assert p.stat().st_mode & 0o777 == 0o600, p


@pytest.fixture
def tiny_tmpfs(tmp_path: Path):
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(mnt)], capture_output=True
    )
    need(
        r.returncode == 0,
        "a tmpfs mount",
        f"run as root with CAP_SYS_ADMIN (mount: {r.stderr.decode().strip()})",
    )
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_disk_logs_once_keeps_running_and_counts(
    broker, collector_factory, mqtt_cfg, publisher_factory, tiny_tmpfs, caplog
):
    """A spool on a full disk: events not storable are counted (``unstored``) and still sent
    from memory while the broker is reachable; one clear error line, no exception."""
    col = collector_factory(broker, [EVENTS])
    caplog.set_level(logging.INFO, logger="expressiond")
    pub = publisher_factory(mqtt_cfg(broker, spool_path=tiny_tmpfs / "spool.db"))
    assert wait_until(lambda: pub.connected, 10)
    filler = tiny_tmpfs / "filler"
    with open(filler, "wb", buffering=0) as f:  # fill the disk to the last byte
        for chunk in (65536, 4096, 512, 1):
            try:
                while True:
                    f.write(b"x" * chunk)
            except OSError:
                pass
    events = [make_event(i) for i in range(100)]
    for ev in events:
        pub.emit(ev)
    assert col.wait_for(lambda ms: len(ms) >= 100, 30), len(col.messages)
    assert [p["id"] for p in event_payloads(col)] == [e.id for e in events]
    assert pub.stats()["unstored"] > 0
    errors = [r for r in caplog.records if "cannot store events" in r.getMessage()]
    assert len(errors) == 1 and "free space" in errors[0].getMessage()
    filler.unlink()
    assert wait_until(lambda: pub.spool_depth == 0, 10)  # memory tail drained: disk next
    unstored = pub.stats()["unstored"]
    pub.emit(make_event(100))
    assert col.wait_for(lambda ms: len(ms) >= 101, 10)
    assert any("writable again" in r.getMessage() for r in caplog.records)
    assert pub.stats()["unstored"] == unstored


def test_an_unsendable_event_is_dropped_not_blocking_the_queue(
    broker, collector_factory, mqtt_cfg, publisher_factory, caplog
):
    """A spooled row paho cannot publish (wildcard in the topic) must not stall the spool."""
    col = collector_factory(broker, [EVENTS])
    caplog.set_level(logging.ERROR, logger="expressiond")
    pub = publisher_factory(mqtt_cfg(broker))
    pub.emit(make_event(0, camera="bad+camera"))
    good = make_event(1)
    pub.emit(good)
    assert col.wait_for(lambda ms: len(ms) == 1, 15)
    assert json.loads(col.messages[0].payload)["id"] == good.id
    assert wait_until(lambda: pub.spool_depth == 0, 10)
    assert pub.rejected == 1 and pub.dropped == 1
    assert any("unsendable" in r.getMessage() for r in caplog.records)
