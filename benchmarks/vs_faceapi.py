#!/usr/bin/env python3
"""expressiond side by side with the original face-api JavaScript models, in one run.

Same inputs, same pixels (decoded once by OpenCV, fed raw to node), same networks and
thresholds (SSD MobileNetV1 minConfidence 0.5, NMS 0.5, at most 100 faces; FaceExpressionNet):

- face-api: benchmarks/faceapi_js/bench_faceapi.mjs, tfjs backend wasm (and cpu with
  --with-cpu, ~10 s per photo): median ms of ``detectAllFaces(...).withFaceExpressions()``
  per image after one warm-up;
- expressiond FP32, FP16 (INT8 when its IR exists): (a) sync, ``FaceAnalyzer.analyze`` per
  image, median ms over --repeat runs after one warm-up; (b) throughput of the daemon's
  ``AsyncPipeline`` (THROUGHPUT hint, "auto" requests) over all inputs, --repeat rounds and at
  least --async-seconds.

Prints a table (ms per photo, photos/s), speed ratios expressiond / face-api and the top-1
agreement: faces matched by IoU >= 0.5 with the JS boxes, share of JS faces that expressiond
finds with the same top-1 expression. Progress goes to stderr. The machine may be noisy: the
load average is recorded at every step.

With --whole-photo (close-ups, where the SSD finds no face): each photo is one face,
classified whole by the expression net on both sides (benchmarks/faceapi_whole.py); the
daemon-defaults row still detects.

    .venv/bin/python benchmarks/vs_faceapi.py [--repeat 5] [--with-cpu] [--clip FILE
        --clip-frames 20] [--photos DIR [--photos-limit N] [--whole-photo]] [--json OUT]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
JS_DIR = ROOT / "benchmarks" / "faceapi_js"
try:
    import expressiond  # noqa: F401
except ImportError:  # running from a checkout without the package installed
    sys.path.insert(0, str(ROOT / "daemon"))

from faceapi_whole import TASK as WHOLE_TASK  # noqa: E402
from faceapi_whole import bench_async_whole, bench_sync_whole, sync_report  # noqa: E402

from expressiond import __version__, paths  # noqa: E402
from expressiond.config import ClassifierConfig, Config, DetectorConfig, InferenceConfig  # noqa: E402
from expressiond.events import Frame  # noqa: E402
from expressiond.inference.analyzer import AnalyzerSettings, FaceAnalyzer  # noqa: E402
from expressiond.inference.factory import compile_models, resolve_num_requests  # noqa: E402
from expressiond.inference.ovcompat import VERSION as OV_VERSION  # noqa: E402
from expressiond.inference.pipeline import AsyncPipeline, DetectorParams  # noqa: E402
from expressiond.tools.benchmark.run import machine_description  # noqa: E402
from expressiond.tracking import iou  # noqa: E402

log = logging.getLogger("vs_faceapi")
IOU_MATCH = 0.5
JS_NOISE = ("Hi, looks like you are running TensorFlow.js", "install our node backend")


def load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# --- inputs -------------------------------------------------------------------------------------
def load_inputs(
    samples: Path, clip: Path | None, clip_frames: int, photos_dir: Path | None = None, limit: int = 0
) -> list[tuple[str, np.ndarray]]:
    """[(name, BGR u8 image)]: the sample photos (or ``limit`` .jpg of ``photos_dir`` evenly
    spaced in name order, 0: all), then the first frames of the clip."""
    if photos_dir is not None:
        photos = sorted(photos_dir.glob("*.jpg"))
        if limit and len(photos) > limit:
            photos = [photos[round(i)] for i in np.linspace(0, len(photos) - 1, limit)]
        if not photos:
            raise SystemExit(f"vs_faceapi: no .jpg in {photos_dir}")
    else:
        photos = sorted(samples.glob("sample*.jpg"))
    if not photos:
        raise SystemExit(f"vs_faceapi: no sample*.jpg in {samples}: run `expressiond models build`")
    inputs = []
    for p in photos:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise SystemExit(f"vs_faceapi: cannot decode {p}")
        inputs.append((p.name, img))
    if clip is not None:
        cap = cv2.VideoCapture(str(clip))
        n = 0
        while n < clip_frames:
            ok, frame = cap.read()
            if not ok:
                break
            inputs.append((f"{clip.stem}#{n:04d}", frame))
            n += 1
        cap.release()
        if n == 0:
            raise SystemExit(f"vs_faceapi: {clip}: no frames could be read")
    return inputs


def dump_pixels(out_dir: Path, inputs: list[tuple[str, np.ndarray]]) -> None:
    """Raw RGB bytes + manifest.json in the format of tests/golden/dump_pixels.py."""
    out_dir.mkdir(parents=True, exist_ok=True)
    images = []
    for i, (name, bgr) in enumerate(inputs):
        raw = np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).tobytes()
        raw_name = f"{i:04d}.rgb"
        (out_dir / raw_name).write_bytes(raw)
        images.append(
            {
                "name": name,
                "width": int(bgr.shape[1]),
                "height": int(bgr.shape[0]),
                "rgb_sha256": hashlib.sha256(raw).hexdigest(),
                "raw": raw_name,
            }
        )
    manifest = {
        "decoder": "cv2.imread(IMREAD_COLOR) / VideoCapture + cvtColor(BGR2RGB)",
        "opencv": cv2.__version__,
        "numpy": np.__version__,
        "images": images,
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


# --- face-api (node) ----------------------------------------------------------------------------
def ensure_node_deps(js_dir: Path, timeout: float) -> Path:
    """node >= 18 and the pinned packages in js_dir/node_modules; returns face-api's model dir."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise SystemExit(
                f"vs_faceapi: {tool} not found: install node >= 18 with npm "
                "(Debian: apt-get install -y nodejs npm)"
            )
    major = subprocess.run(
        ["node", "-p", "process.versions.node.split('.')[0]"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    ).stdout.strip()
    if not major.isdigit() or int(major) < 18:
        raise SystemExit(f"vs_faceapi: node {major or '?'} is too old: need >= 18")
    model_dir = js_dir / "node_modules" / "@vladmandic" / "face-api" / "model"
    wasm = js_dir / "node_modules" / "@tensorflow" / "tfjs-backend-wasm" / "package.json"
    if not (model_dir.is_dir() and wasm.is_file()):
        log.info("installing the pinned face-api + tfjs into %s/node_modules (npm ci)", js_dir)
        try:
            proc = subprocess.run(
                ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=js_dir,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise SystemExit(f"vs_faceapi: npm ci took longer than {timeout:.0f} s") from exc
        if proc.returncode != 0 or not model_dir.is_dir():
            tail = (proc.stderr or proc.stdout).strip()[-600:]
            raise SystemExit(
                f"vs_faceapi: npm ci in {js_dir} failed (is the npm registry reachable?): {tail}"
            )
    return model_dir


def run_node(
    js_dir: Path,
    pixels: Path,
    model_dir: Path,
    backend: str,
    repeat: int,
    timeout: float,
    out: Path,
    mode: str = "detect",
) -> dict:
    cmd = [
        "node",
        str(js_dir / "bench_faceapi.mjs"),
        "--pixels",
        str(pixels),
        "--models",
        str(model_dir),
        "--backend",
        backend,
        "--repeat",
        str(repeat),
        "--out",
        str(out),
        "--mode",
        mode,
    ]
    proc = subprocess.Popen(cmd, cwd=js_dir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    tail: list[str] = []

    def relay() -> None:  # node's progress lines to our stderr, without the tfjs banner
        for line in proc.stderr:
            line = line.rstrip()
            if line.strip("=") and not any(n in line for n in JS_NOISE):
                tail.append(line)
                del tail[:-20]
                sys.stderr.write(line + "\n")

    reader = threading.Thread(target=relay, name=f"node-{backend}-stderr", daemon=True)
    reader.start()
    try:
        rc = proc.wait(timeout)
    except subprocess.TimeoutExpired as exc:
        proc.kill()
        proc.wait(10)
        raise SystemExit(
            f"vs_faceapi: face-api {backend} took longer than {timeout:.0f} s (raise --node-timeout)"
        ) from exc
    finally:
        reader.join(10)
    if rc != 0:
        raise SystemExit(
            f"vs_faceapi: bench_faceapi.mjs ({backend}) failed with exit code {rc}: " + " | ".join(tail[-3:])
        )
    return json.loads(out.read_text())


# --- expressiond --------------------------------------------------------------------------------
def face_dicts(faces) -> list[dict]:
    return [
        {
            "box": [float(v) for v in f.box],
            "score": float(f.score),
            "expression": f.expression,
            "probability": float(f.confidence),
        }
        for f in faces
    ]


def bench_sync(models_dir: Path, precision: str, inputs, repeat: int) -> dict:
    analyzer = FaceAnalyzer(AnalyzerSettings(models_dir, precision=precision))
    precision_used = analyzer.detector.info.get("INFERENCE_PRECISION_HINT")
    return sync_report(
        inputs, analyzer.analyze, lambda _img, faces: face_dicts(faces), repeat, precision_used
    )


def bench_async(
    models_dir: Path,
    precision: str,
    inputs,
    repeat: int,
    min_seconds: float,
    timeout: float,
    daemon_models: bool = False,
) -> dict:
    """The daemon's AsyncPipeline. By default on face-api's own two networks as face-api runs
    them (SSD MobileNetV1, the expression net on the model's crop, no mirror averaging): the
    like-for-like row. ``daemon_models``: the daemon's defaults instead (the bundled OMZ
    detector, square crops averaged with their mirror image), which is other work."""
    cfg = Config(models_dir=str(models_dir), inference=InferenceConfig(precision=precision))
    if not daemon_models:
        cfg = replace(
            cfg,
            detector=DetectorConfig(model=paths.BUILTIN_DETECTOR),
            classifier=ClassifierConfig(model=paths.BUILTIN_CLASSIFIER, flip=False, crop="model"),
        )
    det, cls = compile_models(cfg)
    n_req = resolve_num_requests(cfg, det)
    # face-api's work exactly: no minimum face size, up to 100 faces (the daemon's own
    # defaults, max_faces 20 / min_face_px 20, would skip work face-api does)
    params = DetectorParams(
        input_size=int(det.meta.postprocess.get("input_size", 512)),
        score_threshold=0.5,
        nms_iou=0.5,
        max_faces=100,
        min_face_px=0,
    )
    results: list = []
    pipe = AsyncPipeline(det, cls, n_req, params, results.append)
    try:

        def one_round(base: int) -> None:
            for i, (_name, img) in enumerate(inputs):
                pipe.submit(Frame("bench", base + i, time.monotonic(), time.time(), img))

        one_round(0)  # warm-up round, untimed
        if not pipe.drain(timeout):
            raise SystemExit(f"vs_faceapi: async warm-up did not finish within {timeout:.0f} s")
        first = list(results)
        rounds, t0 = 0, time.perf_counter()
        deadline = t0 + max(min_seconds, 1.0) * 20
        while (rounds < repeat or time.perf_counter() - t0 < min_seconds) and time.perf_counter() < deadline:
            rounds += 1
            one_round(rounds * len(inputs))
        if not pipe.drain(timeout):
            raise SystemExit(f"vs_faceapi: async pipeline did not drain within {timeout:.0f} s")
        dt = time.perf_counter() - t0
    finally:
        pipe.close(timeout)
    if pipe.errors:
        raise SystemExit(f"vs_faceapi: async pipeline reported {pipe.errors} error(s)")
    n = rounds * len(inputs)
    images = [
        {"name": name, "faces": face_dicts(r.faces)} for (name, _img), r in zip(inputs, first, strict=True)
    ]
    return {
        "mode": f"async{'-defaults' if daemon_models else ''} x{n_req}",
        "models": f"{cfg.detector.model} + {cfg.classifier.model}"
        + (" (flip)" if cfg.classifier.flip else ""),
        "ms_per_photo": dt * 1000 / n,
        "photos_per_s": n / dt,
        "num_requests": n_req,
        "photos": n,
        "seconds": dt,
        "inference_precision": det.info.get("INFERENCE_PRECISION_HINT"),
        "images": images,
    }


def available_precisions(models_dir: Path) -> list[str]:
    out = ["FP32", "FP16"]
    if all(
        (paths.builtin_model_dir(models_dir, m, "INT8") / "model.xml").is_file() for m in paths.INT8_MODELS
    ):
        out.append("INT8")
    return out


# --- comparison ---------------------------------------------------------------------------------
def agreement(js_images: list[dict], our_images: list[dict]) -> dict:
    """Share of JS faces with an expressiond face at IoU >= 0.5 (best match) of the same top-1."""
    js_faces = matched = same = extra = 0
    min_iou = 1.0
    for js, ours in zip(js_images, our_images, strict=True):
        used = set()
        for jf in js["faces"]:
            js_faces += 1
            cands = [(iou(jf["box"], of["box"]), k) for k, of in enumerate(ours["faces"]) if k not in used]
            best = max(cands, default=(0.0, -1))
            if best[0] >= IOU_MATCH:
                min_iou = min(min_iou, best[0])
                used.add(best[1])
                matched += 1
                same += ours["faces"][best[1]]["expression"] == jf["expression"]
        extra += len(ours["faces"]) - len(used)
    return {
        "js_faces": js_faces,
        "matched": matched,
        "same_top1": same,
        "extra_faces": extra,
        "min_matched_iou": round(min_iou, 6) if matched else None,
        "top1_agreement": round(same / js_faces, 4) if js_faces else None,
    }


def compare(js_runs: dict[str, dict], rows: list[dict]) -> dict:
    ratios: dict = {}
    for row in rows:
        key = f"{row['precision']} {row['mode'].split()[0]}"
        for backend, js in js_runs.items():
            ratios.setdefault(key, {})[f"vs_faceapi_{backend}"] = round(
                row["photos_per_s"] / js["photos_per_s"], 2
            )
            row.setdefault("agreement", {})[backend] = agreement(js["images"], row["images"])
    return ratios


def js_row(doc: dict) -> dict:
    per_photo = statistics.fmean(i["median_ms"] for i in doc["images"])
    return {
        "backend": doc["backend"],
        "mode": "sync",
        "ms_per_photo": per_photo,
        "photos_per_s": 1000 / per_photo,
        "backend_info": doc["backend_info"],
        "leaked_tensors": doc["leaked_tensors"],
        "versions": doc["versions"],
        "images": [{k: i[k] for k in ("name", "ms", "median_ms", "faces")} for i in doc["images"]],
    }


def workload(inputs: list[tuple[str, np.ndarray]], js_runs: dict, whole_photo: bool = False) -> dict:
    """What one "photo" is: size and faces (as face-api wasm found them) of every input, and
    how each side ran (what a speed ratio is quoted with)."""
    wasm = js_runs.get("wasm") or next(iter(js_runs.values()), {})
    faces = {i["name"]: len(i["faces"]) for i in wasm.get("images", [])}
    info = wasm.get("backend_info") or {}
    return {
        "task": WHOLE_TASK
        if whole_photo
        else "detectAllFaces(SSD MobileNetV1, minConfidence 0.5).withFaceExpressions() vs the "
        "same two networks' IR",
        "photos": [
            {"name": n, "width": int(img.shape[1]), "height": int(img.shape[0]), "faces": faces.get(n)}
            for n, img in inputs
        ],
        "faceapi": f"tfjs {wasm.get('backend', '?')} backend in node, {info.get('threads', '?')} "
        f"thread(s), SIMD {({True: 'on', False: 'off'}).get(info.get('simd'), '?')}, float32",
        "expressiond": f"OpenVINO CPU plugin, {os.cpu_count()} cores, face-api's own "
        + ("expression net on the whole photo (no detector" if whole_photo else "SSD and expression net (no")
        + " flip averaging) unless the row says defaults",
        "whole_photo": whole_photo,
    }


def print_table(report: dict, out=sys.stdout) -> None:
    w = out.write
    w(
        f"{'engine':<34} {'ms/photo':>9} {'photos/s':>9} {'vs wasm':>8} {'vs cpu':>7} "
        f"{'top-1 agree':>11} {'load':>5}\n"
    )
    for b, r in report["faceapi"].items():
        w(
            f"{'face-api JS ' + b + ' (1 thread)':<34} {r['ms_per_photo']:>9.1f} "
            f"{r['photos_per_s']:>9.2f} {'':>8} {'':>7} {'':>11} {r['load_avg'][0]:>5.2f}\n"
        )
    for r in report["expressiond"]:
        key = f"{r['precision']} {r['mode'].split()[0]}"
        rat = report["ratios"]["by_row"].get(key, {})
        agr = r.get("agreement", {}).get("wasm") or next(iter(r.get("agreement", {}).values()), {})
        name = f"expressiond {r['precision']} {r['mode']}"
        w(
            f"{name:<34} {r['ms_per_photo']:>9.1f} {r['photos_per_s']:>9.2f} "
            f"{_x(rat.get('vs_faceapi_wasm')):>8} {_x(rat.get('vs_faceapi_cpu')):>7} "
            f"{_agree(agr):>11} {r['load_avg'][0]:>5.2f}\n"
        )
    w(f"Workload: {report['workload']['task']}\n")
    w(
        f"{report['n_inputs']} inputs; sync = median of {report['repeat']} after a warm-up, per "
        f"image, averaged; async = amortised; top-1 agree = same top-1 / JS faces (IoU >= "
        f"{IOU_MATCH}).\nLoad average {report['load_avg_start']} -> {report['load_avg_end']}; "
        f"{report['machine']}; OpenVINO {report['versions']['openvino']}; node "
        f"{report['versions'].get('node', '-')}\n"
    )


def _x(v) -> str:
    return f"{v:.2f}x" if v is not None else "-"


def _agree(a: dict) -> str:
    return f"{a['same_top1']}/{a['js_faces']}" if a else "-"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--models-dir",
        type=Path,
        default=None,
        help="expressiond IR (default: $EXPRESSIOND_MODELS, else ./models/ir)",
    )
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per image (default 5)")
    ap.add_argument(
        "--cpu-repeat",
        type=int,
        default=1,
        help="timed runs per image for face-api cpu (default 1: ~10 s per photo)",
    )
    ap.add_argument("--with-cpu", action="store_true", help="also time face-api's tfjs cpu backend")
    ap.add_argument("--clip", type=Path, help="also use the first --clip-frames frames of a clip")
    ap.add_argument("--clip-frames", type=int, default=20)
    ap.add_argument("--photos", type=Path, help="these photos (*.jpg) instead of the six sample photos")
    ap.add_argument(
        "--whole-photo",
        action="store_true",
        help="each photo is one face: the expression net on the whole photo, no detector "
        "(close-ups; the daemon-defaults row still detects)",
    )
    ap.add_argument(
        "--photos-limit", type=int, default=0, help="N of --photos, evenly spaced by name (default all)"
    )
    ap.add_argument(
        "--async-seconds",
        type=float,
        default=5.0,
        help="minimum duration of each async throughput run (default 5)",
    )
    ap.add_argument(
        "--node-timeout",
        type=float,
        default=None,
        help="seconds per node run (default: from the number of inputs and repeats)",
    )
    ap.add_argument("--json", type=Path, help="write the full report here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="vs_faceapi: %(message)s")
    logging.getLogger("expressiond").setLevel(logging.WARNING)  # per-compile lines: in the JSON
    if args.repeat < 1 or args.cpu_repeat < 1 or args.clip_frames < 1:
        ap.error("--repeat, --cpu-repeat and --clip-frames must be >= 1")

    models_dir = args.models_dir or paths.default_models_dir()
    if not models_dir.is_dir():
        models_dir = ROOT / "models" / "ir"
    load_start = load_avg()
    model_dir_js = ensure_node_deps(JS_DIR, timeout=600)
    inputs = load_inputs(
        paths.samples_dir(models_dir), args.clip, args.clip_frames, args.photos, args.photos_limit
    )
    log.info("%d inputs; models %s; load average %s", len(inputs), models_dir, load_start)
    js_runs: dict[str, dict] = {}
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="vs_faceapi.") as tmp:
        pixels = Path(tmp) / "pixels"
        dump_pixels(pixels, inputs)
        backends = [("wasm", args.repeat, 10.0)]
        if args.with_cpu:
            backends.append(("cpu", args.cpu_repeat, 60.0))
        for backend, repeat, per_run_s in backends:
            timeout = args.node_timeout or 120 + len(inputs) * (repeat + 1) * per_run_s
            log.info(
                "face-api %s: %d input(s) x (1 + %d) runs (timeout %.0f s)",
                backend,
                len(inputs),
                repeat,
                timeout,
            )
            la = load_avg()
            doc = run_node(
                JS_DIR,
                pixels,
                model_dir_js,
                backend,
                repeat,
                timeout,
                Path(tmp) / f"{backend}.json",
                "whole" if args.whole_photo else "detect",
            )
            js_runs[backend] = {**js_row(doc), "load_avg": la, "repeat": repeat}
    for precision in available_precisions(models_dir):
        kinds = ("sync", "async") + (("async-defaults",) if precision == "FP32" else ())
        for kind in kinds:
            la = load_avg()
            log.info("expressiond %s %s (load average %s)", precision, kind, la)
            if kind == "sync":
                sync = bench_sync_whole if args.whole_photo else bench_sync
                row = sync(models_dir, precision, inputs, args.repeat)
            elif kind == "async" and args.whole_photo:
                row = bench_async_whole(
                    models_dir, precision, inputs, args.repeat, args.async_seconds, timeout=120
                )
            else:
                row = bench_async(
                    models_dir,
                    precision,
                    inputs,
                    args.repeat,
                    args.async_seconds,
                    timeout=120,
                    daemon_models=kind == "async-defaults",
                )
            rows.append({"precision": precision, **row, "load_avg": la})
            log.info("  %.1f ms/photo, %.2f photos/s", row["ms_per_photo"], row["photos_per_s"])
    ratios = compare(js_runs, rows)
    fp32_async = ratios.get("FP32 async", {})
    report = {
        "ratios": {"vs_faceapi_js": fp32_async.get("vs_faceapi_wasm"), "by_row": ratios},
        "n_inputs": len(inputs),
        "inputs": [n for n, _ in inputs],
        "workload": workload(inputs, js_runs, args.whole_photo),
        "whole_photo": args.whole_photo,
        "repeat": args.repeat,
        "faceapi": js_runs,
        "expressiond": rows,
        "load_avg_start": load_start,
        "load_avg_end": load_avg(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_description(),
        "versions": {
            "expressiond": __version__,
            "openvino": OV_VERSION,
            "opencv": cv2.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            **({"node": next(iter(js_runs.values()))["versions"]["node"]} if js_runs else {}),
        },
        "notes": "vs_faceapi_js = expressiond FP32 async photos/s / face-api wasm photos/s. "
        "face-api runs single-threaded (tfjs wasm has no threads in node); OpenVINO "
        "uses every core.",
    }
    print_table(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
        log.info("wrote %s", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
