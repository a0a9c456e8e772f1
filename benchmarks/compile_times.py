#!/usr/bin/env python3
"""Cold vs cached model compile on this machine, through `expressiond devices`.

Each round: a fresh, empty cache directory; `expressiond devices --json` with a config that
sets `cache_dir` to it (cold: nothing cached, the compile fills the cache), then the same
command again in a new process (cached: what a daemon restart pays). The figure is the
`compile_ms` that `devices` reports for the device's own row (read the IR, adapt it, compile
or import it), for the config's detector and classifier (default: the daemon's defaults,
config/expressiond.toml with only `cache_dir` added). Median over --rounds.

    .venv/bin/python benchmarks/compile_times.py [--rounds 5] [--device CPU]
        [--precision FP32] [--json OUT]
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
EXPRESSIOND = Path(sys.executable).parent / "expressiond"
ROLES = ("detector", "classifier")


def devices_json(config: Path, models: str | None) -> dict:
    cmd = [str(EXPRESSIOND), "devices", "--config", str(config), "--json"]
    if models:
        cmd += ["--models", models]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    if out.returncode != 0:
        raise SystemExit(f"compile_times: {' '.join(cmd)} exit {out.returncode}: {out.stderr.strip()[-300:]}")
    return json.loads(out.stdout)


def compile_ms(report: dict, device: str) -> dict[str, float]:
    row = next(d for d in report["devices"] if d["name"] == device)
    return {role: row["models"][role]["compile_ms"] for role in ROLES}


def config_text(base: str, device: str, precision: str, cache: Path) -> str:
    """The default config with [inference] device, precision and cache_dir set."""
    text = base
    for old, new in (
        ('device = "CPU"', f'device = "{device}"'),
        ('precision = "FP32"', f'precision = "{precision}"'),
        ("#cache_dir = ", f'cache_dir = "{cache}"\n#cache_dir = '),
    ):
        if old not in text:
            raise SystemExit(f"compile_times: config/expressiond.toml has no {old!r} line any more")
        text = text.replace(old, new, 1)
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--device", default="CPU")
    ap.add_argument("--precision", default="FP32")
    ap.add_argument("--models", help="built model directory (default: the CLI's)")
    ap.add_argument("--json", type=Path, help="write the result here")
    args = ap.parse_args(argv)
    base = (ROOT / "config" / "expressiond.toml").read_text()
    cold: dict[str, list[float]] = {r: [] for r in ROLES}
    cached: dict[str, list[float]] = {r: [] for r in ROLES}
    load_start = os.getloadavg()[0]
    first = None
    for i in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="compile-times.") as tmp:
            cache = Path(tmp) / "cache"
            cfg = Path(tmp) / "expressiond.toml"
            cfg.write_text(config_text(base, args.device, args.precision, cache))
            t0 = time.monotonic()
            a = devices_json(cfg, args.models)
            blobs = len(list(cache.glob("*"))) if cache.is_dir() else 0
            b = devices_json(cfg, args.models)
            first = first or a
            for role, ms in compile_ms(a, args.device).items():
                cold[role].append(ms)
            for role, ms in compile_ms(b, args.device).items():
                cached[role].append(ms)
            print(
                f"compile_times: round {i + 1}/{args.rounds}: cold {compile_ms(a, args.device)}, "
                f"cached {compile_ms(b, args.device)} ms; {blobs} cache files "
                f"({time.monotonic() - t0:.1f} s, load {os.getloadavg()[0]:.2f})",
                file=sys.stderr,
                flush=True,
            )
    models = {role: first["configured"][role]["model"] for role in ROLES}
    precision = {role: first["configured"][role]["inference_precision"] for role in ROLES}
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "openvino": first["openvino"],
        "device": args.device,
        "precision": args.precision,
        "rounds": args.rounds,
        "load_avg": [round(load_start, 2), round(os.getloadavg()[0], 2)],
        "roles": {
            role: {
                "model": models[role],
                "inference_precision": precision[role],
                "cold_ms": statistics.median(cold[role]),
                "cached_ms": statistics.median(cached[role]),
                "cold_ms_all": cold[role],
                "cached_ms_all": cached[role],
            }
            for role in ROLES
        },
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    for role, r in result["roles"].items():
        print(f"{role} {r['model']}: cold {r['cold_ms']:.0f} ms, cached {r['cached_ms']:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
