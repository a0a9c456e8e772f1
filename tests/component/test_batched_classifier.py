"""A frame's faces in one classifier request per member (issue 18), on the real models (CPU,
FP32): the scores equal one request per face within float noise, on the dev photos.

- each member (face-api/expression with flip averaging in the graph, human/emotion without)
  on batches of 1..7 dev-photo face crops: every row equals that crop's own request;
- the daemon's pipeline on frames of 4 dev photos side by side (4 faces, one request per
  member) against the same pipeline with one request per face: same faces (matched by IoU,
  not by order), same 7 scores.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest

from expressiond.config import Config, InferenceConfig
from expressiond.events import Frame
from expressiond.inference.factory import compile_classifiers, compile_models, make_pipeline
from expressiond.tools.imageio import read_image

TOL = 1e-5  # float noise: a batch may take other kernels than one crop


@pytest.fixture(scope="module")
def dev(expressions_dir):
    with open(expressions_dir / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [read_image(expressions_dir / r["file"]) for r in rows]


@pytest.fixture(scope="module")
def cfg(models_dir):
    # FP32 (f32 arithmetic): a batch and single requests agree to 1e-5 only there; in bf16 (the
    # FP16 default on this CPU) the kernels differ by batch shape (up to 0.037 on OpenVINO 2022.3)
    return Config(models_dir=str(models_dir), inference=InferenceConfig(precision="FP32"))


def test_each_member_batch_rows_equal_single_requests(cfg, dev):
    batched = compile_classifiers(cfg)
    single = compile_classifiers(cfg, batch=False)
    assert [net.adapter.batched for net in batched.nets] == [True, True]
    assert [net.adapter.batched for net in single.nets] == [False, False]
    assert [net.adapter.flip for net in batched.nets] == [True, False]  # the default ensemble
    photos = dev[::5]  # 14 photos, every class
    worst = 0.0
    for b_net, s_net in zip(batched.nets, single.nets, strict=True):
        b_req, s_req = b_net.compiled.create_infer_request(), s_net.compiled.create_infer_request()
        h, w = photos[0].shape[:2]
        crops = [p[h // 8 : h - h // 8, w // 8 : w - w // 8] for p in photos]  # off-square crops
        want = []
        for crop in crops:
            s_req.infer({0: s_net.adapter.prepare(crop)})
            want.append(s_net.adapter.fetch(s_req)[0].reshape(-1))
        for n in (1, 2, 3, 4, 7):
            for start in range(0, len(crops) - n + 1, n):
                b_req.infer({0: b_net.adapter.prepare_batch(crops[start : start + n])})
                got = b_net.adapter.fetch(b_req)[0].reshape(n, -1)
                assert np.allclose(got.sum(1), 1.0, atol=1e-4)  # softmax rows: not garbage
                worst = max(worst, float(np.abs(got - np.array(want[start : start + n])).max()))
    assert worst < TOL, worst


def _mosaic(images: list[np.ndarray]) -> np.ndarray:
    h = min(im.shape[0] for im in images)
    return np.ascontiguousarray(np.hstack([im[:h] for im in images]))


def _iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    return inter / (aw * ah + bw * bh - inter)


def _run(cfg, detector, classifiers, frames) -> list:
    results = []
    pipe = make_pipeline(cfg, detector, classifiers, 2, results.append)
    for n, image in enumerate(frames):
        pipe.submit(Frame("dev", n, 0.0, 0.0, image))
    assert pipe.close(120) and pipe.errors == 0
    return sorted(results, key=lambda r: r.index)


def test_pipeline_batched_equals_one_request_per_face(cfg, dev):
    detector, batched = compile_models(cfg)
    single = compile_classifiers(cfg, batch=False)
    frames = [_mosaic(dev[i : i + 4]) for i in range(0, 40, 4)]  # 10 frames of 4 close-ups
    got = _run(cfg, detector, batched, frames)
    want = _run(cfg, detector, single, frames)
    assert len(got) == len(want) == len(frames)
    faces = worst = 0
    multi = 0
    for g, w in zip(got, want, strict=True):
        assert len(g.faces) == len(w.faces)
        multi += len(g.faces) >= 2
        for face in w.faces:
            match = max(g.faces, key=lambda f: _iou(f.box, face.box))
            assert _iou(match.box, face.box) > 0.99
            assert list(match.scores) == list(face.scores)
            diff = max(abs(match.scores[k] - face.scores[k]) for k in face.scores)
            worst = max(worst, diff)
            faces += 1
    assert faces >= 30 and multi >= 8, (faces, multi)  # batches of several faces were exercised
    assert worst < TOL, worst
