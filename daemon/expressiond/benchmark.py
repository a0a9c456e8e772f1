"""``expressiond benchmark``: the write-up's synchronous loop vs the async pipeline vs the
whole daemon path vs OpenVINO's benchmark_app, measured side by side in one run on the same IR.

This machine class is shared and noisy, so the figures that matter are the ratios between
modes measured minutes apart in one process, not the absolute fps.
"""

from __future__ import annotations

import json
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from . import __version__
from .config_types import CameraConfig, Config
from .events import Frame
from .inference import faceapi
from .inference.metadata import resolve_model
from .inference.ovcompat import VERSION as OV_VERSION
from .inference.pipeline import AsyncPipeline, DetectorParams
from .runtime import Runtime, compile_models


def load_frames(clip: Path, limit: int = 200) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(clip))
    frames = []
    while len(frames) < limit:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    if not frames:
        raise SystemExit(f"expressiond: error: {clip}: no frames could be read")
    return frames


def _percentiles(lat_s: list[float]) -> dict:
    a = np.array(lat_s) * 1000 if lat_s else np.array([np.nan])
    return {"p50": round(float(np.percentile(a, 50)), 1), "p99": round(float(np.percentile(a, 99)), 1)}


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sync_loop(cfg: Config, frames: list[np.ndarray], seconds: float) -> dict:
    """The 2019 write-up's loop: one request per network, numpy preprocessing, infer per frame.
    Compiled with the LATENCY hint, the best setting for a single synchronous request."""
    det, cls = compile_models(replace(cfg, inference=replace(cfg.inference, performance_hint="LATENCY")))
    det_req, cls_req = det.compiled.create_infer_request(), cls.compiled.create_infer_request()
    size = int(det.meta.postprocess.get("input_size", 512))
    n = faces = 0
    lat = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        frame = frames[n % len(frames)]
        t = time.monotonic()
        h, w = frame.shape[:2]
        side = max(h, w)
        square = np.zeros((side, side, 3), np.uint8)
        square[:h, :w] = frame
        blob = cv2.resize(square, (size, size), interpolation=cv2.INTER_LINEAR)
        det_req.infer({0: blob[None]})
        dets = faceapi.decode_detections(det_req.get_tensor("boxes").data[0],
                                         det_req.get_tensor("scores").data[0], size, size, size)
        for _score, _rel, box in dets:
            crop = faceapi.face_crop(blob, box)
            if crop is None:
                continue
            ch, cw = crop.shape[:2]
            s = max(ch, cw)
            sq = np.zeros((s, s, 3), np.uint8)
            sq[:ch, :cw] = crop
            cls_req.infer({0: cv2.resize(sq, (112, 112))[None]})
            faces += 1
        lat.append(time.monotonic() - t)
        n += 1
    dt = time.monotonic() - t0
    return {"mode": "sync loop (write-up)", "fps": n / dt, "faces_per_s": faces / dt,
            "latency_ms": _percentiles(lat), "frames": n}


def async_pipeline(cfg: Config, frames: list[np.ndarray], seconds: float, num_requests: int) -> dict:
    det, cls = compile_models(cfg)
    results = []
    pipe = AsyncPipeline(det, cls, num_requests, DetectorParams(), results.append)
    n = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        pipe.submit(Frame("bench", n, time.monotonic(), time.time(), frames[n % len(frames)]))
        n += 1
    pipe.close(30)
    dt = time.monotonic() - t0
    lat = [r.done_mono - r.captured_mono for r in results]
    return {"mode": f"async pipeline, {num_requests} requests", "fps": len(results) / dt,
            "faces_per_s": sum(len(r.faces) for r in results) / dt,
            "latency_ms": _percentiles(lat), "frames": len(results), "num_requests": num_requests}


def end_to_end(cfg: Config, clip: Path, seconds: float, fps: float) -> dict:
    """The daemon's own frame path (capture thread, decode, detect, classify, track, events)."""
    cam = CameraConfig(name="bench", source=str(clip), fps=fps, loop=True)
    run_cfg = replace(cfg, cameras=(cam,))
    events = []
    rt = Runtime(run_cfg, lambda evs, _cam, _state: events.extend(evs))
    lat: list[float] = []
    orig = rt._on_result

    def on_result(result):
        lat.append(result.done_mono - result.captured_mono)
        orig(result)

    rt.pipeline._on_result = on_result
    rt.start()
    time.sleep(1.0)  # let the first frames through before timing
    done0, lat_skip, t0 = rt.pipeline.frames_done, len(lat), time.monotonic()
    time.sleep(seconds)
    done, dt = rt.pipeline.frames_done - done0, time.monotonic() - t0
    rt.stop()
    return {"mode": f"end-to-end run, source {fps:g} fps", "fps": done / dt,
            "faces_per_s": None, "latency_ms": _percentiles(lat[lat_skip:]), "frames": done,
            "events": len(events)}


def benchmark_app(cfg: Config, shape: tuple[int, int], seconds: float) -> dict | None:
    exe = shutil.which("benchmark_app") or str(Path(sys.executable).with_name("benchmark_app"))
    if not Path(exe).exists():
        return None
    inf = cfg.inference
    xml = resolve_model(cfg.detector.model, cfg.models_path(), inf.precision).xml
    cmd = [exe, "-m", str(xml), "-d", inf.device, "-shape", f"[1,{shape[0]},{shape[1]},3]",
           "-t", str(int(seconds)), "-hint", "throughput"]
    if inf.precision == "FP32":
        cmd += ["-infer_precision", "f32"]
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(cmd + ["-report_folder", tmp], capture_output=True, text=True,
                              timeout=seconds + 120, check=False, cwd=tmp)
    m = re.search(r"Throughput:\s+([\d.]+) FPS", proc.stdout)
    if proc.returncode != 0 or not m:
        return {"mode": "benchmark_app detector", "fps": None, "error": proc.stderr[-300:]}
    return {"mode": "benchmark_app detector (ceiling)", "fps": float(m.group(1)),
            "faces_per_s": None, "latency_ms": None}


