"""The measured modes of ``expressiond benchmark``, each one row of the table.

- ``sync_loop``: the 2019 write-up's loop (one request per network, numpy pre-processing,
  infer per frame), in this process on decoded frames;
- ``async_pipeline``: the daemon's AsyncPipeline with n requests, in this process on the same
  decoded frames;
- ``end_to_end``: the real ``expressiond run`` on the clip (decode, detect, classify, track,
  events), a child process measured from outside (bench_daemon);
- ``benchmark_app``: OpenVINO's own tool on the detector IR, random u8 data of the clip's frame
  size, no decode, the same device, hint, inference precision and number of requests.

Every row carries fps, faces/s, p50/p99 latency, CPU seconds per frame and the load average
when it started: the machine may be shared, so CPU per frame is the figure that noise moves
least.

Thread: the command's main thread (the async mode's pipeline has its own, as in the daemon).
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from expressiond.config.model import Config
from expressiond.events import Frame
from expressiond.inference.factory import compile_models, make_pipeline, resolve_num_requests
from expressiond.tools.benchmark.daemon import DaemonSpec, clip_camera, run_group


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


def load_avg() -> float:
    return round(os.getloadavg()[0], 2)


def percentiles(lat_s: list[float]) -> dict:
    if not lat_s:
        return {"p50": None, "p99": None}
    a = np.array(lat_s) * 1000
    return {"p50": round(float(np.percentile(a, 50)), 1), "p99": round(float(np.percentile(a, 99)), 1)}


def _cpu_self() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _row(
    mode: str,
    kind: str,
    frames: int,
    faces: int | None,
    dt: float,
    cpu: float | None,
    lat: dict | None,
    load: float,
    **extra,
) -> dict:
    return {
        "mode": mode,
        "kind": kind,
        "fps": round(frames / dt, 3) if dt > 0 else None,
        "faces_per_s": round(faces / dt, 3) if faces is not None and dt > 0 else None,
        "latency_ms": lat,
        "frames": frames,
        "seconds": round(dt, 2),
        "cpu_ms_per_frame": round(cpu * 1000 / frames, 1) if cpu and frames else None,
        "load_avg": load,
        **extra,
    }


def _fit_numpy(image: np.ndarray, size: tuple[int, int], pad: bool) -> np.ndarray:
    """The write-up's numpy pre-processing: (pad bottom/right to square,) resize."""
    if pad:
        h, w = image.shape[:2]
        side = max(h, w)
        square = np.zeros((side, side, 3), np.uint8)
        square[:h, :w] = image
        image = square
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


def sync_loop(cfg: Config, frames: list[np.ndarray], seconds: float) -> dict:
    """The write-up's loop: resize in numpy, one blocking infer per network per face.
    Compiled with the LATENCY hint (one stream on every core), the best a single synchronous
    request can get, and what OpenVINO's CPU default was in 2019."""
    load = load_avg()
    det, classifiers = compile_models(
        replace(cfg, inference=replace(cfg.inference, performance_hint="LATENCY"))
    )
    det_req = det.compiled.create_infer_request()
    members = [
        (net, net.compiled.create_infer_request(), net.adapter.natural_size()) for net in classifiers.nets
    ]
    det_size = det.adapter.natural_size()
    det_pad = det.adapter.pad != "none"  # face-api's SSD pads to square, OMZ models do not
    n = faces = 0
    lat = []
    c0, t0 = _cpu_self(), time.monotonic()
    while time.monotonic() - t0 < seconds:
        frame = frames[n % len(frames)]
        t = time.monotonic()
        blob = _fit_numpy(frame, det_size, det_pad)
        det_req.infer({0: det.adapter.prepare(blob)})
        dets = det.adapter.detect(det.adapter.fetch(det_req), *det_size)
        for _score, _rel, box in dets:
            crops = classifiers.crops(blob, box)
            if crops is None:
                continue
            outputs = []
            for (cls, cls_req, cls_size), crop in zip(members, crops, strict=True):
                cls_req.infer({0: cls.adapter.prepare(_fit_numpy(crop, cls_size, True))})
                outputs.append(cls.adapter.fetch(cls_req))
            classifiers.combine(outputs)
            faces += 1
        lat.append(time.monotonic() - t)
        n += 1
    dt, cpu = time.monotonic() - t0, _cpu_self() - c0
    return _row(
        "sync loop (write-up)",
        "sync",
        n,
        faces,
        dt,
        cpu,
        percentiles(lat),
        load,
        num_requests=1,
        hint="LATENCY",
    )


