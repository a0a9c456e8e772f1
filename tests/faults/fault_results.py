"""benchmarks/faults.json: one row per fault, written by the fault suite as it runs.

Each test updates its own row (keyed by ``key``) under an exclusive lock, so the file always
holds the latest result of every fault that ran, in the canonical order below; a failed
test writes its row too, with the result "FAILED: ...". ``benchmarks/fault_table.py``
renders the file as the README's markdown table.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RESULTS = Path(os.environ.get("EXPRESSIOND_FAULTS_JSON", REPO / "benchmarks" / "faults.json"))

# The table's row order: the list of faults, then bad input, security and the soak.
ORDER = [
    "broker-flapping",
    "broker-flapping-long",
    "broker-new-certificate",
    "camera-file-removed",
    "camera-stream-killed",
    "camera-rtsp-killed",
    "camera-rtsp-killed-udp",
    "camera-stall",
    "disk-full",
    "sigterm-during-outage",
    "sigkill-during-outage",
    "sigkill-open-tracks",
    "power-cut",
    "sighup-broken-config",
    "inference-raises-once",
    "inference-raises-always",
    "stop-hangs",
    "config-fuzz",
    "malformed-frames",
    "ha-status-garbage",
    "file-modes",
    "password-leak",
    "tls-verification",
    "soak",
    "soak-long",
]
COLUMNS = ("fault", "how", "result", "events_produced", "events_received", "events_lost", "duplicates")


def update_row(key: str, row: dict[str, Any], path: Path = RESULTS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(Path(tempfile.gettempdir()) / "expressiond-faults-json.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            doc = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            doc = {}
        rows = {r["key"]: r for r in doc.get("faults", []) if isinstance(r, dict) and "key" in r}
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        rows[key] = {"key": key, **row, "updated": now}
        rank = {k: i for i, k in enumerate(ORDER)}
        ordered = sorted(rows.values(), key=lambda r: (rank.get(r["key"], len(ORDER)), r["key"]))
        doc = {
            "schema": 1,
            "about": "expressiond fault suite (tests/faults): each fault made against the real "
            "daemon process, events counted on both sides; render with "
            "benchmarks/fault_table.py",
            "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}",
            "updated": now,
            "faults": ordered,
        }
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        os.replace(tmp, path)
