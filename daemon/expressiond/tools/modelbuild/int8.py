"""INT8 IR of the builtin models: NNCF post-training quantisation of the FP32 IR, calibrated on
the bundled sample photos (``<models_dir>/samples/sample*.jpg``), nothing else.

Calibration data:

- detector: each photo as is, mirrored and at half size, plus a close-up window around every
  face (side 2.5x the face) so that big faces are in range too;
- classifier: every face the FP32 detector finds in the photos, cropped as the daemon crops it,
  tighter (0.85x) and looser (1.25x), each also mirrored, plus a grey and a small (40 px) copy.

What stays in float: the graph's own preprocessing (pad, resize, normalise), the detector's
box decoding (quantising it moved boxes by up to 13% IoU on the samples) and the detector's
depthwise convolutions (per-tensor INT8 activations there cost most of its box accuracy:
median box IoU with FP32 0.961 -> 0.983 on the dev photos, min on the samples 0.954 -> 0.973,
when they stay float; no throughput cost measured). The classifier keeps its depthwise layers
in INT8: its top-1 agrees with FP32 either way, and in its small 112x112 graph the float
islands cost more in conversions than they save (daemon pipeline: 32-35 fps against 39-42).

Idempotent like the float build: model.json records the FP32 IR hashes and the calibration
photos' hash it was made from; an INT8 IR whose inputs and files are unchanged is left alone.
NNCF is an optional dependency (``pip install 'expressiond[int8]'``): without it the INT8 step
is skipped with a notice and FP32/FP16 are unaffected.

Thread: the command's main thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import openvino as ov

from expressiond.errors import ModelBuildError
from expressiond.paths import BUILTIN_CLASSIFIER, BUILTIN_DETECTOR, builtin_model_dir, samples_dir
from expressiond.tools.modelbuild.irfiles import is_up_to_date as ir_is_intact
from expressiond.tools.modelbuild.irfiles import save_ir

log = logging.getLogger(__name__)

INT8 = "INT8"
INT8_VERSION = 2  # bump when the calibration set or the quantisation settings change
WEIGHTED_OPS = frozenset(("Convolution", "GroupConvolution", "MatMul"))
DEPTHWISE = "GroupConvolution"  # kept float in the detector: see the docstring
CROP_SCALES = (1.0, 0.85, 1.25)  # classifier crops: as the daemon crops, tighter, looser
SMALL_FACE_PX = 40  # a distant face
CLOSEUP = 2.5  # detector close-up window side, in face sizes
INSTALL_HINT = "pip install 'expressiond[int8]'"

Progress = Callable[[str], None]


def nncf_version() -> str | None:
    """NNCF's version, or None when it cannot be imported (the INT8 step is then skipped)."""
    # NNCF sends usage telemetry without asking unless NNCF_CI is set (its only effect): a
    # daemon's build step must not phone home.
    os.environ.setdefault("NNCF_CI", "1")
    try:
        import nncf
    except Exception as exc:  # noqa: BLE001 - ImportError, or a broken install
        log.debug("nncf is not importable: %s", exc)
        return None
    return str(nncf.__version__)


@dataclass(frozen=True)
class CalibrationSet:
    detector: list[np.ndarray]
    classifier: list[np.ndarray]
    photos: tuple[str, ...]
    faces: int
    sha256: str  # of the photos' bytes, in name order


def sample_photos(models_dir: Path) -> list[Path]:
    photos = sorted(samples_dir(models_dir).glob("sample*.jpg"))
    if not photos:
        raise ModelBuildError(
            f"no sample photos in {samples_dir(models_dir)} to calibrate INT8 "
            "on; run `expressiond models build --force`"
        )
    return photos


def photos_sha256(photos: list[Path]) -> str:
    h = hashlib.sha256()
    for p in photos:
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def scaled_box(box, scale: float, square: bool = False) -> tuple[float, float, float, float]:
    x, y, w, h = box
    if square:
        w = h = max(w, h)
    cx, cy = x + box[2] / 2, y + box[3] / 2
    return (cx - w * scale / 2, cy - h * scale / 2, w * scale, h * scale)


def detector_items(photos: list[np.ndarray], faces: list[list]) -> list[np.ndarray]:
    """Whole photos at a few scales and mirrored, plus one close-up per face."""
    import cv2

    from expressiond.inference.faceapi import face_crop

    items = []
    for image, boxes in zip(photos, faces, strict=True):
        items += [
            image,
            np.ascontiguousarray(image[:, ::-1]),
            cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA),
        ]
        for box in boxes:
            window = face_crop(image, scaled_box(box, CLOSEUP, square=True))
            if window is not None:
                items.append(window)
    return items


