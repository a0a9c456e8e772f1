"""Per-photo class scores of every classifier "view" for benchmarks/accuracy.py.

A view is one network run one way on the face the default detector found: face-api's
expression net (crop policy, margin, flip, grey, eye-line alignment with face-api's 68-point
landmark net), OMZ emotions-recognition-retail-0003 and the mini-Xception of @vladmandic/human.
Each view gives an [n, 7] matrix of scores in LABELS order (NaN where a model has no such
class) and its cost: every view is timed on the same photo one after the other (interleaved),
so machine noise hits them alike; the cost includes the crop, any landmark pass, grey
conversion or warp, and the inference, as the daemon would pay it per face.

Models are compiled with the package's own compile_net (the daemon's adapters: u8 BGR frame
input, fit_crops, in-graph flip averaging, crop policy), FP32 and FP16 as `expressiond run`
would compile them on this CPU.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from expressiond.inference.adapters import grow_box
from expressiond.inference.analyzer import FaceAnalyzer, product_settings
from expressiond.inference.engine import compile_net
from expressiond.inference.faceapi import face_crop
from expressiond.inference.metadata import resolve_model
from expressiond.paths import BUILTIN_CLASSIFIER, EXPRESSION_LABELS, HUMAN_EMOTION
from expressiond.tools.imageio import read_image

# The model builders (the landmark net's helpers) need OpenVINO's opset API (2023.1+): they are
# imported where used, so the other views (and --render) also run on OpenVINO 2022.3.
LANDMARK_MODEL = "face-api/landmark68_tiny"  # tools/modelbuild/faceapi_landmarks.py
EMOTION_MODEL = HUMAN_EMOTION
LABELS = EXPRESSION_LABELS  # the daemon's 7 labels, in face-api's order
OMZ_EMOTIONS = "emotions-recognition-retail-0003"
# Eye-line alignment targets, fixed from face geometry (not fitted on accuracy): the eye
# midpoint at 37.5 % of the crop height and the eyes 37 % of the crop width apart is
# where they sit in the default square crop of a retail-0005 box (median over the dev
# photos: printed by --geometry).
ALIGN_EYE_Y = 0.375
ALIGN_EYE_DIST = 0.37


@dataclass(frozen=True)
class ViewSpec:
    name: str
    model: str  # "face-api" | "omz" | "human"
    crop: str = "square"  # adapters.crop_policy: box | square | model
    margin: float | None = None
    flip: bool = True
    grey: bool = False
    align: str | None = None  # None | "rotate" | "rotate+scale"
    note: str = ""


VIEWS = (
    ViewSpec("fa sq flip", "face-api", note="today's default: square crop, in-graph flip averaging"),
    ViewSpec("fa sq", "face-api", flip=False),
    ViewSpec("fa box flip", "face-api", crop="box"),
    ViewSpec("fa sq m0.9 flip", "face-api", margin=0.9),
    ViewSpec("fa sq m1.1 flip", "face-api", margin=1.1),
    ViewSpec("fa sq m1.25 flip", "face-api", margin=1.25),
    ViewSpec("fa sq flip grey", "face-api", grey=True),
    ViewSpec("fa align-rot flip", "face-api", align="rotate"),
    ViewSpec("fa align-rs flip", "face-api", align="rotate+scale"),
    ViewSpec("fa align-rs flip grey", "face-api", align="rotate+scale", grey=True),
    ViewSpec("omz", "omz", crop="model", flip=False, note="square box x1.2 (OMZ demo), 64x64"),
    ViewSpec("omz flip", "omz", crop="model"),
    ViewSpec("omz align-rs flip", "omz", crop="model", align="rotate+scale"),
    ViewSpec("hm sq", "human", flip=False, note="64x64 grey mini-Xception (FER2013-trained)"),
    ViewSpec("hm sq flip", "human"),
    ViewSpec("hm sq m1.2 flip", "human", margin=1.2),
    ViewSpec("hm align-rs flip", "human", align="rotate+scale"),
)
DEFAULT_VIEW = "fa sq flip"


@dataclass
class DevSet:
    files: list[str]
    images: list[np.ndarray]
    labels: np.ndarray  # class index into LABELS
    sources: list[str]  # "FER2013" | "muxspace"


def load_dev(folder: Path) -> DevSet:
    with open(folder / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return DevSet(
        files=[r["file"] for r in rows],
        images=[read_image(folder / r["file"]) for r in rows],
        labels=np.array([LABELS.index(r["label"]) for r in rows]),
        sources=["FER2013" if "FaceExp" in r["source_repo"] else "muxspace" for r in rows],
    )


def model_xml(view: ViewSpec, models: Path, omz_xml: Path | None, precision: str) -> str:
    if view.model == "face-api":
        return BUILTIN_CLASSIFIER
    if view.model == "human":
        return str(models / EMOTION_MODEL / precision / "model.xml")
    return str(omz_xml)


class Landmarks:
    """face-api's 68-point tiny net on the square crop of a box -> eye centres (image pixels)."""

    def __init__(self, models: Path, precision: str):
        import openvino as ov

        from expressiond.inference.engine import compile_config, shared_core

        xml = models / LANDMARK_MODEL / precision / "model.xml"
        core = shared_core()
        config = compile_config("CPU", precision, "LATENCY", None)
        self.request = core.compile_model(core.read_model(str(xml)), "CPU", config).create_infer_request()
        self._ov = ov

    def eyes(self, image: np.ndarray, box) -> tuple[np.ndarray, np.ndarray] | None:
        from expressiond.tools.modelbuild.faceapi_landmarks import eye_centres, landmarks_in_crop

        sq = grow_box(box, True, 1.0)
        crop = face_crop(image, sq)
        if crop is None:
            return None
        x0, y0 = max(math.floor(sq[0]), 0), max(math.floor(sq[1]), 0)
        self.request.infer({0: crop[None]})
        values = self.request.get_output_tensor(0).data.reshape(-1)
        pts = landmarks_in_crop(values, crop.shape[1], crop.shape[0]) + np.array([x0, y0])
        return eye_centres(pts)


