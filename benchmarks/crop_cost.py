#!/usr/bin/env python3
"""Classifier cost per face crop: a dynamic input (a new shape for nearly every crop) vs the
daemon's static input with each crop fitted by OpenCV (`fit_crops`, the default).

Both classifiers are the daemon's default (face-api/expression with flip averaging, the
config's precision), compiled side by side in one process with the LATENCY hint; the crops
are random rectangles of the sample photos (models/ir/samples) with sides drawn from each
size range, and every crop goes through both, in alternating order. Reported per range: the
median wall milliseconds of one synchronous classification (prepare + infer + scores) and
the mean CPU milliseconds of the process per classification (steadier on a shared box).

    .venv/bin/python benchmarks/crop_cost.py [--crops 300] [--precision FP32] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
try:
    import expressiond  # noqa: F401
except ImportError:  # a checkout without the package installed
    sys.path.insert(0, str(ROOT / "daemon"))

from expressiond.config.model import ClassifierConfig  # noqa: E402
from expressiond.inference.analyzer import FaceAnalyzer, product_settings  # noqa: E402
from expressiond.inference.ovcompat import VERSION as OV_VERSION  # noqa: E402
from expressiond.paths import BUILTIN_CLASSIFIER  # noqa: E402

RANGES = ((80, 300), (400, 600))
VARIANTS = {"dynamic input (a new shape per crop)": False, "static input, crop fitted by OpenCV": True}


def random_crops(samples: list[np.ndarray], lo: int, hi: int, n: int, rng) -> list[np.ndarray]:
    crops = []
    for _ in range(n):
        image = samples[int(rng.integers(len(samples)))]
        h, w = image.shape[:2]
        cw, ch = (int(v) for v in rng.integers(lo, hi + 1, 2))
        side = min(h, w, max(cw, ch))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crops.append(cv2.resize(image[y : y + side, x : x + side], (cw, ch), interpolation=cv2.INTER_AREA))
    return crops


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=os.environ.get("EXPRESSIOND_MODELS", str(ROOT / "models" / "ir")))
    ap.add_argument("--precision", default="FP32")
    ap.add_argument("--crops", type=int, default=300, help="crops per size range")
    ap.add_argument("--json", type=Path, help="write the result here")
    args = ap.parse_args(argv)
    models = Path(args.models)
    samples = [cv2.imread(str(p)) for p in sorted((models / "samples").glob("*.jpg"))]
    if not samples:
        raise SystemExit(f"crop_cost: no sample photos in {models / 'samples'}: run `make models`")
    analyzers = {
        name: FaceAnalyzer(
            product_settings(
                models,
                precision=args.precision,
                fit_crops=fit,
                performance_hint="LATENCY",
                classifiers=ClassifierConfig(model=BUILTIN_CLASSIFIER),  # the ensemble's larger member
            )
        )
        for name, fit in VARIANTS.items()
    }
    rng = np.random.default_rng(13)
    load_start = os.getloadavg()[0]
    ranges, cpu_ranges = {}, {}
    for lo, hi in RANGES:
        crops = random_crops(samples, lo, hi, args.crops, rng)
        times: dict[str, list[float]] = {name: [] for name in analyzers}
        cpu: dict[str, list[float]] = {name: [] for name in analyzers}
        for i, crop in enumerate(crops):
            order = list(analyzers.items())
            for name, analyzer in order if i % 2 else order[::-1]:
                t0, c0 = time.perf_counter(), time.process_time()
                analyzer.classify(crop)
                times[name].append((time.perf_counter() - t0) * 1000)
                cpu[name].append((time.process_time() - c0) * 1000)
        ranges[f"{lo}-{hi}"] = {name: round(statistics.median(ms), 2) for name, ms in times.items()}
        cpu_ranges[f"{lo}-{hi}"] = {name: round(statistics.fmean(ms), 2) for name, ms in cpu.items()}
        print(f"crop_cost: {lo}-{hi} px: {ranges[f'{lo}-{hi}']} ms", file=sys.stderr, flush=True)
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "openvino": OV_VERSION,
        "precision": args.precision,
        "classifier": analyzers[next(iter(VARIANTS))].classifier.meta.name,
        "crops_per_range": args.crops,
        "load_avg": [round(load_start, 2), round(os.getloadavg()[0], 2)],
        "ms_per_crop": ranges,
        "cpu_ms_per_crop": cpu_ranges,
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    dyn, fit = VARIANTS
    for r, ms in ranges.items():
        print(f"{r} px: {ms[dyn]:.2f} -> {ms[fit]:.2f} ms per crop ({ms[dyn] / ms[fit]:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
