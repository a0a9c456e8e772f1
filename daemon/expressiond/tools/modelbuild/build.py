"""``expressiond models build``: pinned npm packages -> OpenVINO IR (FP32, FP16) + metadata:
face-api's detector and expression net, human's emotion net (human_emotion.py), then INT8
quantised from FP32 (face-api's two) when NNCF is installed (int8.py).

Idempotent: a model whose metadata names the same source integrity and builder version and
whose IR files still hash to the recorded sha256 is left alone.

Thread: the command's main thread.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import openvino as ov
from openvino.preprocess import ColorFormat, PrePostProcessor

from expressiond.errors import ModelBuildError
from expressiond.paths import (
    BUILTIN_CLASSIFIER,
    BUILTIN_DETECTOR,
    FLOAT_PRECISIONS,
    builtin_model_dir,
    sample_clip,
)
from expressiond.tools.modelbuild.irfiles import BUILDER_VERSION, NEEDS_NEW_OPENVINO, is_up_to_date, save_ir

try:
    from expressiond.tools.modelbuild import faceapi_nets as nets
except ImportError as _exc:  # OpenVINO 2022.3: no `openvino.opsetNN` modules
    raise ModelBuildError(NEEDS_NEW_OPENVINO) from _exc
from expressiond.tools.modelbuild.npm_package import FACE_API, extract, fetch_tarball
from expressiond.tools.modelbuild.tfjs_weights import load_weights

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelRecipe:
    name: str
    manifest: str
    build: Callable[[dict], ov.Model]
    metadata: dict


RECIPES = (
    ModelRecipe(
        name=BUILTIN_DETECTOR,
        manifest="ssd_mobilenetv1_model-weights_manifest.json",
        build=nets.build_ssd_mobilenetv1,
        metadata={
            "kind": "detector",
            "output_kind": "faceapi_ssd",
            "labels": ["face"],
            "outputs": {
                "boxes": "[1, 5118, 4] top, left, bottom, right in 0..1 of the bottom/right "
                "zero-padded square input",
                "scores": "[1, 5118] face probability (sigmoid)",
            },
            "postprocess": {
                "input_size": nets.SSD_INPUT,
                "score_threshold": 0.5,
                "nms_iou": 0.5,
                "max_results": 100,
                "padding": "bottom-right",
            },
            "preprocessing": "zero-pad bottom/right to square, bilinear resize to 512 "
            "(align_corners=false, half_pixel=false), x / 127.5 - 1, RGB",
        },
    ),
    ModelRecipe(
        name=BUILTIN_CLASSIFIER,
        manifest="face_expression_model-weights_manifest.json",
        build=nets.build_expression_net,
        metadata={
            "kind": "classifier",
            "output_kind": "softmax",
            "labels": list(nets.EXPRESSION_LABELS),
            "outputs": {"expressions": "[1, 7] softmax probabilities in label order"},
            "preprocessing": "zero-pad centred to square, bilinear resize to 112 "
            "(align_corners=false, half_pixel=false), (x - [122.782, 117.001, 104.298]) / 255, RGB",
        },
    ),
)

INPUT_CONTRACT = {
    "name": "image",
    "element_type": "u8",
    "layout": "NHWC",
    "color": "BGR",
    "shape": [1, -1, -1, 3],
    "note": "a whole OpenCV frame or face crop of any size; preprocessing is inside the model",
}

Progress = Callable[[str], None]


def with_u8_bgr_input(model: ov.Model) -> ov.Model:
    """Embed the frame contract: u8 BGR NHWC in, the network's f32 RGB inside."""
    ppp = PrePostProcessor(model)
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC")).set_color_format(
        ColorFormat.BGR
    )
    ppp.input().model().set_layout(ov.Layout("NHWC"))
    ppp.input().preprocess().convert_element_type(ov.Type.f32).convert_color(ColorFormat.RGB)
    return ppp.build()


def _write_ir(model: ov.Model, target: Path, precision: str, recipe: ModelRecipe) -> None:
    def metadata(hashes: dict[str, str]) -> dict:
        return {
            "schema": 1,
            "name": recipe.name,
            "precision": precision,
            **recipe.metadata,
            "input": INPUT_CONTRACT,
            "source": {
                "package": FACE_API.name,
                "version": FACE_API.version,
                "integrity": FACE_API.integrity,
                "weights_manifest": recipe.manifest,
                "license": "MIT (c) Vladimir Mandic",
            },
            "builder_version": BUILDER_VERSION,
            "openvino_version": ov.get_version(),
            "ir_sha256": hashes,
        }

    save_ir(model, target, precision == "FP16", metadata)


