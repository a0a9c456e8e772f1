"""``expressiond benchmark``: the write-up's synchronous loop vs the async pipeline vs the
whole daemon (``run``) vs OpenVINO's benchmark_app, measured side by side in one run on the
same IR; with ``--streams``, one process with N cameras vs N pinned processes.

This machine class is shared and noisy, so the figures that matter are the ratios between
modes measured seconds apart: with ``--rounds R`` every mode runs R times, interleaved, each
ratio is taken within a round and the medians are reported (per-round values kept).
The modes themselves are in bench_modes, the child-process daemons in bench_daemon, the
stream scaling in bench_streams, the table and plot in bench_report.

Thread: the command's main thread.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from expressiond import __version__, paths
from expressiond.config import Config, load_config
from expressiond.errors import UsageError
from expressiond.inference.ovcompat import VERSION as OV_VERSION
from expressiond.tools.benchmark import modes
from expressiond.tools.benchmark.report import plot, print_table

# 0 = the clip's every frame, as fast as the daemon takes them (realtime = false): capacity.
# A camera rate (30 fps) capped this row on an idle box (30 of a possible ~45 fps).
E2E_SOURCE_FPS = 0.0
LATENCY_SOURCE_FPS = 10.0  # the daemon's default camera rate: the latency target's condition
ROW_KEYS = ("fps", "faces_per_s", "cpu_ms_per_frame", "load_avg")


def parse_streams(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        counts = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise UsageError(f"--streams {text!r}: give camera counts like 1,2,4") from None
    if not counts or counts[0] < 1 or counts[-1] > 16:
        raise UsageError(f"--streams {text!r}: camera counts from 1 to 16, like 1,2,4")
    return counts


def run_benchmark(
    cfg: Config,
    clip: Path,
    seconds: float = 8.0,
    max_requests: int = 4,
    progress=print,
    rounds: int = 1,
    streams: list[int] | None = None,
) -> dict:
    if rounds < 1 or seconds <= 0 or max_requests < 1:
        raise UsageError("--rounds and --max-requests must be >= 1, --seconds > 0")
    result = run_modes(cfg, clip, seconds, max_requests, rounds, progress)
    if streams:
        from expressiond.tools.benchmark.streams import run_streams

        with tempfile.TemporaryDirectory(prefix="expressiond-streams.") as tmp:
            section = run_streams(cfg, clip, streams, max(seconds, 10.0), rounds, Path(tmp), progress)
        result["streams"] = section
        result["ratios"].update({k: v for k, v in section["ratios"].items() if k != "at_n"})
    result["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    return result


def run_modes(
    cfg: Config, clip: Path, seconds: float, max_requests: int, rounds: int, progress=print
) -> dict:
    clip = Path(clip).resolve()
    frames = modes.load_frames(clip)
    shape = frames[0].shape[:2]
    load_start = [round(x, 2) for x in os.getloadavg()]
    lat_cfg = replace(cfg, inference=replace(cfg.inference, performance_hint="LATENCY"))
    steps = (
        [("sync", None)]
        + [("async", n) for n in range(1, max_requests + 1)]
        + [
            ("e2e", None),
            ("bapp", False),
            ("bapp", True),
            ("bapp_cls", None),
            ("decode", None),
            ("latency", cfg),
            ("latency", lat_cfg),
        ]
    )
    total = len(steps) * rounds
    per_round: list[list[dict]] = []
    i = 0
    with tempfile.TemporaryDirectory(prefix="expressiond-bench.") as tmp:
        work = Path(tmp)
        ref = modes.reference(cfg, work)
        n_req, precision = ref["num_requests"], ref["inference_precision"]
        for rnd in range(1, rounds + 1):
            rows = []
            for kind, arg in steps:
                i += 1
                progress(
                    f"[{i}/{total}] round {rnd}: {kind}{f' x{arg}' if kind == 'async' else ''}"
                    f"{' dynamic' if kind == 'bapp' and arg else ''} "
                    f"(load {modes.load_avg()})"
                )
                if kind == "sync":
                    rows.append(modes.sync_loop(cfg, frames, seconds))
                elif kind == "async":
                    rows.append(modes.async_pipeline(cfg, frames, seconds, arg))
                elif kind == "e2e":
                    rows.append(modes.end_to_end(cfg, clip, seconds, E2E_SOURCE_FPS, work))
                elif kind == "bapp":
                    rows.append(modes.benchmark_app(cfg, ref, "detector", shape, seconds, dynamic=arg))
                elif kind == "bapp_cls":  # 112x112: about the clip's face crops
                    rows.append(modes.benchmark_app(cfg, ref, "classifier", (112, 112), seconds))
                elif kind == "decode":
                    rows.append(decode_row(clip, seconds))
                else:
                    hint = arg.inference.performance_hint
                    rows.append(
                        modes.end_to_end(
                            arg,
                            clip,
                            2 * seconds,
                            LATENCY_SOURCE_FPS,
                            work,
                            label=f", {hint}",
                            kind="latency",
                        )
                    )
            per_round.append(rows)
    table = median_table(per_round)
    ratios_rounds = [round_ratios(rows) for rows in per_round]
    ratios = {k: _median([r[k] for r in ratios_rounds]) for k in ratios_rounds[0]}
    lat = _find(table, "latency", cfg.inference.performance_hint)
    lat_best = _find(table, "latency", "LATENCY")
    e2e_rows = [r for r in table if r["kind"] in ("e2e", "latency")]
    faces_per_frame = _faces_per_frame(table)
    return {
        "ratios": ratios,
        "latency_ms": (lat or {}).get("latency_ms"),
        "latency_ms_latency_hint": (lat_best or {}).get("latency_ms"),
        "peak_rss_mib": max((r.get("peak_rss_mib") or 0 for r in e2e_rows), default=None),
        "peak_rss_note": "the expressiond run child process (VmHWM), not this benchmark process",
        "device": cfg.inference.device,
        "precision": cfg.inference.precision,
        "num_requests": n_req,
        "inference_precision": precision,
        "models": {"detector": ref["detector_model"], "classifier": ref["classifier_model"]},
        "clip": str(clip),
        "frame_size": list(shape),
        "seconds_per_mode": seconds,
        "rounds": rounds,
        "e2e_source_fps": E2E_SOURCE_FPS,
        "latency_source_fps": LATENCY_SOURCE_FPS,
        "combined_ceiling_fps": _combined_ceiling(table, faces_per_frame),
        "faces_per_frame": faces_per_frame,
        "table": table,
        "ratios_rounds": ratios_rounds,
        "rounds_detail": per_round,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_description(),
        "load_avg_start": load_start,
        "versions": versions(),
    }


def decode_row(clip: Path, seconds: float) -> dict:
    """Decoding the clip as the daemon's file source does (cv2 read, normalise_image), looping,
    in this process: CPU ms per frame (every thread of the process; nothing else runs here)."""
    from expressiond.sources.frames import normalise_image

    load = modes.load_avg()
    cap, per_frame = cv2.VideoCapture(str(clip)), []
    cpu0, t0 = modes._cpu_self(), time.perf_counter()
    try:
        while time.perf_counter() - t0 < seconds:
            t1 = time.perf_counter()
            ok, image = cap.read()
            if not ok:
                cap.release()
                cap = cv2.VideoCapture(str(clip))
                continue
            normalise_image(image)
            per_frame.append(time.perf_counter() - t1)  # "latency": one frame's decode
    finally:
        cap.release()
    cpu, dt = modes._cpu_self() - cpu0, time.perf_counter() - t0
    lat = modes.percentiles(per_frame)
    return modes._row("decode, the file source (cv2)", "decode", len(per_frame), None, dt, cpu, lat, load)


def median_table(per_round: list[list[dict]]) -> list[dict]:
    """One row per mode: the median of each figure over the rounds (+ per-round fps)."""
    out = []
    for idx, first in enumerate(per_round[0]):
        same = [rows[idx] for rows in per_round]
        row = {k: v for k, v in first.items() if k not in ROW_KEYS and k != "latency_ms"}
        for k in ROW_KEYS:
            row[k] = _median([r.get(k) for r in same])
        lats = [r.get("latency_ms") or {} for r in same]
        row["latency_ms"] = {p: _median([lat.get(p) for lat in lats]) for p in ("p50", "p99")}
        row["fps_rounds"] = [r.get("fps") for r in same]
        for k in ("peak_rss_mib", "pss_mib"):
            if k in first:
                row[k] = max((r.get(k) or 0 for r in same), default=None)
        errors = [r["error"] for r in same if r.get("error")]
        row["error"] = errors[0] if errors else None
        out.append(row)
    return out


def round_ratios(rows: list[dict]) -> dict:
    sync = _find(rows, "sync")
    best_async = max((r["fps"] or 0 for r in rows if r["kind"] == "async"), default=0)
    e2e = _find(rows, "e2e")
    bapp = next((r for r in rows if r["kind"] == "bapp" and "dynamic" not in r["mode"]), None)
    bapp_dyn = next((r for r in rows if r["kind"] == "bapp" and "dynamic" in r["mode"]), None)
    best_async_row = max((r for r in rows if r["kind"] == "async"), key=lambda r: r["fps"] or 0)
    cls = next((r for r in rows if r["mode"] == "benchmark_app classifier"), None)
    dec = _find(rows, "decode")
    fpf = e2e["faces_per_s"] / e2e["fps"] if e2e.get("fps") and e2e.get("faces_per_s") else None
    ceiling = ceiling_cpu = ceiling_dec = None
    if bapp and cls and fpf is not None and bapp["fps"] and cls["fps"]:
        # detector + classifier for this clip's faces per frame: inference alone, no decode
        ceiling = 1.0 / (1.0 / bapp["fps"] + fpf / cls["fps"])
        if bapp["cpu_ms_per_frame"] and cls["cpu_ms_per_frame"]:
            ceiling_cpu = bapp["cpu_ms_per_frame"] + fpf * cls["cpu_ms_per_frame"]
            # issue 18's ceiling: + decoding the clip's frame, measured in the same round
            if dec and dec.get("cpu_ms_per_frame"):
                ceiling_dec = ceiling_cpu + dec["cpu_ms_per_frame"]
    return {
        "async_vs_sync": _ratio(best_async, sync["fps"]),
        "e2e_vs_benchmark_app": _ratio(e2e["fps"], bapp and bapp["fps"]),
        "e2e_vs_benchmark_app_dynamic": _ratio(e2e["fps"], bapp_dyn and bapp_dyn["fps"]),
        "e2e_vs_sync": _ratio(e2e["fps"], sync["fps"]),
        # the most any async scheme can gain over the sync loop here: the inference ceiling
        "benchmark_app_vs_sync": _ratio(bapp and bapp["fps"], sync["fps"]),
        # CPU-normalised: frames per CPU-second; moves least when other work shares the box
        "async_vs_sync_per_cpu": _ratio(sync["cpu_ms_per_frame"], best_async_row["cpu_ms_per_frame"]),
        "e2e_vs_benchmark_app_per_cpu": _ratio(bapp and bapp["cpu_ms_per_frame"], e2e["cpu_ms_per_frame"]),
        # against benchmark_app's detector + classifier (per face) ceiling
        "e2e_vs_inference_ceiling": _ratio(e2e["fps"], ceiling),
        "e2e_vs_inference_ceiling_per_cpu": _ratio(ceiling_cpu, e2e["cpu_ms_per_frame"]),
        "e2e_vs_ceiling_with_decode_per_cpu": _ratio(ceiling_dec, e2e["cpu_ms_per_frame"]),
        "ceiling_with_decode_cpu_ms": round(ceiling_dec, 2) if ceiling_dec else None,
    }


def _find(rows: list[dict], kind: str, hint: str | None = None) -> dict | None:
    return next(
        (
            r
            for r in rows
            if r["kind"] == kind and (hint is None or str(r.get("hint", "")).upper() == hint.upper())
        ),
        None,
    )


def _faces_per_frame(table: list[dict]) -> float | None:
    e2e = _find(table, "e2e")
    if e2e and e2e.get("fps") and e2e.get("faces_per_s"):
        return round(e2e["faces_per_s"] / e2e["fps"], 3)
    return None


def _combined_ceiling(table: list[dict], faces_per_frame: float | None) -> float | None:
    """benchmark_app's detector and classifier rates combined for this clip's faces per frame:
    what the inference alone allows end to end, before decode and Python."""
    det = next((r for r in table if r["mode"] == "benchmark_app detector"), None)
    cls = next((r for r in table if r["mode"] == "benchmark_app classifier"), None)
    if not (det and cls and det.get("fps") and cls.get("fps") and faces_per_frame is not None):
        return None
    return round(1.0 / (1.0 / det["fps"] + faces_per_frame / cls["fps"]), 3)


def _ratio(a, b) -> float | None:
    return round(a / b, 3) if a and b else None


def _median(values: list):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


def versions() -> dict:
    return {
        "expressiond": __version__,
        "openvino": OV_VERSION,
        "python": platform.python_version(),
        "opencv": cv2.__version__,
        "numpy": np.__version__,
    }


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def write_json(result: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")


def samples_clip(
    models_dir: Path, out: Path, size: tuple[int, int] = (960, 640), frames_each: int = 10
) -> Path:
    """The demo clip `models build` made from the sample photos (else one made now), for runs
    without a clip of one's own."""
    demo = paths.sample_clip(models_dir)
    if demo.is_file():
        return demo
    photos = sorted((Path(models_dir) / "samples").glob("sample*.jpg"))
    if not photos:
        raise SystemExit(
            f"expressiond: error: no sample photos in {models_dir}/samples: run `expressiond models build`"
        )
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    for p in photos:
        frame = cv2.resize(cv2.imread(str(p)), size, interpolation=cv2.INTER_AREA)
        for _ in range(frames_each):
            writer.write(frame)
    writer.release()
    return out


def command(args) -> int:
    """``expressiond benchmark`` with its parsed arguments (cli.py)."""
    cfg = load_config(args.config, require_cameras=False) if args.config else Config()
    inf = cfg.inference
    cfg = replace(
        cfg,
        inference=replace(inf, device=args.device or inf.device, precision=args.precision or inf.precision),
    )
    if args.models:
        cfg = replace(cfg, models_dir=args.models)
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(args.clip) if args.clip else samples_clip(cfg.models_path(), Path(tmp) / "s.avi")
        result = run_benchmark(
            cfg,
            clip,
            args.seconds,
            args.max_requests,
            progress=lambda m: print(m, file=sys.stderr, flush=True),
            rounds=args.rounds,
            streams=parse_streams(args.streams),
        )
    if args.out:
        write_json(result, Path(args.out))
    if args.plot:
        plot(result, Path(args.plot))
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print_table(result)
    return 0
