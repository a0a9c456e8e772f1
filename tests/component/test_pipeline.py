"""AsyncPipeline on the real models (CPU): results per camera in frame order with the faces the
synchronous analyzer finds, and a frame whose inference cannot start does not hold back the
frames after it. The one injected fault: a detector start_async that raises, as a device that
vanished would (no such device exists here)."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from expressiond.config import Config
from expressiond.events import Frame
from expressiond.inference.analyzer import FaceAnalyzer, product_settings
from expressiond.inference.factory import compile_models
from expressiond.inference.pipeline import AsyncPipeline, DetectorParams


@pytest.fixture(scope="module")
def nets(models_dir):
    return compile_models(Config(models_dir=str(models_dir)))


@pytest.fixture(scope="module")
def photos(sample_images):
    return [cv2.resize(cv2.imread(str(p)), (960, 640), interpolation=cv2.INTER_AREA) for p in sample_images]


def make_pipeline(nets, results, lock, num_requests=2):
    det, cls = nets

    def collect(result):
        with lock:
            results.append(result)

    d = Config().detector
    return AsyncPipeline(
        det,
        cls,
        num_requests,
        DetectorParams(
            score_threshold=d.threshold, nms_iou=d.nms_iou, max_faces=d.max_faces, min_face_px=d.min_face_px
        ),
        collect,
    )


def test_two_cameras_in_frame_order_with_the_analyzers_faces(nets, photos, models_dir):
    results, lock = [], threading.Lock()
    pipe = make_pipeline(nets, results, lock)
    for i in range(24):
        for cam in ("a", "b"):
            img = photos[(i + (cam == "b")) % len(photos)]
            pipe.submit(Frame(cam, i, 0.0, 0.0, img))
    assert pipe.close(60)
    assert pipe.errors == 0 and pipe.in_flight == 0
    for cam in ("a", "b"):
        got = [r for r in results if r.camera == cam]
        assert [r.index for r in got] == list(range(24))
    analyzer = FaceAnalyzer(product_settings(models_dir))
    want = [len(analyzer.analyze(p)) for p in photos]
    assert all(w >= 1 for w in want), want
    got_a = [len(r.faces) for r in results if r.camera == "a"]
    assert got_a == [want[i % len(photos)] for i in range(24)]
    assert all(set(f.scores) and abs(sum(f.scores.values()) - 1) < 1e-3 for r in results for f in r.faces)


def test_a_frame_that_cannot_start_does_not_hold_back_later_frames(nets, photos):
    results, lock = [], threading.Lock()
    pipe = make_pipeline(nets, results, lock)
    real = pipe._det_queue.start_async
    calls = {"n": 0}

    def flaky(inputs, userdata):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("device lost (injected)")
        return real(inputs, userdata)

    pipe._det_queue.start_async = flaky
    failed = []
    for i in range(8):
        try:
            pipe.submit(Frame("door", i, 0.0, 0.0, photos[i % len(photos)]))
        except RuntimeError as exc:
            failed.append((i, str(exc)))
    assert failed == [(2, "device lost (injected)")]
    assert pipe.drain(60), f"{pipe.in_flight} frame(s) never released"
    assert [r.index for r in results] == [0, 1, 3, 4, 5, 6, 7]
    assert pipe.in_flight == 0 and pipe.frames_done == 7
    pipe._det_queue.start_async = real
    assert pipe.close(30)


def test_the_daemon_classifier_has_a_static_input_fitted_by_opencv(nets, models_dir):
    """A face crop has a new size in almost every frame; with a dynamic input each new shape
    costs the CPU plugin shape inference and new kernels. The daemon's classifier is static
    at the model's own size and every crop is fitted to it; the batch is free (issue 18: a
    frame's faces in one request per member)."""
    from expressiond.inference.engine import compile_net
    from expressiond.inference.metadata import resolve_model

    _det, classifiers = nets
    fa, hm = classifiers.nets  # the default ensemble: each member at its own size
    for net, side in ((fa, 112), (hm, 64)):
        assert net.adapter.static_size == (side, side)
        assert net.adapter.batched
        assert net.compiled.inputs[0].get_partial_shape().to_string() == f"[?,{side},{side},3]"
        for h, w in ((90, 90), (301, 287), (640, 40)):
            assert net.adapter.prepare(np.zeros((h, w, 3), np.uint8)).shape == (1, side, side, 3)
        crops = [np.zeros((h, w, 3), np.uint8) for h, w in ((90, 90), (301, 287), (640, 40))]
        assert net.adapter.prepare_batch(crops).shape == (3, side, side, 3)
    exact = compile_net(
        resolve_model("face-api/expression", models_dir, "FP32"), "classifier", "CPU", "FP32"
    )  # classify --no-fit-crops, the golden tests
    assert exact.adapter.static_size is None
    assert exact.compiled.inputs[0].get_partial_shape().to_string() == "[1,?,?,3]"


def test_frames_in_flight_stay_bounded_when_the_consumer_is_slower_than_the_detector(nets, photos):
    """A consumer (tracker, events) slower than detection must make submit() wait, not pile
    whole frames up in memory: before the bound, in_flight grew with every frame submitted
    (the daemon's RSS grew ~40 MiB/s with a 1-request classifier)."""
    results, lock = [], threading.Lock()
    pipe = make_pipeline(nets, results, lock)
    assert pipe.max_in_flight == 2 * (2 + 2)  # two per detector and classifier request
    slow = pipe._on_result

    def slow_consumer(result):
        time.sleep(0.05)
        slow(result)

    pipe._on_result = slow_consumer
    peak = 0
    deadline = time.monotonic() + 60
    for i in range(30):
        pipe.submit(Frame("a", i, 0.0, 0.0, photos[i % len(photos)]))
        peak = max(peak, pipe.in_flight)
        assert time.monotonic() < deadline
    assert pipe.close(60)
    assert 2 <= peak <= 2 * (2 + 2), peak
    assert [r.index for r in results] == list(range(30)) and pipe.errors == 0
