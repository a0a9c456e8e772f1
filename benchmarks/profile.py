#!/usr/bin/env python3
"""Where the end-to-end time goes in ``expressiond run``, measured three ways.

1. threads: the real daemon (one camera playing the demo clip at --fps, 120 = as fast as a
   camera may be configured) as a child process; CPU seconds per OS thread over the window
   from /proc/PID/task/*/stat (the daemon names its threads: capture-<cam> with its FFmpeg
   decoder threads, frames, inference-coordinator, events; the unnamed ones are OpenVINO's
   inference threads, which also run the request callbacks) — and, if py-spy is installed,
   two py-spy recordings of the same window: every active sample, and only samples holding
   the GIL (`py-spy record --pid PID --duration S --rate 100 --format raw --threads
   --nonblocking [--gil]`).
2. steps: each Python step of the frame path timed alone on the clip's frames (decode,
   frame checks, output copies, NMS + box decoding, crops, score dicts, tracker), median
   ms per call and per processed frame at the clip's faces per frame; next to one detector
   and one classifier inference on one request.
3. memory: RSS of a fresh process after each start-up stage (imports, compile, warm-up,
   inference at the clip's size with the requests the daemon uses).

    .venv/bin/python benchmarks/profile.py [--seconds 15] [--fps 120] [--precision FP32]
        [--no-py-spy] [--json benchmarks/profile.json] [--pyspy-out DIR]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
try:
    import expressiond  # noqa: F401
except ImportError:  # running from a checkout without the package installed
    sys.path.insert(0, str(ROOT / "daemon"))

from expressiond import paths  # noqa: E402
from expressiond.config import Config, InferenceConfig  # noqa: E402
from expressiond.tools.benchmark.daemon import CLK_TCK, DaemonSpec, clip_camera, run_group, source_label  # noqa: E402

PYTHON_THREADS = ("capture-", "frames", "inference-coor", "events", "ThreadPoolExec")


# --- 1. threads ---------------------------------------------------------------------------------
def thread_times(pid: int) -> dict[int, tuple[str, float]]:
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            comm = (task / "comm").read_text().strip()
            raw = (task / "stat").read_text()
        except OSError:
            continue
        f = raw[raw.rfind(")") + 2 :].split()
        out[int(task.name)] = (comm, (int(f[11]) + int(f[12])) / CLK_TCK)
    return out


def thread_group(tid: int, pid: int, comm: str) -> str:
    if tid == pid:
        return "main thread"
    for prefix in PYTHON_THREADS:
        if comm.startswith(prefix):
            return "capture + decode (" + comm + ")" if prefix == "capture-" else comm
    return "OpenVINO inference threads (+ callbacks)"


class Profiler:
    """run_group observer: /proc thread CPU at both ends of the window, py-spy in between."""

    def __init__(self, seconds: float, pyspy: str | None, workdir: Path):
        self.seconds, self.pyspy, self.workdir = seconds, pyspy, workdir
        self.start: dict = {}
        self.end: dict = {}
        self.procs: list[tuple[str, subprocess.Popen, Path]] = []
        self.commands: list[list[str]] = []
        self.t0 = self.t1 = 0.0

    def window_start(self, pids: list[int]) -> None:
        self.pid = pids[0]
        self.t0 = time.monotonic()
        self.start = thread_times(self.pid)
        if not self.pyspy:
            return
        for mode in ("active", "gil"):
            out = self.workdir / f"pyspy-{mode}.txt"
            cmd = [
                self.pyspy,
                "record",
                "--pid",
                str(self.pid),
                "--duration",
                str(max(1, int(self.seconds) - 1)),
                "--rate",
                "100",
                "--format",
                "raw",
                "--threads",
                "--nonblocking",
                "-o",
                str(out),
            ]
            if mode == "gil":
                cmd.append("--gil")
            self.commands.append(cmd)
            self.procs.append(
                (
                    mode,
                    subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True),
                    out,
                )
            )

    def window_end(self, pids: list[int]) -> None:
        self.t1 = time.monotonic()
        self.end = thread_times(self.pid)
        for _mode, proc, _out in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def thread_report(self) -> dict:
        groups: collections.Counter = collections.Counter()
        for tid, (comm, cpu) in self.end.items():
            before = self.start.get(tid, (comm, 0.0))[1]
            groups[thread_group(tid, self.pid, comm)] += cpu - before
        total = sum(groups.values()) or 1.0
        wall = self.t1 - self.t0
        return {
            "window_s": round(wall, 2),
            "cpu_s": round(total, 2),
            "cores_used": round(total / wall, 2) if wall else None,
            "by_thread": {
                k: {"cpu_s": round(v, 2), "share": round(v / total, 3)} for k, v in groups.most_common()
            },
        }

    def pyspy_report(self) -> dict:
        out = {}
        for mode, proc, path in self.procs:
            if proc.returncode != 0 or not path.is_file():
                out[mode] = {"error": (proc.stderr.read() if proc.stderr else "")[-300:]}
                continue
            out[mode] = collapse(path.read_text())
        return out


def categorise(frame: str) -> str:
    """A leaf frame -> what the time is spent on."""
    rules = (
        ("_VideoSource.read", "decode (cv2.VideoCapture.read)"),
        ("normalise_image", "frame checks / contiguous copy"),
        ("nms_faceapi", "NMS + box decode (numpy)"),
        ("decode_detections", "NMS + box decode"),
        ("detect (", "NMS + box decode"),
        ("fetch", "output copies (callbacks)"),
        ("_det_done", "callbacks"),
        ("_cls_done", "callbacks"),
        ("face_crop", "face crops"),
        ("crop (", "face crops"),
        ("prepare", "input prep"),
        ("start_async", "start_async (incl. wait for a free request)"),
        ("data_dispatcher", "start_async (OpenVINO input dispatch)"),
        ("tracking.py", "tracker"),
        ("expression_scores", "score dicts"),
        ("scores (", "score dicts"),
        ("Condition.wait", "locks / waits"),
        ("Queue.get", "locks / waits"),
        ("Event.wait", "locks / waits"),
        ("service.py", "events / service"),
        ("sinks.py", "events / service"),
    )
    for key, name in rules:
        if key in frame:
            return name
    return "other Python"


def collapse(raw: str) -> dict:
    threads: collections.Counter = collections.Counter()
    cats: collections.Counter = collections.Counter()
    leaves: collections.Counter = collections.Counter()
    for line in raw.splitlines():
        if not line.strip():
            continue
        stack, _, n = line.rpartition(" ")
        parts = stack.split(";")
        name = parts[0].split(": ", 1)[1] if ": " in parts[0] else "OpenVINO thread (callback)"
        count = int(n)
        threads[name] += count
        leaf = parts[-1] if len(parts) > 1 else parts[0]
        cats[categorise(leaf)] += count
        leaves[f"{name}: {leaf}"] += count
    return {
        "samples_by_thread": dict(threads.most_common()),
        "samples_by_category": dict(cats.most_common()),
        "top_leaves": dict(leaves.most_common(15)),
    }


# --- 2. steps -----------------------------------------------------------------------------------
def _time(fn, n: int) -> float:
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1000


def steps(cfg: Config, clip: Path, n: int = 60) -> dict:
    import cv2

    from expressiond.events import Face, FrameResult
    from expressiond.inference.factory import compile_models
    from expressiond.sources.frames import normalise_image
    from expressiond.tracking import ExpressionTracker

    det, classifiers = compile_models(cfg)  # the classifier steps run every member of the set
    nets = classifiers.nets
    cap = cv2.VideoCapture(str(clip))
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    cap = cv2.VideoCapture(str(clip))

    def decode():
        ok, _ = cap.read()
        if not ok:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)

    det_req = det.compiled.create_infer_request()
    cls_reqs = [net.compiled.create_infer_request() for net in nets]
    for img in frames[::10]:  # a frame with faces (the clip shows each photo for a while)
        h, w = img.shape[:2]
        det_req.infer({0: det.adapter.prepare(img)})
        outputs = det.adapter.fetch(det_req)
        dets = det.adapter.detect(outputs, w, h)
        crops = [c for c in (classifiers.crops(img, b) for _s, _r, b in dets) if c is not None]
        if len(crops) >= 2:
            break
    if not crops:
        return {"error": f"no face found in {clip}"}
    crop = crops[0]

    def classify():
        for net, req, c in zip(nets, cls_reqs, crop, strict=True):
            req.infer({0: net.adapter.prepare(c)})

    classify()
    scores = classifiers.combine([net.adapter.fetch(req) for net, req in zip(nets, cls_reqs, strict=True)])
    tracker = ExpressionTracker(cfg.tracking, "bench")
    k = [0]

    def track():
        k[0] += 1
        faces = tuple(Face(box=b, score=s, scores=scores) for s, _r, b in dets)
        tracker.update(FrameResult("bench", k[0], 0.0, 0.0, w, h, faces, 0.0))

    per_call = {
        "decode 960x640 MJPEG (cv2 read)": _time(decode, n),
        "frame checks + contiguous (normalise_image)": _time(lambda: normalise_image(img), n),
        "detector output copy (fetch, callback)": _time(lambda: det.adapter.fetch(det_req), n),
        "NMS + box decode (detect)": _time(lambda: det.adapter.detect(outputs, w, h), n),
        "face crop (per face)": _time(lambda: classifiers.crops(img, dets[0][2]), n),
        "classifier output copy + scores (per face)": _time(
            lambda: classifiers.combine(
                [net.adapter.fetch(req) for net, req in zip(nets, cls_reqs, strict=True)]
            ),
            n,
        ),
        "tracker update (per frame)": _time(track, n),
        "detector inference, 1 request (1 stream)": _time(
            lambda: det_req.infer({0: det.adapter.prepare(img)}), max(5, n // 6)
        ),
        "classifier inference, 1 request per member (per face)": _time(classify, n),
    }
    faces = len(crops)
    per_frame = {}
    for name, ms in per_call.items():
        per_frame[name] = round(ms * (faces if "per face" in name else 1), 3)
    python = sum(v for k_, v in per_frame.items() if "inference" not in k_ and not k_.startswith("decode"))
    return {
        "faces_per_frame": faces,
        "ms_per_call": {k_: round(v, 3) for k_, v in per_call.items()},
        "ms_per_processed_frame": per_frame,
        "python_ms_per_frame": round(python, 3),
        "note": "median of repeated calls on one frame; decode is per decoded frame (at "
        "--fps a camera decodes fps/processed-fps times per processed frame)",
    }


# --- 3. memory ----------------------------------------------------------------------------------
MEMORY_CHILD = r"""
import json, sys, time
def rss():
    d = {l.split(':')[0]: int(l.split()[1]) for l in open('/proc/self/status')
         if l.startswith(('VmRSS', 'VmHWM'))}
    return round(d['VmRSS'] / 1024, 1)