def async_pipeline(cfg: Config, frames: list[np.ndarray], seconds: float, num_requests: int) -> dict:
    """The daemon's AsyncPipeline fed as fast as it accepts (submit blocks while every request
    is busy); latency is from submit to the frame's result, classification included."""
    load = load_avg()
    det, cls = compile_models(cfg)
    results = []
    pipe = make_pipeline(cfg, det, cls, num_requests, results.append)
    n = 0
    c0, t0 = _cpu_self(), time.monotonic()
    while time.monotonic() - t0 < seconds:
        pipe.submit(Frame("bench", n, time.monotonic(), time.time(), frames[n % len(frames)]))
        n += 1
    pipe.close(60)
    dt, cpu = time.monotonic() - t0, _cpu_self() - c0
    lat = [r.done_mono - r.captured_mono for r in results]
    return _row(
        f"async pipeline, {num_requests} requests",
        "async",
        len(results),
        sum(len(r.faces) for r in results),
        dt,
        cpu,
        percentiles(lat),
        load,
        num_requests=num_requests,
        hint=cfg.inference.performance_hint,
        errors=pipe.errors,
    )


def end_to_end(
    cfg: Config,
    clip: Path,
    seconds: float,
    source_fps: float,
    workdir: Path,
    label: str = "",
    kind: str = "e2e",
    own_session: bool = False,
) -> dict:
    """``expressiond run``, one camera: the clip at source_fps (0: every frame); own_session: setsid"""
    load = load_avg()
    spec = DaemonSpec("e2e", (clip_camera("bench", clip, source_fps),), own_session=own_session)
    r = run_group(cfg, [spec], seconds, workdir)[0]
    hint = cfg.inference.performance_hint
    source = "every frame" if source_fps <= 0 else f"{source_fps:g} fps source"
    row = _row(
        f"end-to-end run, {source}{label}",
        kind,
        r.frames,
        r.faces,
        r.window_s,
        r.cpu_s,
        None,
        load,
        num_requests=r.num_requests,
        hint=hint,
        source_fps=source_fps,
        inference_precision=r.inference_precision,
        peak_rss_mib=r.peak_rss_mib,
        pss_mib=r.pss_mib,
        dropped=r.dropped,
        startup_s=r.startup_s,
        error=r.error,
    )
    # the daemon's own rate: first to last result of the window (frames counts the drain too)
    row["fps"] = r.fps or row["fps"]
    if r.frames:
        row["faces_per_s"] = round(row["fps"] * r.faces / r.frames, 3)
    p50, p99 = r.latency_p50_ms, r.latency_p99_ms
    row["latency_ms"] = {"p50": p50[0] if p50 else None, "p99": p99[0] if p99 else None}
    return row


def benchmark_app_exe() -> str | None:
    exe = shutil.which("benchmark_app") or str(Path(sys.executable).with_name("benchmark_app"))
    return exe if Path(exe).exists() else None


def benchmark_app(
    cfg: Config, ref: dict, role: str, shape: tuple[int, int], seconds: float, dynamic: bool = False
) -> dict:
    """benchmark_app on the very graph the daemon compiles (``ref``: the adapted model with its
    u8 frame front end, saved by ``reference``), with the daemon's settings: same device,
    PERFORMANCE_HINT, inference precision (as the daemon's compiled model reports it) and
    -nireq; random u8 input [1, H, W, 3] of the clip's frame size, no decode. ``dynamic``
    keeps the input dynamic as the daemon does (-data_shape) instead of fixing it (-shape).
    An ensemble: one run per member, one row for them all (_chained) with theirs in "members"."""
    xml = ref[role]
    name = f"benchmark_app {role}" + (", dynamic shape" if dynamic else "")
    if isinstance(xml, list):  # each member at its own input size, as the daemon fits its crops
        shapes = ref.get(f"{role}_shapes") or [shape] * len(xml)
        rows = [
            _benchmark_app_one(cfg, x, role, f"{name} {Path(x).stem}", tuple(hw), seconds, dynamic, ref)
            for x, hw in zip(xml, shapes, strict=True)
        ]
        if len(rows) == 1:
            return {**rows[0], "mode": name}
        return _chained(name, rows)
    return _benchmark_app_one(cfg, xml, role, name, shape, seconds, dynamic, ref)


def _chained(name: str, rows: list[dict]) -> dict:
    """A face through every member: rate 1 / sum(1 / rate), CPU and p50 summed."""
    fps, cpu = [r.get("fps") for r in rows], [r.get("cpu_ms_per_frame") for r in rows]
    lat = [(r.get("latency_ms") or {}).get("p50") for r in rows]
    errors = " | ".join(dict.fromkeys(r["error"] for r in rows if r.get("error")))  # each reason once
    out = {**rows[0], "mode": name, "members": rows, "error": errors or rows[0].get("error")}
    out["fps"] = round(1.0 / sum(1.0 / f for f in fps), 3) if all(fps) else None
    out["cpu_ms_per_frame"] = round(sum(cpu), 1) if all(fps) and all(cpu) else None
    out["latency_ms"] = {"p50": round(sum(lat), 3) if all(lat) else None, "p99": None}
    return out


