"""The frame contract added in front of a model: u8 BGR NHWC frames of any size in, the model's
own input (size, layout, colour order, mean/scale, element type) inside, built with OpenVINO's
PrePostProcessor so the work happens in the compiled graph on the device, not in numpy.

``check_input`` first holds the metadata against the model's real input and refuses a
contradiction with a ModelError naming both.

Thread: the main thread, at compile (graph building).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from expressiond.errors import ModelError
from expressiond.inference.metadata import InputSpec
from expressiond.inference.ovcompat import (
    ColorFormat,
    Layout,
    PartialShape,
    PrePostProcessor,
    ResizeAlgorithm,
    Type,
    port_name,
)
from expressiond.inference.ovcompat import opset as ops

# OpenCV's COLOR_BGR2GRAY weights, in B, G, R order
GRAY_WEIGHTS_BGR = (0.114, 0.587, 0.299)


@dataclass(frozen=True)
class InputFacts:
    """The model input as found, with the metadata applied: what the front end must produce."""

    layout: str  # NCHW | NHWC
    channels: int
    size: tuple[int, int] | None  # (width, height) the model needs; None = any
    element_type: str  # the model's input element type, e.g. "f32"
    reshape_to: list[int] | None  # a static shape to give a dynamic model first


def _dims(shape) -> list[int]:
    """PartialShape -> ints, -1 for a dynamic dimension."""
    return [d.get_length() if d.is_static else -1 for d in shape]


def check_input(model, spec: InputSpec, where: str) -> InputFacts:
    if len(model.inputs) != 1:
        raise ModelError(
            f"{where}: the model has {len(model.inputs)} inputs; expressiond "
            "feeds one image, so it needs a model with exactly one input"
        )
    port = model.inputs[0]
    pshape = port.get_partial_shape()
    if pshape.rank.is_dynamic:
        raise ModelError(f"{where}: the input rank is dynamic; give the model a 4-D image input")
    dims = _dims(pshape)
    if len(dims) != 4:
        raise ModelError(
            f"{where}: input {port_name(port, 'input 0')} has rank {len(dims)} "
            f"(shape {dims}); expected a 4-D image input (N, C, H, W or N, H, W, C)"
        )
    etype = port.get_element_type().get_type_name()
    if spec.element_type is not None and spec.element_type != etype:
        raise ModelError(
            f"{where}: metadata says input.element_type {spec.element_type} but the "
            f"model input is {etype}; fix the metadata"
        )
    layout = spec.layout or _guess_layout(dims, where)
    c_axis, h_axis, w_axis = (1, 2, 3) if layout == "NCHW" else (3, 1, 2)
    want_c = spec.channels
    if dims[c_axis] not in (-1, want_c):
        raise ModelError(
            f"{where}: metadata says {layout} {spec.color} ({want_c} channel"
            f"{'s' if want_c > 1 else ''}) but the model input {dims} has {dims[c_axis]} there; "
            "fix input.layout/input.color in the metadata"
        )
    if dims[0] not in (-1, 1):
        raise ModelError(f"{where}: the model input has batch {dims[0]}; expressiond needs batch 1")
    model_size = (dims[w_axis], dims[h_axis]) if dims[w_axis] > 0 and dims[h_axis] > 0 else None
    if spec.size is not None and model_size is not None and spec.size != model_size:
        raise ModelError(
            f"{where}: metadata says input.size {spec.size[0]}x{spec.size[1]} but the model "
            f"input is {model_size[0]}x{model_size[1]} (width x height); fix the metadata"
        )
    if spec.embedded:
        if etype != "u8" or layout != "NHWC" or dims[3] != 3:
            raise ModelError(
                f"{where}: metadata says the model takes u8 BGR NHWC frames but its "
                f"input is {etype} {dims}; describe its real input in the metadata"
            )
        return InputFacts(layout, 3, None, etype, None)
    size = spec.size or model_size
    reshape_to = None
    if -1 in dims and (spec.size is not None or dims[0] == -1 or dims[c_axis] == -1):
        static = list(dims)
        static[0], static[c_axis] = 1, want_c
        if size is not None:
            static[w_axis], static[h_axis] = size
        reshape_to = static
    return InputFacts(layout, want_c, size, etype, reshape_to)


def _guess_layout(dims: list[int], where: str) -> str:
    nchw = dims[1] in (1, 3)
    nhwc = dims[3] in (1, 3)
    if nchw != nhwc:
        return "NCHW" if nchw else "NHWC"
    raise ModelError(
        f"{where}: cannot tell the layout of input shape {dims}; "
        'set input.layout ("NCHW" or "NHWC") in the metadata'
    )


def add_frame_input(model, spec: InputSpec, facts: InputFacts):
    """Return the model with a u8 BGR NHWC [1, H, W, 3] (H, W any) input in front."""
    if spec.embedded:
        return model
    if facts.reshape_to is not None:
        model.reshape(PartialShape(facts.reshape_to))
    ppp = PrePostProcessor(model)
    inp = ppp.input()
    inp.tensor().set_element_type(Type.u8).set_layout(Layout("NHWC")).set_shape(PartialShape([1, -1, -1, 3]))
    if spec.color != "GRAY":
        inp.tensor().set_color_format(ColorFormat.BGR)
    inp.model().set_layout(Layout(facts.layout))
    steps = inp.preprocess()
    needs_float = (
        facts.element_type != "u8" or spec.color == "GRAY" or spec.mean is not None or spec.scale is not None
    )
    if facts.size is not None:
        # Resize the u8 frame first, then convert: converting a whole 960x640 frame to f32
        # before shrinking it to 300x300 cost face-detection-retail-0005 about 7 % of its
        # throughput (benchmark_app, 960x640 input: 134 fps this way, 126 fps convert first).
        steps.resize(ResizeAlgorithm.RESIZE_LINEAR)
    if needs_float:
        steps.convert_element_type(Type.f32)
    if spec.color == "GRAY":
        steps.custom(_bgr_to_gray)
    elif spec.color == "RGB":
        steps.convert_color(ColorFormat.RGB)
    if spec.mean is not None:
        steps.mean(_values(spec.mean))
    if spec.scale is not None:
        steps.scale(_values(spec.scale))
    if needs_float and facts.element_type != "f32":
        steps.convert_element_type(getattr(Type, facts.element_type))
    return ppp.build()


def _values(values: tuple[float, ...]):
    return values[0] if len(values) == 1 else list(values)


def _bgr_to_gray(node):
    """f32 NHWC BGR -> NHWC with one channel, OpenCV's weights (2022.3's PPP has no GRAY)."""
    weights = ops.constant(np.array(GRAY_WEIGHTS_BGR, np.float32).reshape(1, 1, 1, 3))
    axis = ops.constant(np.array([3], np.int64))
    return ops.reduce_sum(ops.multiply(node, weights), axis, True).output(0)


def make_static(model, size: tuple[int, int], batch: bool = False):
    """Fix the u8 frame input to [1, height, width, 3] (NPU compiles static shapes only);
    ``batch``: [N, height, width, 3], any N (a frame's faces in one request)."""
    width, height = size
    model.reshape(PartialShape([-1 if batch else 1, height, width, 3]))
    return model
