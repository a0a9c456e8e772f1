"""A publisher in its own process, for tests that SIGKILL it (will message, spool after crash).

Emits ``--count`` events (frame numbers from ``--start``) at ``--rate`` per second through
expressiond.sinks.mqtt.Publisher, appending "<event id> <frame>" to ``--ids-file`` after each emit()
returned (i.e. after the event is durably spooled). Then waits: on SIGTERM it closes (drain,
offline) and exits 0; it exits by itself after ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from types import SimpleNamespace

from expressiond.events import ExpressionEvent
from expressiond.sinks.mqtt import Publisher

LABELS = ["neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--spool", required=True)
    ap.add_argument("--ids-file", required=True)
    ap.add_argument("--device-id", default="dev1")
    ap.add_argument("--camera", default="door")
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--rate", type=float, default=50.0)
    ap.add_argument("--reconnect-max", type=float, default=1.0)
    ap.add_argument("--max-seconds", type=float, default=120.0)
    args = ap.parse_args()
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(threadName)s %(levelname)s %(message)s"
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    cfg = SimpleNamespace(
        host=args.host,
        port=args.port,
        prefix="expressiond",
        client_id=None,
        username=None,
        password_file=None,
        keepalive=5,
        qos=1,
        spool_path=args.spool,
        spool_max_events=100000,
        stats_interval=30.0,
        ha_discovery=False,
        ha_prefix="homeassistant",
        reconnect_max_s=args.reconnect_max,
        tls=None,
    )
    pub = Publisher(cfg, args.device_id, [args.camera], LABELS, "0.1.0-test").start()
    deadline = time.monotonic() + args.max_seconds
    with open(args.ids_file, "a", buffering=1) as ids:
        for i in range(args.count):
            if stop.wait(1.0 / args.rate if args.rate > 0 else 0):
                break
            frame = args.start + i
            ev = ExpressionEvent(
                device_id=args.device_id,
                camera=args.camera,
                frame=frame,
                track=1,
                type="change",
                expression=LABELS[frame % 7],
                confidence=0.8,
                scores={lab: 0.1 for lab in LABELS},
                previous=None,
                box=(0.1, 0.1, 0.2, 0.2),
                timestamp=time.time(),
            )
            pub.emit(ev)
            ids.write(f"{ev.id} {frame}\n")
        print("produced", flush=True)
        stop.wait(max(0.0, deadline - time.monotonic()))
    pub.close(drain_timeout=5.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
