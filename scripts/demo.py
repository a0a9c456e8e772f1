#!/usr/bin/env python3
"""`make demo`: the whole story on this machine, in about half a minute.

Starts a private mosquitto on a free loopback port, runs `expressiond run` on the clip made
from the bundled sample photos, subscribes to the daemon's topics and prints every event as
it arrives, then stops everything. Nothing is left running; temporary files are removed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(tmp: Path, port: int) -> subprocess.Popen:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(exe).exists():
        sys.exit("demo: mosquitto not found: apt-get install mosquitto (make demo does it)")
    conf = tmp / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit("demo: mosquitto did not start within 10 s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", action="store_true", help="print the raw event payloads")
    ap.add_argument("--models", default="models/ir")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="expressiond-demo-") as tmp_name:
        tmp = Path(tmp_name)
        port = free_port()
        broker = start_broker(tmp, port)
        print(f"demo: mosquitto listening on 127.0.0.1:{port}", flush=True)
        config = tmp / "expressiond.toml"
        config.write_text(f"""
device_id = "demo-box"
models_dir = "{Path(args.models).resolve()}"
[inference]
device = "CPU"
precision = "FP16"
num_requests = "auto"
[[cameras]]
name = "lobby"
source = "samples"
fps = 10
loop = false
[mqtt]
host = "127.0.0.1"
port = {port}
spool_path = "{tmp / "spool.db"}"
stats_interval = 5
""")
        counts: dict[str, int] = {}
        status: list[str] = []
        lock = threading.Lock()

        def on_message(_c, _u, msg):
            topic = msg.topic
            with lock:
                if topic.endswith("/status"):
                    status.append(msg.payload.decode())
                    print(f"  [{topic}] {msg.payload.decode()}", flush=True)
                elif topic.endswith("/event"):
                    ev = json.loads(msg.payload)
                    counts[ev["type"]] = counts.get(ev["type"], 0) + 1
                    if args.json:
                        print(msg.payload.decode(), flush=True)
                    else:
                        prev = f" (was {ev['previous']})" if ev["previous"] else ""
                        print(
                            f"  {ev['ts'][11:23]} {ev['camera']} frame {ev['frame']:>4} "
                            f"track {ev['track']:>2} {ev['type']:<6} {ev['expression']:<9} "
                            f"{ev['confidence']:.2f}{prev}",
                            flush=True,
                        )

        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="expressiond-demo-viewer")
        sub.on_message = on_message
        sub.on_connect = lambda c, *_a: c.subscribe(
            [("expressiond/demo-box/+/event", 1), ("expressiond/demo-box/status", 1)]
        )
        sub.connect("127.0.0.1", port)
        sub.loop_start()
        print(
            "demo: expressiond run (camera 'lobby' plays the sample-photo clip); events on "
            "expressiond/demo-box/lobby/event:",
            flush=True,
        )
        daemon = subprocess.Popen(
            [sys.executable, "-m", "expressiond.cli", "run", "--config", str(config)],
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _out, err = daemon.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            daemon.terminate()
            _out, err = daemon.communicate(timeout=20)
        time.sleep(1.0)
        sub.loop_stop()
        sub.disconnect()
        broker.terminate()
        broker.wait(timeout=10)
        total = sum(counts.values())
        print(
            f"demo: daemon exited with {daemon.returncode}; {total} events "
            f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}); "
            f"status went {' -> '.join(status) or 'nowhere'}"
        )
        if daemon.returncode != 0 or total == 0:
            print(err[-3000:], file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
