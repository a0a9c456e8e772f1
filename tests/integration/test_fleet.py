"""A fleet on real mosquitto processes (README, "Many boxes"): two boxes, each a real daemon
(real OpenVINO, the sample clip as its camera) publishing to its own local mosquitto, each
local mosquitto bridged (QoS 1, persistent sessions, MQTT 5) to one central mosquitto that has
per-device users and the ACL ``pattern readwrite expressiond/%u/#``. The central broker goes
down for 20 s and comes back: every event each daemon printed (``run --stdout``) reaches the
central consumer (scripts/fleet_consumer.py, which de-duplicates by id), under its own
device's topic, nothing mixed up; and box-a's credentials cannot publish as box-b."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from broker import Broker, mosquitto_available
from needs import need
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))
from faultkit import Daemon, daemon_toml  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
CONSUMER = REPO / "scripts" / "fleet_consumer.py"
BOXES = ("box-a", "box-b")
PASSWORDS = {"box-a": "pw-a-7Qx", "box-b": "pw-b-3Lm", "consumer": "pw-c-9Zt"}
OUTAGE_S = 20.0
# README "Many boxes" shows this ACL; the test runs it as written there
ACL = "pattern readwrite expressiond/%u/#\n\nuser consumer\ntopic read expressiond/#\n"


def bridge_conf(box: str, central: Broker) -> list[str]:
    """The local broker's bridge to the central one, as README "Many boxes" shows it."""
    return [
        "connection central",
        f"address {central.host}:{central.port}",
        "topic expressiond/# out 1",
        "bridge_protocol_version mqttv50",
        "cleansession false",
        f"remote_clientid bridge-{box}",
        f"local_clientid bridge-{box}-local",
        f"remote_username {box}",
        f"remote_password {PASSWORDS[box]}",
        "try_private false",
        "notifications false",
        "restart_timeout 1 2",
    ]


def start_consumer(central: Broker, workdir: Path) -> tuple[subprocess.Popen, Path, Path]:
    pw = workdir / "consumer-password"
    pw.write_text(PASSWORDS["consumer"] + "\n")
    out, err = workdir / "consumer.out", workdir / "consumer.err"
    cmd = [
        sys.executable,
        str(CONSUMER),
        "--host",
        central.host,
        "--port",
        str(central.port),
        "--username",
        "consumer",
        "--password-file",
        str(pw),
        "--client-id",
        "fleet-test-consumer",
        "--json",
    ]
    with open(out, "wb") as fo, open(err, "wb") as fe:
        proc = subprocess.Popen(cmd, stdout=fo, stderr=fe)
    return proc, out, err


def consumed(out: Path) -> list[dict]:
    events = []
    for line in out.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


def wait_until(predicate, timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return predicate()
        time.sleep(step)
    return True


def publish_as(central: Broker, user: str, topic: str) -> int:
    """Publish one QoS 1 message with MQTT 5 as ``user``; the PUBACK reason code."""
    acked: list[int] = []
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"intruder-{user}", protocol=mqtt.MQTTv5)
    c.username_pw_set(user, PASSWORDS[user])
    c.on_publish = lambda client, userdata, mid, rc, props: acked.append(rc.value)
    c.connect(central.host, central.port, keepalive=10, properties=Properties(PacketTypes.CONNECT))
    c.loop_start()
    try:
        c.publish(topic, json.dumps({"id": "forged", "device_id": "box-b", "camera": "door"}), qos=1)
        assert wait_until(lambda: acked, 10), "no PUBACK"
    finally:
        c.disconnect()
        c.loop_stop()
    return acked[0]


def test_two_boxes_bridged_to_a_central_broker_that_is_down_for_20_s(tmp_path, models_dir):
    need(mosquitto_available(), "mosquitto", "apt-get install mosquitto (make deps does it)")
    central = Broker(tmp_path / "central", users=PASSWORDS, acl=ACL).start()
    brokers, daemons, consumer = [central], [], None
    try:
        locals_ = {}
        for box in BOXES:
            local = Broker(tmp_path / f"local-{box}", extra_conf=bridge_conf(box, central)).start()
            brokers.append(local)
            locals_[box] = local
        consumer, out, err = start_consumer(central, tmp_path)
        for box in BOXES:
            config = tmp_path / f"{box}.toml"
            config.write_text(
                daemon_toml(
                    models_dir=models_dir,
                    cache_dir=None,
                    source=models_dir / "samples" / "demo.avi",
                    broker=locals_[box],
                    spool=tmp_path / f"{box}-spool.db",
                    fps=10,
                    device_id=box,
                )
            )
            daemons.append(Daemon(tmp_path / box, config).start())
        for d in daemons:
            d.wait_ready()
            assert d.wait_produced(3, 60), d.log()[-3000:]
        assert wait_until(lambda: {e["device_id"] for e in consumed(out)} == set(BOXES), 30), err.read_text()

        # box-a's credentials cannot publish as box-b (MQTT 5 PUBACK 0x87 "not authorized")
        assert publish_as(central, "box-a", "expressiond/box-b/door/event") == 135
        # its own subtree: accepted (0 success, 16 "no matching subscribers")
        assert publish_as(central, "box-a", "expressiond/box-a/door/test") in (0, 16)

        before = [len(d.produced()) for d in daemons]
        central.stop()
        time.sleep(OUTAGE_S)
        during = [len(d.produced()) - n for d, n in zip(daemons, before, strict=True)]
        central.start()
        for d in daemons:
            assert d.wait_more(2, 60) >= 2, d.log()[-3000:]
            assert d.terminate() == 0, d.log()[-3000:]

        produced = {box: d.produced() for box, d in zip(BOXES, daemons, strict=True)}
        # the full payloads: what each daemon printed (--stdout); the trace has ids and types
        printed = {box: d.printed() for box, d in zip(BOXES, daemons, strict=True)}
        want = {e["id"] for events in produced.values() for e in events}

        def arrived() -> bool:
            return want <= {e["id"] for e in consumed(out)}

        assert wait_until(arrived, 90), (
            f"{len(want - {e['id'] for e in consumed(out)})} of {len(want)} events missing centrally; "
            f"consumer: {err.read_text()[-2000:]}"
        )
    finally:
        for d in daemons:
            d.cleanup()
        if consumer is not None:
            consumer.terminate()
            consumer.wait(15)
        for b in brokers:
            b.stop()

    got = consumed(out)
    ids = [e["id"] for e in got]
    assert len(ids) == len(set(ids)), "the consumer printed an event twice"
    assert "forged" not in ids
    for box, events in produced.items():
        mine = {e["id"] for e in events}
        central_view = [e for e in got if e["id"] in mine]
        assert len(central_view) == len(events), box  # every event of the box, once
        assert {e["device_id"] for e in central_view} == {box}  # none mixed up
        assert sorted(e["id"] for e in printed[box]) == sorted(mine)  # a clean stop printed all
        assert sorted(json.dumps(e, sort_keys=True) for e in central_view) == sorted(
            json.dumps(e, sort_keys=True) for e in printed[box]
        )  # byte for byte what the daemon produced
    assert min(during) > 0, f"no event made during the outage: {during}"
    summary = json.loads(err.read_text().strip().splitlines()[-1])
    assert summary["new"] == len(got) and summary["mismatched"] == 0, summary
    # the consumer's summary counts deliveries; duplicates (a resend after the restart) are dropped
    assert summary["received"] == summary["new"] + summary["duplicates"], summary
