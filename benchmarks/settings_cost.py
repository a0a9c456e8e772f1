#!/usr/bin/env python3
"""What each inference setting costs (issue 18): the real ``expressiond run`` with one camera,
per variant of [inference] (performance hint, num_requests, CPU threads), side by side:

1. throughput: every frame of the sample clip as fast as it goes, CPU ms per frame and fps,
   --rounds rounds alternating the variants, medians;
2. latency: p50/p99 capture-to-event at 10 fps while the CPU hog of bench_load.py keeps the
   load average at about 4, the daemon in its own session as under systemd.

    .venv/bin/python benchmarks/settings_cost.py [--rounds 2] [--seconds 5] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
try:
    import expressiond  # noqa: F401
except ImportError:  # running from a checkout without the package installed
    sys.path.insert(0, str(ROOT / "daemon"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_load import CpuHog  # noqa: E402

from expressiond import paths  # noqa: E402
from expressiond.config import Config  # noqa: E402
from expressiond.tools.benchmark import modes  # noqa: E402

# name -> [inference] overrides; the first is the default config
VARIANTS = {
    "default (THROUGHPUT, auto requests)": {},
    "LATENCY hint": {"performance_hint": "LATENCY"},
    "THROUGHPUT, 1 request": {"num_requests": 1},
    "THROUGHPUT, 4 requests": {"num_requests": 4},
}


def progress(msg: str) -> None:
    sys.stderr.write(f"settings_cost: {msg}\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--latency-seconds", type=float, default=12.0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    models = paths.default_models_dir()
    if not models.is_dir():
        models = ROOT / "models" / "ir"
    os.environ["EXPRESSIOND_MODELS"] = str(models)
    clip = paths.sample_clip(models)
    base = Config(models_dir=str(models))
    cfgs = {k: replace(base, inference=replace(base.inference, **v)) for k, v in VARIANTS.items()}
    runs: dict[str, list] = {k: [] for k in cfgs}
    with tempfile.TemporaryDirectory(prefix="settings-cost.") as tmp:
        for rnd in range(args.rounds):
            order = list(cfgs) if rnd % 2 == 0 else list(reversed(cfgs))
            for name in order:
                progress(f"round {rnd + 1}: {name}, every frame (load {modes.load_avg()})")
                e = modes.end_to_end(cfgs[name], clip, args.seconds, 0, Path(tmp))
                runs[name].append((e["cpu_ms_per_frame"], e["fps"]))
        loaded = {}
        with CpuHog(progress=progress) as hog:
            for name, cfg in cfgs.items():
                progress(f"{name}, 10 fps under the hog (load {modes.load_avg()})")
                e = modes.end_to_end(
                    cfg, clip, args.latency_seconds, 10, Path(tmp), kind="latency", own_session=True
                )
                loaded[name] = e["latency_ms"]
    default = next(iter(cfgs))
    base_cpu = statistics.median(c for c, _ in runs[default])
    rows = []
    for name in cfgs:
        cpu = statistics.median(c for c, _ in runs[name])
        fps = statistics.median(f for _, f in runs[name])
        rows.append(
            {
                "setting": name,
                "cpu_ms_per_frame": cpu,
                "fps": fps,
                "cpu_vs_default": round(cpu / base_cpu, 3),
                "p50_ms_loaded": loaded[name]["p50"],
                "p99_ms_loaded": loaded[name]["p99"],
                "rounds": runs[name],
            }
        )
    report = {"rows": rows, "hog": {"before": hog.load_before, "after": hog.load_after}}
    print("| setting | CPU ms/frame | fps (every frame) | CPU vs default | p50 / p99 ms at 10 fps, loaded |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['setting']} | {r['cpu_ms_per_frame']:.1f} | {r['fps']:.1f} | {r['cpu_vs_default']:.2f} "
            f"| {r['p50_ms_loaded']} / {r['p99_ms_loaded']} |"
        )
    print(f"\nhog load average {hog.load_before} -> {hog.load_after}; {args.rounds} rounds")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
