"""Synchronous detect-then-classify for one image at a time (``classify``, ``evaluate``,
warm-up). The daemon's frame path uses the asynchronous pipeline instead."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..events import Face
from ..paths import BUILTIN_CLASSIFIER, BUILTIN_DETECTOR
from . import faceapi
from .engine import CompiledNet, compile_net
from .metadata import resolve_model


@dataclass(frozen=True)
class AnalyzerSettings:
    models_dir: Path
    device: str = "CPU"
    precision: str = "FP32"
    detector: str = BUILTIN_DETECTOR
    classifier: str = BUILTIN_CLASSIFIER
    score_threshold: float | None = None  # None: the model's own default
    performance_hint: str | None = "LATENCY"
    cache_dir: str | None = None


class FaceAnalyzer:
    def __init__(self, settings: AnalyzerSettings):
        s = settings
        self.settings = s
        self.detector: CompiledNet = compile_net(
            resolve_model(s.detector, s.models_dir, s.precision), "detector", s.device,
            s.precision, s.performance_hint, s.cache_dir)
        self.classifier: CompiledNet = compile_net(
            resolve_model(s.classifier, s.models_dir, s.precision), "classifier", s.device,
            s.precision, s.performance_hint, s.cache_dir)
        self._det_req = self.detector.compiled.create_infer_request()
        self._cls_req = self.classifier.compiled.create_infer_request()
        pp = self.detector.meta.postprocess
        self.input_size = int(pp.get("input_size", 512))
        self.score_threshold = float(
            s.score_threshold if s.score_threshold is not None else pp.get("score_threshold", 0.5))
        self.nms_iou = float(pp.get("nms_iou", 0.5))
        self.max_results = int(pp.get("max_results", 100))

    @property
    def labels(self) -> tuple[str, ...]:
        return self.classifier.meta.labels

    def raw_detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._det_req.infer({0: image[None]})
        return (self._det_req.get_tensor("boxes").data[0].copy(),
                self._det_req.get_tensor("scores").data[0].copy())

    def detect(self, image: np.ndarray):
        boxes, scores = self.raw_detect(image)
        return faceapi.decode_detections(
            boxes, scores, image.shape[1], image.shape[0], self.input_size,
            self.score_threshold, self.nms_iou, self.max_results)

    def classify(self, crop: np.ndarray) -> dict[str, float]:
        self._cls_req.infer({0: np.ascontiguousarray(crop)[None]})
        return faceapi.expression_scores(self._cls_req.get_output_tensor(0).data, self.labels)

    def analyze(self, image: np.ndarray) -> list[Face]:
        faces = []
        for score, _rel, box in self.detect(image):
            crop = faceapi.face_crop(image, box)
            if crop is None:
                continue
            faces.append(Face(box=box, score=score, scores=self.classify(crop)))
        return faces