def build_models(
    models_dir: Path,
    *,
    force: bool = False,
    download_dir: Path | None = None,
    progress: Progress | None = None,
) -> list[dict]:
    """Build every builtin model in FP32 and FP16, then INT8 from FP32 (skipped with a notice
    when NNCF is not installed); return one status row per IR."""
    say = progress or (lambda _msg: None)
    models_dir = Path(models_dir)
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
        probe = models_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ModelBuildError(
            f"cannot write to {models_dir} ({exc.strerror}); choose another --dir or fix permissions"
        ) from exc

    jobs = [(r, p) for r in RECIPES for p in FLOAT_PRECISIONS]
    todo = [(r, p) for r, p in jobs if force or not is_up_to_date(builtin_model_dir(models_dir, r.name, p))]
    samples_ok = sample_clip(models_dir).is_file() and any((models_dir / "samples").glob("*.jpg"))
    rows = [
        {
            "model": r.name,
            "precision": p,
            "status": "up to date",
            "path": str(builtin_model_dir(models_dir, r.name, p)),
        }
        for r, p in jobs
        if (r, p) not in todo
    ]
    if not todo and samples_ok:
        say(f"models in {models_dir} are up to date ({len(jobs)} IR)")
    else:
        rows += _build_float(models_dir, todo, download_dir, say)
    from expressiond.inference.bundled import install_bundled  # the committed default face detector
    from expressiond.tools.modelbuild.int8 import (
        build_int8,  # after FP32: it is quantised from it, on the samples
    )

    rows += _build_human(models_dir, force, download_dir, say)
    rows += install_bundled(models_dir, say)
    return rows + build_int8(models_dir, force=force, progress=say)


def _build_human(models_dir: Path, force: bool, download_dir: Path | None, say: Progress) -> list[dict]:
    """human/emotion (the default ensemble's second member) from its own pinned npm package."""
    from expressiond.tools.modelbuild import human_emotion as human

    targets = [builtin_model_dir(models_dir, human.EMOTION_MODEL, p) for p in FLOAT_PRECISIONS]
    if not force and human.is_built(models_dir):
        status, took = "up to date", None
    else:
        say(f"fetching {human.HUMAN.spec} (npm pack, integrity-checked) for {human.EMOTION_MODEL}")
        t0 = time.monotonic()
        human.build_emotion_ir(models_dir, say=say, download_dir=download_dir, force=True)
        status, took = "built", round(time.monotonic() - t0, 2)
    return [
        {"model": human.EMOTION_MODEL, "precision": p, "status": status, "path": str(t)}
        | ({"seconds": took} if took is not None else {})
        for p, t in zip(FLOAT_PRECISIONS, targets, strict=True)
    ]


def _build_float(models_dir: Path, todo: list, download_dir: Path | None, say: Progress) -> list[dict]:
    rows = []
    download_dir = download_dir or models_dir / ".download"
    say(f"fetching {FACE_API.spec} (npm pack, integrity-checked)")
    tarball = fetch_tarball(FACE_API, download_dir)
    with tempfile.TemporaryDirectory(prefix="expressiond-build-") as tmp:
        package = extract(tarball, Path(tmp))
        _copy_samples(package, models_dir / "samples")
        weights_cache: dict[str, dict] = {}
        for i, (recipe, precision) in enumerate(todo, 1):
            target = builtin_model_dir(models_dir, recipe.name, precision)
            target.parent.mkdir(parents=True, exist_ok=True)
            t0 = time.monotonic()
            if recipe.manifest not in weights_cache:
                weights_cache[recipe.manifest] = load_weights(package / "model", recipe.manifest)
            model = with_u8_bgr_input(recipe.build(weights_cache[recipe.manifest]))
            _write_ir(model, target, precision, recipe)
            took = time.monotonic() - t0
            say(f"[{i}/{len(todo)}] {recipe.name} {precision}: built in {took:.1f} s -> {target}")
            rows.append(
                {
                    "model": recipe.name,
                    "precision": precision,
                    "status": "built",
                    "seconds": round(took, 2),
                    "path": str(target),
                }
            )
    return rows


def _copy_samples(package: Path, dest: Path) -> None:
    """The package's demo photos (MIT, same integrity-checked tarball) are our sample input."""
    dest.mkdir(parents=True, exist_ok=True)
    for src in sorted((package / "demo").glob("sample*.jpg")):
        shutil.copyfile(src, dest / src.name)
    (dest / "SOURCES.md").write_text(
        f"Sample photos from the demo/ folder of the npm package {FACE_API.spec} "
        f"(integrity {FACE_API.integrity}), MIT License, (c) Vladimir Mandic.\n"
        "Copied unchanged by `expressiond models build`. demo.avi is made from them: each "
        "photo scaled to 960x640 and shown for 2 s, then 1.2 s of grey, at 10 fps.\n"
    )
    write_demo_clip(sorted(dest.glob("sample*.jpg")), dest / "demo.avi")


def write_demo_clip(
    photos: list[Path],
    out: Path,
    size: tuple[int, int] = (960, 640),
    hold: int = 20,
    gap: int = 12,
    fps: float = 10.0,
) -> Path:
    """A clip in which every face of every photo appears, stays, and goes: tracks start and end."""
    import cv2
    import numpy as np

    tmp = out.with_suffix(".tmp.avi")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    if not writer.isOpened():
        raise ModelBuildError(f"cannot write {tmp}: OpenCV has no MJPG writer")
    grey = np.full((size[1], size[0], 3), 90, np.uint8)
    for photo in photos:
        frame = cv2.resize(cv2.imread(str(photo)), size, interpolation=cv2.INTER_AREA)
        for _ in range(hold):
            writer.write(frame)
        for _ in range(gap):
            writer.write(grey)
    writer.release()
    os.replace(tmp, out)
    return out
