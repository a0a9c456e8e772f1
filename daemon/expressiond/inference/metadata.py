"""The metadata file beside every IR (model.json, or <stem>.json beside <stem>.xml): what the
daemon needs to feed the model and read its outputs. Builtin models get it from ``models
build``; users bring their own (models/omz/*.json are examples) or ``expressiond convert``
writes it.

Keys (schema 1)::

    kind          "detector" | "classifier"
    output_kind   detector: "faceapi_ssd" | "ssd_detection_out"; classifier: "softmax" | "sigmoid"
    labels        class names in output order (a detector: ["face"])
    output        optional: name of the output tensor to read (default: the only/first one)
    postprocess   optional, per output kind (faceapi_ssd: input_size, score_threshold, ...)
    input         the model's own input contract:
        layout        "NCHW" | "NHWC" (default: read from the model's shape)
        color         "BGR" | "RGB" | "GRAY" (default "BGR")
        size          [width, height]; absent or null = the model's static size, or dynamic
        mean, scale   a number or one per channel: the model sees (pixel - mean) / scale
        element_type  "u8" | "f32" | "f16" (default: the model's)
        crop          classifiers: {"square": false, "enlarge": 1.0}: how a face box becomes
                      the input (square = grow the short side, enlarge = scale about the centre)

A model whose input is already u8 BGR NHWC of any size (the builtin face-api IR) is used as is;
any other gets that front end added at load (adapters.py), so the daemon always feeds u8 BGR
frames as OpenCV gives them.

Thread: the main thread, when a model is resolved and compiled; pure functions.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from expressiond.errors import ModelError
from expressiond.inference.detectors import DETECTOR_KINDS
from expressiond.paths import NAMED_MODELS, builtin_model_dir

KINDS = ("detector", "classifier")
OUTPUT_KINDS = {"detector": tuple(DETECTOR_KINDS), "classifier": ("softmax", "sigmoid")}
LAYOUTS = ("NCHW", "NHWC")
COLORS = ("BGR", "RGB", "GRAY")
ELEMENT_TYPES = ("u8", "f32", "f16")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelFiles:
    xml: Path
    bin: Path
    meta: Path


@dataclass(frozen=True)
class InputSpec:
    layout: str | None = None
    color: str = "BGR"
    size: tuple[int, int] | None = None  # (width, height)
    mean: tuple[float, ...] | None = None
    scale: tuple[float, ...] | None = None
    element_type: str | None = None
    crop_square: bool = False
    crop_enlarge: float = 1.0

    @property
    def embedded(self) -> bool:
        """The model already takes u8 BGR NHWC frames of any size (its graph preprocesses)."""
        return (
            self.element_type == "u8"
            and self.layout == "NHWC"
            and self.color == "BGR"
            and self.size is None
            and self.mean is None
            and self.scale is None
        )

    @property
    def channels(self) -> int:
        return 1 if self.color == "GRAY" else 3


@dataclass(frozen=True)
class ModelMeta:
    name: str
    kind: str
    output_kind: str
    labels: tuple[str, ...]
    precision: str
    postprocess: dict = field(default_factory=dict)
    input: InputSpec = field(default_factory=InputSpec)
    output: str | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)


def resolve_model(spec: str, models_dir: Path, precision: str) -> ModelFiles:
    """A model name ("face-api/expression", "omz/face-detection-retail-0005") or a path to an
    .xml with .bin/.json beside it."""
    if spec in NAMED_MODELS:
        base = builtin_model_dir(models_dir, spec, precision)
        files = ModelFiles(base / "model.xml", base / "model.bin", base / "model.json")
        hint = "run `expressiond models build` (or `make models`)"
        if base.name != precision:
            log.warning(
                '%s has no %s IR: running its %s IR instead (set precision = "%s" for this model '
                "to say so, or use a model built in %s)",
                spec,
                precision,
                base.name,
                base.name,
                precision,
            )
    else:
        xml = Path(spec)
        files = ModelFiles(xml, xml.with_suffix(".bin"), xml.with_suffix(".json"))
        hint = "put the .xml, .bin and .json (metadata) side by side"
    for path in (files.xml, files.bin, files.meta):
        if not path.is_file():
            raise ModelError(f"model file missing: {path}; {hint}")
    return files


def load_meta(files: ModelFiles, expected_kind: str) -> ModelMeta:
    try:
        raw = json.loads(files.meta.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{files.meta}: unreadable model metadata ({exc})") from exc
    return parse_meta(raw, files.meta, expected_kind, default_name=files.xml.stem)


def parse_meta(raw, where: Path | str, expected_kind: str, default_name: str = "model") -> ModelMeta:
    if not isinstance(raw, dict):
        raise ModelError(f"{where}: model metadata must be a JSON object")
    if raw.get("schema", 1) != 1:
        raise ModelError(f"{where}: metadata schema {raw.get('schema')!r} is not supported (1 is)")
    kind = raw.get("kind")
    if kind != expected_kind:
        fix = (
            f'use it as the {kind} or fix "kind" in the metadata'
            if kind in KINDS
            else f'set "kind" to "{expected_kind}" in the metadata'
        )
        raise ModelError(
            f"{where}: kind is {kind!r} but this model is configured as the {expected_kind}; {fix}"
        )
    output_kind = raw.get("output_kind")
    if output_kind not in OUTPUT_KINDS[kind]:
        raise ModelError(
            f"{where}: output_kind {output_kind!r} is not supported for a {kind} "
            f"(supported: {', '.join(OUTPUT_KINDS[kind])})"
        )
    labels = raw.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
        raise ModelError(f"{where}: labels must be a non-empty list of strings")
    if len(set(labels)) != len(labels):
        raise ModelError(f"{where}: labels must be unique, got {labels}")
    output = raw.get("output")
    if output is not None and (not isinstance(output, str) or not output):
        raise ModelError(f"{where}: output must be the name of an output tensor, got {output!r}")
    postprocess = raw.get("postprocess") or {}
    if not isinstance(postprocess, dict):
        raise ModelError(f"{where}: postprocess must be a JSON object")
    return ModelMeta(
        name=str(raw.get("name", default_name)),
        kind=kind,
        output_kind=output_kind,
        labels=tuple(labels),
        precision=str(raw.get("precision", "")),
        postprocess=dict(postprocess),
        input=_input_spec(raw.get("input"), where),
        output=output,
        raw=raw,
    )


def _input_spec(raw, where) -> InputSpec:
    if raw is None:
        return InputSpec()
    if not isinstance(raw, dict):
        raise ModelError(f"{where}: input must be a JSON object")

    def choice(key: str, options: tuple[str, ...], default):
        value = raw.get(key, default)
        if value is not None and value not in options:
            raise ModelError(f"{where}: input.{key} must be one of {', '.join(options)}, got {value!r}")
        return value

    layout = choice("layout", LAYOUTS, None)
    color = choice("color", COLORS, "BGR")
    element_type = choice("element_type", ELEMENT_TYPES, None)
    size = raw.get("size")
    if size is not None:
        if (
            not isinstance(size, list)
            or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
        ):
            raise ModelError(f"{where}: input.size must be [width, height] in pixels or null, got {size!r}")
        size = (size[0], size[1])
    elif isinstance(raw.get("shape"), list) and layout in LAYOUTS and len(raw["shape"]) == 4:
        h, w = (raw["shape"][1], raw["shape"][2]) if layout == "NHWC" else raw["shape"][2:4]
        if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
            size = (w, h)
    channels = 1 if color == "GRAY" else 3
    crop = raw.get("crop") or {}
    if not isinstance(crop, dict) or set(crop) - {"square", "enlarge"}:
        raise ModelError(f'{where}: input.crop must be {{"square": bool, "enlarge": number}}, got {crop!r}')
    square = crop.get("square", False)
    enlarge = crop.get("enlarge", 1.0)
    if not isinstance(square, bool):
        raise ModelError(f"{where}: input.crop.square must be true or false, got {square!r}")
    if not _number(enlarge) or not 0.5 <= enlarge <= 4:
        raise ModelError(f"{where}: input.crop.enlarge must be a number from 0.5 to 4, got {enlarge!r}")
    return InputSpec(
        layout,
        color,
        size,
        _per_channel(raw, "mean", channels, where),
        _per_channel(raw, "scale", channels, where),
        element_type,
        square,
        float(enlarge),
    )


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _per_channel(raw: dict, key: str, channels: int, where) -> tuple[float, ...] | None:
    value = raw.get(key)
    if value is None:
        return None
    values = value if isinstance(value, list) else [value]
    if not values or not all(_number(v) for v in values) or len(values) not in (1, channels):
        raise ModelError(
            f"{where}: input.{key} must be a number or {channels} numbers (one per channel), got {value!r}"
        )
    if key == "scale" and any(v == 0 for v in values):
        raise ModelError(f"{where}: input.scale must not be 0")
    return tuple(float(v) for v in values)
