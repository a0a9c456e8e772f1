"""scripts/fleet_consumer.py against a real mosquitto: a repeated event id is printed once, an
event whose topic names another device or camera than its payload is refused, the summary
counts both; the human and the --json output; exit 1 when the broker refuses the user."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from broker import Broker, make_event
from paho.mqtt.enums import CallbackAPIVersion

pytestmark = pytest.mark.integration
CONSUMER = Path(__file__).resolve().parents[2] / "scripts" / "fleet_consumer.py"


def run_consumer(broker: Broker, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, str(CONSUMER), "--host", broker.host, "--port", str(broker.port), *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def publish(broker: Broker, messages: list[tuple[str, bytes]]) -> None:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fleet-consumer-test-pub")
    c.connect(broker.host, broker.port)
    c.loop_start()
    for topic, payload in messages:
        c.publish(topic, payload, qos=1).wait_for_publish(10)
    c.disconnect()
    c.loop_stop()


def wait_subscribed(broker: Broker, client_id: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while f"{client_id} 1 expressiond/+/+/event" not in broker.log_text():
        assert time.monotonic() < deadline, broker.log_text()[-2000:]
        time.sleep(0.1)


@pytest.mark.parametrize("json_output", [True, False], ids=["json", "human"])
def test_consumer_drops_repeats_and_refuses_mixed_up_topics(broker, json_output):
    cid = f"consumer-{'json' if json_output else 'human'}"
    proc = run_consumer(broker, "--client-id", cid, *(["--json"] if json_output else []))
    try:
        wait_subscribed(broker, cid)
        a, b = make_event(1, device_id="box-a"), make_event(2, device_id="box-b", camera="yard")
        publish(
            broker,
            [
                ("expressiond/box-a/door/event", a.to_json().encode()),
                ("expressiond/box-a/door/event", a.to_json().encode()),  # a QoS 1 re-delivery
                ("expressiond/box-a/yard/event", b.to_json().encode()),  # box-b's event, box-a's topic
                ("expressiond/box-b/yard/event", b"not json"),
                ("expressiond/box-b/yard/event", b.to_json().encode()),
            ],
        )
        time.sleep(1.0)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    if json_output:
        assert [json.loads(line)["id"] for line in lines] == [a.id, b.id]
        assert json.loads(lines[0]) == a.to_dict()
        summary = json.loads(err.splitlines()[-1])
    else:
        assert lines == [
            f"box-a/door {a.type} {a.expression} {a.to_dict()['confidence']} id={a.id}",
            f"box-b/yard {b.type} {b.expression} {b.to_dict()['confidence']} id={b.id}",
        ]
        summary = dict(part.rsplit(" ", 1) for part in err.splitlines()[-1].split(", "))
        summary = {k: int(v) for k, v in summary.items()}
    assert summary == {"received": 5, "new": 2, "duplicates": 1, "mismatched": 2}
    assert "payload says device_id='box-b' camera='yard'" in err and "payload is not JSON" in err


def test_consumer_exits_1_when_the_broker_refuses_it(broker_factory):
    broker = broker_factory(users={"consumer": "right"})
    proc = run_consumer(broker, "--username", "consumer", "--max-seconds", "20")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    assert "the broker refused the connection" in err and "Traceback" not in err
