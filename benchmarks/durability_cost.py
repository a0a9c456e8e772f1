#!/usr/bin/env python3
"""What making events durable on the tracker's thread costs the frame path, side by side.

Since issue 15 the tracker's thread ("inference-coordinator") stores each tracker step's
events in the spool itself (one fsynced SQLite transaction, ``MqttSink.store``) before it
takes the next frame. Two measurements, each alternating the on-disk spool with
``spool_path = ":memory:"`` (same code, no disk, no durability) for --rounds rounds:

1. store: ``store()`` of tracker steps of 1 and of 2 events (the demo clip makes 1-2 per
   step), with no network thread: wall ms per step (p50/p99/max = how long the frame path
   waits), thread CPU ms per event, and the events/s one thread sustains;
2. daemon: the real daemon (``expressiond run``) on the looped demo clip with realtime =
   false (every frame as fast as inference goes: far more events per second than a camera
   makes) publishing to a local mosquitto for --seconds: fps, capture-to-result latency
   p50/p99 and CPU ms per frame of the process, from its own ``--stats-json``.

    .venv/bin/python benchmarks/durability_cost.py [--steps 1500] [--seconds 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
try:
    import expressiond  # noqa: F401
except ImportError:  # running from a checkout without the package installed
    sys.path.insert(0, str(ROOT / "daemon"))

from broker import LABELS, Broker, make_event, mosquitto_available, mqtt_config  # noqa: E402

from expressiond.sinks.mqtt import Publisher  # noqa: E402

MODES = ("disk", "memory")


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * q))]


def store_round(spool: str, steps: int, per_step: int) -> dict:
    cfg = mqtt_config(_Nowhere(), spool, ha_discovery=False)
    pub = Publisher(cfg, "bench", ["door"], LABELS, "bench", autostart=False)
    try:
        batches = [
            [make_event(i * per_step + j, device_id="bench") for j in range(per_step)] for i in range(steps)
        ]
        wall, cpu = [], []
        t0 = time.perf_counter()
        for batch in batches:
            a, c = time.perf_counter(), time.thread_time()
            pub.store(batch)
            cpu.append(time.thread_time() - c)
            wall.append(time.perf_counter() - a)
        total = time.perf_counter() - t0
        assert pub.spool_depth == steps * per_step and pub._spool.unstored == 0
    finally:
        pub.close(drain_timeout=0)
    events = steps * per_step
    return {
        "events_per_step": per_step,
        "steps": steps,
        "step_ms_p50": round(pct(wall, 0.5) * 1e3, 3),
        "step_ms_p99": round(pct(wall, 0.99) * 1e3, 3),
        "step_ms_max": round(max(wall) * 1e3, 3),
        "cpu_ms_per_event": round(sum(cpu) / events * 1e3, 4),
        "events_per_s": round(events / total, 1),
    }


class _Nowhere:
    """No broker: the publisher is never started, only its store() is measured."""

    host, port = "127.0.0.1", 9


def daemon_round(spool: str, broker: Broker, seconds: float, workdir: Path, cache: Path) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    models = Path(os.environ.get("EXPRESSIOND_MODELS", ROOT / "models" / "ir"))
    clip = models / "samples" / "demo.avi"
    config = workdir / "expressiond.toml"
    config.write_text(
        f'device_id = "bench"\nmodels_dir = "{models}"\n[inference]\ndevice = "CPU"\n'
        f'precision = "FP32"\nnum_requests = 2\ncache_dir = "{cache}"\n'
        f'[[cameras]]\nname = "door"\nsource = "{clip}"\nloop = true\nrealtime = false\n'
        f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\nha_discovery = false\n'
        f'spool_path = "{spool}"\n[logging]\njournal = "no"\nlevel = "WARNING"\n'
    )
    stats = workdir / "stats.json"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(
        [sys.executable, "-m", "expressiond.cli", "run", "--config", str(config),
         "--max-seconds", str(seconds), "--stats-json", str(stats)],
        capture_output=True, text=True, timeout=seconds + 180, check=False,
    )  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"daemon exited {proc.returncode}: {proc.stderr[-1500:]}")
    s = json.loads(stats.read_text())
    cam = s["cameras"]["door"]
    frames = s["inference"]["frames"]
    events = sum(s["tracker"][k] for k in ("start", "change", "end"))
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {
        "frames": frames,
        "events": events,
        "events_per_s": round(events / s["uptime_s"], 2),
        "fps": cam["fps"],
        "latency_p50_ms": cam["latency_p50_ms"],
        "latency_p99_ms": cam["latency_p99_ms"],
        "cpu_ms_per_frame": round(cpu / max(frames, 1) * 1e3, 2),
    }


def med(rounds: list[dict]) -> dict:
    keys = [k for k, v in rounds[0].items() if isinstance(v, int | float)]
    return {k: round(median(r[k] for r in rounds), 4) for k in keys}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    if not mosquitto_available():
        print("mosquitto not found (apt-get install mosquitto)", file=sys.stderr)
        return 1
    out: dict = {
        "benchmark": "durability_cost",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "node": platform.node(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
        },
        "versions": {"sqlite": sqlite3.sqlite_version},
        "spool_dir": tempfile.gettempdir(),
    }
    with tempfile.TemporaryDirectory(prefix="durability-") as tmp:
        store: dict[str, dict[int, list[dict]]] = {m: {1: [], 2: []} for m in MODES}
        for r in range(args.rounds):
            for per_step in (1, 2):
                for mode in MODES:
                    spool = str(Path(tmp) / f"s-{mode}-{r}-{per_step}.db") if mode == "disk" else ":memory:"
                    store[mode][per_step].append(store_round(spool, args.steps, per_step))
        out["store"] = {m: {str(k): med(v) for k, v in per.items()} for m, per in store.items()}
        broker = Broker(Path(tmp) / "broker", persistence=False).start()
        try:
            daemon: dict[str, list[dict]] = {m: [] for m in MODES}
            cache = Path(tmp) / "cache"
            for r in range(args.rounds):
                for mode in MODES:
                    spool = str(Path(tmp) / f"d-{mode}-{r}" / "spool.db") if mode == "disk" else ":memory:"
                    daemon[mode].append(
                        daemon_round(spool, broker, args.seconds, Path(tmp) / f"d{r}{mode}", cache)
                    )
        finally:
            broker.stop()
        out["daemon"] = {m: med(v) for m, v in daemon.items()}
        out["daemon_rounds"] = daemon
    d, m = out["daemon"]["disk"], out["daemon"]["memory"]
    out["ratios"] = {
        "fps_disk_vs_memory": round(d["fps"] / m["fps"], 3),
        "latency_p50_disk_vs_memory": round(d["latency_p50_ms"] / m["latency_p50_ms"], 3),
        "cpu_per_frame_disk_vs_memory": round(d["cpu_ms_per_frame"] / m["cpu_ms_per_frame"], 3),
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"store() per tracker step, median of {args.rounds} rounds x {args.steps} steps")
    for mode in MODES:
        for k, r in out["store"][mode].items():
            print(
                f"  {mode:<7} {k} ev/step: p50 {r['step_ms_p50']:.3f} ms p99 {r['step_ms_p99']:.3f} ms "
                f"max {r['step_ms_max']:.1f} ms, CPU {r['cpu_ms_per_event']:.3f} ms/event, "
                f"{r['events_per_s']:.0f} ev/s"
            )
    print(f"daemon, realtime = false demo clip, {args.seconds:.0f} s x {args.rounds} rounds (median)")
    for mode in MODES:
        r = out["daemon"][mode]
        print(
            f"  {mode:<7} {r['fps']:.1f} fps, {r['events_per_s']:.1f} events/s, latency p50 "
            f"{r['latency_p50_ms']:.1f} ms p99 {r['latency_p99_ms']:.1f} ms, "
            f"CPU {r['cpu_ms_per_frame']:.2f} ms/frame"
        )
    print(f"ratios disk/memory: {out['ratios']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
