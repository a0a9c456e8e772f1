"""The public factories that turn a Config into running inference: compiled networks, the number
of requests, the warm-up, the detector parameters and the asynchronous pipeline. The daemon's
Runtime, the benchmark and the tests build their inference here, never from private helpers.

Thread: the caller's (the main thread at start or reload; a benchmark's own thread).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from expressiond.config.model import Config
from expressiond.events import FrameResult
from expressiond.inference.devices import effective_precision
from expressiond.inference.engine import CompiledNet, compile_net
from expressiond.inference.metadata import load_meta, resolve_model
from expressiond.inference.ovcompat import property_value
from expressiond.inference.pipeline import AsyncPipeline, DetectorParams
from expressiond.paths import PRECISIONS


def compile_models(cfg: Config) -> tuple[CompiledNet, CompiledNet]:
    """(detector, classifier) compiled for the config's devices and precisions."""
    inf = cfg.inference
    models_dir = cfg.models_path()
    nets = []
    for role, model in (("detector", cfg.detector), ("classifier", cfg.classifier)):
        device = cfg.model_device(model)
        precision = effective_precision(device, cfg.model_precision(model))  # MYRIAD: FP16
        files = resolve_model(model.model, models_dir, precision)
        if model.is_builtin and files.xml.parent.name in PRECISIONS:
            precision = files.xml.parent.name  # INT8 asked of a model without INT8 IR: FP16
        options = (
            {"flip": model.flip, "crop": model.crop, "margin": model.margin, "fit_crops": True}
            if role == "classifier"
            else {}
        )
        nets.append(
            compile_net(files, role, device, precision, inf.performance_hint, inf.cache_dir, **options)
        )
    return nets[0], nets[1]


def classifier_labels(cfg: Config) -> tuple[str, ...]:
    """The classifier's labels from its metadata, without compiling anything."""
    model = cfg.classifier
    files = resolve_model(model.model, cfg.models_path(), cfg.model_precision(model))
    return load_meta(files, "classifier").labels


def resolve_num_requests(cfg: Config, detector: CompiledNet) -> int:
    if cfg.inference.num_requests == "auto":
        return int(property_value(detector.compiled, "OPTIMAL_NUMBER_OF_INFER_REQUESTS", 1) or 1)
    return int(cfg.inference.num_requests)


def warm_up(detector: CompiledNet, classifier: CompiledNet) -> float:
    """One inference per model before READY, so the first camera frame is not the slow one."""
    t0 = time.monotonic()
    frame, face = np.zeros((480, 640, 3), np.uint8), np.zeros((112, 112, 3), np.uint8)
    detector.compiled.create_infer_request().infer({0: detector.adapter.prepare(frame)})
    classifier.compiled.create_infer_request().infer({0: classifier.adapter.prepare(face)})
    return time.monotonic() - t0


def detector_params(cfg: Config, detector: CompiledNet) -> DetectorParams:
    d = cfg.detector
    return DetectorParams(
        input_size=int(detector.meta.postprocess.get("input_size", 512)),
        score_threshold=d.threshold,
        nms_iou=d.nms_iou,
        max_faces=d.max_faces,
        min_face_px=d.min_face_px,
    )


def make_pipeline(
    cfg: Config,
    detector: CompiledNet,
    classifier: CompiledNet,
    num_requests: int,
    on_result: Callable[[FrameResult], None],
) -> AsyncPipeline:
    """The daemon's AsyncPipeline for this config (what the runtime and the benchmark run)."""
    return AsyncPipeline(detector, classifier, num_requests, detector_params(cfg, detector), on_result)
