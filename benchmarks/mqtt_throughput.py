#!/usr/bin/env python3
"""MQTT publisher throughput with the on-disk spool vs without it (``spool_path=":memory:"``).

Same broker, same run, same code path: a private mosquitto on 127.0.0.1 (or --host/--port),
one subscriber counting deliveries. For each mode, N events are emitted as fast as one thread
can; "sustained" is N / (time from the first emit until the subscriber has all N and the
spool is empty). Also reports how long emit() blocks the caller (p50/p99). Modes alternate
for --rounds rounds; the median round is reported.

    .venv/bin/python benchmarks/mqtt_throughput.py [--events 5000] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
try:
    import expressiond  # noqa: F401
except ImportError:  # running from a checkout without the package installed
    sys.path.insert(0, str(ROOT / "daemon"))

import paho.mqtt  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402
from broker import LABELS, Broker, make_event, mosquitto_available, mqtt_config  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from expressiond.sinks.mqtt import Publisher  # noqa: E402


class Counter:
    """Counts deliveries on an event topic (QoS 1 subscription): the count and the time of the
    last one, nothing kept (also fleet_sizing.py's central consumer)."""

    def __init__(
        self, host: str, port: int, topic: str = "expressiond/bench/+/event", name: str = "bench-counter"
    ):
        self.n = 0
        self.last = 0.0
        self._cond = threading.Condition()
        self._ready = threading.Event()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-{time.time()}")
        self.c.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
        self.c.on_subscribe = lambda *a: self._ready.set()
        self.c.on_message = self._on_message
        self.c.connect(host, port)
        self.c.loop_start()
        if not self._ready.wait(10):
            raise RuntimeError(f"{name}: could not subscribe to {topic}")

    def _on_message(self, *_a) -> None:
        with self._cond:
            self.n += 1
            self.last = time.perf_counter()
            self._cond.notify_all()

    def wait(self, n: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.n < n and time.monotonic() < deadline:
                self._cond.wait(0.5)
            return self.n >= n

    def stop(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def run_mode(cfg: SimpleNamespace, n: int, timeout: float) -> dict:
    pub = Publisher(cfg, "bench", ["door"], LABELS, "bench").start()
    counter = Counter(cfg.host, cfg.port)
    try:
        deadline = time.monotonic() + 15
        while not pub.connected and time.monotonic() < deadline:
            time.sleep(0.01)
        if not pub.connected:
            raise RuntimeError("publisher did not connect")
        events = [make_event(i, device_id="bench") for i in range(n)]
        lat = []
        t0 = time.perf_counter()
        for ev in events:
            a = time.perf_counter()
            pub.emit(ev)
            lat.append(time.perf_counter() - a)
        t_emit = time.perf_counter() - t0
        if not counter.wait(n, timeout):
            raise RuntimeError(f"only {counter.n} of {n} events delivered in {timeout} s")
        t_all = counter.last - t0
        drain_deadline = time.monotonic() + timeout
        while pub.spool_depth and time.monotonic() < drain_deadline:
            time.sleep(0.005)
        if pub.spool_depth:
            raise RuntimeError(f"{pub.spool_depth} events still unacknowledged")
        lat.sort()
        return {
            "events": n,
            "sustained_events_per_s": round(n / t_all, 1),
            "emit_only_events_per_s": round(n / t_emit, 1),
            "emit_ms_p50": round(lat[len(lat) // 2] * 1e3, 4),
            "emit_ms_p99": round(lat[int(len(lat) * 0.99)] * 1e3, 4),
            "seconds": round(t_all, 3),
            "delivered": counter.n,
        }
    finally:
        counter.stop()
        pub.close(drain_timeout=2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--host")
    ap.add_argument("--port", type=int)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="mqtt-bench-") as tmp:
        broker = None
        if args.host:
            target = SimpleNamespace(host=args.host, port=args.port or 1883)
        else:
            if not mosquitto_available():
                print("mosquitto not found (apt-get install mosquitto)", file=sys.stderr)
                return 1
            broker = Broker(Path(tmp) / "broker", persistence=False).start()
            target = broker
        try:
            results: dict[str, list[dict]] = {"disk": [], "memory": []}
            for r in range(args.rounds):
                for mode in ("disk", "memory"):
                    spool = str(Path(tmp) / f"{mode}-{r}" / "spool.db") if mode == "disk" else ":memory:"
                    cfg = mqtt_config(target, spool, ha_discovery=False, client_id=f"bench-{mode}")
                    results[mode].append(run_mode(cfg, args.events, args.timeout))
        finally:
            if broker is not None:
                broker.stop()

    def median(mode: str) -> dict:
        rounds = sorted(results[mode], key=lambda x: x["sustained_events_per_s"])
        return rounds[len(rounds) // 2]

    disk, mem = median("disk"), median("memory")
    out = {
        "benchmark": "mqtt_throughput",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "node": platform.node(),
            "cpu_count": __import__("os").cpu_count(),
            "python": platform.python_version(),
        },
        "versions": {
            "paho-mqtt": paho.mqtt.__version__,
            "mosquitto": "external" if args.host else "2.x (local)",
            "sqlite": __import__("sqlite3").sqlite_version,
        },
        "events": args.events,
        "rounds": args.rounds,
        "spool_on_disk": disk,
        "spool_off_memory": mem,
        "all_rounds": results,
        "ratios": {
            "sustained_disk_vs_memory": round(
                disk["sustained_events_per_s"] / mem["sustained_events_per_s"], 3
            ),
            "emit_p50_disk_vs_memory": round(disk["emit_ms_p50"] / max(mem["emit_ms_p50"], 1e-9), 1),
        },
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{args.events} events x {args.rounds} rounds (median round), QoS 1, loopback mosquitto")
    print(f"{'mode':<22}{'sustained ev/s':>16}{'emit-only ev/s':>16}{'emit p50 ms':>13}{'emit p99 ms':>13}")
    for name, r in (("spool on (disk, FULL)", disk), ("spool off (:memory:)", mem)):
        print(
            f"{name:<22}{r['sustained_events_per_s']:>16.1f}{r['emit_only_events_per_s']:>16.1f}"
            f"{r['emit_ms_p50']:>13.3f}{r['emit_ms_p99']:>13.3f}"
        )
    print(f"ratio on/off (sustained): {out['ratios']['sustained_disk_vs_memory']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
