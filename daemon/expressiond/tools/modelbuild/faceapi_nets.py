"""face-api's FaceExpressionNet and SSD MobileNetV1, rebuilt op for op in OpenVINO.

Each builder takes the de-quantised weights (name -> array) and returns an ``ov.Model`` whose
input is a float32 RGB NHWC image of any size, [1, H, W, 3], 0..255; the build adds the u8 BGR
front end with PrePostProcessor. Sources mirrored: src/faceFeatureExtractor/*,
src/faceExpressionNet/*, src/ssdMobilenetv1/* of @vladmandic/face-api 1.7.15.

Thread: the command's main thread (graph building).
"""

from __future__ import annotations

import numpy as np
import openvino as ov
from openvino import opset13 as ops

from expressiond import paths
from expressiond.tools.modelbuild import graph as g

EXPRESSION_LABELS = paths.EXPRESSION_LABELS  # neutral, happy, sad, angry, fearful, disgusted, surprised
EXPRESSION_INPUT = 112
EXPRESSION_MEAN_RGB = (122.782, 117.001, 104.298)
SSD_INPUT = 512
SSD_ANCHORS = 5118
_BN_EPSILON = 0.0010000000474974513


def _image_input(name: str):
    return ops.parameter(ov.PartialShape([1, -1, -1, 3]), ov.Type.f32, name=name)


# --- FaceExpressionNet --------------------------------------------------------------------


def dense_block(x, w: dict, prefix: str, first: bool, convs: int):
    """face-api's dense block of ``convs`` convolutions (4 in the expression net, 3 in the
    landmark net): the first one strided (a plain conv in the first block, separable after),
    each later one fed the relu of the sum of all before it; out: relu of the sum of all."""

    def sep(i, inp, stride):
        p = f"{prefix}/conv{i}"
        return g.separable_conv2d(
            inp, w[f"{p}/depthwise_filter"], w[f"{p}/pointwise_filter"], w[f"{p}/bias"], stride
        )

    def total(outs):  # out1 + (out2 + (out3 + ...)), the order the tfjs graph adds them in
        acc = outs[-1]
        for o in reversed(outs[:-1]):
            acc = ops.add(o, acc)
        return acc

    if first:
        out1 = g.add_bias(g.conv2d(x, w[f"{prefix}/conv0/filters"], 2), w[f"{prefix}/conv0/bias"])
    else:
        out1 = sep(0, x, 2)
    outs = [g.relu(out1)]
    for i in range(1, convs):
        outs.append(sep(i, outs[0] if i == 1 else g.relu(total(outs)), 1))
    return g.relu(total(outs))


def build_expression_net(w: dict[str, np.ndarray]) -> ov.Model:
    image = _image_input("image")
    x = g.pad_to_square_nhwc(image, centred=True)
    x = g.resize_bilinear_nhwc(x, EXPRESSION_INPUT)
    x = ops.divide(ops.subtract(x, g.const(EXPRESSION_MEAN_RGB)), g.const(255.0))
    x = g.to_nchw(x)
    for i in range(4):
        x = dense_block(x, w, f"dense{i}", first=(i == 0), convs=4)
    x = ops.avg_pool(x, [2, 2], [0, 0], [0, 0], [7, 7], True, "floor", "valid")
    x = ops.reshape(x, g.const([1, 256], np.int64), False)
    logits = ops.add(ops.matmul(x, g.const(w["fc/weights"]), False, False), g.const(w["fc/bias"]))
    probs = ops.softmax(logits, 1)
    probs.output(0).get_tensor().set_names({"expressions"})
    return ov.Model([probs.output(0)], [image], "faceapi_expression")


# --- SSD MobileNetV1 ------------------------------------------------------------------------


def _pointwise_layer(x, w, prefix: str, stride: int):
    out = g.conv2d(x, w[f"{prefix}/weights"], stride)
    return g.relu6(g.add_bias(out, w[f"{prefix}/convolution_bn_offset"]))


def _depthwise_layer(x, w, prefix: str, stride: int):
    out = g.depthwise_conv2d(x, w[f"{prefix}/depthwise_weights"], stride)
    mean = w[f"{prefix}/BatchNorm/moving_mean"].reshape(1, -1, 1, 1)
    var = w[f"{prefix}/BatchNorm/moving_variance"].reshape(1, -1, 1, 1)
    gamma = w[f"{prefix}/BatchNorm/gamma"].reshape(1, -1, 1, 1)
    beta = w[f"{prefix}/BatchNorm/beta"].reshape(1, -1, 1, 1)
    # tfjs batchNorm: (x - mean) * scale / sqrt(var + eps) + offset
    inv = (1.0 / np.sqrt(var.astype(np.float64) + _BN_EPSILON)).astype(np.float32)
    out = ops.multiply(ops.subtract(out, g.const(mean)), g.const(gamma * inv))
    return g.relu6(ops.add(out, g.const(beta)))


