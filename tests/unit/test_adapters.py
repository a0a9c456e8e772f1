"""Model adapters on tiny models built here: the frame front end (layout, colour order, resize,
mean/scale) checked against numpy/OpenCV on identity models, metadata that contradicts the
model, and the output decoders on synthetic outputs. Real OpenVINO on the CPU, no files."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from expressiond.errors import ModelError
from expressiond.inference.adapters import (
    ClassifierAdapter,
    DetectorAdapter,
    grow_box,
    make_adapter,
)
from expressiond.inference.detectors.detection_out import decode_detection_out
from expressiond.inference.metadata import parse_meta
from expressiond.inference.ovcompat import Core, opset, ov
from expressiond.inference.preprocess import add_frame_input, check_input

CORE = Core()
RNG = np.random.default_rng(7)


def identity(shape, etype=None):
    p = opset.parameter(shape, etype or ov.Type.f32, name="x")
    out = opset.multiply(p, opset.constant(np.array(1, dtype=np.float32 if etype is None else np.uint8)))
    return ov.Model([out.output(0)], [p], "identity")


def classifier(shape, n: int, head: str = "softmax"):
    p = opset.parameter(shape, ov.Type.f32, name="x")
    flat = opset.reshape(p, opset.constant(np.array([1, -1], np.int64)), False)
    logits = opset.matmul(flat, opset.constant(np.ones((int(np.prod(shape)), n), np.float32)), False, False)
    out = {
        "softmax": lambda x: opset.softmax(x, 1),
        "sigmoid": opset.sigmoid,
        "log": lambda x: opset.log_softmax(x, 1),
        "none": lambda x: x,
    }[head](logits)
    return ov.Model([out.output(0)], [p], "cls")


def meta(kind="classifier", output_kind="softmax", labels=7, **inp):
    return parse_meta(
        {
            "kind": kind,
            "output_kind": output_kind,
            "labels": ["face"] if kind == "detector" else [f"c{i}" for i in range(labels)],
            "input": inp,
        },
        "test.json",
        kind,
    )


def run(model, image: np.ndarray) -> np.ndarray:
    compiled = CORE.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    request.infer({0: image[None]})
    return request.get_output_tensor(0).data.copy()


def front_end(shape, **inp):
    """An identity model with the frame input the metadata asks for in front of it."""
    spec = meta(**inp).input
    model = identity(shape)
    return add_frame_input(model, spec, check_input(model, spec, "id.xml"))


IMG = RNG.integers(0, 256, (4, 4, 3), dtype=np.uint8)


def test_nchw_bgr_is_a_transpose():
    out = run(front_end([1, 3, 4, 4], layout="NCHW", color="BGR"), IMG)
    np.testing.assert_array_equal(out[0], IMG.transpose(2, 0, 1))


def test_nhwc_rgb_reverses_channels():
    out = run(front_end([1, 4, 4, 3], layout="NHWC", color="RGB"), IMG)
    np.testing.assert_array_equal(out[0], IMG[:, :, ::-1])


def test_mean_and_scale_per_channel_in_model_colour_order():
    out = run(front_end([1, 3, 4, 4], layout="NCHW", color="RGB", mean=[10, 20, 30], scale=[2, 4, 8]), IMG)
    rgb = IMG[:, :, ::-1].transpose(2, 0, 1).astype(np.float32)
    want = (rgb - np.array([10, 20, 30]).reshape(3, 1, 1)) / np.array([2, 4, 8]).reshape(3, 1, 1)
    np.testing.assert_allclose(out[0], want, rtol=1e-6)


def test_gray_matches_opencv_within_its_rounding():
    out = run(front_end([1, 1, 4, 4], layout="NCHW", color="GRAY", mean=127.5, scale=127.5), IMG)
    want = (cv2.cvtColor(IMG, cv2.COLOR_BGR2GRAY).astype(np.float32) - 127.5) / 127.5
    np.testing.assert_allclose(out[0, 0], want, atol=0.5 / 127.5 + 1e-6)


def test_any_frame_size_is_resized_like_opencv_linear():
    model = front_end([1, 3, 8, 8], layout="NCHW")
    np.testing.assert_array_equal(np.unique(run(model, np.full((20, 30, 3), 77, np.uint8))), [77])
    same = RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    np.testing.assert_array_equal(run(model, same)[0], same.transpose(2, 0, 1))
    big = RNG.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    want = cv2.resize(big, (8, 8), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    assert np.abs(run(model, big)[0] - want.transpose(2, 0, 1)).max() <= 1.0  # cv2 rounds to u8
    # the frame is resized while still u8 (then converted): values round to whole levels,
    # as OpenCV's own u8 resize does, so within half a level of the exact interpolation
    up = RNG.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    want = cv2.resize(up.astype(np.float32), (8, 8), interpolation=cv2.INTER_LINEAR)
    got = run(model, up)[0]
    np.testing.assert_array_equal(got, np.round(got))
    np.testing.assert_allclose(got, want.transpose(2, 0, 1), atol=0.5 + 1e-3)


def test_dynamic_model_with_size_in_metadata_gets_that_size():
    model = front_end([-1, 3, -1, -1], layout="NCHW", size=[6, 5])  # labels: any, dynamic
    assert run(model, IMG).shape == (1, 3, 5, 6)


def test_layout_is_read_from_an_unambiguous_shape():
    model = make_adapter(classifier([1, 64, 64, 1], 7), meta(color="GRAY"), "m").model
    assert run(model, IMG).shape == (1, 7)
    assert model.inputs[0].get_partial_shape().to_string() == "[1,?,?,3]"


def test_embedded_u8_model_is_used_unchanged():
    model = identity([1, -1, -1, 3], ov.Type.u8)
    adapter = make_adapter(
        model, meta(labels=48, element_type="u8", layout="NHWC", color="BGR", shape=[1, -1, -1, 3]), "m"
    )
    assert adapter.meta.input.embedded and adapter.model is model
    np.testing.assert_array_equal(run(adapter.model, IMG)[0], IMG)


@pytest.mark.parametrize(
    ("model", "inp", "match"),
    [
        (lambda: identity([1, 3, 64]), {}, "rank 3"),
        (lambda: identity([1, 3, 4, 4]), {"layout": "NHWC"}, "has 4 there"),
        (lambda: identity([1, 3, 4, 4]), {"layout": "NCHW", "color": "GRAY"}, "has 3 there"),
        (lambda: identity([1, 3, 4, 4]), {"size": [8, 8]}, "input.size 8x8 .* model input is 4x4"),
        (lambda: identity([1, 3, 4, 4]), {"element_type": "u8"}, "element_type u8 .* is f32"),
        (lambda: identity([1, 3, 3, 3]), {}, "cannot tell the layout"),
        (lambda: identity([2, 3, 4, 4]), {}, "batch 2"),
        (
            lambda: identity([1, 3, 4, 4]),
            {"element_type": "u8", "layout": "NHWC", "color": "BGR", "shape": [1, -1, -1, 3]},
            "element_type u8",
        ),
    ],
)
def test_metadata_that_contradicts_the_input_is_refused(model, inp, match):
    m = model()
    n = (
        int(np.prod([d if d > 0 else 1 for d in m.inputs[0].get_partial_shape().to_shape()]))
        if m.inputs[0].get_partial_shape().is_static
        else 1
    )
    with pytest.raises(ModelError, match=match):
        make_adapter(m, meta(labels=n, **inp), "bad.xml")


def test_label_count_must_match_the_output():
    with pytest.raises(ModelError, match="lists 7 labels but .* gives 5 values"):
        make_adapter(classifier([1, 3, 4, 4], 5), meta(labels=7), "m.xml")
    assert isinstance(make_adapter(classifier([1, 3, 4, 4], 5), meta(labels=5), "m.xml"), ClassifierAdapter)


def test_head_kind_must_match_the_last_layer():
    with pytest.raises(ModelError, match="output_kind softmax .* Sigmoid layer"):
        make_adapter(classifier([1, 3, 4, 4], 5, "sigmoid"), meta(labels=5), "m.xml")
    with pytest.raises(ModelError, match="LogSoftmax"):
        make_adapter(classifier([1, 3, 4, 4], 5, "log"), meta(labels=5), "m.xml")
    sig = make_adapter(classifier([1, 3, 4, 4], 5, "sigmoid"), meta(output_kind="sigmoid", labels=5), "m.xml")
    raw = make_adapter(classifier([1, 3, 4, 4], 5, "none"), meta(labels=5), "m.xml")
    assert sig.meta.output_kind == "sigmoid" and raw.meta.output_kind == "softmax"


def test_sigmoid_scores_are_reported_as_given():
    adapter = make_adapter(
        classifier([1, 3, 4, 4], 3, "sigmoid"), meta(output_kind="sigmoid", labels=3), "m.xml"
    )
    scores = adapter.scores((np.array([[0.9, 0.8, 0.1]], np.float32),))
    assert list(scores) == ["c0", "c1", "c2"]
    assert scores["c0"] == pytest.approx(0.9) and sum(scores.values()) == pytest.approx(1.8)


def test_detector_output_kind_must_fit_the_output():
    with pytest.raises(ModelError, match=r"needs a \[1, 1, N, 7\] output"):
        make_adapter(classifier([1, 3, 4, 4], 5), meta("detector", "ssd_detection_out"), "d.xml")
    with pytest.raises(ModelError, match="name the detection output"):
        p = opset.parameter([1, 3, 4, 4], ov.Type.f32, name="x")
        two = ov.Model([opset.relu(p).output(0), opset.sigmoid(p).output(0)], [p], "two")
        make_adapter(two, meta("detector", "ssd_detection_out"), "d.xml")


def test_detection_out_decoding():
    rows = np.array(
        [
            [0, 1, 0.95, 0.10, 0.20, 0.30, 0.60],
            [0, 1, 0.90, 0.11, 0.21, 0.31, 0.61],  # overlaps the first: NMS drops it
            [0, 1, 0.70, -0.1, 0.50, 0.20, 1.20],  # clipped to the image
            [0, 2, 0.99, 0.50, 0.50, 0.60, 0.60],  # another class
            [0, 1, 0.40, 0.70, 0.10, 0.80, 0.20],  # below the threshold
            [-1, 0, 0.00, 0.00, 0.00, 0.00, 0.00],  # end of the list
            [0, 1, 0.99, 0.80, 0.80, 0.90, 0.90],  # after the end: ignored
        ],
        np.float32,
    ).reshape(1, 1, -1, 7)
    faces = decode_detection_out(rows, 200, 100, 0.5, 0.5, 10, class_id=1)
    assert [round(s, 2) for s, _, _ in faces] == [0.95, 0.70]
    score, rel, px = faces[1]
    np.testing.assert_allclose(rel, (0.0, 0.5, 0.2, 0.5), atol=1e-6)
    np.testing.assert_allclose(px, (0.0, 50.0, 40.0, 50.0), atol=1e-4)
    assert len(decode_detection_out(rows, 200, 100, 0.5, 0.5, 10)) == 3  # any class
    assert len(decode_detection_out(rows, 200, 100, 0.5, 0.5, 1, class_id=1)) == 1


def test_crop_policy_square_and_enlarge():
    assert grow_box((10, 20, 40, 80), False, 1.0) == (10, 20, 40, 80)
    assert grow_box((10, 20, 40, 80), True, 1.0) == (-10, 20, 80, 80)
    x, y, w, h = grow_box((10, 20, 40, 80), True, 1.5)
    assert (x + w / 2, y + h / 2, w, h) == (30, 60, 120, 120)
    adapter = make_adapter(
        classifier([1, 3, 4, 4], 2),
        meta(labels=2, layout="NCHW", crop={"square": True, "enlarge": 1.2}),
        "m.xml",
    )
    crop = adapter.crop(np.zeros((100, 100, 3), np.uint8), (40, 40, 10, 20))
    assert crop.shape == (24, 24, 3)


def test_static_input_fits_any_image():
    cls = make_adapter(classifier([1, 3, 8, 8], 4), meta(labels=4, layout="NCHW"), "m")
    cls.make_static()
    assert cls.static_size == (8, 8)
    assert cls.model.inputs[0].get_partial_shape().to_string() == "[1,8,8,3]"
    assert cls.prepare(RNG.integers(0, 256, (30, 50, 3), dtype=np.uint8)).shape == (1, 8, 8, 3)
    assert run(cls.model, cls.prepare(IMG)[0]).shape == (1, 4)
    assert isinstance(cls, ClassifierAdapter) and not isinstance(cls, DetectorAdapter)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"kind": "classifier", "output_kind": "softmax", "labels": ["a", "a"]}, "unique"),
        ({"kind": "classifier", "output_kind": "logits", "labels": ["a"]}, "not supported"),
        (
            {"kind": "classifier", "output_kind": "softmax", "labels": ["a"], "input": {"layout": "CHW"}},
            "input.layout",
        ),
        (
            {"kind": "classifier", "output_kind": "softmax", "labels": ["a"], "input": {"size": 64}},
            "input.size",
        ),
        (
            {"kind": "classifier", "output_kind": "softmax", "labels": ["a"], "input": {"mean": [1, 2]}},
            "input.mean",
        ),
        (
            {"kind": "classifier", "output_kind": "softmax", "labels": ["a"], "input": {"scale": 0}},
            "must not be 0",
        ),
        (
            {
                "kind": "classifier",
                "output_kind": "softmax",
                "labels": ["a"],
                "input": {"crop": {"enlarge": 9}},
            },
            "enlarge",
        ),
        ({"kind": "classifier", "output_kind": "softmax", "labels": ["a"], "schema": 2}, "schema"),
    ],
)
def test_bad_metadata_values(raw, match):
    with pytest.raises(ModelError, match=match):
        parse_meta(raw, "m.json", "classifier")
