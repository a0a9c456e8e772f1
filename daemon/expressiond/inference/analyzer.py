"""Synchronous detect-then-classify for one image at a time (``classify``, ``evaluate``,
warm-up, benchmarks/closeup.py). The daemon's frame path uses the asynchronous pipeline instead.

The settings' defaults run the models exactly as their metadata describes them (face-api's SSD
and expression net as the original library does; tests/golden relies on that): one classifier,
``classifier`` with ``flip``/``crop``/``margin``. ``classifiers`` instead runs a whole
[classifier] table (an ensemble, combined as the daemon combines it: inference/classifiers.py).
``product_settings`` gives what the daemon's default config runs: the bundled detector and the
default [classifier]. Extras for measuring alternatives: ``detector_pads`` runs the detector on
the frame centred in a canvas ``pad`` times its size (several pads: one NMS over all),
``ensemble`` merges in a further classifier for the labels it has (merge_ensemble).

Thread: the caller's; an analyzer holds one infer request per network, so one thread uses it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from expressiond.config.keys import default_of
from expressiond.config.model import ClassifierConfig, DetectorConfig, EnsembleMember, InferenceConfig
from expressiond.events import Face
from expressiond.inference import faceapi
from expressiond.inference.classifiers import ClassifierSet, build_classifier_set
from expressiond.inference.devices import effective_precision
from expressiond.inference.engine import CompiledNet, compile_net
from expressiond.inference.metadata import resolve_model
from expressiond.paths import BUILTIN_CLASSIFIER, BUILTIN_DETECTOR


@dataclass(frozen=True)
class AnalyzerSettings:
    models_dir: Path
    device: str = default_of(InferenceConfig, "device")
    precision: str = default_of(InferenceConfig, "precision")
    detector: str = BUILTIN_DETECTOR
    classifier: str = BUILTIN_CLASSIFIER
    score_threshold: float | None = None  # None: the model's own default
    performance_hint: str | None = "LATENCY"
    cache_dir: str | None = None
    static_shapes: bool = False  # what NPU/MYRIAD get; testable on the CPU
    fit_crops: bool = False  # the daemon's static classifier input (engine.compile_net)
    flip: bool = False  # average each face with its mirror image (one batch-2 request)
    crop: str = "model"  # auto | model | box | square (adapters.crop_policy)
    margin: float | None = None
    classifiers: ClassifierConfig | None = None  # a [classifier] table: replaces the four above
    detector_pads: tuple[float, ...] = (1.0,)  # measurement only: padded / multi-scale detection
    ensemble: str | None = None  # measurement only: a second classifier, e.g. OMZ emotions-0003
    ensemble_weight: float = 0.5


def product_settings(models_dir: Path, **overrides) -> AnalyzerSettings:
    """The daemon's defaults (the key declarations of config/model.py) as analyzer settings."""
    base = AnalyzerSettings(
        models_dir,
        detector=DetectorConfig().model,
        classifiers=ClassifierConfig(),
        fit_crops=True,  # the daemon's static classifier input (factory.compile_models)
    )
    return replace(base, **overrides)


