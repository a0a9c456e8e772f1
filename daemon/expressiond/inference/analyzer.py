"""Synchronous detect-then-classify for one image at a time (``classify``, ``evaluate``,
warm-up). The daemon's frame path uses the asynchronous pipeline instead."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..devices import effective_precision
from ..events import Face
from ..paths import BUILTIN_CLASSIFIER, BUILTIN_DETECTOR
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
    static_shapes: bool = False  # what NPU/MYRIAD get; testable on the CPU


class FaceAnalyzer:
    def __init__(self, settings: AnalyzerSettings):
        s = settings
        self.settings = s
        self.detector: CompiledNet = self._compile(s.detector, "detector")
        self.classifier: CompiledNet = self._compile(s.classifier, "classifier")
        self._det = self.detector.adapter
        self._cls = self.classifier.adapter
        self._det_req = self.detector.compiled.create_infer_request()
        self._cls_req = self.classifier.compiled.create_infer_request()
        self.input_size = int(self.detector.meta.postprocess.get("input_size", 512))
        self.score_threshold = (s.score_threshold if s.score_threshold is not None
                                else self._det.score_threshold)
        self.nms_iou = self._det.nms_iou
        self.max_results = self._det.max_results

    def _compile(self, spec: str, kind: str) -> CompiledNet:
        s = self.settings
        precision = effective_precision(s.device, s.precision)
        return compile_net(resolve_model(spec, s.models_dir, precision), kind, s.device,
                           precision, s.performance_hint, s.cache_dir,
                           static_shapes=s.static_shapes)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.classifier.meta.labels

    def raw_detect(self, image: np.ndarray) -> tuple[np.ndarray, ...]:
        """The detector's outputs without the batch axis (faceapi_ssd: boxes, scores)."""
        self._det_req.infer({0: self._det.prepare(image)})
        return self._det.raw(self._det.fetch(self._det_req))

    def detect(self, image: np.ndarray):
        self._det_req.infer({0: self._det.prepare(image)})
        return self._det.detect(self._det.fetch(self._det_req), image.shape[1], image.shape[0],
                                self.score_threshold, self.nms_iou, self.max_results)

    def classify(self, crop: np.ndarray) -> dict[str, float]:
        self._cls_req.infer({0: self._cls.prepare(np.ascontiguousarray(crop))})
        return self._cls.scores(self._cls.fetch(self._cls_req))

    def analyze(self, image: np.ndarray) -> list[Face]:
        faces = []
        for score, _rel, box in self.detect(image):
            crop = self._cls.crop(image, box)
            if crop is None:
                continue
            faces.append(Face(box=box, score=score, scores=self.classify(crop)))
        return faces