def _benchmark_app_one(
    cfg: Config,
    xml: str,
    role: str,
    name: str,
    shape: tuple[int, int],
    seconds: float,
    dynamic: bool,
    ref: dict,
) -> dict:
    load = load_avg()
    model = cfg.detector if role == "detector" else cfg.classifier
    num_requests, infer_precision = ref["num_requests"], ref["inference_precision"]
    h, w = shape
    exe = benchmark_app_exe()
    if exe is None:
        return _row(name, "bapp", 0, None, 0, None, None, load, error="benchmark_app not found")
    inf = cfg.inference
    cmd = [
        exe,
        "-m",
        str(xml),
        "-d",
        cfg.model_device(model),
        "-t",
        str(max(1, round(seconds))),
        "-nireq",
        str(num_requests),
    ]
    cmd += (
        ["-shape", "[1,?,?,3]", "-data_shape", f"[1,{h},{w},3]"] if dynamic else ["-shape", f"[1,{h},{w},3]"]
    )
    if inf.performance_hint and inf.performance_hint.upper() != "NONE":
        cmd += ["-hint", inf.performance_hint.lower()]
    if infer_precision:
        cmd += ["-infer_precision", infer_precision]
    with tempfile.TemporaryDirectory() as tmp:
        run = _run_measured(cmd + ["-report_folder", tmp], tmp, seconds + 180)
    if run is None:
        return _row(name, "bapp", 0, None, 0, None, None, load, error="timed out", command=cmd)
    proc, cpu = run
    out = proc.stdout
    fps = _float(r"Throughput:\s+([\d.]+) FPS", out)
    count = _float(r"Count:\s+(\d+) iterations", out)
    dur = _float(r"Duration:\s+([\d.]+) ms", out)
    if proc.returncode != 0 or fps is None:
        tail = (proc.stderr or out).strip().splitlines()[-2:]
        return _row(name, "bapp", 0, None, 0, None, None, load, error=" | ".join(tail), command=cmd)
    frames = int(count or 0)
    row = _row(
        name,
        "bapp",
        frames,
        None,
        (dur or 0) / 1000,
        cpu,
        None,
        load,
        num_requests=num_requests,
        hint=inf.performance_hint,
        inference_precision=infer_precision,
        command=cmd,
    )
    row["fps"] = fps  # benchmark_app's own figure
    med = _float(r"Median:\s+([\d.]+) ms", out)
    if med is None:  # a fast network: benchmark_app gives microseconds
        us = _float(r"Median:\s+([\d.]+) us", out)
        med = round(us / 1000, 4) if us is not None else None
    row["latency_ms"] = {"p50": med, "p99": None}
    return row


def _run_measured(cmd: list[str], cwd: str, timeout: float):
    """Run benchmark_app; CPU seconds of its measuring phase only (between its "Measuring
    performance" and "Step 11" lines, from /proc), not of reading and compiling the model."""
    from expressiond.tools.benchmark.daemon import cpu_seconds

    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, cpu0, cpu1 = [], None, None
    deadline = time.monotonic() + timeout
    for line in proc.stdout:  # benchmark_app ends its output; the timeout is a safety net
        lines.append(line)
        if "Measuring performance" in line:
            cpu0 = cpu_seconds(proc.pid)
        elif "Step 11/11" in line:
            cpu1 = cpu_seconds(proc.pid)
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait(10)
            return None
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        return None
    cpu = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
    out = "".join(lines)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, out), cpu


def _float(pattern: str, text: str) -> float | None:
    m = re.search(pattern, text)
    return float(m.group(1)) if m else None


def reference(cfg: Config, workdir: Path) -> dict:
    """What ``run`` will use: num_requests ("auto" resolved), the inference precision the
    compiled detector reports, and both adapted models saved as IR for benchmark_app."""
    from expressiond.inference.ovcompat import save_model

    det, classifiers = compile_models(cfg)
    prec = det.info.get("INFERENCE_PRECISION_HINT")
    out = {
        "num_requests": resolve_num_requests(cfg, det),
        "inference_precision": str(prec) if prec else None,
        "detector_model": str(det.files.xml),
        "classifier_model": " + ".join(str(net.files.xml) for net in classifiers.nets),
    }
    xml = workdir / "detector.xml"
    save_model(det.adapter.model, xml, compress_to_fp16=False)
    out["detector"] = str(xml)
    out["classifier"], out["classifier_shapes"] = [], []  # every member's graph and (h, w)
    for i, net in enumerate(classifiers.nets):
        width, height = net.adapter.static_size or net.adapter.natural_size()
        out["classifier_shapes"].append([height, width])
        xml = workdir / f"classifier{i}-{net.meta.name.replace('/', '-')}.xml"
        save_model(net.adapter.model, xml, compress_to_fp16=False)
        out["classifier"].append(str(xml))
    return out