out = {'python': rss()}
import numpy, cv2
out['+ numpy, cv2'] = rss()
from expressiond.inference import telemetry
telemetry.decline()  # as the daemon does before openvino loads
import openvino
out['+ openvino'] = rss()
from expressiond.config import Config, InferenceConfig
from expressiond.inference.factory import compile_models, resolve_num_requests, warm_up
from expressiond.events import Frame
from expressiond.inference.pipeline import AsyncPipeline, DetectorParams
cfg = Config(models_dir=sys.argv[1], inference=InferenceConfig(precision=sys.argv[2]))
det, cls = compile_models(cfg)
out['+ compile detector + classifier'] = rss()
warm_up(det, cls)
out['+ warm-up (640x480)'] = rss()
cap = cv2.VideoCapture(sys.argv[3]); frames = [cap.read()[1] for _ in range(30)]
out['+ 30 decoded frames'] = rss()
n = resolve_num_requests(cfg, det)
res = []
pipe = AsyncPipeline(det, cls, n, DetectorParams(), res.append)
for i, f in enumerate(frames):
    pipe.submit(Frame('c', i, time.monotonic(), time.time(), f))
pipe.close(60)
out[f'+ AsyncPipeline x{n} on the clip frames'] = rss()
print(json.dumps(out))
"""


def memory(models_dir: Path, precision: str, clip: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", MEMORY_CHILD, str(models_dir), precision, str(clip)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1:]}
    return {"rss_mib_after": json.loads(proc.stdout.strip().splitlines()[-1])}


def print_report(r: dict) -> None:
    d, t = r["daemon"], r["threads"]
    print(
        f"expressiond run, 1 camera at {source_label(r['source_fps'])}, {r['precision']}: "
        f"{d['fps']} fps processed, {d['frames_decoded']} frames decoded for {d['frames']} "
        f"processed; {d['cpu_ms_per_frame']} ms CPU per processed frame; "
        f"{t['cores_used']} cores busy; peak RSS {d['peak_rss_mib']} MiB"
    )
    print("CPU by thread (/proc):")
    for name, v in t["by_thread"].items():
        print(f"  {v['share'] * 100:5.1f} %  {v['cpu_s']:6.2f} s  {name}")
    for mode, p in r.get("pyspy", {}).items():
        if "error" in p:
            print(f"py-spy {mode}: {p['error']}")
            continue
        print(f"py-spy {mode} samples by thread: {p['samples_by_thread']}")
        print(f"py-spy {mode} samples by category: {p['samples_by_category']}")
    st = r["steps"]
    if "error" not in st:
        print(f"Python steps, ms per processed frame ({st['faces_per_frame']} faces):")
        for name, ms in st["ms_per_processed_frame"].items():
            print(f"  {ms:9.3f}  {name}")
        print(f"  {st['python_ms_per_frame']:9.3f}  all Python post-processing together")
    mem = r["memory"].get("rss_mib_after", r["memory"])
    print("RSS MiB after: " + ", ".join(f"{k} {v}" for k, v in mem.items()))
    print(f"load average {r['load_avg_start']} -> {r['load_avg_end']}")


# --- main ---------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models-dir", type=Path, default=None)
    ap.add_argument("--precision", default="FP32", choices=paths.PRECISIONS)
    ap.add_argument("--detector", help="detector model name or .xml (default: the daemon's)")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument(
        "--fps",
        type=float,
        default=0.0,
        help="camera fps (0: every frame as fast as it goes, realtime = false)",
    )
    ap.add_argument("--no-py-spy", action="store_true")
    ap.add_argument("--pyspy-out", type=Path, help="keep the raw py-spy stacks here")
    ap.add_argument("--json", type=Path, help="write the report here")
    args = ap.parse_args(argv)
    models_dir = args.models_dir or paths.default_models_dir()
    if not models_dir.is_dir():
        models_dir = ROOT / "models" / "ir"
    os.environ["EXPRESSIOND_MODELS"] = str(models_dir)
    clip = paths.sample_clip(models_dir)
    cfg = Config(models_dir=str(models_dir), inference=InferenceConfig(precision=args.precision))
    if args.detector:
        cfg = replace(cfg, detector=replace(cfg.detector, model=args.detector))
    pyspy = (
        None if args.no_py_spy else (shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy")))
    )
    if pyspy and not Path(pyspy).exists():
        pyspy = None
    say = lambda m: sys.stderr.write(f"profile: {m}\n")  # noqa: E731
    report: dict = {
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
        "precision": args.precision,
        "source_fps": args.fps,
        "clip": str(clip),
    }
    with tempfile.TemporaryDirectory(prefix="profile.") as tmp:
        work = Path(tmp)
        prof = Profiler(args.seconds, pyspy, work)
        say(
            f"1/3 expressiond run, 1 camera at {source_label(args.fps)}, {args.seconds:g} s"
            f"{' + py-spy' if pyspy else ''}"
        )
        res = run_group(
            cfg,
            [DaemonSpec("profile", (clip_camera("bench", clip, args.fps),))],
            args.seconds,
            work,
            observer=prof,
        )[0]
        report["daemon"] = {
            "fps": res.fps,
            "frames": res.frames,
            "faces": res.faces,
            "frames_decoded": res.frames_read,
            "cpu_s": res.cpu_s,
            "cpu_ms_per_frame": round(res.cpu_s * 1000 / res.frames, 1) if res.frames else None,
            "peak_rss_mib": res.peak_rss_mib,
            "latency_p50_ms": res.latency_p50_ms,
            "latency_p99_ms": res.latency_p99_ms,
            "error": res.error,
        }
        report["threads"] = prof.thread_report()
        report["pyspy_commands"] = [" ".join(c) for c in prof.commands]
        report["pyspy"] = prof.pyspy_report()
        if args.pyspy_out:
            args.pyspy_out.mkdir(parents=True, exist_ok=True)
            for f in work.glob("pyspy-*.txt"):
                shutil.copy(f, args.pyspy_out / f.name)
    say("2/3 Python steps timed alone")
    report["steps"] = steps(cfg, clip)
    say("3/3 memory by start-up stage")
    report["memory"] = memory(models_dir, args.precision, clip)
    report["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    print_report(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