class FaceAnalyzer:
    def __init__(self, settings: AnalyzerSettings):
        s = settings
        self.settings = s
        self.detector: CompiledNet = self._compile(s.detector, "detector")
        self.classifiers: ClassifierSet = build_classifier_set(self.classifier_config, self._compile_member)
        self.classifier: CompiledNet = self.classifiers.nets[0]  # the first (or only) network
        self._det = self.detector.adapter
        self._cls = self.classifier.adapter
        self._det_req = self.detector.compiled.create_infer_request()
        self._cls_reqs = [net.compiled.create_infer_request() for net in self.classifiers.nets]
        self.member_seconds: list[list[float]] = [[] for _ in self._cls_reqs]  # per classify
        self.ensemble: CompiledNet | None = None
        if s.ensemble:
            self.ensemble = self._compile(
                s.ensemble, "classifier", crop="model", flip=s.flip, margin=s.margin
            )
            self._ens_req = self.ensemble.compiled.create_infer_request()
        self.input_size = int(self.detector.meta.postprocess.get("input_size", 512))
        self.score_threshold = (
            s.score_threshold if s.score_threshold is not None else self._det.score_threshold
        )
        self.nms_iou = self._det.nms_iou
        self.max_results = self._det.max_results

    @property
    def classifier_config(self) -> ClassifierConfig:
        """The [classifier] table this analyzer runs (one model: calibration "none")."""
        s = self.settings
        if s.classifiers is not None:
            return s.classifiers
        return ClassifierConfig(
            model=s.classifier, flip=s.flip, crop=s.crop, margin=s.margin, calibration="none"
        )

    def _compile_member(self, member: EnsembleMember) -> CompiledNet:
        return self._compile(member.model, "classifier", member.crop, member.flip, member.margin)

    def _compile(
        self, spec: str, kind: str, crop: str | None = None, flip: bool = False, margin: float | None = None
    ) -> CompiledNet:
        s = self.settings
        precision = effective_precision(s.device, s.precision)
        options = {}
        if kind == "classifier":
            options = {"flip": flip, "crop": crop or s.crop, "margin": margin, "fit_crops": s.fit_crops}
        return compile_net(
            resolve_model(spec, s.models_dir, precision),
            kind,
            s.device,
            precision,
            s.performance_hint,
            s.cache_dir,
            static_shapes=s.static_shapes,
            **options,
        )

    @property
    def labels(self) -> tuple[str, ...]:
        return self.classifiers.labels

    def raw_detect(self, image: np.ndarray) -> tuple[np.ndarray, ...]:
        """The detector's outputs without the batch axis (faceapi_ssd: boxes, scores)."""
        self._det_req.infer({0: self._det.prepare(image)})
        return self._det.raw(self._det.fetch(self._det_req))

    def detect(self, image: np.ndarray):
        """-> [(score, relative box, pixel box)] as DetectorAdapter.detect, best first."""
        pads = self.settings.detector_pads
        if pads == (1.0,):
            return self._detect_once(image)
        height, width = image.shape[:2]
        found = []
        for pad in pads:
            canvas, (x0, y0) = pad_centred(image, pad)
            for score, _rel, (x, y, w, h) in self._detect_once(canvas):
                px = (x - x0, y - y0, w, h)
                found.append((score, (px[0] / width, px[1] / height, w / width, h / height), px))
        if len(pads) == 1 or not found:
            return found
        tlbr = np.array([[r[1], r[0], r[1] + r[3], r[0] + r[2]] for _s, r, _p in found])
        keep = faceapi.nms_faceapi(
            tlbr, np.array([f[0] for f in found]), self.max_results, self.nms_iou, self.score_threshold
        )
        return [found[i] for i in keep]

    def _detect_once(self, image: np.ndarray):
        self._det_req.infer({0: self._det.prepare(image)})
        return self._det.detect(
            self._det.fetch(self._det_req),
            image.shape[1],
            image.shape[0],
            self.score_threshold,
            self.nms_iou,
            self.max_results,
        )

    def classify(self, crop: np.ndarray) -> dict[str, float]:
        """Class scores for one face image (every network sees the same pixels)."""
        scores = self._classify([crop] * len(self._cls_reqs))
        if self.ensemble is not None:
            scores = merge_ensemble(scores, self._classify_ensemble(crop), self.settings.ensemble_weight)
        return scores

    def _classify(self, crops: list[np.ndarray]) -> dict[str, float]:
        """Each network on its crop (timed into ``member_seconds``), combined."""
        outputs = []
        for k, (net, request, crop) in enumerate(
            zip(self.classifiers.nets, self._cls_reqs, crops, strict=True)
        ):
            t0 = time.perf_counter()
            request.infer({0: net.adapter.prepare(np.ascontiguousarray(crop))})
            outputs.append(net.adapter.fetch(request))
            self.member_seconds[k].append(time.perf_counter() - t0)
        return self.classifiers.combine(outputs)

    def _classify_ensemble(self, crop: np.ndarray) -> dict[str, float]:
        adapter = self.ensemble.adapter
        self._ens_req.infer({0: adapter.prepare(np.ascontiguousarray(crop))})
        return adapter.scores(adapter.fetch(self._ens_req))

    def classify_face(self, image: np.ndarray, box) -> dict[str, float] | None:
        """Scores for the face at ``box`` (pixels), each model cropping by its own policy."""
        crops = self.classifiers.crops(image, box)
        if crops is None:
            return None
        scores = self._classify(crops)
        if self.ensemble is not None:
            other = self.ensemble.adapter.crop(image, box)
            if other is not None:
                scores = merge_ensemble(scores, self._classify_ensemble(other), self.settings.ensemble_weight)
        return scores

    def analyze(self, image: np.ndarray) -> list[Face]:
        faces = []
        for score, _rel, box in self.detect(image):
            scores = self.classify_face(image, box)
            if scores is not None:
                faces.append(Face(box=box, score=score, scores=scores))
        return faces


def merge_ensemble(primary: dict[str, float], other: dict[str, float], weight: float) -> dict[str, float]:
    """Blend ``other`` into ``primary`` for the labels both have, keeping the probability mass
    those labels had in ``primary`` (labels only ``primary`` has are left as they are)."""
    shared = [label for label in primary if label in other]
    mass = sum(primary[label] for label in shared)
    other_mass = sum(other[label] for label in shared) or 1.0
    out = dict(primary)
    for label in shared:
        out[label] = (1 - weight) * primary[label] + weight * mass * other[label] / other_mass
    return out


def pad_centred(image: np.ndarray, pad: float) -> tuple[np.ndarray, tuple[int, int]]:
    """The image centred on a black square canvas ``pad`` times its longer side (pad <= 1:
    the image itself), and the image's offset in it."""
    height, width = image.shape[:2]
    side = int(round(max(height, width) * pad))
    if pad <= 1.0 or side <= max(height, width):
        return image, (0, 0)
    canvas = np.zeros((side, side, 3), np.uint8)
    y0, x0 = (side - height) // 2, (side - width) // 2
    canvas[y0 : y0 + height, x0 : x0 + width] = image
    return canvas, (x0, y0)
