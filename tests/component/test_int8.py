"""INT8 builtin models (modelbuild/int8.py: NNCF post-training quantisation calibrated on the
sample photos): real INT8 inference on the CPU, compared with FP32.

The INT8 IR is the one `make models` built (<models_dir>/<name>/INT8) when NNCF was installed
there; otherwise the fixture quantises the FP32 IR into a temporary models dir (needs nncf,
~30 s on 2 cores); with neither, these tests skip (fail under CI=true: tests/needs.py). Under
OpenVINO 2022.3 (the Python 3.10 run) the inference tests run on the IR the main venv built;
the build tests need OpenVINO >= 2023.1.

Bounds (measured on the 6 sample photos, 22 faces, and the 70 dev photos; see the test notes):
- same face count as FP32 on every sample photo (measured: equal; lowest face score 0.62
  against the 0.5 threshold, INT8 moves scores by at most 0.044);
- matched boxes IoU >= 0.9 (measured min 0.973), scores within 0.1;
- classifier alone on FP32's crops: 22/22 top-1 agreement. The smallest FP32 top-1 margin on
  these crops is 0.56 (0.78 vs 0.22) and INT8 moves a probability by at most 0.17, so a flip
  would be a real regression;
- detect, then classify: >= 21/22 (measured 22/22). Here INT8's slightly different box gives
  a different crop, and this classifier is crop-sensitive: an earlier quantisation recipe
  with 2% box shifts flipped one face (neutral 0.95 -> happy 0.61) while its crops agreed
  22/22; FP16 (bf16) moves that face by 0.30 too. One flip is allowed, no more;
- dev photos (--crops): accuracy >= FP32's minus 3 images (4.3 points; measured +1 image, and
  -1 with the f32 hint; 68/70 identical predictions) and >= 64/70 predictions equal FP32's.
  1 image = 1.4 points; bf16 FP16 already differs from FP32 on 1 image, and INT8 kernels
  differ between CPUs (VNNI vs AVX2), so the bound leaves 1-2 images of slack beyond that.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from matching import pair_all
from needs import missing, not_applicable

from expressiond.inference.analyzer import AnalyzerSettings, FaceAnalyzer
from expressiond.inference.faceapi import face_crop
from expressiond.paths import BUILTIN_CLASSIFIER, BUILTIN_DETECTOR, builtin_model_dir
from expressiond.tools.evaluate import evaluate

NAMES = (BUILTIN_DETECTOR, BUILTIN_CLASSIFIER)
NNCF_FIX = "pip install 'expressiond[int8]' (make setup does it), then expressiond models build"


def _int8_module():
    try:
        from expressiond.tools.modelbuild import int8
    except Exception:  # noqa: BLE001 - OpenVINO 2022.3 cannot import the model builder
        return None
    return int8


def _has_int8(models_dir: Path) -> bool:
    for name in NAMES:
        d = builtin_model_dir(models_dir, name, "INT8")
        try:
            meta = json.loads((d / "model.json").read_text())
        except (OSError, ValueError):
            return False
        if meta.get("precision") != "INT8" or not (d / "model.bin").is_file():
            return False
    int8 = _int8_module()
    return int8 is None or all(int8.is_up_to_date(models_dir, n) for n in NAMES)


def _copy_fp32(models_dir: Path, dest: Path) -> Path:
    for name in NAMES:
        shutil.copytree(builtin_model_dir(models_dir, name, "FP32"), builtin_model_dir(dest, name, "FP32"))
    (dest / "samples").mkdir()
    for photo in (models_dir / "samples").glob("sample*.jpg"):
        shutil.copyfile(photo, dest / "samples" / photo.name)
    return dest


@pytest.fixture(scope="session")
def int8_models(models_dir, tmp_path_factory) -> Path:
    """A models dir with FP32 and INT8 IR of both builtin models."""
    if _has_int8(models_dir):
        return models_dir
    int8 = _int8_module()
    if int8 is None:
        missing(
            f"INT8 IR in {models_dir}",
            "this OpenVINO cannot build one: build it with the main venv (make models, with nncf)",
        )
    if int8.nncf_version() is None:
        missing("nncf", f"no INT8 IR in {models_dir}: {NNCF_FIX}")
    dest = _copy_fp32(models_dir, tmp_path_factory.mktemp("int8-models"))
    rows = int8.build_int8(dest)
    assert [r["status"] for r in rows] == ["built", "built"], rows
    return dest


@pytest.fixture(scope="module")
def pair(int8_models):
    fp32 = FaceAnalyzer(AnalyzerSettings(int8_models, precision="FP32"))
    int8 = FaceAnalyzer(AnalyzerSettings(int8_models, precision="INT8"))
    return fp32, int8


@pytest.fixture(scope="module")
def photos(sample_images):
    return [cv2.imread(str(p)) for p in sample_images]


def _top1(scores: dict) -> str:
    return max(scores, key=scores.get)


def _rt(op, key: str) -> str:
    value = op.get_rt_info()[key]
    return value.astype(str) if hasattr(value, "astype") else str(value)


def test_int8_ir_runs_int8_kernels_on_the_cpu(pair, int8_models):
    """Not a relabelled float model: in the CPU plugin's executable graph every convolution of
    the FP32 IR (and the classifier's fully connected layer) runs in u8/i8, except the
    detector's depthwise ones, which stay float by design. (OpenVINO 2022.3 runs the
    classifier's quantised depthwise convolutions in FP32 too: only the others count there.)"""
    from expressiond.inference.ovcompat import LEGACY

    fp32, int8 = pair
    cls_kinds = ("Convolution",) if LEGACY else ("Convolution", "GroupConvolution")
    for net, ref, kinds in (
        (int8.detector, fp32.detector, ("Convolution",)),
        (int8.classifier, fp32.classifier, cls_kinds),
    ):
        assert net.meta.precision == "INT8"
        convs = sum(op.get_type_name() in kinds for op in ref.adapter.model.get_ops())
        runtime = [
            (_rt(op, "layerType"), _rt(op, "runtimePrecision").lower())
            for op in net.compiled.get_runtime_model().get_ops()
        ]
        int8_convs = sum(kind == "Convolution" and prec in ("u8", "i8") for kind, prec in runtime)
        assert convs > 10 and int8_convs == convs, (net.meta.name, int8_convs, convs)
    runtime = {
        (_rt(op, "layerType"), _rt(op, "runtimePrecision").lower())
        for op in int8.classifier.compiled.get_runtime_model().get_ops()
    }
    assert {("FullyConnected", "u8"), ("FullyConnected", "i8")} & runtime, runtime
    for name in NAMES:
        size = {
            p: (builtin_model_dir(int8_models, name, p) / "model.bin").stat().st_size
            for p in ("FP32", "INT8")
        }
        assert size["INT8"] < 0.4 * size["FP32"], size  # int8 weights: about a quarter


def test_metadata_records_what_it_was_made_from(int8_models, sample_images):
    for name in NAMES:
        meta = json.loads((builtin_model_dir(int8_models, name, "INT8") / "model.json").read_text())
        fp32 = json.loads((builtin_model_dir(int8_models, name, "FP32") / "model.json").read_text())
        q = meta["quantization"]
        assert meta["precision"] == "INT8" and meta["kind"] == fp32["kind"]
        assert meta["labels"] == fp32["labels"] and meta["input"] == fp32["input"]
        assert q["from_fp32_sha256"] == fp32["ir_sha256"]
        assert q["calibration"]["photos"] == [p.name for p in sample_images]
        assert q["calibration"]["faces"] == 22
        assert q["tool"].startswith("nncf ")


def test_same_faces_and_expressions_as_fp32_on_every_sample_photo(pair, photos):
    fp32, int8 = pair
    crops_agree = pipeline_agree = n = 0
    for k, image in enumerate(photos, 1):
        want, got = fp32.analyze(image), int8.analyze(image)
        assert len(got) == len(want), f"sample{k}: INT8 finds {len(got)} faces, FP32 {len(want)}"
        # paired by box, one to one, every FP32 face found (never by position)
        for i, j, _iou in pair_all([f.box for f in want], [g.box for g in got], min_iou=0.9):
            face, match = want[i], got[j]
            assert abs(face.score - match.score) <= 0.1, (k, face.score, match.score)
            pipeline_agree += _top1(match.scores) == _top1(face.scores)
            crops_agree += _top1(int8.classify(face_crop(image, face.box))) == _top1(face.scores)
            n += 1
    assert n == 22
    assert crops_agree == n, f"classifier on FP32's crops: {crops_agree}/{n} agree"
    assert pipeline_agree >= n - 1, f"detect then classify: {pipeline_agree}/{n} agree"


def test_dev_photo_accuracy_within_three_images_of_fp32(pair, expressions_dir):
    fp32, int8 = pair
    labels = expressions_dir / "labels.csv"
    want = evaluate(fp32, expressions_dir, labels, crops=True)
    got = evaluate(int8, expressions_dir, labels, crops=True)
    assert got["n"] == want["n"] == 70
    correct = {r["file"]: r["predicted"] for r in want["images"]}
    same = sum(r["predicted"] == correct[r["file"]] for r in got["images"])
    assert got["accuracy"] >= want["accuracy"] - 3 / 70 - 1e-9, (got["accuracy"], want["accuracy"])
    assert same >= 64, f"only {same}/70 INT8 predictions equal FP32's"


def test_cli_classify_with_precision_int8(int8_models, sample_images):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "expressiond.cli",
            "classify",
            "--json",
            "--precision",
            "INT8",
            "--models",
            str(int8_models),
            str(sample_images[0]),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    (result,) = json.loads(proc.stdout)
    assert len(result["faces"]) == 3


# --- the build step (OpenVINO >= 2023.1) ---------------------------------------------------


@pytest.fixture
def int8_mod():
    int8 = _int8_module()
    if int8 is None:  # the py310 run: a property of OpenVINO 2022.3, not a missing input
        not_applicable("the model builder needs OpenVINO 2023.1 or newer")
    return int8


def test_float_ops_keep_preprocessing_and_decoding_in_float(int8_mod, models_dir):
    import openvino as ov

    core = ov.Core()
    for name, must_float in (
        (BUILTIN_DETECTOR, {"Interpolate", "Pad", "Exp", "Sigmoid", "Concat"}),
        (BUILTIN_CLASSIFIER, {"Interpolate", "Pad", "Softmax"}),
    ):
        model = core.read_model(str(builtin_model_dir(models_dir, name, "FP32") / "model.xml"))
        types = {op.get_friendly_name(): op.get_type_name() for op in model.get_ops()}
        depthwise = {n for n, t in types.items() if t == "GroupConvolution"}
        kept = set(int8_mod.float_ops(model))
        assert must_float <= {types[n] for n in kept}
        assert not any(types[n] in ("Convolution", "GroupConvolution", "MatMul") for n in kept)
        with_dw = set(int8_mod.float_ops(model, depthwise=True))
        assert depthwise and with_dw == kept | depthwise


def test_build_is_idempotent_and_notices_changed_inputs(int8_mod, int8_models):
    def stamps():
        return [(builtin_model_dir(int8_models, n, "INT8") / "model.bin").stat().st_mtime_ns for n in NAMES]

    before = stamps()
    said: list[str] = []
    rows = int8_mod.build_int8(int8_models, progress=said.append)
    assert [r["status"] for r in rows] == ["up to date", "up to date"]
    assert said == [f"INT8 models in {int8_models} are up to date (2 IR)"]
    assert stamps() == before
    assert not int8_mod.is_up_to_date(int8_models, BUILTIN_DETECTOR, photos_hash="0" * 64)


def test_models_build_without_nncf_skips_int8_with_one_notice(int8_mod, models_dir, tmp_path, monkeypatch):
    """FP32/FP16 up to date (copied), no INT8, NNCF "not installed": the build succeeds, says
    so in one line, writes no INT8 and needs no network."""
    from expressiond.tools.modelbuild.build import build_models

    for name in NAMES:
        for precision in ("FP32", "FP16"):
            shutil.copytree(
                builtin_model_dir(models_dir, name, precision), builtin_model_dir(tmp_path, name, precision)
            )
    shutil.copytree(models_dir / "samples", tmp_path / "samples")
    monkeypatch.setattr(int8_mod, "nncf_version", lambda: None)
    said: list[str] = []
    rows = build_models(tmp_path, progress=said.append)
    assert [(r["precision"], r["status"]) for r in rows] == [
        ("FP32", "up to date"),
        ("FP16", "up to date"),
        ("FP32", "up to date"),
        ("FP16", "up to date"),
        ("FP32", "copied"),
        ("FP16", "copied"),  # the bundled default face detector
        ("INT8", "skipped: nncf not installed"),
        ("INT8", "skipped: nncf not installed"),
    ]
    notices = [m for m in said if "INT8" in m]
    assert notices == [
        "INT8 skipped: NNCF is not installed (pip install 'expressiond[int8]' "
        "adds it); FP32 and FP16 are unaffected"
    ]
    assert not any(tmp_path.glob("face-api/*/INT8"))


def test_nncf_telemetry_is_off(int8_mod):
    if int8_mod.nncf_version() is None:
        missing("nncf", NNCF_FIX)
    assert os.environ.get("NNCF_CI") == "1"


def test_int8_with_a_detector_without_int8_ir_says_so(int8_models):
    """The bundled detector (omz/face-detection-retail-0005) has no INT8 IR: INT8 runs its FP16
    IR, and classify says so on stderr (once) instead of running FP16 silently; with the
    builtin detector, which has INT8 IR, nothing is said. Real models, real OpenVINO."""
    photo = next((int8_models / "samples").glob("sample*.jpg"))

    def classify(*extra: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "expressiond.cli", "classify", "--models", str(int8_models)]
        cmd += ["--precision", "INT8", *extra, str(photo)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)

    bundled = classify()
    assert bundled.returncode == 0, bundled.stderr
    warnings = [line for line in bundled.stderr.splitlines() if "has no INT8 IR" in line]
    assert len(warnings) == 1, bundled.stderr
    assert warnings[0].startswith("WARNING ") and "omz/face-detection-retail-0005" in warnings[0]
    assert "running its FP16 IR instead" in warnings[0]
    builtin = classify("--detector", BUILTIN_DETECTOR)
    assert builtin.returncode == 0 and "has no INT8 IR" not in builtin.stderr, builtin.stderr