def run_benchmark(cfg: Config, clip: Path, seconds: float = 8.0, max_requests: int = 4,
                  progress=print) -> dict:
    frames = load_frames(clip)
    rows = []
    steps = [("sync", None)] + [("async", n) for n in range(1, max_requests + 1)] + \
        [("e2e", None), ("latency", None), ("bapp", None)]
    for i, (kind, n) in enumerate(steps, 1):
        progress(f"[{i}/{len(steps)}] {kind}{f' x{n}' if n else ''} ...")
        if kind == "sync":
            rows.append(sync_loop(cfg, frames, seconds))
        elif kind == "async":
            rows.append(async_pipeline(cfg, frames, seconds, n))
        elif kind == "e2e":
            rows.append(end_to_end(cfg, clip, seconds, fps=120))
        elif kind == "latency":
            rows.append(end_to_end(cfg, clip, seconds, fps=10))
        else:
            row = benchmark_app(cfg, frames[0].shape[:2], seconds)
            if row:
                rows.append(row)
    sync = rows[0]["fps"]
    best_async = max(r["fps"] for r in rows if r.get("num_requests"))
    e2e = next(r for r in rows if r["mode"].startswith("end-to-end") and "120" in r["mode"])
    lat10 = next(r for r in rows if r["mode"].startswith("end-to-end") and " 10 fps" in r["mode"])
    bapp = next((r for r in rows if r["mode"].startswith("benchmark_app")), None)
    ratios = {"async_vs_sync": round(best_async / sync, 3) if sync else None,
              "e2e_vs_benchmark_app": round(e2e["fps"] / bapp["fps"], 3)
              if bapp and bapp.get("fps") else None}
    return {
        "ratios": ratios,
        "latency_ms": lat10["latency_ms"],
        "peak_rss_mib": round(_rss_mib(), 1),
        "device": cfg.inference.device,
        "precision": cfg.inference.precision,
        "clip": str(clip), "frame_size": list(frames[0].shape[:2]), "seconds_per_mode": seconds,
        "table": rows,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_description(),
        "versions": {"expressiond": __version__, "openvino": OV_VERSION,
                     "python": platform.python_version(), "opencv": cv2.__version__,
                     "numpy": np.__version__},
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
    import os

    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def print_table(result: dict) -> None:
    print(f"{'mode':<38} {'fps':>7} {'faces/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for r in result["table"]:
        lat = r.get("latency_ms") or {}
        fps = f"{r['fps']:.2f}" if r.get("fps") is not None else "-"
        faces = f"{r['faces_per_s']:.2f}" if r.get("faces_per_s") is not None else "-"
        print(f"{r['mode']:<38} {fps:>7} {faces:>8} {lat.get('p50', '-'):>8} {lat.get('p99', '-'):>8}")
    print("ratios: " + ", ".join(f"{k} {v}" for k, v in result["ratios"].items()))
    print(f"peak RSS {result['peak_rss_mib']} MiB; {result['device']} {result['precision']}; "
          f"{result['machine']}; OpenVINO {result['versions']['openvino']}")


def plot(result: dict, out: Path) -> None:
    """A bar chart of fps per mode, drawn with OpenCV (no plotting library needed)."""
    rows = [r for r in result["table"] if r.get("fps")]
    width, bar_h, left = 900, 34, 330
    height = 70 + bar_h * len(rows) + 40
    img = np.full((height, width, 3), 255, np.uint8)
    top = max(r["fps"] for r in rows)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, f"expressiond benchmark: {result['device']} {result['precision']} (fps)",
                (10, 30), font, 0.7, (0, 0, 0), 2)
    for i, r in enumerate(rows):
        y = 60 + i * bar_h
        length = int((width - left - 80) * r["fps"] / top)
        color = (60, 140, 230) if "sync" in r["mode"] else (80, 170, 80)
        cv2.rectangle(img, (left, y), (left + length, y + bar_h - 8), color, -1)
        cv2.putText(img, r["mode"][:40], (10, y + 18), font, 0.45, (0, 0, 0), 1)
        cv2.putText(img, f"{r['fps']:.1f}", (left + length + 6, y + 18), font, 0.5, (0, 0, 0), 1)
    ratio = result["ratios"]
    cv2.putText(img, f"async/sync {ratio['async_vs_sync']}  e2e/benchmark_app "
                f"{ratio['e2e_vs_benchmark_app']}  {result['date'][:10]}",
                (10, height - 14), font, 0.5, (0, 0, 0), 1)
    if not cv2.imwrite(str(out), img):
        raise SystemExit(f"expressiond: error: cannot write {out}")


def write_json(result: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


def samples_clip(models_dir: Path, out: Path, size: tuple[int, int] = (960, 640),
                 frames_each: int = 10) -> Path:
    """A clip made from the bundled sample photos, for runs without a clip of one's own."""
    photos = sorted((Path(models_dir) / "samples").glob("sample*.jpg"))
    if not photos:
        raise SystemExit(f"expressiond: error: no sample photos in {models_dir}/samples: "
                         "run `expressiond models build`")
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    for p in photos:
        frame = cv2.resize(cv2.imread(str(p)), size, interpolation=cv2.INTER_AREA)
        for _ in range(frames_each):
            writer.write(frame)
    writer.release()
    return out
