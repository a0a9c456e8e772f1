#!/usr/bin/env python3
"""The figures behind README "Many boxes", sizing: how many events a box makes, and how many
events per second one mosquitto takes in from many boxes and hands to one consumer.

1. events per camera: ``expressiond run --stdout --no-mqtt`` on the sample clip (looping,
   10 fps, several faces whose expressions change every 3.2 s: a busy entrance, not a quiet
   door) for --seconds; its event lines counted.
2. fan-in capacity: a private mosquitto (persistence on, as a central broker runs) on
   loopback; --boxes publisher processes, each a paho client publishing --events real event
   payloads with QoS 1 under its own expressiond/<box>/door/event; one QoS 1 consumer on
   expressiond/+/+/event. Sustained = all events / (first publish to last delivery). The
   publishers and the consumer are Python on the same cores as the broker, so this is a
   lower bound of what mosquitto itself does. Rounds alternate; the median is reported.

    .venv/bin/python benchmarks/fleet_sizing.py [--seconds 60] [--boxes 4] [--events 5000]
        [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import paho.mqtt  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402
from broker import Broker, make_event, mosquitto_available  # noqa: E402
from mqtt_throughput import Counter  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

EXPRESSIOND = Path(sys.executable).with_name("expressiond")


def events_per_camera(models: Path, seconds: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="fleet-sizing-") as tmp:
        cfg = Path(tmp) / "c.toml"
        cfg.write_text(
            f'models_dir = "{models}"\n[[cameras]]\nname = "door"\nsource = "samples"\nloop = true\n'
            '[logging]\nlevel = "WARNING"\njournal = "no"\n'
        )
        cmd = [str(EXPRESSIOND), "run", "--config", str(cfg), "--no-mqtt", "--stdout"]
        proc = subprocess.run(
            [*cmd, "--max-seconds", f"{seconds:g}"], capture_output=True, text=True, timeout=seconds + 120
        )
    if proc.returncode != 0:
        raise SystemExit(f"fleet_sizing: {' '.join(cmd)}: exit {proc.returncode}: {proc.stderr[-500:]}")
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    by_type: dict[str, int] = {}
    for e in events:
        by_type[e["type"]] = by_type.get(e["type"], 0) + 1
    return {
        "seconds": seconds,
        "events": len(events),
        "events_per_s": round(len(events) / seconds, 3),
        "by_type": by_type,
        "payload_bytes_mean": round(
            statistics.mean(len(json.dumps(e, separators=(",", ":"))) for e in events)
        )
        if events
        else None,
    }


def publisher(host: str, port: int, box: str, count: int) -> int:
    """Child process: connect, say "ready", wait for "go" on stdin, publish, wait for PUBACKs."""
    payloads = [make_event(i, device_id=box).to_json().encode() for i in range(count)]
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sizing-{box}")
    c.max_inflight_messages_set(20)
    c.max_queued_messages_set(0)
    c.connect(host, port)
    c.loop_start()
    print("ready", flush=True)
    sys.stdin.readline()
    infos = [c.publish(f"expressiond/{box}/door/event", p, qos=1) for p in payloads]
    for info in infos:
        info.wait_for_publish(120)
    c.disconnect()
    c.loop_stop()
    return 0


def fan_in_round(broker: Broker, boxes: int, count: int) -> dict:
    consumer = Counter(broker.host, broker.port, "expressiond/+/+/event", "sizing-consumer")
    procs = []
    try:
        for b in range(boxes):
            cmd = [sys.executable, __file__, "--publisher", f"box-{b:02d}", "--port", str(broker.port)]
            cmd += ["--events", str(count)]
            procs.append(subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
        for p in procs:
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError("a publisher did not connect")
        t0 = time.perf_counter()
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        total = boxes * count
        if not consumer.wait(total, 300):
            raise RuntimeError(f"only {consumer.n} of {total} events delivered")
        for p in procs:
            p.wait(60)
        seconds = consumer.last - t0
        return {"events": total, "seconds": round(seconds, 3), "events_per_s": round(total / seconds, 1)}
    finally:
        consumer.stop()
        for p in procs:
            if p.poll() is None:
                p.kill()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="the run for events per camera")
    ap.add_argument("--boxes", type=int, default=4, help="publisher processes (default 4)")
    ap.add_argument("--events", type=int, default=5000, help="events per publisher per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--models", type=Path, default=ROOT / "models" / "ir")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--publisher", metavar="BOX", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.publisher:
        return publisher("127.0.0.1", args.port, args.publisher, args.events)
    if not mosquitto_available():
        print("fleet_sizing: mosquitto not found (apt-get install mosquitto)", file=sys.stderr)
        return 1
    per_camera = events_per_camera(args.models, args.seconds)
    rounds = []
    with tempfile.TemporaryDirectory(prefix="fleet-sizing-") as tmp:
        broker = Broker(Path(tmp) / "central", persistence=True).start()
        try:
            for _ in range(args.rounds):
                rounds.append(fan_in_round(broker, args.boxes, args.events))
        finally:
            broker.stop()
    capacity = statistics.median(r["events_per_s"] for r in rounds)
    rate = per_camera["events_per_s"]
    out = {
        "benchmark": "fleet_sizing",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpu": _cpu_model(),
            "cpu_count": os.cpu_count(),
            "load_avg_end": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
        },
        "versions": {
            "mosquitto": subprocess.run(
                [os.environ.get("MOSQUITTO", "mosquitto"), "-h"], capture_output=True, text=True
            ).stdout.splitlines()[0],
            "paho-mqtt": paho.mqtt.__version__,
        },
        "events_per_camera": per_camera,
        "fan_in": {"boxes": args.boxes, "events_per_box": args.events, "rounds": rounds},
        "broker_events_per_s": capacity,
        "cameras_at_half_capacity": int(capacity * 0.5 / rate) if rate else None,
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    n = per_camera["events"]
    print(f"events per camera: {n} in {args.seconds:g} s = {rate:.2f}/s {per_camera['by_type']}")
    print(
        f"mosquitto fan-in, {args.boxes} QoS 1 publishers -> 1 consumer: "
        + ", ".join(f"{r['events_per_s']:.0f}" for r in rounds)
        + f" events/s (median {capacity:.0f})"
    )
    print(f"cameras one broker serves at half that: {out['cameras_at_half_capacity']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
