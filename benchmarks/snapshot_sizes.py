#!/usr/bin/env python3
"""How big a snapshot is, and what it costs to make, at the default settings: the faces the
real detector finds in the sample photos (``expressiond classify --json``), each made into
the daemon's own SnapshotJob and encoded by its ``encode`` (daemon/snapshots.py) as
``snapshot = "face"`` (one per face) and ``"frame"`` (one per photo, every face boxed), with
snapshot_max_side = 480 and snapshot_quality = 80. Reports bytes (min/median/max) and the
encode time (the "events" thread's work; the frame path only takes a reference to the frame).

    .venv/bin/python benchmarks/snapshot_sizes.py [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from statistics import median

import cv2

ROOT = Path(__file__).resolve().parent.parent
try:
    import expressiond  # noqa: F401
except ImportError:  # running from a checkout without the package installed
    sys.path.insert(0, str(ROOT / "daemon"))

from expressiond.config.keys import default_of  # noqa: E402
from expressiond.config.model import CameraConfig  # noqa: E402
from expressiond.daemon.snapshots import SnapshotJob, encode  # noqa: E402

MAX_SIDE = default_of(CameraConfig, "snapshot_max_side")
QUALITY = default_of(CameraConfig, "snapshot_quality")


def summary(sizes: list[int], times: list[float]) -> dict:
    return {
        "n": len(sizes),
        "bytes_min": min(sizes),
        "bytes_median": int(median(sizes)),
        "bytes_max": max(sizes),
        "encode_ms_median": round(median(times) * 1e3, 2),
        "encode_ms_max": round(max(times) * 1e3, 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=os.environ.get("EXPRESSIOND_MODELS", str(ROOT / "models" / "ir")))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    photos = sorted((Path(args.models) / "samples").glob("*.jpg"))
    if not photos:
        print(f"no sample photos in {args.models}/samples (make models)", file=sys.stderr)
        return 1
    out = subprocess.run(
        [sys.executable, "-m", "expressiond.cli", "classify", "--json", "--models", args.models,
         *map(str, photos)],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    results: dict[str, tuple[list[int], list[float]]] = {"face": ([], []), "frame": ([], [])}
    sides = []
    for entry in json.loads(out.stdout):
        image = cv2.imread(entry["image"])
        boxes = tuple(tuple(f["box"]) for f in entry["faces"])
        if not boxes:
            continue
        labels = tuple(f["expression"] for f in entry["faces"])
        sides.append(max(image.shape[:2]))
        jobs = [("frame", SnapshotJob("cam", "frame", image, boxes, labels, MAX_SIDE, QUALITY))]
        jobs += [
            ("face", SnapshotJob("cam", "face", image, (b,), (lab,), MAX_SIDE, QUALITY))
            for b, lab in zip(boxes, labels, strict=True)
        ]
        for mode, job in jobs:
            t0 = time.perf_counter()
            jpeg = encode(job)
            results[mode][1].append(time.perf_counter() - t0)
            results[mode][0].append(len(jpeg))
    report = {
        "benchmark": "snapshot_sizes",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "node": platform.node(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
        },
        "versions": {"opencv": cv2.__version__},
        "photos": len(sides),
        "photo_side_px": [min(sides), max(sides)],
        "max_side": MAX_SIDE,
        "quality": QUALITY,
        "face": summary(*results["face"]),
        "frame": summary(*results["frame"]),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for mode in ("face", "frame"):
        r = report[mode]
        print(
            f"{mode:<6} {r['n']:>3} snapshots: {r['bytes_min']}-{r['bytes_max']} bytes (median "
            f"{r['bytes_median']}), encode {r['encode_ms_median']:.1f} ms median"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
