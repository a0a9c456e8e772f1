#!/usr/bin/env python3
"""The central side of a fleet: one consumer of every box's events, de-duplicated by ``id``.

Events are published with QoS 1, so a broker or a bridge may deliver one twice (a lost PUBACK,
a bridge that resends after the central broker restarts). Each event carries a unique ``id``:
this consumer keeps the last ``--seen`` ids and drops a repeat. It also refuses an event whose
topic (``<prefix>/<device_id>/<camera>/event``) does not match its payload's ``device_id`` and
``camera``: with per-device credentials and the ACL of README "Many boxes", a box cannot
publish under another box's name, and this check catches a broker set up without it.

It subscribes with a persistent session (fixed client id, clean_session = false, QoS 1), so
events that reach the central broker while the consumer is away (or restarting) wait there.
Only paho-mqtt is needed (pip install paho-mqtt); it does not import expressiond.

    scripts/fleet_consumer.py --host central.lan --username consumer \\
        --password-file /etc/fleet/consumer-password [--json] [--prefix expressiond]

Output: one line per new event ("box-a/door start happy 0.85 id=..."), or with ``--json`` the
event payload as one JSON line. At exit (SIGINT, SIGTERM, --max-seconds) one summary line on
stderr: ``received N, new N, duplicates N, mismatched N`` (with ``--json``: a JSON object).
Exit codes: 0 ok, 1 the broker refused the connection or could not be reached, 2 usage.
"""

from __future__ import annotations

import argparse
import collections
import json
import signal
import sys
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


class Dedup:
    """The last ``size`` event ids, oldest forgotten first."""

    def __init__(self, size: int):
        self.size = size
        self._ids: collections.OrderedDict[str, None] = collections.OrderedDict()

    def first_time(self, event_id: str) -> bool:
        if event_id in self._ids:
            self._ids.move_to_end(event_id)
            return False
        self._ids[event_id] = None
        if len(self._ids) > self.size:
            self._ids.popitem(last=False)
        return True


def check(topic: str, payload: bytes, prefix: str) -> tuple[dict | None, str]:
    """The event, or None and why it is refused."""
    levels = topic.split("/")
    base = prefix.split("/")
    if levels[: len(base)] != base or len(levels) != len(base) + 3 or levels[-1] != "event":
        return None, f"not an event topic: {topic}"
    device, camera = levels[len(base)], levels[len(base) + 1]
    try:
        event = json.loads(payload)
    except ValueError:
        return None, f"{topic}: payload is not JSON"
    if not isinstance(event, dict) or not isinstance(event.get("id"), str):
        return None, f"{topic}: no event id"
    if event.get("device_id") != device or event.get("camera") != camera:
        return None, (
            f"{topic}: payload says device_id={event.get('device_id')!r} camera={event.get('camera')!r}"
        )
    return event, ""


class Consumer:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.dedup = Dedup(args.seen)
        self.counts = collections.Counter(received=0, new=0, duplicates=0, mismatched=0)
        self.failed: str | None = None
        self.done = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=args.client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        if args.username:
            self.client.username_pw_set(args.username, args.password)
        if args.tls_ca:
            self.client.tls_set(ca_certs=args.tls_ca)
        self.client.reconnect_delay_set(1, 10)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.failed = f"the broker refused the connection: {reason_code}"
            self.done.set()
            return
        client.subscribe(f"{self.args.prefix}/+/+/event", qos=1)

    def _on_message(self, client, userdata, msg) -> None:
        self.counts["received"] += 1
        event, why = check(msg.topic, msg.payload, self.args.prefix)
        if event is None:
            self.counts["mismatched"] += 1
            print(f"fleet_consumer: refused: {why}", file=sys.stderr, flush=True)
            return
        if not self.dedup.first_time(event["id"]):
            self.counts["duplicates"] += 1
            return
        self.counts["new"] += 1
        if self.args.json:
            print(json.dumps(event, separators=(",", ":")), flush=True)
        else:
            print(
                f"{event['device_id']}/{event['camera']} {event.get('type')} {event.get('expression')} "
                f"{event.get('confidence')} id={event['id']}",
                flush=True,
            )

    def run(self) -> int:
        try:
            self.client.connect(self.args.host, self.args.port, keepalive=30)
        except OSError as exc:
            print(
                f"fleet_consumer: error: cannot reach {self.args.host}:{self.args.port}: {exc}",
                file=sys.stderr,
            )
            return 1
        self.client.loop_start()
        self.done.wait(self.args.max_seconds)
        self.client.disconnect()
        self.client.loop_stop()
        summary = dict(self.counts)
        if self.args.json:
            print(json.dumps(summary), file=sys.stderr, flush=True)
        else:
            print(", ".join(f"{k} {v}" for k, v in summary.items()), file=sys.stderr, flush=True)
        if self.failed:
            print(f"fleet_consumer: error: {self.failed}", file=sys.stderr)
            return 1
        return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Consume every box's expressiond events from a central broker, de-duplicated by id.",
        epilog="Exit codes: 0 ok, 1 broker unreachable or connection refused, 2 usage.",
    )
    ap.add_argument("--host", default="127.0.0.1", help="central broker (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=1883, help="default 1883")
    ap.add_argument("--username", help="the consumer's user at the central broker")
    ap.add_argument("--password-file", help="file holding that user's password")
    ap.add_argument("--tls-ca", metavar="PEM", help="CA file: connect with TLS")
    ap.add_argument("--prefix", default="expressiond", help="the boxes' [mqtt] prefix (default expressiond)")
    ap.add_argument("--client-id", default="expressiond-fleet-consumer", help="fixed: the session persists")
    ap.add_argument(
        "--seen", type=int, default=100000, help="ids remembered for de-duplication (default 100000)"
    )
    ap.add_argument("--max-seconds", type=float, default=None, help="stop after this long (default: never)")
    ap.add_argument("--json", action="store_true", help="print each new event's payload as one JSON line")
    args = ap.parse_args(argv)
    args.password = None
    if args.password_file:
        try:
            args.password = Path(args.password_file).read_text().strip()
        except OSError as exc:
            ap.error(f"--password-file {args.password_file}: {exc.strerror}")
    consumer = Consumer(args)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: consumer.done.set())
    return consumer.run()


if __name__ == "__main__":
    sys.exit(main())