def _box_predictor(x, w, i: int):
    p = f"Prediction/BoxPredictor_{i}"
    box = g.add_bias(
        g.conv2d(x, w[f"{p}/BoxEncodingPredictor/weights"], 1), w[f"{p}/BoxEncodingPredictor/biases"]
    )
    cls = g.add_bias(g.conv2d(x, w[f"{p}/ClassPredictor/weights"], 1), w[f"{p}/ClassPredictor/biases"])
    # reshape in TF's NHWC order
    box = ops.reshape(g.to_nhwc(box), g.const([1, -1, 4], np.int64), False)
    cls = ops.reshape(g.to_nhwc(cls), g.const([1, -1, 3], np.int64), False)
    return box, cls


def _decode_boxes(encodings, anchors: np.ndarray):
    """Box decoding with variances 10/10/5/5; returns [1, N, 4] as top, left, bottom, right."""
    a = anchors.reshape(-1, 4)
    sizes = np.stack([a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]], axis=1).astype(np.float32)
    centers = (a[:, 0:2] + sizes / 2).astype(np.float32)
    enc = ops.reshape(encodings, g.const([-1, 4], np.int64), False)
    parts = ops.split(enc, g.const(1, np.int64), 4)
    e0, e1, e2, e3 = (parts.output(i) for i in range(4))

    def col(arr):
        return g.const(arr.reshape(-1, 1))

    half_h = ops.divide(ops.multiply(ops.exp(ops.divide(e2, g.const(5.0))), col(sizes[:, 0])), g.const(2.0))
    cy = ops.add(ops.multiply(ops.divide(e0, g.const(10.0)), col(sizes[:, 0])), col(centers[:, 0]))
    half_w = ops.divide(ops.multiply(ops.exp(ops.divide(e3, g.const(5.0))), col(sizes[:, 1])), g.const(2.0))
    cx = ops.add(ops.multiply(ops.divide(e1, g.const(10.0)), col(sizes[:, 1])), col(centers[:, 1]))
    boxes = ops.concat(
        [ops.subtract(cy, half_h), ops.subtract(cx, half_w), ops.add(cy, half_h), ops.add(cx, half_w)],
        1,
    )
    return ops.reshape(boxes, g.const([1, -1, 4], np.int64), False)


def build_ssd_mobilenetv1(w: dict[str, np.ndarray]) -> ov.Model:
    image = _image_input("image")
    x = g.pad_to_square_nhwc(image, centred=False)
    x = g.resize_bilinear_nhwc(x, SSD_INPUT)
    x = ops.subtract(ops.divide(x, g.const(127.5)), g.const(1.0))
    x = g.to_nchw(x)

    out = _pointwise_layer(x, w, "MobilenetV1/Conv2d_0_pointwise", 2)
    conv11 = None
    for i in range(1, 14):
        stride = 2 if i in (2, 4, 6, 12) else 1
        out = _depthwise_layer(out, w, f"MobilenetV1/Conv2d_{i}_depthwise", stride)
        out = _pointwise_layer(out, w, f"MobilenetV1/Conv2d_{i}_pointwise", 1)
        if i == 11:
            conv11 = out

    c = [None] * 8
    prev = out
    for i in range(8):
        prev = c[i] = _pointwise_layer(prev, w, f"Prediction/Conv2d_{i}_pointwise", 2 if i % 2 else 1)
    sources = [conv11, out, c[1], c[3], c[5], c[7]]
    preds = [_box_predictor(src, w, i) for i, src in enumerate(sources)]
    encodings = ops.concat([p[0] for p in preds], 1)
    classes = ops.concat([p[1] for p in preds], 1)

    boxes = _decode_boxes(encodings, w["Output/extra_dim"])
    scores = ops.sigmoid(
        ops.gather(classes, g.const([1], np.int64), g.const(2, np.int64))
    )  # [1, N, 1]: the face class
    scores = ops.reshape(scores, g.const([1, -1], np.int64), False)
    boxes.output(0).get_tensor().set_names({"boxes"})
    scores.output(0).get_tensor().set_names({"scores"})
    return ov.Model([boxes.output(0), scores.output(0)], [image], "faceapi_ssd_mobilenetv1")