def classifier_items(photos: list[np.ndarray], faces: list[list]) -> list[np.ndarray]:
    """Every face cropped at three scales, each mirrored, plus a grey and a small copy."""
    import cv2

    from expressiond.inference.faceapi import face_crop

    items = []
    for image, boxes in zip(photos, faces, strict=True):
        for box in boxes:
            for scale in CROP_SCALES:
                crop = face_crop(image, scaled_box(box, scale))
                if crop is None:
                    continue
                items += [crop, np.ascontiguousarray(crop[:, ::-1])]
                if scale == 1.0:
                    grey = cv2.cvtColor(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
                    f = SMALL_FACE_PX / max(crop.shape[:2])
                    small = cv2.resize(crop, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
                    items += [grey, small]
    return items


def calibration_set(models_dir: Path) -> CalibrationSet:
    """The sample photos and the faces the FP32 models find in them, as calibration inputs."""
    import cv2

    from expressiond.inference.analyzer import AnalyzerSettings, FaceAnalyzer

    paths = sample_photos(models_dir)
    photos = []
    for p in paths:
        image = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if image is None:
            raise ModelBuildError(
                f"{p}: cannot decode the sample photo; run `expressiond models "
                "build --force` to copy the samples again"
            )
        photos.append(image)
    analyzer = FaceAnalyzer(
        AnalyzerSettings(Path(models_dir), device="CPU", precision="FP32", performance_hint="LATENCY")
    )
    faces = [[box for _score, _rel, box in analyzer.detect(image)] for image in photos]
    del analyzer
    return CalibrationSet(
        detector_items(photos, faces),
        classifier_items(photos, faces),
        tuple(p.name for p in paths),
        sum(map(len, faces)),
        photos_sha256(paths),
    )


def float_ops(model: ov.Model, depthwise: bool = False) -> list[str]:
    """Names of the ops kept in float: all but the span from the first to the last weighted
    layer (the in-graph preprocessing, the heads' bias adds, the box decoding), and with
    ``depthwise`` the depthwise convolutions inside it."""
    ops = model.get_ordered_ops()
    below: set[str] = set()  # a weighted op is upstream (or it is one)
    for op in ops:
        if op.get_type_name() in WEIGHTED_OPS or any(
            i.get_source_output().get_node().get_friendly_name() in below for i in op.inputs()
        ):
            below.add(op.get_friendly_name())
    above: set[str] = set()  # a weighted op is downstream (or it is one)
    for op in reversed(ops):
        if op.get_type_name() in WEIGHTED_OPS or any(
            t.get_node().get_friendly_name() in above for out in op.outputs() for t in out.get_target_inputs()
        ):
            above.add(op.get_friendly_name())
    return [
        op.get_friendly_name()
        for op in ops
        if op.get_type_name() not in ("Constant", "Parameter", "Result")
        and (
            (depthwise and op.get_type_name() == DEPTHWISE)
            or not (op.get_friendly_name() in below and op.get_friendly_name() in above)
        )
    ]


@contextlib.contextmanager
def _quiet_nncf():
    """NNCF logs to its own stdout handler and draws progress bars on stdout: route its log
    records through ours (warnings and up) and drop the bars, so `models build --json` keeps
    stdout clean."""
    nlog = logging.getLogger("nncf")
    saved = (list(nlog.handlers), nlog.propagate, nlog.level)
    nlog.handlers.clear()
    nlog.propagate = True
    nlog.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        nlog.handlers[:] = saved[0]
        nlog.propagate, nlog.level = saved[1], saved[2]


def quantize(model: ov.Model, items: list[np.ndarray], depthwise_float: bool = False) -> ov.Model:
    """nncf.quantize with its defaults (MIXED preset, fast bias correction), every item used."""
    nncf_version()
    import nncf

    with _quiet_nncf():
        return nncf.quantize(
            model,
            nncf.Dataset(items, lambda image: image[None]),
            subset_size=len(items),
            ignored_scope=nncf.IgnoredScope(names=float_ops(model, depthwise_float), validate=False),
        )


def int8_dir(models_dir: Path, name: str) -> Path:
    return builtin_model_dir(models_dir, name, INT8)


def is_up_to_date(models_dir: Path, name: str, photos_hash: str | None = None) -> bool:
    """The INT8 IR is intact and was made by this recipe from today's FP32 IR and photos."""
    target = int8_dir(models_dir, name)
    try:
        meta = json.loads((target / "model.json").read_text())
        fp32 = json.loads((builtin_model_dir(models_dir, name, "FP32") / "model.json").read_text())
        q = meta["quantization"]
        photos_hash = photos_hash or photos_sha256(sample_photos(models_dir))
        return (
            ir_is_intact(target)
            and q["int8_version"] == INT8_VERSION
            and q["from_fp32_sha256"] == fp32["ir_sha256"]
            and q["calibration"]["sha256"] == photos_hash
        )
    except (OSError, ValueError, KeyError, TypeError, ModelBuildError):
        return False


def write_int8(model: ov.Model, models_dir: Path, name: str, quantization: dict) -> Path:
    """Save the IR with the FP32 metadata (precision INT8, new hashes) atomically."""
    target = int8_dir(models_dir, name)
    fp32_meta = json.loads((builtin_model_dir(models_dir, name, "FP32") / "model.json").read_text())
    save_ir(
        model,
        target,
        False,
        lambda hashes: {
            **fp32_meta,
            "precision": INT8,
            "openvino_version": ov.get_version(),
            "quantization": {**quantization, "from_fp32_sha256": fp32_meta["ir_sha256"]},
            "ir_sha256": hashes,
        },
    )
    return target


def build_int8(models_dir: Path, *, force: bool = False, progress: Progress | None = None) -> list[dict]:
    """Quantise both builtin FP32 IR to INT8 in <models_dir>/<name>/INT8; one row per model.

    Needs the FP32 IR and the sample photos (``build_models`` makes both first). Without NNCF
    the rows say "skipped" and nothing is written; an INT8 IR already up to date is kept.
    """
    say = progress or (lambda _msg: None)
    models_dir = Path(models_dir)
    names = (BUILTIN_DETECTOR, BUILTIN_CLASSIFIER)
    photos_hash = photos_sha256(sample_photos(models_dir))
    todo = [n for n in names if force or not is_up_to_date(models_dir, n, photos_hash)]
    rows = [
        {"model": n, "precision": INT8, "status": "up to date", "path": str(int8_dir(models_dir, n))}
        for n in names
        if n not in todo
    ]
    if not todo:
        say(f"INT8 models in {models_dir} are up to date ({len(names)} IR)")
        return rows
    version = nncf_version()
    if version is None:
        say(f"INT8 skipped: NNCF is not installed ({INSTALL_HINT} adds it); FP32 and FP16 are unaffected")
        return rows + [
            {
                "model": n,
                "precision": INT8,
                "status": "skipped: nncf not installed",
                "path": str(int8_dir(models_dir, n)),
            }
            for n in todo
        ]
    t0 = time.monotonic()
    calib = calibration_set(models_dir)
    say(
        f"INT8: calibration set from {len(calib.photos)} sample photos, {calib.faces} faces "
        f"({len(calib.detector)} detector / {len(calib.classifier)} classifier inputs) in "
        f"{time.monotonic() - t0:.1f} s"
    )
    core = ov.Core()
    for i, name in enumerate(todo, 1):
        t0 = time.monotonic()
        items = calib.detector if name == BUILTIN_DETECTOR else calib.classifier
        say(
            f"[INT8 {i}/{len(todo)}] {name}: NNCF {version} post-training quantisation on "
            f"{len(items)} inputs ..."
        )
        fp32 = builtin_model_dir(models_dir, name, "FP32") / "model.xml"
        try:
            model = quantize(core.read_model(str(fp32)), items, depthwise_float=name == BUILTIN_DETECTOR)
        except Exception as exc:  # noqa: BLE001 - NNCF raises many kinds; one line for the operator
            raise ModelBuildError(
                f"INT8 quantisation of {name} with NNCF {version} failed ({exc}); FP32 and FP16 "
                f"are built; try another NNCF release ({INSTALL_HINT}) or run FP32/FP16"
            ) from exc
        target = write_int8(
            model,
            models_dir,
            name,
            {
                "method": "nncf.quantize post-training, MIXED preset, fast bias correction",
                "tool": f"nncf {version}",
                "int8_version": INT8_VERSION,
                "float_ops": "in-graph preprocessing, head bias adds, box decoding"
                + (", depthwise convolutions" if name == BUILTIN_DETECTOR else ""),
                "calibration": {
                    "photos": list(calib.photos),
                    "sha256": calib.sha256,
                    "faces": calib.faces,
                    "inputs": len(items),
                },
            },
        )
        took = time.monotonic() - t0
        say(f"[INT8 {i}/{len(todo)}] {name}: built in {took:.1f} s -> {target}")
        rows.append(
            {
                "model": name,
                "precision": INT8,
                "status": "built",
                "seconds": round(took, 2),
                "path": str(target),
            }
        )
    return rows
