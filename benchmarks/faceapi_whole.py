"""The close-up workload of benchmarks/vs_faceapi.py (``--whole-photo``): each photo is one
pre-cropped face, classified whole by face-api's FaceExpressionNet, no detector.

Why: on close-ups (../shared/data/expressions, 224 and 350 px, the face fills the photo)
face-api's SSD MobileNetV1 scores every box under 0.11 (in tfjs and in the IR alike), so at
minConfidence 0.5 neither side finds a face, and at a threshold low enough to give every photo a
box the best box covers the face (IoU >= 0.5 with the photo) in only 33 of the 70 photos. What
face-api offers for a face image is ``faceExpressionNet.predictExpressions(image)``: that is the
JS side (bench_faceapi.mjs --mode whole), and here the same network's IR on the same whole photo:

- sync: ``FaceAnalyzer.classify(photo)`` per photo (LATENCY hint), median of N after a warm-up;
- async: the daemon's classifier as ``compile_classifiers`` builds it (face-api/expression, no
  flip, THROUGHPUT hint, "auto" requests), each photo cropped and prepared as the pipeline does
  (``ClassifierSet.crops`` with the whole photo as the box) and run on an AsyncInferQueue, round
  after round; amortised time per photo.

Each face's box is the whole photo, so the IoU matching of vs_faceapi.agreement pairs the one
face of each photo on both sides.
"""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

import numpy as np

from expressiond import paths
from expressiond.config import ClassifierConfig, Config, InferenceConfig
from expressiond.inference.analyzer import AnalyzerSettings, FaceAnalyzer
from expressiond.inference.factory import compile_classifiers, resolve_num_requests
from expressiond.inference.ovcompat import AsyncInferQueue

TASK = (
    "each photo is one face, classified whole: face-api "
    "faceExpressionNet.predictExpressions(photo) vs the same net's IR on the same photo "
    "(its SSD finds no face on these close-ups at minConfidence 0.5, in JS or IR); the defaults "
    "row detects with retail-0005"
)


def whole_face(img: np.ndarray, scores: dict[str, float]) -> dict:
    top = max(scores, key=scores.get)
    box = [0.0, 0.0, float(img.shape[1]), float(img.shape[0])]
    return {"box": box, "score": None, "expression": top, "probability": float(scores[top])}


def sync_report(inputs, run, faces_of, repeat: int, inference_precision) -> dict:
    """A sync row of either workload: per photo one warm-up call of ``run`` and ``repeat`` timed
    ones; ``faces_of(img, result)`` turns the last result into the report's face dicts."""
    images = []
    for name, img in inputs:
        result = run(img)  # warm-up
        ms = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            result = run(img)
            ms.append((time.perf_counter() - t0) * 1000)
        images.append(
            {"name": name, "ms": ms, "median_ms": statistics.median(ms), "faces": faces_of(img, result)}
        )
    per_photo = statistics.fmean(i["median_ms"] for i in images)
    return {
        "mode": "sync",
        "ms_per_photo": per_photo,
        "photos_per_s": 1000 / per_photo,
        "inference_precision": inference_precision,
        "images": images,
    }


def bench_sync_whole(models_dir: Path, precision: str, inputs, repeat: int) -> dict:
    analyzer = FaceAnalyzer(AnalyzerSettings(models_dir, precision=precision))
    precision_used = analyzer.classifier.info.get("INFERENCE_PRECISION_HINT")
    return sync_report(inputs, analyzer.classify, lambda img, s: [whole_face(img, s)], repeat, precision_used)


def bench_async_whole(
    models_dir: Path, precision: str, inputs, repeat: int, min_seconds: float, timeout: float
) -> dict:
    cfg = Config(
        models_dir=str(models_dir),
        inference=InferenceConfig(precision=precision),
        classifier=ClassifierConfig(model=paths.BUILTIN_CLASSIFIER, flip=False, crop="model"),
    )
    cls = compile_classifiers(cfg)
    n_req = resolve_num_requests(cfg, cls.nets[0])
    done: list[tuple[int, int, tuple]] = []  # (photo slot, member, outputs); list.append: GIL-safe
    queues = []
    for k, net in enumerate(cls.nets):
        q = AsyncInferQueue(net.compiled, n_req)
        q.set_callback(lambda request, slot, k=k, a=net.adapter: done.append((slot, k, a.fetch(request))))
        queues.append(q)

    def one_round(base: int) -> None:
        for i, (_name, img) in enumerate(inputs):
            h, w = img.shape[:2]
            crops = cls.crops(img, (0, 0, w, h))
            for q, net, crop in zip(queues, cls.nets, crops, strict=True):
                q.start_async({0: net.adapter.prepare(crop)}, base + i)

    def wait_all(what: str) -> None:
        finished = threading.Event()
        waiter = threading.Thread(
            target=lambda: ([q.wait_all() for q in queues], finished.set()), daemon=True
        )
        waiter.start()
        if not finished.wait(timeout):
            raise SystemExit(f"vs_faceapi: whole-photo {what} did not finish within {timeout:.0f} s")

    one_round(0)  # warm-up round, untimed; its outputs are the scores reported
    wait_all("warm-up")
    first: dict[int, dict[int, tuple]] = {}
    for slot, k, out in done:
        first.setdefault(slot, {})[k] = out
    rounds, t0 = 0, time.perf_counter()
    deadline = t0 + max(min_seconds, 1.0) * 20
    while (rounds < repeat or time.perf_counter() - t0 < min_seconds) and time.perf_counter() < deadline:
        rounds += 1
        one_round(rounds * len(inputs))
    wait_all("throughput run")
    dt = time.perf_counter() - t0
    n = rounds * len(inputs)
    if len(done) != (n + len(inputs)) * len(queues):
        raise SystemExit(f"vs_faceapi: whole-photo run got {len(done)} results for {n + len(inputs)} photos")
    images = []
    for i, (name, img) in enumerate(inputs):
        scores = cls.combine([first[i][k] for k in range(len(queues))])
        images.append({"name": name, "faces": [whole_face(img, scores)]})
    return {
        "mode": f"async x{n_req}",
        "models": f"{paths.BUILTIN_CLASSIFIER} on the whole photo (no detector, no flip)",
        "ms_per_photo": dt * 1000 / n,
        "photos_per_s": n / dt,
        "num_requests": n_req,
        "photos": n,
        "seconds": dt,
        "inference_precision": cls.nets[0].info.get("INFERENCE_PRECISION_HINT"),
        "images": images,
    }
