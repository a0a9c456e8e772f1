"""The metadata file beside every IR (model.json): what the daemon needs to feed the model
and read its outputs. Builtin models get it from ``models build``; users bring their own."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ModelError
from ..paths import BUILTIN_MODELS, builtin_model_dir

KINDS = ("detector", "classifier")
OUTPUT_KINDS = {"detector": ("faceapi_ssd",), "classifier": ("softmax",)}


@dataclass(frozen=True)
class ModelFiles:
    xml: Path
    bin: Path
    meta: Path


@dataclass(frozen=True)
class ModelMeta:
    name: str
    kind: str
    output_kind: str
    labels: tuple[str, ...]
    precision: str
    postprocess: dict = field(default_factory=dict)
    raw: dict = field(default_factory=dict, repr=False, compare=False)


def resolve_model(spec: str, models_dir: Path, precision: str) -> ModelFiles:
    """A builtin name ("face-api/expression") or a path to an .xml with .bin/.json beside it."""
    if spec in BUILTIN_MODELS:
        base = builtin_model_dir(models_dir, spec, precision)
        files = ModelFiles(base / "model.xml", base / "model.bin", base / "model.json")
        hint = "run `expressiond models build` (or `make models`)"
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
    if not isinstance(raw, dict):
        raise ModelError(f"{files.meta}: model metadata must be a JSON object")
    kind = raw.get("kind")
    if kind != expected_kind:
        raise ModelError(
            f"{files.meta}: kind is {kind!r} but this model is configured as the {expected_kind}"
        )
    output_kind = raw.get("output_kind")
    if output_kind not in OUTPUT_KINDS[kind]:
        raise ModelError(
            f"{files.meta}: output_kind {output_kind!r} is not supported for a {kind} "
            f"(supported: {', '.join(OUTPUT_KINDS[kind])})"
        )
    labels = raw.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise ModelError(f"{files.meta}: labels must be a non-empty list of strings")
    return ModelMeta(
        name=str(raw.get("name", files.xml.stem)),
        kind=kind,
        output_kind=output_kind,
        labels=tuple(labels),
        precision=str(raw.get("precision", "")),
        postprocess=dict(raw.get("postprocess") or {}),
        raw=raw,
    )
