"""Model adapters: one network's input preparation and output decoding, per output kind.

``make_adapter`` holds a model's metadata against the real model (inputs, outputs, label
count, head), adds the u8 BGR frame front end where the model lacks it (preprocess.py) and
returns a DetectorAdapter or ClassifierAdapter. The pipeline and the analyzer only talk to
adapters: ``fetch`` copies the outputs of a finished request (cheap, safe in a callback),
``detect``/``scores`` turn those copies into faces or class scores (coordinator thread).

Output kinds: a detector's are the kinds of detectors/ (faceapi_ssd, ssd_detection_out), each
one module there; a classifier's are
- softmax: class probabilities that sum to 1.
- sigmoid: independent per-class scores (the 2019 write-up's multi-label Keras heads); top-1 is
  the argmax, the scores are reported as the model gives them.

Thread: built in the main thread at compile; ``fetch`` runs in OpenVINO's callback threads
(a copy, nothing else); ``detect``/``scores``/``crop`` in "inference-coordinator" (or an
analyzer's caller).
"""

from __future__ import annotations

import math

import numpy as np

from expressiond.errors import ModelError
from expressiond.inference import faceapi
from expressiond.inference.detectors import detector_kind
from expressiond.inference.metadata import ModelMeta
from expressiond.inference.outputs import HEAD_OPS, dims, find_output, head_op
from expressiond.inference.ovcompat import error_reason, port_name
from expressiond.inference.preprocess import InputFacts, add_frame_input, check_input, make_static
from expressiond.paths import BUILTIN_CLASSIFIER

STATIC_FALLBACK = (320, 320)  # static size for a dynamic model that states none (NPU, MYRIAD)


class _Adapter:
    def __init__(self, model, meta: ModelMeta, facts: InputFacts, where: str):
        self.model = model
        self.meta = meta
        self.facts = facts
        self.where = where
        self.output_indices: tuple[int, ...] = ()
        self.static_size: tuple[int, int] | None = None
        self.batched = False  # the input takes any number of images (make_static(batch=True))
        self.pad = "none"  # how prepare() keeps the geometry of an embedded model's own padding

    @property
    def labels(self) -> tuple[str, ...]:
        return self.meta.labels

    def natural_size(self) -> tuple[int, int]:
        """The size the network works at, for a static input (NPU, MYRIAD)."""
        if self.facts.size is not None:
            return self.facts.size
        side = self.meta.postprocess.get("input_size")
        if isinstance(side, int) and side > 0:
            return side, side
        return self.default_static

    default_static = STATIC_FALLBACK

    def make_static(self, size: tuple[int, int] | None = None, batch: bool = False) -> None:
        """Give the frame input a fixed size; prepare() then fits every image to it.
        ``batch``: any number of images of that size in one request (prepare_batch)."""
        self.static_size = size or self.natural_size()
        self.model = make_static(self.model, self.static_size, batch)
        self.batched = batch

    def fetch(self, request) -> tuple[np.ndarray, ...]:
        """Copies of the outputs this kind reads (OpenVINO reuses the request's buffers)."""
        return tuple(request.get_output_tensor(i).data.copy() for i in self.output_indices)

    shrink = "linear"  # how _fit shrinks an image to a static input

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """The input batch for one u8 BGR image (any size unless the input was made static)."""
        if self.static_size is None:
            return image[None]
        return _fit(image, self.static_size, self.pad, self.shrink)[None]

    def prepare_batch(self, images: list[np.ndarray]) -> np.ndarray:
        """One input batch for several images (a batched static input: make_static(batch=True))."""
        if len(images) == 1:
            return self.prepare(images[0])
        return np.stack([_fit(image, self.static_size, self.pad, self.shrink) for image in images])


