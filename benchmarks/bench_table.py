#!/usr/bin/env python3
"""Render benchmarks/results.json (written by `make bench`) as the README's markdown: the
targets with their measured ratios, the modes table, the stream scaling table, the plots,
and the date, machine, versions and load average of the run (`make figures` calls this).

    python benchmarks/bench_table.py [--json benchmarks/results.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _f(v, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def targets_md(r: dict) -> list[str]:
    out = ["| target | measured | required | met |", "|---|---|---|---|"]
    for t in r["targets"]:
        met = {True: "yes", False: "**no**", None: "n/a"}[t["met"]]
        note = f" ({t['note']})" if t.get("note") else ""
        out.append(f"| {t['name']}{note} | {t['measured']} | {t['op']} {t['target']} | {met} |")
    return out


def modes_md(b: dict) -> list[str]:
    out = [
        f"| mode ({b['device']} {b['precision']}, median of {b['rounds']}) | fps | faces/s | "
        "p50 ms | p99 ms | CPU ms/frame |",
        "|---|---|---|---|---|---|",
    ]
    for row in b["table"]:
        lat = row.get("latency_ms") or {}
        out.append(
            f"| {row['mode']} | {_f(row.get('fps'))} | {_f(row.get('faces_per_s'))} | "
            f"{_f(lat.get('p50'), '.0f')} | {_f(lat.get('p99'), '.0f')} | "
            f"{_f(row.get('cpu_ms_per_frame'), '.1f')} |"
        )
    return out


def streams_md(s: dict) -> list[str]:
    out = [
        "| cameras | setup | total fps | p99 ms | RSS MiB (sum of peaks) | PSS MiB | fps/core | fps/GiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in s["table"]:
        for side in ("one", "separate"):
            v = row[side]
            name = "1 process" if side == "one" else f"{row['n']} pinned process(es)"
            out.append(
                f"| {row['n']} | {name} | {_f(v['total_fps'])} | {_f(v['p99_ms'], '.0f')} "
                f"| {_f(v['rss_mib'], '.0f')} | {_f(v['pss_mib'], '.0f')} | "
                f"{_f(v['fps_per_core'])} | {_f(v['fps_per_gib'])} |"
            )
    return out


def render(r: dict) -> str:
    b, s = r["benchmark"], r["streams"]
    ratios = ", ".join(f"`{k}` {v}" for k, v in r["ratios"].items() if v is not None)
    lines = ["Targets (issues 3 and 9), measured side by side in one `make bench` run:", ""]
    lines += targets_md(r)
    lines += ["", f"Ratios: {ratios}.", ""]
    lines += modes_md(b) + [""]
    played = "every frame" if s["source_fps"] <= 0 else f"{s['source_fps']:g} fps"
    lines += [
        f"One process with N cameras vs N single-camera processes pinned to cores "
        f"(the clip per camera at {played}, {s['seconds_per_run']:g} s, median of "
        f"{s['rounds']}):",
        "",
    ]
    lines += streams_md(s) + [""]
    lines += ["![modes and streams](benchmarks/benchmark.png)", "![targets](benchmarks/targets.png)", ""]
    v = r["versions"]
    lines.append(
        f"Measured {r['date'][:10]} on {r['machine']}, OpenVINO {v['openvino'].split('-')[0]}, "
        f"Python {v['python']}; detector {r['settings'].get('detector')}; load average "
        f"{r['load_avg_start'][0]} -> {r['load_avg_end'][0]} (the box is shared: compare the "
        "ratios, measured seconds apart, not the absolute fps). How each figure is measured: "
        "benchmarks/README.md."
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, default=HERE / "results.json")
    args = ap.parse_args(argv)
    if not args.json.is_file():
        print(f"bench_table: no {args.json}: run `make bench`", file=sys.stderr)
        return 1
    sys.stdout.write(render(json.loads(args.json.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
