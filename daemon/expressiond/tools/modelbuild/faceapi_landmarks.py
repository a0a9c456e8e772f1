"""face-api's 68-point landmark net (``face_landmark_68_tiny_model``), rebuilt op for op in
OpenVINO like the expression net (faceapi_nets.py), for aligning face crops on the eye line.

Mirrors src/faceFeatureExtractor/TinyFaceFeatureExtractor.ts, denseBlock.ts (denseBlock3) and
src/faceLandmarkNet/FaceLandmark68NetBase.ts of @vladmandic/face-api 1.7.15: the crop is
zero-padded centred to square, resized to 112, normalised as the expression net, three dense
blocks, a 14x14 average pool (stride 2) and a fully connected layer to 136 values: x0, y0,
x1, y1, ... in 0..1 of the padded square. ``landmarks_in_crop`` turns them into pixels of the
crop as face-api's postProcess does.

``build_landmark_ir`` writes the IR (FP32, FP16) and its metadata into
``<models_dir>/face-api/landmark68_tiny/<precision>/`` from the same pinned npm package as the
builtin models; nothing of the daemon's runtime reads it yet (benchmarks/accuracy.py does).

Thread: the caller's (`models build`, benchmarks/accuracy.py).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import openvino as ov
from openvino import opset13 as ops

from expressiond.tools.modelbuild import graph as g
from expressiond.tools.modelbuild.build import with_u8_bgr_input
from expressiond.tools.modelbuild.faceapi_nets import EXPRESSION_MEAN_RGB, dense_block
from expressiond.tools.modelbuild.irfiles import ir_is_current, save_ir
from expressiond.tools.modelbuild.npm_package import FACE_API, extract, fetch_tarball
from expressiond.tools.modelbuild.tfjs_weights import load_weights

LANDMARK_MODEL = "face-api/landmark68_tiny"
LANDMARK_MANIFEST = "face_landmark_68_tiny_model-weights_manifest.json"
LANDMARK_INPUT = 112
LANDMARK_BUILDER_VERSION = 1
# 68-point (iBUG 300-W) indices: the subject's right eye is 36-41, the left eye 42-47
RIGHT_EYE = slice(36, 42)
LEFT_EYE = slice(42, 48)


def build_landmark_net(w: dict[str, np.ndarray]) -> ov.Model:
    """float32 RGB NHWC [1, H, W, 3] 0..255 -> "landmarks" [1, 136] in 0..1 of the padded square."""
    image = ops.parameter(ov.PartialShape([1, -1, -1, 3]), ov.Type.f32, name="image")
    x = g.pad_to_square_nhwc(image, centred=True)
    x = g.resize_bilinear_nhwc(x, LANDMARK_INPUT)
    x = ops.divide(ops.subtract(x, g.const(EXPRESSION_MEAN_RGB)), g.const(255.0))
    x = g.to_nchw(x)
    for i in range(3):
        x = dense_block(x, w, f"dense{i}", first=(i == 0), convs=3)
    x = ops.avg_pool(x, [2, 2], [0, 0], [0, 0], [14, 14], True, "floor", "valid")
    x = ops.reshape(x, g.const([1, 128], np.int64), False)
    out = ops.add(ops.matmul(x, g.const(w["fc/weights"]), False, False), g.const(w["fc/bias"]))
    out.output(0).get_tensor().set_names({"landmarks"})
    return ov.Model([out.output(0)], [image], "faceapi_landmark68_tiny")


def landmarks_in_crop(values: np.ndarray, width: int, height: int) -> np.ndarray:
    """[68, 2] pixel coordinates in the crop from the net's 136 values (face-api postProcess:
    the padded square's side times the value, minus the centred padding)."""
    pts = np.asarray(values, np.float64).reshape(68, 2)
    side = max(width, height)
    pad = np.array([(side - width) / 2, (side - height) / 2])
    return pts * side - pad


def eye_centres(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(subject's right eye, subject's left eye) centres; in an unmirrored image the right
    eye has the smaller x."""
    return points[RIGHT_EYE].mean(0), points[LEFT_EYE].mean(0)


def build_landmark_ir(models_dir: Path, download_dir: Path | None = None, say=print) -> list[Path]:
    """Build the landmark net's IR (FP32 and FP16) from the pinned face-api package (left
    alone when already built from it)."""
    models_dir = Path(models_dir)
    targets = [models_dir / LANDMARK_MODEL / p for p in ("FP32", "FP16")]
    if all(ir_is_current(t, FACE_API.integrity, LANDMARK_BUILDER_VERSION) for t in targets):
        return [t / "model.xml" for t in targets]
    tarball = fetch_tarball(FACE_API, download_dir or models_dir / ".download")
    written = []
    with tempfile.TemporaryDirectory(prefix="expressiond-build-") as tmp:
        package = extract(tarball, Path(tmp))
        weights = load_weights(package / "model", LANDMARK_MANIFEST)
        for precision in ("FP32", "FP16"):
            target = models_dir / LANDMARK_MODEL / precision
            model = with_u8_bgr_input(build_landmark_net(weights))

            def metadata(hashes: dict[str, str], precision=precision) -> dict:
                return {
                    "schema": 1,
                    "name": LANDMARK_MODEL,
                    "kind": "landmarks",
                    "precision": precision,
                    "outputs": {
                        "landmarks": "[1, 136] x, y of 68 points in 0..1 of the centred padded square"
                    },
                    "source": {
                        "package": FACE_API.name,
                        "version": FACE_API.version,
                        "integrity": FACE_API.integrity,
                        "weights_manifest": LANDMARK_MANIFEST,
                        "license": "MIT (c) Vladimir Mandic",
                    },
                    "builder_version": LANDMARK_BUILDER_VERSION,
                    "openvino_version": ov.get_version(),
                    "ir_sha256": hashes,
                }

            save_ir(model, target, precision == "FP16", metadata)
            say(f"built {LANDMARK_MODEL} {precision} -> {target}")
            written.append(target / "model.xml")
    return written