class DetectorAdapter(_Adapter):
    """A face detector; how its outputs are read is its kind's (detectors/, by output_kind)."""

    default_static = (640, 480)

    def __init__(self, model, meta: ModelMeta, facts: InputFacts, where: str):
        super().__init__(model, meta, facts, where)
        self.decoder = detector_kind(meta.output_kind)(model, meta, where)
        self.output_indices = self.decoder.output_indices
        self.pad = self.decoder.pad
        pp = meta.postprocess
        self.score_threshold = float(pp.get("score_threshold", 0.5))
        self.nms_iou = float(pp.get("nms_iou", 0.5))
        self.max_results = int(pp.get("max_results", 100))

    def raw(self, outputs: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
        return tuple(o[0] for o in outputs)

    def detect(
        self,
        outputs: tuple[np.ndarray, ...],
        width: int,
        height: int,
        score_threshold: float | None = None,
        nms_iou: float | None = None,
        max_results: int | None = None,
    ) -> list[tuple[float, tuple, tuple]]:
        """-> [(score, relative box (x, y, w, h) in 0..1, box in pixels of the image)]."""
        thr = self.score_threshold if score_threshold is None else score_threshold
        iou = self.nms_iou if nms_iou is None else nms_iou
        top = self.max_results if max_results is None else max_results
        return self.decoder.decode(outputs, width, height, thr, iou, top)


class ClassifierAdapter(_Adapter):
    default_static = (112, 112)  # face-api's expression net works at 112x112
    shrink = "area"  # face crops: small, so OpenCV's area average costs little and aliases least

    def __init__(self, model, meta: ModelMeta, facts: InputFacts, where: str):
        super().__init__(model, meta, facts, where)
        i = find_output(model, meta.output, where, "class scores")
        shape = dims(model.outputs[i])
        if shape and -1 not in shape:
            values = math.prod(shape)
            if values != len(meta.labels) or sum(d > 1 for d in shape) > 1:
                name = port_name(model.outputs[i], f"output {i}")
                raise ModelError(
                    f"{where}: metadata lists {len(meta.labels)} labels but the model's output "
                    f"{name} {shape} gives {values} values; the labels must name every output "
                    "value, in order"
                )
        head = head_op(model, i)
        found = HEAD_OPS.get(head or "")
        if found == "log-softmax":
            raise ModelError(
                f"{where}: the output comes from a LogSoftmax layer "
                "(log-probabilities); expressiond needs softmax or sigmoid scores"
            )
        if found is not None and found != meta.output_kind:
            raise ModelError(
                f"{where}: metadata says output_kind {meta.output_kind} but the "
                f"model's output comes from a {head} layer; set output_kind to "
                f"{found!r}"
            )
        self.output_indices = (i,)
        self.pad = "centre" if meta.input.embedded else "none"
        self.crop_square = meta.input.crop_square
        self.crop_enlarge = meta.input.crop_enlarge
        self.flip = False

    def set_crop(self, crop: str = "model", margin: float | None = None) -> None:
        """Override the metadata's crop policy ([classifier] crop and margin)."""
        self.crop_square, self.crop_enlarge = crop_policy(self.meta, crop, margin)

    def mirror_average(self, batch: bool = False) -> None:
        """Average over the crop and its mirror image, inside the graph (augment.py)."""
        from expressiond.inference.augment import mirror_average

        self.model = mirror_average(self.model, self.where, batch)
        self.flip = True

    def scores(self, outputs: tuple[np.ndarray, ...]) -> dict[str, float]:
        values = np.asarray(outputs[0], dtype=np.float64).reshape(-1)
        if values.size != len(self.labels):
            raise ModelError(
                f"{self.where}: the output has {values.size} values but the "
                f"metadata lists {len(self.labels)} labels"
            )
        return faceapi.expression_scores(values, self.labels)

    def crop(self, image: np.ndarray, box) -> np.ndarray | None:
        """The classifier's input for a face box (pixels), per the metadata's crop policy."""
        if self.crop_square or self.crop_enlarge != 1.0:
            box = grow_box(box, self.crop_square, self.crop_enlarge)
        return faceapi.face_crop(image, box)


def crop_policy(meta: ModelMeta, crop: str, margin: float | None) -> tuple[bool, float]:
    """(square, enlarge) for a [classifier] crop setting: "model" keeps the metadata's input.crop,
    "box"/"square" the box as found or made square; "auto" is "square" for the builtin
    face-api/expression when its metadata names no crop (measured better on close-ups: the
    net zero-pads a crop to square, a square crop gives it face pixels there instead), else
    "model". ``margin`` (None: the metadata's enlarge for "model", else 1.0) scales the box."""
    if crop == "auto":
        has_own = "crop" in (meta.raw.get("input") or {})
        crop = "square" if meta.name == BUILTIN_CLASSIFIER and not has_own else "model"
    if crop == "model":
        return meta.input.crop_square, meta.input.crop_enlarge if margin is None else margin
    if crop not in ("box", "square"):
        raise ValueError(f"unknown crop policy {crop!r}")
    return crop == "square", 1.0 if margin is None else margin


def grow_box(box, square: bool, enlarge: float):
    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    if square:
        w = h = max(w, h)
    w, h = w * enlarge, h * enlarge
    return (cx - w / 2, cy - h / 2, w, h)


def _fit(image: np.ndarray, size: tuple[int, int], pad: str, shrink: str = "linear") -> np.ndarray:
    """Fit an image to a static input. An embedded face-api graph pads to square itself:
    pad the same way here so the geometry (and the decoded boxes) stay the same. ``shrink``
    "area" averages when making an image smaller (OpenCV INTER_AREA), else bilinear."""
    import cv2

    h, w = image.shape[:2]
    if (w, h) == size:
        return np.ascontiguousarray(image)
    if pad != "none":
        side = max(h, w)
        canvas = np.zeros((side, side, 3), np.uint8)
        y0, x0 = ((side - h) // 2, (side - w) // 2) if pad == "centre" else (0, 0)
        canvas[y0 : y0 + h, x0 : x0 + w] = image
        image = canvas
    smaller = image.shape[1] > size[0] or image.shape[0] > size[1]
    area = shrink == "area" and smaller
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if area else cv2.INTER_LINEAR)


def make_adapter(model, meta: ModelMeta, where: str) -> DetectorAdapter | ClassifierAdapter:
    """Check the model against its metadata and give it the u8 BGR frame input."""
    facts = check_input(model, meta.input, where)
    try:
        model = add_frame_input(model, meta.input, facts)
    except Exception as exc:  # noqa: BLE001 - PrePostProcessor raises plain RuntimeErrors
        raise ModelError(
            f"{where}: cannot add the frame input described by the metadata "
            f"({error_reason(exc)}); check input.layout/size/color"
        ) from exc
    cls = DetectorAdapter if meta.kind == "detector" else ClassifierAdapter
    return cls(model, meta, facts, where)
