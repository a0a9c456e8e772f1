"""The benchmark's table (text) and plots (PNG drawn with OpenCV: no plotting library needed).

Thread: the command's main thread.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from expressiond.tools.benchmark.daemon import source_label

FONT = cv2.FONT_HERSHEY_SIMPLEX
BLACK, GREY, LIGHT = (0, 0, 0), (120, 120, 120), (225, 225, 225)
COLORS = {
    "sync": (60, 140, 230),
    "async": (80, 170, 80),
    "e2e": (170, 110, 40),
    "latency": (170, 150, 110),
    "bapp": (150, 150, 150),
    "one": (80, 170, 80),
    "separate": (60, 140, 230),
}


def _fmt(v, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def print_table(result: dict, out=None) -> None:
    w = (out or sys.stdout).write
    w(f"{'mode':<44} {'fps':>7} {'faces/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'CPU ms/f':>8} {'load':>5}\n")
    for r in result["table"]:
        lat = r.get("latency_ms") or {}
        err = f"  ! {r['error'][:60]}" if r.get("error") else ""
        w(
            f"{r['mode'][:44]:<44} {_fmt(r.get('fps')):>7} {_fmt(r.get('faces_per_s')):>8} "
            f"{_fmt(lat.get('p50'), '.1f'):>7} {_fmt(lat.get('p99'), '.1f'):>7} "
            f"{_fmt(r.get('cpu_ms_per_frame'), '.1f'):>8} {_fmt(r.get('load_avg')):>5}{err}\n"
        )
    streams = result.get("streams")
    if streams:
        w(
            f"\nstreams: the clip per camera at {source_label(streams['source_fps'])}, "
            f"{streams['seconds_per_run']:g} s per run, {streams['rounds']} round(s), medians\n"
        )
        w(
            f"{'N':>2} {'side':<22} {'fps':>6} {'p50 ms':>7} {'p99 ms':>7} {'RSS MiB':>8} "
            f"{'PSS MiB':>8} {'fps/core':>8} {'fps/GiB':>8} {'f/CPU-s':>7}\n"
        )
        for row in streams["table"]:
            for side in ("one", "separate"):
                s = row[side]
                name = "1 process" if side == "one" else f"{row['n']} pinned process(es)"
                w(
                    f"{row['n']:>2} {name:<22} {_fmt(s['total_fps']):>6} {_fmt(s['p50_ms'], '.0f'):>7} "
                    f"{_fmt(s['p99_ms'], '.0f'):>7} {_fmt(s['rss_mib'], '.0f'):>8} "
                    f"{_fmt(s['pss_mib'], '.0f'):>8} {_fmt(s['fps_per_core']):>8} "
                    f"{_fmt(s['fps_per_gib']):>8} {_fmt(s['frames_per_cpu_s']):>7}\n"
                )
                for e in s.get("errors") or []:
                    w(f"   ! {e[:100]}\n")
            rat = row["ratios"]
            w(
                f"   one/separate: fps {_fmt(rat['fps'], '.3f')}, RSS {_fmt(rat['rss'], '.3f')}, "
                f"PSS {_fmt(rat['pss'], '.3f')}\n"
            )
    rounds = result.get("rounds", 1)
    w(
        f"\nratios (median of {rounds} round(s)): "
        + ", ".join(f"{k} {v}" for k, v in result["ratios"].items())
        + "\n"
    )
    w(
        f"capture-to-result latency at {result.get('latency_source_fps', 10):g} fps: "
        f"{result.get('latency_ms')} (config hint), {result.get('latency_ms_latency_hint')} "
        f"(LATENCY hint); peak RSS of `run`: {result['peak_rss_mib']} MiB\n"
    )
    w(
        f"{result['device']} {result['precision']} (inference precision "
        f"{result.get('inference_precision')}, {result.get('num_requests')} requests); "
        f"{result['machine']}; OpenVINO {result['versions']['openvino']}; load average "
        f"{result.get('load_avg_start')} -> {result.get('load_avg_end')}\n"
    )


# --- plots --------------------------------------------------------------------------------------
def _text(img, s: str, org, scale: float = 0.45, color=BLACK, thick: int = 1) -> None:
    cv2.putText(img, s, (int(org[0]), int(org[1])), FONT, scale, color, thick, cv2.LINE_AA)


def draw_modes(result: dict, width: int = 1000) -> np.ndarray:
    # the classifier's benchmark_app row (hundreds of fps) would flatten every other bar
    rows = [r for r in result["table"] if r.get("fps") and "classifier" not in r["mode"]]
    bar_h, left, top_pad = 30, 360, 50
    img = np.full((top_pad + bar_h * len(rows) + 20, width, 3), 255, np.uint8)
    if not rows:
        return img
    top = max(max((v or 0) for v in r.get("fps_rounds", [r["fps"]])) for r in rows) or 1
    scale = (width - left - 90) / top
    _text(
        img,
        f"expressiond benchmark: {result['device']} {result['precision']}, frames/s "
        f"(median of {result.get('rounds', 1)}; whiskers: min..max)",
        (10, 30),
        0.6,
        BLACK,
        2,
    )
    for i, r in enumerate(rows):
        y = top_pad + i * bar_h
        x1 = left + int(scale * r["fps"])
        cv2.rectangle(img, (left, y), (x1, y + bar_h - 8), COLORS.get(r["kind"], GREY), -1)
        vals = [v for v in r.get("fps_rounds", []) if v]
        if len(vals) > 1:
            lo, hi = left + int(scale * min(vals)), left + int(scale * max(vals))
            cy = y + (bar_h - 8) // 2
            cv2.line(img, (lo, cy), (hi, cy), BLACK, 1)
            cv2.line(img, (lo, cy - 5), (lo, cy + 5), BLACK, 1)
            cv2.line(img, (hi, cy - 5), (hi, cy + 5), BLACK, 1)
        _text(img, r["mode"][:46], (10, y + 16))
        _text(img, f"{r['fps']:.1f}", (max(x1, left + int(scale * max(vals or [0]))) + 6, y + 16))
    return img


def draw_streams(streams: dict, width: int = 1000) -> np.ndarray:
    """Two grouped bar charts side by side: total fps and total RSS per N, one vs separate."""
    height, pad = 330, 60
    img = np.full((height, width, 3), 255, np.uint8)
    _text(
        img,
        f"one process with N cameras vs N pinned processes (clip per camera at "
        f"{source_label(streams['source_fps'])}, medians)",
        (10, 28),
        0.6,
        BLACK,
        2,
    )
    half = width // 2
    for panel, (key, label) in enumerate(
        (("total_fps", "total frames/s"), ("rss_mib", "total RSS MiB (sum of VmHWM)"))
    ):
        x0, x1, y0, y1 = panel * half + pad, (panel + 1) * half - 20, 70, height - 50
        _text(img, label, (x0, y0 - 10), 0.5)
        vals = [row[side][key] or 0 for row in streams["table"] for side in ("one", "separate")]
        top = max(vals) if vals and max(vals) > 0 else 1
        cv2.line(img, (x0, y1), (x1, y1), BLACK, 1)
        groups = len(streams["table"]) or 1
        gw = (x1 - x0) / groups
        for g, row in enumerate(streams["table"]):
            for k, side in enumerate(("one", "separate")):
                v = row[side][key] or 0
                bx = int(x0 + g * gw + gw * (0.15 + 0.35 * k))
                bh = int((y1 - y0 - 20) * v / top)
                cv2.rectangle(img, (bx, y1 - bh), (bx + int(gw * 0.3), y1), COLORS[side], -1)
                _text(img, f"{v:.0f}" if key == "rss_mib" else f"{v:.1f}", (bx, y1 - bh - 5), 0.4)
            _text(img, f"N={row['n']}", (int(x0 + g * gw + gw * 0.35), y1 + 18), 0.45)
    ly = height - 12
    for k, (side, name) in enumerate(
        (("one", "1 process, N cameras"), ("separate", "N processes pinned to cores"))
    ):
        lx = 20 + k * 300
        cv2.rectangle(img, (lx, ly - 10), (lx + 14, ly), COLORS[side], -1)
        _text(img, name, (lx + 20, ly))
    return img


def _footer(result: dict, width: int) -> np.ndarray:
    items = [f"{k} {v}" for k, v in result["ratios"].items() if not k.endswith("_per_cpu") and v is not None]
    lines, line = [], ""
    for item in items:
        if line and len(line) + len(item) > 120:
            lines.append(line)
            line = ""
        line = f"{line}, {item}" if line else item
    lines.append(line)
    img = np.full((22 * len(lines) + 34, width, 3), 255, np.uint8)
    for i, text in enumerate(lines):
        _text(img, text, (10, 20 + 22 * i), 0.42)
    _text(
        img,
        f"{result['date'][:16]}  {result['machine'][:80]}  load "
        f"{result.get('load_avg_start')} -> {result.get('load_avg_end')}",
        (10, 22 * len(lines) + 22),
        0.42,
        GREY,
    )
    return img


def plot(result: dict, out: Path, width: int = 1000) -> None:
    parts = [draw_modes(result, width)]
    if result.get("streams"):
        parts.append(draw_streams(result["streams"], width))
    parts.append(_footer(result, width))
    write_png(np.vstack(parts), out)


def plot_targets(targets: list[dict], out: Path, title: str, width: int = 1000) -> None:
    """Each target as measured / required (1.0 = just met; right of the line = met)."""
    rows = [t for t in targets if t.get("score") is not None]
    bar_h, left = 34, 420
    img = np.full((70 + bar_h * len(rows) + 30, width, 3), 255, np.uint8)
    _text(img, title, (10, 28), 0.6, BLACK, 2)
    top = max([t["score"] for t in rows] + [1.5])
    scale = (width - left - 150) / top
    one = left + int(scale)
    cv2.line(img, (one, 42), (one, img.shape[0] - 24), GREY, 1)
    for i, t in enumerate(rows):
        y = 50 + i * bar_h
        color = (80, 170, 80) if t["met"] else (60, 60, 220)
        cv2.rectangle(img, (left, y), (left + int(scale * t["score"]), y + bar_h - 10), color, -1)
        _text(img, t["name"][:52], (10, y + 16), 0.42)
        _text(
            img,
            f"{t['measured']} (target {t['op']} {t['target']})",
            (left + int(scale * t["score"]) + 6, y + 16),
            0.42,
        )
    _text(
        img,
        "measured / target (>= 1 met; for 'below' targets target / measured)",
        (10, img.shape[0] - 8),
        0.42,
        GREY,
    )
    write_png(img, out)


def write_png(img: np.ndarray, out: Path) -> None:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), img):
        raise SystemExit(f"expressiond: error: cannot write {out}")
