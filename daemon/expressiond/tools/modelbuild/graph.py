"""Small building blocks for rebuilding tfjs (NHWC, TF semantics) networks with the openvino
opset API in NCHW.

TF's SAME padding puts the odd extra pixel at the end: ``auto_pad="same_upper"``. TF weights
are HWIO (conv) and HWC1 (depthwise); OpenVINO wants OIHW and GOIHW.

Thread: the command's main thread (graph building).
"""

from __future__ import annotations

import numpy as np
from openvino import opset1
from openvino import opset13 as ops
from openvino.utils.node_factory import NodeFactory

# Only ops that OpenVINO 2022.3 LTS (the MYRIAD release) can read: Interpolate-4 and Pad-1,
# not their opset11/opset12 successors.
_OPSET4 = NodeFactory("opset4")


def const(value: np.ndarray | list | float, dtype=np.float32):
    return ops.constant(np.asarray(value, dtype=dtype))


def conv2d(x, filters_hwio: np.ndarray, stride: int):
    w = np.ascontiguousarray(filters_hwio.transpose(3, 2, 0, 1))
    return ops.convolution(x, const(w), [stride, stride], [0, 0], [0, 0], [1, 1], "same_upper")


def depthwise_conv2d(x, filters_hwc1: np.ndarray, stride: int):
    kh, kw, c, mult = filters_hwc1.shape
    w = filters_hwc1.transpose(2, 3, 0, 1).reshape(c, mult, 1, kh, kw)
    return ops.group_convolution(
        x, const(np.ascontiguousarray(w)), [stride, stride], [0, 0], [0, 0], [1, 1], "same_upper"
    )


def add_bias(x, bias: np.ndarray):
    return ops.add(x, const(bias.reshape(1, -1, 1, 1)))


def relu(x):
    return ops.relu(x)


def relu6(x):
    return ops.clamp(x, 0.0, 6.0)


def separable_conv2d(x, depthwise: np.ndarray, pointwise: np.ndarray, bias: np.ndarray, stride):
    return add_bias(conv2d(depthwise_conv2d(x, depthwise, stride), pointwise, 1), bias)


def to_nhwc(x):
    return ops.transpose(x, const([0, 2, 3, 1], np.int64))


def to_nchw(x):
    return ops.transpose(x, const([0, 3, 1, 2], np.int64))


def pad_to_square_nhwc(x, centred: bool):
    """Zero-pad the shorter side of an NHWC image to make it square, as face-api's
    ``padToSquare``: centred puts round(d/2) after the image and the rest before it;
    otherwise all padding goes after (bottom / right)."""
    shape = ops.shape_of(x, "i64")
    hw = ops.gather(shape, const([1, 2], np.int64), const(0, np.int64))
    side = ops.reduce_max(hw, const([0], np.int64), keep_dims=True)
    diff = ops.subtract(side, hw)  # [dh, dw]
    if centred:
        # JS Math.round(d / 2) for integer d >= 0 is floor((d + 1) / 2)
        after = ops.divide(ops.add(diff, const([1], np.int64)), const([2], np.int64))
        before = ops.subtract(diff, after)
    else:
        after = diff
        before = ops.multiply(diff, const([0], np.int64))
    zero = const([0], np.int64)
    pads_begin = ops.concat([zero, before, zero], 0)
    pads_end = ops.concat([zero, after, zero], 0)
    return opset1.pad(x, pads_begin, pads_end, "constant", const(0.0))


def resize_bilinear_nhwc(x, size: int):
    """tf.image.resizeBilinear(alignCorners=false, halfPixelCenters=false)."""
    attrs = {
        "mode": "linear_onnx",
        "shape_calculation_mode": "sizes",
        "coordinate_transformation_mode": "asymmetric",
        "nearest_mode": "floor",
        "antialias": False,
        "cube_coeff": -0.75,
        "pads_begin": [0],
        "pads_end": [0],
    }
    inputs = [x, const([size, size], np.int64), const([1.0, 1.0]), const([1, 2], np.int64)]
    return _OPSET4.create("Interpolate", [n.output(0) if hasattr(n, "output") else n for n in inputs], attrs)
