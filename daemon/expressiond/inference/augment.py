"""Horizontal-flip averaging inside the classifier graph: one request, a batch of two.

``mirror_average`` rewrites a classifier that takes u8 BGR NHWC frames [1, H, W, 3] (the front
end adapters.py gives every model) so that, right after its in-graph resize (face-api's
112x112, a PrePostProcessor resize), the image and its mirror image form a batch of two; the
network runs once on both and the model returns the mean of the two score vectors, in the
original output shape. The resize of a large close-up crop runs once, so the cost is about
1.1-1.5x one request instead of 2x (benchmarks/closeup.py). A model without such a resize is
mirrored at its input (then the result equals two requests averaged). face-api's resize is
not mirror-symmetric (TF's align_corners=false), so there the result differs slightly from
averaging two requests; both were measured on the dev photos, within one photo of each other.

The daemon's pipeline, warm-up and request counts stay as they are. A network whose graph
fixes batch 1 in a Reshape (face-api's FaceExpressionNet flattens to [1, 256]) gets that
constant set to 2; a graph that cannot run a batch of two is refused with a ModelError that
says to turn flip off.

Thread: the main thread, at compile (graph building).
"""

from __future__ import annotations

import numpy as np

from expressiond.errors import ModelError
from expressiond.inference.ovcompat import error_reason
from expressiond.inference.ovcompat import opset as ops

_WIDTH_AXIS = 2  # NHWC
_INT64_MIN = np.iinfo(np.int64).min


def mirror_average(model, where: str, batch: bool = False):
    """Return a model that averages its outputs over the frame and its mirror image.
    ``batch``: any batch of B frames (the frames, then their mirrors: 2B, averaged pairwise
    back to B), for a classifier that takes a frame's faces in one request."""
    try:
        return _rewrite(model, batch)
    except Exception as exc:  # noqa: BLE001 - OpenVINO validation raises plain RuntimeErrors
        raise ModelError(
            f"{where}: flip averaging needs a model that runs a batch of two and "
            f"this one does not ({error_reason(exc)}); set flip = false in "
            "[classifier]"
        ) from exc


class _NotABatchOfTwo(Exception):
    pass


def _rewrite(model, batch: bool = False):
    params = model.get_parameters()
    if len(params) != 1:
        raise _NotABatchOfTwo("it has more than one input")
    param = params[0]
    shape = param.get_partial_shape()
    if shape.rank.is_dynamic or shape.rank.get_length() != 4:
        raise _NotABatchOfTwo(f"its input is {shape}, not a 4-D NHWC frame")
    node, axis = flip_point(model, param)
    source = node.output(0)
    targets = list(source.get_target_inputs())
    mirrored = ops.slice(
        source,
        np.array([-1], np.int64),
        np.array([_INT64_MIN], np.int64),
        np.array([-1], np.int64),
        np.array([axis], np.int64),
    )
    pair = ops.concat([source, mirrored], 0)
    for target in targets:
        target.replace_source_output(pair.output(0))
    downstream = _reachable([pair], stop=set())
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Reshape" or op.get_name() not in downstream:
            continue
        shape_source = op.input_value(1).get_node()
        if shape_source.get_type_name() != "Constant":
            continue
        target_shape = np.array(shape_source.get_data())
        if target_shape.ndim == 1 and target_shape.size >= 2 and target_shape[0] == 1:
            if batch and -1 in target_shape:
                raise _NotABatchOfTwo(f"a Reshape to {target_shape.tolist()} fixes the batch")
            target_shape = target_shape.copy()
            target_shape[0] = -1 if batch else 2
            op.input(1).replace_source_output(ops.constant(target_shape).output(0))
    if batch:  # the outputs' shapes after the new Reshapes, for the Split below
        model.validate_nodes_and_infer_types()
    means = []
    for result in model.get_results():
        value = result.input_value(0)
        if batch:  # [frames; mirrors] -> the pairwise mean, one row per frame
            halves = ops.split(value, np.array(0, np.int64), 2)
            mean = ops.multiply(ops.add(halves.output(0), halves.output(1)), np.array(0.5, np.float32))
        else:
            mean = ops.reduce_mean(value, np.array([0], np.int64), True)
        means.append(mean)
        out_names = value.get_names()
        result.input(0).replace_source_output(mean.output(0))
        if out_names:
            value.get_tensor().set_names(set())
            mean.output(0).get_tensor().set_names(set(out_names))
    model.validate_nodes_and_infer_types()
    if batch:
        return model
    for mean in means:
        batch = mean.input_value(0).get_partial_shape()
        if (
            batch.rank.is_dynamic
            or batch.rank.get_length() == 0
            or batch[0].is_dynamic
            or batch[0].get_length() != 2
        ):
            raise _NotABatchOfTwo(f"an output has the shape {batch} for a batch of 2")
    return model


def flip_point(model, param) -> tuple[object, int]:
    """Where to mirror: right after the in-graph resize (the first Interpolate that every path
    from the input to the outputs goes through), so the resize of a large crop runs once;
    else the input frame itself. -> (node, the width axis of its output)."""
    results = {r.get_name() for r in model.get_results()}
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Interpolate":
            continue
        resized = _resized_axes(op)
        if len(resized) != 2 or results & _reachable([param], stop={op.get_name()}):
            break
        return op, resized[-1]  # (H, W) axes: W is the later one
    return param, _WIDTH_AXIS


def _resized_axes(op) -> list[int]:
    """The axes an Interpolate resizes: its constant axes input (v4, 4 inputs), else the
    axes whose output size is fixed where the input's is not (v11 from PrePostProcessor)."""
    if op.get_input_size() == 4 and op.input_value(3).get_node().get_type_name() == "Constant":
        return sorted(int(a) for a in np.array(op.input_value(3).get_node().get_data()).reshape(-1))
    before, after = op.get_input_partial_shape(0), op.get_output_partial_shape(0)
    if before.rank.is_dynamic or after.rank.is_dynamic or after.rank.get_length() != 4:
        return []
    return [
        i
        for i in range(4)
        if after[i].is_static and (before[i].is_dynamic or before[i].get_length() != after[i].get_length())
    ]


def _reachable(starts: list, stop: set[str]) -> set[str]:
    """Unique names (Node.get_name) of the nodes reachable from ``starts`` along data edges,
    not going on past the nodes named in ``stop``."""
    seen: set[str] = set()
    todo = list(starts)
    while todo:
        node = todo.pop()
        name = node.get_name()
        if name in seen:
            continue
        seen.add(name)
        if name in stop:
            continue
        for output in node.outputs():
            for target in output.get_target_inputs():
                todo.append(target.get_node())
    return seen
