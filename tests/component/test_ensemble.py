"""The classifier set on the real models (CPU): the daemon's default ensemble scores a face as
the research harness of issue 17 does (benchmarks/acc_views.py views, acc_stats.py mean and
calibration), its shipped calibration is the one that harness fits on the dev photos, a set
whose members lack labels still gives the 7 labels, and evaluate/classify run any set."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from needs import need
from shared_data import HOW_TO_FIX, OMZ

from expressiond.config import Config, InferenceConfig
from expressiond.config.model import ClassifierConfig, EnsembleMember
from expressiond.events import Frame
from expressiond.inference.analyzer import FaceAnalyzer, product_settings
from expressiond.inference.factory import classifier_labels, compile_models, make_pipeline
from expressiond.paths import EXPRESSION_LABELS, builtin_calibration
from expressiond.tools.imageio import read_image

REPO = Path(__file__).resolve().parents[2]
SHIPPED = json.loads(builtin_calibration().read_text())
EMOTIONS = "emotions-recognition-retail-0003"


@pytest.fixture(scope="module")
def research():
    """benchmarks/acc_views.py and acc_stats.py, the research harness of issue 17."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import acc_stats
    import acc_views

    return acc_views, acc_stats


@pytest.fixture(scope="module")
def dev(expressions_dir):
    with open(expressions_dir / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [(read_image(expressions_dir / r["file"]), r["label"]) for r in rows]


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_daemon_scores_equal_the_research_harness(models_dir, dev, research):
    """Every face the daemon's pipeline finds on 14 dev photos (2 per class): its 7 scores are
    the harness's "fa + hm mean + bias" row (views "fa sq flip" and "hm sq" on the same box,
    per-label mean, softmax(log max(p, 1e-4) + the shipped offsets)) to 1e-5."""
    av, st = research
    picked = [i for lab in EXPRESSION_LABELS for i in [k for k, (_im, y) in enumerate(dev) if y == lab][:2]]
    cfg = Config(models_dir=str(models_dir), inference=InferenceConfig(precision="FP32"))  # the harness's
    det, classifiers = compile_models(cfg)
    results = []
    pipe = make_pipeline(cfg, det, classifiers, 2, results.append)
    for n, i in enumerate(picked):
        pipe.submit(Frame("dev", n, 0.0, 0.0, dev[i][0]))
    assert pipe.close(120) and pipe.errors == 0
    assert [r.index for r in results] == list(range(len(picked)))
    views = {
        name: av.View(next(s for s in av.VIEWS if s.name == name), models_dir, None, "FP32", None)
        for name in ("fa sq flip", "hm sq")
    }
    row = st.Variant("fa + hm mean + bias", "mean", tuple(views), calibrate=True)
    offsets = np.array([SHIPPED["log_offsets"][label] for label in av.LABELS])
    worst, faces = 0.0, 0
    for result, i in zip(results, picked, strict=True):
        assert result.faces, f"photo {i}: no face"
        for face in result.faces:
            scores = {name: view.scores(dev[i][0], face.box)[None] for name, view in views.items()}
            mean = st.fixed_scores(row, scores, av.LABELS)[0]
            want = _softmax(np.log(np.clip(mean, st.EPS, 1.0)) + offsets)
            got = np.array([face.scores[label] for label in av.LABELS])
            assert list(face.scores) == list(EXPRESSION_LABELS)
            worst = max(worst, float(np.abs(got - want).max()))
            faces += 1
    assert faces >= len(picked)
    assert worst < 1e-5, worst


def test_the_shipped_calibration_is_the_harness_fit_on_the_dev_photos(
    models_dir, dev, research, expressions_dir
):
    """The offsets in the package are what acc_stats.fit_bias (the research row's fit, L2 1.0)
    gives on the harness's own scores of all dev photos; the file names those photos."""
    av, st = research
    labels_csv = (expressions_dir / "labels.csv").read_bytes()
    import hashlib

    fitted = SHIPPED["fitted_on"]
    assert fitted["labels_csv_sha256"] == hashlib.sha256(labels_csv).hexdigest(), "refit: the dev set changed"
    assert fitted["photos"] == len(dev) == 70 and set(fitted["per_class"].values()) == {10}
    members = [m["model"] for m in SHIPPED["members"]]
    assert members == ["face-api/expression", "human/emotion"] and SHIPPED["combine"] == "mean"
    dev_set = av.DevSet([], [im for im, _ in dev], np.array([av.LABELS.index(y) for _, y in dev]), [])
    boxes, missed = av.detect_boxes(dev_set, models_dir, "FP32")
    assert missed == 0
    views = [
        av.View(next(s for s in av.VIEWS if s.name == name), models_dir, None, "FP32", None)
        for name in ("fa sq flip", "hm sq")
    ]
    mean = np.mean(
        [[v.scores(im, box) for im, box in zip(dev_set.images, boxes, strict=True)] for v in views], 0
    )
    offsets = st.fit_bias(np.log(np.clip(mean, st.EPS, 1.0)), dev_set.labels, 7, 1.0)
    shipped = np.array([SHIPPED["log_offsets"][label] for label in av.LABELS])
    assert np.abs(offsets - shipped).max() < 1e-3, (offsets, shipped)
    accuracy = np.mean(np.argmax(np.log(np.clip(mean, st.EPS, 1.0)) + shipped, 1) == dev_set.labels)
    assert accuracy == pytest.approx(fitted["in_sample_top1"], abs=1e-4)


@pytest.fixture(scope="module")
def emotions(tmp_path_factory):
    """OMZ emotions-recognition-retail-0003 (5 labels) with the committed metadata beside it."""
    src = OMZ / EMOTIONS / "FP16-INT8" / f"{EMOTIONS}.xml"
    need(src.is_file(), str(OMZ), f"{EMOTIONS} absent: {HOW_TO_FIX}")
    dest = tmp_path_factory.mktemp("omz")
    for suffix in (".xml", ".bin"):
        (dest / f"{EMOTIONS}{suffix}").symlink_to(src.with_suffix(suffix))
    (dest / f"{EMOTIONS}.json").write_text((REPO / "models" / "omz" / f"{EMOTIONS}.json").read_text())
    return str(dest / f"{EMOTIONS}.xml")


def test_an_ensemble_always_gives_the_seven_labels(models_dir, dev, emotions):
    """face-api (7 labels, weight 1) + OMZ emotions (5 labels, weight 3): a label both have is
    their weighted mean, fearful and disgusted are face-api's alone; no calibration is fitted
    for these members, so "auto" leaves the mean as it is. The OMZ net alone keeps its 5."""
    members = (
        EnsembleMember(model="face-api/expression", weight=1.0, flip=False, crop="square"),
        EnsembleMember(model=emotions, weight=3.0, flip=False, crop="model"),
    )
    both = FaceAnalyzer(product_settings(models_dir, classifiers=ClassifierConfig(ensemble=members)))
    alone = [
        FaceAnalyzer(
            product_settings(models_dir, classifiers=ClassifierConfig(model=m.model, flip=False, crop=m.crop))
        )
        for m in members
    ]
    assert both.labels == EXPRESSION_LABELS and both.classifiers.calibration is None
    assert alone[1].labels == ("neutral", "happy", "sad", "surprised", "angry")
    cfg = Config(models_dir=str(models_dir), classifier=ClassifierConfig(model=emotions))
    assert classifier_labels(cfg) == alone[1].labels
    assert classifier_labels(Config(models_dir=str(models_dir))) == EXPRESSION_LABELS
    for image, _label in dev[::10]:
        box = both.detect(image)[0][2]
        got = both.classify_face(image, box)
        fa, omz = (a.classify_face(image, box) for a in alone)
        for label in EXPRESSION_LABELS:
            want = (fa[label] + 3 * omz[label]) / 4 if label in omz else fa[label]
            assert got[label] == pytest.approx(want, abs=1e-6), label


def test_evaluate_runs_any_set_and_reports_each_members_time(tmp_path, models_dir, expressions_dir, emotions):
    """`evaluate --config` with an ensemble from a config file, and `classify`: the same labels,
    per-member and total ms in --json, no error."""
    cfg = tmp_path / "set.toml"
    cfg.write_text(
        textwrap.dedent(f"""
        models_dir = "{models_dir}"
        [classifier]
        ensemble = [
          {{ model = "human/emotion", flip = false }},
          {{ model = "{emotions}", crop = "model" }},
        ]
        calibration = "none"
        """)
    )
    run = [sys.executable, "-m", "expressiond.cli"]
    proc = subprocess.run(
        [*run, "evaluate", str(expressions_dir), "--config", str(cfg), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["n"] == 70 and result["labels"] == list(EXPRESSION_LABELS)
    assert [m["model"] for m in result["classifiers"]] == ["human/emotion", EMOTIONS]
    assert [m["flip"] for m in result["classifiers"]] == [False, True]
    assert result["calibration"] is None and result["combine"] == "mean"
    member_ms = [m["median_ms"] for m in result["classifiers"]]
    assert all(ms > 0 for ms in member_ms) and result["median_ms"]["classify"] >= max(member_ms)
    assert 0.3 < result["accuracy"] <= 1.0
    proc = subprocess.run(
        [*run, "classify", "--config", str(cfg), "--json", str(models_dir / "samples" / "sample1.jpg")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    faces = json.loads(proc.stdout)[0]["faces"]
    assert faces and all(list(f["scores"]) == list(EXPRESSION_LABELS) for f in faces)


def test_a_bad_set_exits_78_with_the_line_to_fix(tmp_path, models_dir):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(
        f'models_dir = "{models_dir}"\n[classifier]\nensemble = [{{ model = "human/emotion" }}]\n'
        'calibration = "builtin"\n[[cameras]]\nname = "a"\nsource = "samples"\n'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "expressiond.cli", "check-config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 78, proc.stderr
    assert proc.stderr.startswith(
        f"expressiond: error: {cfg}:4: classifier.calibration: the builtin calibration"
    )
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
