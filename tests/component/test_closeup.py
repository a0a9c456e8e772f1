"""Close-up faces (issue 8): the default detector finds faces that fill the frame, the default
classifier settings beat the original net on whole photos, and the daemon makes events for a
close-up clip. Real OpenVINO on the CPU, the bundled Open Model Zoo IR (models/omz/...), the
labelled dev photos and clips in shared/data (tests skip when those are absent, fail under CI).

Floors (70 dev photos: one photo = 1.4 points, so differences under ~3 points are noise):
detection recall >= 0.95; detect-then-classify top-1 >= the original net on whole photos + 3
points; FP16 within 1 point of FP32 (on 70 photos: the same number right).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
from needs import need
from shared_data import HOW_TO_FIX, VIDEOS

from expressiond import paths
from expressiond.config import load_config
from expressiond.errors import ModelError
from expressiond.inference.analyzer import AnalyzerSettings, FaceAnalyzer, product_settings
from expressiond.inference.augment import mirror_average
from expressiond.inference.bundled import install_bundled, is_intact
from expressiond.inference.ovcompat import PartialShape, Type, ov
from expressiond.inference.ovcompat import opset as ops
from expressiond.tools.evaluate import evaluate, evaluate_clip, lost_faces, read_clip

from .clipmaker import write_clip

REPO = Path(__file__).resolve().parents[2]
CLIPS = sorted(p for p in VIDEOS.glob("*") if p.suffix in (".gif", ".avi")) if VIDEOS.is_dir() else []
RECALL_FLOOR = 0.95
GAIN_FLOOR = 0.03


@pytest.fixture(scope="module")
def product(models_dir):
    return {p: FaceAnalyzer(product_settings(models_dir, precision=p)) for p in ("FP32", "FP16")}


@pytest.fixture(scope="module")
def dev_results(product, expressions_dir):
    return {
        p: evaluate(a, expressions_dir, expressions_dir / "labels.csv", crops=False)
        for p, a in product.items()
    }


def test_bundled_detector_is_intact_licensed_and_the_default(tmp_path):
    for precision in paths.FLOAT_PRECISIONS:
        folder = paths.bundled_model_dir(paths.BUNDLED_DETECTOR, precision)
        assert is_intact(folder), f"{folder}: files differ from the sha256 in model.json"
        meta = json.loads((folder / "model.json").read_text())
        assert meta["source"]["license"] == "Apache-2.0" and meta["precision"] == precision
    base = paths.bundled_model_dir(paths.BUNDLED_DETECTOR, "FP32").parent
    assert "Apache License" in (base / "LICENSE").read_text()
    assert "open_model_zoo" in (base / "SOURCES.md").read_text()
    # found from any models dir (the checkout), INT8 falls back to the FP16 IR
    assert paths.builtin_model_dir(tmp_path, paths.BUNDLED_DETECTOR, "INT8") == paths.bundled_model_dir(
        paths.BUNDLED_DETECTOR, "FP16"
    )
    # models build's copy for an installed tree: copied once, then up to date
    rows = install_bundled(tmp_path)
    assert {r["status"] for r in rows} == {"copied"} and len(rows) == 2
    assert {r["status"] for r in install_bundled(tmp_path)} == {"up to date"}
    assert (
        paths.builtin_model_dir(tmp_path, paths.BUNDLED_DETECTOR, "FP32")
        == tmp_path / paths.BUNDLED_DETECTOR / "FP32"
    )
    assert (tmp_path / paths.BUNDLED_DETECTOR / "LICENSE").is_file()
    cfg = load_config(str(REPO / "config" / "expressiond.toml"))
    assert cfg.detector.model == paths.DEFAULT_DETECTOR == paths.BUNDLED_DETECTOR
    assert (cfg.classifier.flip, cfg.classifier.crop, cfg.classifier.margin) == (True, "auto", None)


@pytest.mark.parametrize("precision", ["FP32", "FP16"])
def test_default_detector_recall_on_close_up_photos(dev_results, precision):
    result = dev_results[precision]
    assert result["n"] == 70
    assert result["detector"] == paths.DEFAULT_DETECTOR
    assert result["detection_recall"] >= RECALL_FLOOR, result["detection_recall"]


def test_default_classifier_beats_the_original_on_whole_photos(models_dir, expressions_dir, dev_results):
    whole = evaluate(
        FaceAnalyzer(AnalyzerSettings(models_dir)),
        expressions_dir,
        expressions_dir / "labels.csv",
        crops=True,
    )
    fp32, fp16 = dev_results["FP32"], dev_results["FP16"]
    assert (fp32["flip"], fp32["crop"]) == (True, {"square": True, "enlarge": 1.0})
    assert fp32["accuracy"] >= whole["accuracy"] + GAIN_FLOOR, (fp32["accuracy"], whole["accuracy"])
    # FP16 (bf16 here) predicts what FP32 predicts, photo by photo. One borderline photo of
    # the 70 flips between the two with any change to the pixels (measured: converting frames
    # to f32 before or after the detector's resize swaps which precision gets it right), so
    # the totals may differ by that one photo, 1.4 points, and no more.
    same = sum(a["predicted"] == b["predicted"] for a, b in zip(fp32["images"], fp16["images"], strict=True))
    assert same >= 67, f"FP16 and FP32 agree on {same}/70 photos (want >= 95 %; 68 measured)"
    assert abs(fp16["accuracy"] - fp32["accuracy"]) <= 1 / 70 + 1e-9, (fp16["accuracy"], fp32["accuracy"])
    assert fp32["per_class_recall"]["happy"] >= 0.8


def test_no_face_lost_on_the_clips_compared_with_face_api(models_dir, product):
    """Every face face-api's SSD finds in a frame (every second frame of each clip) is found by
    the default detector too, and the default detector finds a face in every frame."""
    need(CLIPS, str(VIDEOS), f"no .avi/.gif clips there: {HOW_TO_FIX}")
    faceapi = FaceAnalyzer(AnalyzerSettings(models_dir))
    for clip in CLIPS:
        frames = read_clip(clip)[::2]
        old = evaluate_clip(faceapi, clip, frames)
        new = evaluate_clip(product["FP32"], clip, frames)
        assert lost_faces(old["boxes"], new["boxes"]) == 0, clip.name
        assert new["frames_without_face"] == 0, (clip.name, new["faces_per_frame"])
        assert new["faces_mean"] >= old["faces_mean"], clip.name


def test_flip_in_the_graph_mirrors_after_the_resize_and_refuses_a_batch_one_model(models_dir):
    """face-api's net is mirrored after its 112x112 resize: on a 112x112 crop (no pad, resize
    1:1) that is exactly the mean of the crop and its mirror image as two requests; on a
    larger crop it stays close to that. A graph that cannot run a batch of two is refused."""
    image = cv2.imread(str(models_dir / "samples" / "sample1.jpg"))
    # FP32 (f32 arithmetic): the 1e-5 is the graph's exactness, not bf16's rounding
    plain = FaceAnalyzer(AnalyzerSettings(models_dir, precision="FP32"))
    flipped = FaceAnalyzer(AnalyzerSettings(models_dir, precision="FP32", flip=True))
    assert flipped.classifier.info["flip"] is True and plain.classifier.info["flip"] is False
    for crop, tolerance in ((image[100:212, 200:312], 1e-5), (image[100:300, 200:360], 0.2)):
        crop = np.ascontiguousarray(crop)
        a = plain.classify(crop)
        b = plain.classify(np.ascontiguousarray(crop[:, ::-1]))
        got = flipped.classify(crop)
        assert abs(sum(got.values()) - 1) < 1e-4
        assert max(abs((a[k] + b[k]) / 2 - got[k]) for k in got) < tolerance, (crop.shape, got)
    pairs = [
        op
        for op in flipped.classifier.adapter.model.get_ordered_ops()
        if op.get_type_name() == "Concat"
        and op.get_input_size() == 2
        and op.input_value(1).get_node().get_type_name() == "Slice"
    ]
    assert [op.input_value(0).get_node().get_type_name() for op in pairs] == ["Interpolate"]
    param = ops.parameter(PartialShape([1, -1, -1, 3]), Type.u8, name="image")
    flat = ops.reshape(ops.convert(param, "f32"), ops.constant(np.array([3, -1], np.int64)), False)
    model = ov.Model([ops.reduce_mean(flat, ops.constant(np.array([1], np.int64)), True)], [param], "odd")
    with pytest.raises(ModelError, match="set flip = false in \\[classifier\\]"):
        mirror_average(model, "odd.xml")


def _dev_rows(expressions_dir: Path) -> list[dict]:
    with open(expressions_dir / "labels.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_daemon_makes_events_for_a_close_up_clip(tmp_path, expressions_dir):
    """The first three dev photos of each class, each scaled to fill a 640x480 frame's height
    and held 15 frames at 10 fps, 6 blank frames between: `expressiond run` with the default
    detector and classifier starts and ends a track for most photos, many with the labelled
    expression (measured: 18 and 12 of 21 with the face-api + human ensemble and enter_threshold
    0.45; 18-19 and 12 with face-api's net alone at 0.6; face-api's SSD, the older default
    detector, makes no event)."""
    rows = _dev_rows(expressions_dir)
    chosen = []
    for label in ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"):
        chosen += [r for r in rows if r["label"] == label][:3]
    blank = np.full((480, 640, 3), 96, np.uint8)
    frames, spans = [], []
    for row in chosen:
        photo = cv2.imread(str(expressions_dir / row["file"]))
        photo = cv2.resize(photo, (480, 480), interpolation=cv2.INTER_AREA)
        frame = blank.copy()
        frame[:, 80:560] = photo
        spans.append((len(frames), len(frames) + 15, row["label"]))
        frames += [frame] * 15 + [blank] * 6
    clip = write_clip(tmp_path / "closeup.avi", frames, fps=10)
    cfg = tmp_path / "expressiond.toml"
    cfg.write_text(
        textwrap.dedent(f"""
        device_id = "closeup"
        [inference]
        num_requests = 2
        [tracking]
        max_missed_frames = 3
        [[cameras]]
        name = "kiosk"
        source = "{clip}"
        fps = 10
        """)
    )
    proc = subprocess.run(
        [sys.executable, "-m", "expressiond.cli", "run", "--config", str(cfg), "--stdout", "--no-mqtt"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    starts = [e for e in events if e["type"] == "start"]
    ends = {e["track"] for e in events if e["type"] == "end"}
    assert {e["track"] for e in starts} == ends, "every started track ends"
    matched = 0
    started = set()
    for first, last, label in spans:
        here = [e for e in starts if first <= e["frame"] < last + 3]
        if here:
            started.add(first)
        matched += any(e["expression"] == label for e in here)
    assert len(started) >= 0.7 * len(spans), (len(started), events)
    assert matched >= 0.4 * len(spans), (matched, [(e["frame"], e["expression"]) for e in starts])
