"""The public factories that turn a Config into running inference: compiled networks, the number
of requests, the warm-up, the detector parameters and the asynchronous pipeline. The daemon's
Runtime, the benchmark and the tests build their inference here, never from private helpers.

Thread: the caller's (the main thread at start or reload; a benchmark's own thread).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from expressiond.config.model import Config, EnsembleMember
from expressiond.events import FrameResult
from expressiond.inference.classifiers import ClassifierSet, build_classifier_set
from expressiond.inference.devices import effective_precision
from expressiond.inference.engine import CompiledNet, compile_net
from expressiond.inference.metadata import load_meta, resolve_model
from expressiond.inference.ovcompat import property_value
from expressiond.inference.pipeline import AsyncPipeline, DetectorParams
from expressiond.paths import EXPRESSION_LABELS, NAMED_MODELS, PRECISIONS


def compile_models(cfg: Config) -> tuple[CompiledNet, ClassifierSet]:
    """(detector, classifier set) compiled for the config's devices and precisions."""
    inf = cfg.inference
    detector = cfg.detector
    device = cfg.model_device(detector)
    precision = effective_precision(device, cfg.model_precision(detector))  # MYRIAD: FP16
    files = resolve_model(detector.model, cfg.models_path(), precision)
    precision = _runs_as(detector.model, files, precision)
    det = compile_net(files, "detector", device, precision, inf.performance_hint, inf.cache_dir)
    return det, compile_classifiers(cfg)


def compile_classifiers(cfg: Config, **overrides) -> ClassifierSet:
    """The [classifier] networks compiled and combined as the config says (``overrides``:
    compile_net options for every member, e.g. static_shapes or performance_hint)."""
    inf = cfg.inference
    device = cfg.model_device(cfg.classifier)
    precision = effective_precision(device, cfg.model_precision(cfg.classifier))
    # batch: a frame's faces in one request per member (issue 18; the scores equal one request
    # per face within float noise: tests/component/test_batched_classifier.py)
    options = {
        "performance_hint": inf.performance_hint,
        "cache_dir": inf.cache_dir,
        "fit_crops": True,
        "batch": True,
    }
    options.update(overrides)

    def compile_member(member: EnsembleMember) -> CompiledNet:
        files = resolve_model(member.model, cfg.models_path(), precision)
        return compile_net(
            files,
            "classifier",
            device,
            _runs_as(member.model, files, precision),
            flip=member.flip,
            crop=member.crop,
            margin=member.margin,
            **options,
        )

    return build_classifier_set(cfg.classifier, compile_member)


def _runs_as(model: str, files, precision: str) -> str:
    """INT8 asked of a builtin model without INT8 IR compiles its FP16 IR as FP16."""
    if model in NAMED_MODELS and files.xml.parent.name in PRECISIONS:
        return files.xml.parent.name
    return precision


def classifier_labels(cfg: Config) -> tuple[str, ...]:
    """The labels events carry, from the members' metadata, without compiling anything."""
    classifier = cfg.classifier
    if classifier.is_ensemble:
        return EXPRESSION_LABELS
    files = resolve_model(classifier.model, cfg.models_path(), cfg.model_precision(classifier))
    return load_meta(files, "classifier").labels


def resolve_num_requests(cfg: Config, detector: CompiledNet) -> int:
    if cfg.inference.num_requests == "auto":
        return int(property_value(detector.compiled, "OPTIMAL_NUMBER_OF_INFER_REQUESTS", 1) or 1)
    return int(cfg.inference.num_requests)


WARM_BATCHES = 4


def warm_up(detector: CompiledNet, classifiers: ClassifierSet) -> float:
    """One inference per model before READY, so the first camera frame is not the slow one."""
    t0 = time.monotonic()
    frame, face = np.zeros((480, 640, 3), np.uint8), np.zeros((112, 112, 3), np.uint8)
    detector.compiled.create_infer_request().infer({0: detector.adapter.prepare(frame)})
    for net in classifiers.nets:
        request = net.compiled.create_infer_request()
        # a batched input: the first frames with 1..4 faces should not be the slow ones either
        for n in range(1, WARM_BATCHES + 1 if net.adapter.batched else 2):
            request.infer({0: net.adapter.prepare_batch([face] * n)})
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
    classifier: ClassifierSet,
    num_requests: int,
    on_result: Callable[[FrameResult], None],
) -> AsyncPipeline:
    """The daemon's AsyncPipeline for this config (what the runtime and the benchmark run)."""
    return AsyncPipeline(detector, classifier, num_requests, detector_params(cfg, detector), on_result)