def aligned_crop(image: np.ndarray, box, eyes, mode: str, margin: float = 1.0) -> np.ndarray:
    """The square crop of ``box`` rotated so the eyes are level; "rotate+scale" also puts the
    eye midpoint at (0.5, ALIGN_EYE_Y) and the eyes ALIGN_EYE_DIST of the side apart."""
    right, left = eyes
    x, y, w, h = grow_box(box, True, margin)
    side = max(int(round(w)), 8)
    dx, dy = left - right
    angle = math.degrees(math.atan2(dy, dx))
    mid = (right + left) / 2
    if mode == "rotate":
        scale = 1.0
        target = mid - np.array([x, y])  # keep the eyes where the plain crop has them
    else:
        dist = max(math.hypot(dx, dy), 1.0)
        scale = ALIGN_EYE_DIST * side / dist
        target = np.array([0.5 * side, ALIGN_EYE_Y * side])
    m = cv2.getRotationMatrix2D((float(mid[0]), float(mid[1])), angle, scale)
    m[:, 2] += target - mid
    return cv2.warpAffine(image, m, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def to_grey(crop: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)


class View:
    """One compiled view: ``scores(image, box)`` -> 7 scores in LABELS order (NaN: no class)."""

    def __init__(self, spec: ViewSpec, models: Path, omz_xml: Path | None, precision: str, landmarks):
        self.spec = spec
        net = compile_net(
            resolve_model(model_xml(spec, models, omz_xml, precision), models, precision),
            "classifier",
            "CPU",
            precision,
            "LATENCY",
            None,
            flip=spec.flip,
            crop=spec.crop,
            margin=spec.margin,
            fit_crops=True,
        )
        self.adapter = net.adapter
        self.request = net.compiled.create_infer_request()
        self.index = [LABELS.index(label) for label in net.meta.labels]
        self.landmarks = landmarks if spec.align else None

    def crop(self, image: np.ndarray, box) -> np.ndarray | None:
        if self.landmarks is not None:
            eyes = self.landmarks.eyes(image, box)
            if eyes is not None:
                square, enlarge = self.adapter.crop_square, self.adapter.crop_enlarge
                crop = aligned_crop(image, box, eyes, self.spec.align, enlarge if square else 1.0)
                return to_grey(crop) if self.spec.grey else crop
        crop = self.adapter.crop(image, box)
        if crop is not None and self.spec.grey:
            crop = to_grey(crop)
        return crop

    def scores(self, image: np.ndarray, box) -> np.ndarray:
        out = np.full(len(LABELS), np.nan)
        crop = self.crop(image, box)
        if crop is None:
            return out
        self.request.infer({0: self.adapter.prepare(np.ascontiguousarray(crop))})
        values = np.asarray(self.adapter.fetch(self.request)[0], np.float64).reshape(-1)
        out[self.index] = values
        return out


def detect_boxes(dev: DevSet, models: Path, precision: str) -> tuple[list, int]:
    """The default detector's best box per photo (the whole photo when it finds none)."""
    analyzer = FaceAnalyzer(product_settings(models, precision=precision))
    boxes, missed = [], 0
    for image in dev.images:
        found = analyzer.detect(image)
        if found:
            boxes.append(found[0][2])
        else:
            missed += 1
            boxes.append((0.0, 0.0, float(image.shape[1]), float(image.shape[0])))
    return boxes, missed


def run_views(
    dev: DevSet,
    models: Path,
    omz_xml: Path | None,
    precision: str,
    specs: tuple[ViewSpec, ...],
    rounds: int,
    say: Callable[[str], None],
) -> dict:
    """{"scores": {view: [n, 7]}, "ms": {view: median ms per face}, "detector_missed": k}."""
    boxes, missed = detect_boxes(dev, models, precision)
    landmarks = Landmarks(models, precision) if any(s.align for s in specs) else None
    views = {}
    for spec in specs:
        views[spec.name] = View(spec, models, omz_xml, precision, landmarks)
    say(f"{precision}: {len(views)} views compiled; {len(dev.images)} photos x {rounds} rounds")
    scores = {name: np.zeros((len(dev.images), len(LABELS))) for name in views}
    times: dict[str, list[float]] = {name: [] for name in views}
    for r in range(rounds):
        for i, (image, box) in enumerate(zip(dev.images, boxes, strict=True)):
            for name, view in views.items():
                t0 = time.perf_counter()
                s = view.scores(image, box)
                times[name].append(time.perf_counter() - t0)
                if r == 0:
                    scores[name][i] = s
        say(f"{precision}: round {r + 1}/{rounds} done")
    return {
        "scores": scores,
        "ms": {name: float(np.median(t)) * 1000 for name, t in times.items()},
        "detector_missed": missed,
    }


def eye_geometry(dev: DevSet, models: Path) -> dict:
    """Median eye midpoint height and eye distance in the default square crop (fractions)."""
    boxes, _ = detect_boxes(dev, models, "FP32")
    lm = Landmarks(models, "FP32")
    ys, ds, angles = [], [], []
    for image, box in zip(dev.images, boxes, strict=True):
        eyes = lm.eyes(image, box)
        if eyes is None:
            continue
        x, y, w, _h = grow_box(box, True, 1.0)
        right, left = eyes
        ys.append(((right + left) / 2)[1] - y)
        ys[-1] /= w
        ds.append(float(np.hypot(*(left - right))) / w)
        angles.append(math.degrees(math.atan2(*(left - right)[::-1])))
    return {
        "eye_y": round(float(np.median(ys)), 3),
        "eye_dist": round(float(np.median(ds)), 3),
        "abs_angle_deg_median": round(float(np.median(np.abs(angles))), 1),
        "abs_angle_deg_max": round(float(np.max(np.abs(angles))), 1),
    }
