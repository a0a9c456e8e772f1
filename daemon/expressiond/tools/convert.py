"""``expressiond convert SRC``: a third-party expression classifier (ONNX, TFLite, TensorFlow
SavedModel) -> OpenVINO IR (FP32 or FP16) plus the metadata file the daemon reads.

Uses OpenVINO's own converter (``openvino.convert_model``, OpenVINO 2023.1+). The IR keeps the
model's own input; the metadata describes it (size, layout, colour, mean/scale, head, labels)
and the daemon adds the u8 BGR frame front end at load. Before anything is kept, the written
model is loaded the way the daemon loads it and run once on the CPU, so a contradiction
between the options and the model is caught here and not at the first camera frame.

Thread: the command's main thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from expressiond.errors import ModelError, UsageError
from expressiond.inference.bundled import sha256_file
from expressiond.inference.metadata import COLORS, LAYOUTS, parse_meta
from expressiond.inference.outputs import head_op
from expressiond.inference.ovcompat import LEGACY, PartialShape, error_reason, ov, short_version

log = logging.getLogger(__name__)

FORMATS = {".onnx": "ONNX", ".tflite": "TFLite", ".pb": "TensorFlow frozen graph", ".pdmodel": "PaddlePaddle"}
KERAS = (".h5", ".hdf5", ".keras")
HEADS = ("softmax", "sigmoid")


@dataclass(frozen=True)
class ConvertOptions:
    precision: str  # FP32 | FP16
    labels: tuple[str, ...]
    output: Path | None = None
    name: str | None = None
    input_size: int | None = None
    color: str | None = None  # RGB | BGR | GRAY; default: GRAY for 1 channel, else RGB
    layout: str | None = None
    mean: tuple[float, ...] | None = None
    scale: tuple[float, ...] | None = None
    head: str | None = None  # softmax | sigmoid; default: read from the model


def parse_numbers(text: str | None, what: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(
            f"--{what} {text!r}: give a number or one per channel, e.g. 127.5 or 123.7,116.3,103.5"
        ) from None
    if len(values) not in (1, 3):
        raise UsageError(f"--{what} {text!r}: give 1 or 3 numbers")
    return values


def parse_labels(text: str) -> tuple[str, ...]:
    labels = tuple(x.strip() for x in text.split(","))
    if not all(labels):
        raise UsageError(f"--labels {text!r}: an empty label; give names like happy,sad,neutral")
    if len(set(labels)) != len(labels):
        raise UsageError(f"--labels {text!r}: each label must appear once")
    return labels


def source_format(src: Path) -> str:
    if not src.exists():
        raise UsageError(f"{src}: no such file or directory")
    if src.is_dir():
        if (src / "saved_model.pb").is_file() or (src / "saved_model.pbtxt").is_file():
            return "TensorFlow SavedModel"
        raise UsageError(
            f"{src}: a directory without saved_model.pb; give a SavedModel "
            "directory, an .onnx or a .tflite file"
        )
    suffix = src.suffix.lower()
    if suffix in KERAS:
        raise UsageError(
            f"{src}: Keras {suffix} files need TensorFlow to read; save the model as "
            "a SavedModel (model.export(dir)) or convert it to ONNX/TFLite first"
        )
    if suffix not in FORMATS:
        raise UsageError(
            f"{src}: unknown model format {suffix or '(no suffix)'}; expressiond "
            "converts ONNX (.onnx), TFLite (.tflite) and TensorFlow SavedModel "
            "directories"
        )
    return FORMATS[suffix]


@contextlib.contextmanager
def _native_stderr_silenced():
    """OpenVINO's frontends probe a file in turn and some log parse errors from C++ straight
    to fd 2; the operator gets our one line instead."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), fd)
            try:
                yield
            finally:
                os.dup2(saved, fd)
    finally:
        os.close(saved)


def _convert(src: Path, fmt: str):
    try:
        with _native_stderr_silenced():
            return ov.convert_model(str(src))
    except Exception as exc:  # noqa: BLE001 - each frontend raises its own type
        reason = error_reason(exc)
        if "tensorflow" in reason.lower() and fmt.startswith("TensorFlow"):
            raise ModelError(
                f"{src}: converting a {fmt} needs the tensorflow package (pip "
                "install tensorflow), or export the model to ONNX or TFLite "
                f"first ({reason})"
            ) from exc
        raise ModelError(f"{src}: OpenVINO cannot convert this {fmt} model ({reason})") from exc


def _dims(port) -> list[int]:
    shape = port.get_partial_shape()
    if shape.rank.is_dynamic:
        raise ModelError("the model input has a dynamic rank; export it with a 4-D image input")
    return [d.get_length() if d.is_static else -1 for d in shape]


def _input_contract(model, opts: ConvertOptions, src: Path) -> dict:
    if len(model.inputs) != 1:
        raise ModelError(
            f"{src}: the model has {len(model.inputs)} inputs; an expression "
            "classifier for expressiond takes exactly one image"
        )
    if len(model.outputs) != 1:
        raise ModelError(
            f"{src}: the model has {len(model.outputs)} outputs; expressiond reads one vector of class scores"
        )
    dims = _dims(model.inputs[0])
    if len(dims) != 4:
        raise ModelError(
            f"{src}: the input has rank {len(dims)} (shape {dims}); expected a 4-D "
            "image input (N, H, W, C or N, C, H, W)"
        )
    layout = opts.layout
    if layout is None:
        nchw, nhwc = dims[1] in (1, 3), dims[3] in (1, 3)
        if nchw == nhwc:
            raise ModelError(
                f"{src}: cannot tell the layout of input shape {dims}; give --layout NCHW or --layout NHWC"
            )
        layout = "NCHW" if nchw else "NHWC"
    c_axis, h_axis, w_axis = (1, 2, 3) if layout == "NCHW" else (3, 1, 2)
    channels = dims[c_axis]
    if channels not in (-1, 1, 3):
        raise ModelError(
            f"{src}: input {dims} has {channels} channels in {layout}; expected 1 "
            "(grey) or 3 (colour); check --layout"
        )
    color = opts.color or ("GRAY" if channels == 1 else "RGB")
    want = 1 if color == "GRAY" else 3
    if channels not in (-1, want):
        raise ModelError(
            f"{src}: --color {color} needs {want} channel(s) but the model input {dims} has {channels}"
        )
    size = (dims[w_axis], dims[h_axis])
    if -1 in size:
        if opts.input_size is None:
            raise ModelError(
                f"{src}: the input size is dynamic ({dims}); give --input-size N "
                "(e.g. 224 for MobileNet, 299 for InceptionV3)"
            )
        size = (opts.input_size, opts.input_size)
    elif opts.input_size is not None and size != (opts.input_size, opts.input_size):
        raise ModelError(
            f"{src}: the model input is {size[0]}x{size[1]} but --input-size is "
            f"{opts.input_size}; leave --input-size out or give {size[0]}"
        )
    static = list(dims)
    static[0], static[c_axis] = 1, want
    static[w_axis], static[h_axis] = size
    if static != dims:
        model.reshape(PartialShape(static))
    contract = {
        "layout": layout,
        "color": color,
        "size": list(size),
        "element_type": model.inputs[0].get_element_type().get_type_name(),
    }
    for key in ("mean", "scale"):
        values = getattr(opts, key)
        if values is not None:
            if len(values) not in (1, want):
                raise UsageError(f"--{key}: give 1 number or {want} for a {color} input")
            contract[key] = values[0] if len(values) == 1 else list(values)
    return contract


def _head(model, opts: ConvertOptions, src: Path) -> str:
    found = {"Softmax": "softmax", "SoftMax": "softmax", "Sigmoid": "sigmoid"}.get(head_op(model, 0) or "")
    if opts.head is None:
        if found is None:
            raise ModelError(
                f"{src}: the output does not end in a Softmax or Sigmoid layer "
                f"({head_op(model, 0)}); give --head softmax or --head sigmoid if "
                "it already gives class scores"
            )
        return found
    return opts.head


def convert(src: Path, opts: ConvertOptions) -> dict:
    """Convert, write <output>/<name>.xml/.bin/.json, check it loads and runs; -> summary."""
    if opts.precision not in ("FP32", "FP16"):
        raise UsageError(f"--precision {opts.precision!r}: FP32 or FP16")
    if opts.color is not None and opts.color not in COLORS:
        raise UsageError(f"--color {opts.color!r}: one of {', '.join(COLORS)}")
    if opts.layout is not None and opts.layout not in LAYOUTS:
        raise UsageError(f"--layout {opts.layout!r}: NCHW or NHWC")
    if opts.head is not None and opts.head not in HEADS:
        raise UsageError(f"--head {opts.head!r}: softmax or sigmoid")
    src = Path(src)
    fmt = source_format(src)
    if LEGACY:
        raise UsageError(
            f"expressiond convert needs OpenVINO 2023.1 or newer (this is "
            f"{short_version()}, without openvino.convert_model); convert on a "
            "machine with current OpenVINO and copy the .xml, .bin and .json here"
        )
    name = opts.name or (src.name if src.is_dir() else src.stem)
    out_dir = Path(opts.output) if opts.output else Path.cwd() / name / opts.precision
    model = _convert(src, fmt)
    contract = _input_contract(model, opts, src)
    meta = {
        "schema": 1,
        "name": name,
        "kind": "classifier",
        "output_kind": _head(model, opts, src),
        "labels": list(opts.labels),
        "precision": opts.precision,
        "input": contract,
        "source": {"file": src.name, "format": fmt, "sha256": sha256_file(src) if src.is_file() else None},
        "converter": f"expressiond convert, OpenVINO {short_version()}",
    }
    parse_meta(meta, f"{src} (converted)", "classifier")  # the options make valid metadata
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".convert-", dir=out_dir) as tmp:
        xml = Path(tmp) / f"{name}.xml"
        ov.save_model(model, str(xml), compress_to_fp16=opts.precision == "FP16")
        xml.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
        result = _check_written(xml, opts.precision)
        for suffix in (".xml", ".bin", ".json"):
            shutil.move(str(xml.with_suffix(suffix)), out_dir / f"{name}{suffix}")
    target = out_dir / f"{name}.xml"
    log.info("converted %s (%s) -> %s", src, fmt, target)
    return {
        "xml": str(target),
        "bin": str(target.with_suffix(".bin")),
        "metadata": str(target.with_suffix(".json")),
        "format": fmt,
        "input": contract,
        "output_kind": meta["output_kind"],
        "labels": list(opts.labels),
        "precision": opts.precision,
        "check": result,
    }


def _check_written(xml: Path, precision: str) -> dict:
    """Load the IR exactly as the daemon does and classify a grey face-sized image once."""
    from expressiond.inference.engine import compile_net
    from expressiond.inference.metadata import resolve_model

    net = compile_net(
        resolve_model(str(xml), xml.parent, precision), "classifier", "CPU", precision, "LATENCY"
    )
    request = net.compiled.create_infer_request()
    request.infer({0: net.adapter.prepare(np.full((96, 80, 3), 128, np.uint8))})
    scores = net.adapter.scores(net.adapter.fetch(request))
    if not all(np.isfinite(v) for v in scores.values()):
        raise ModelError(
            f"{xml.name}: the converted model gives non-finite scores on a grey image; check --mean/--scale"
        )
    return {"compiled_on": "CPU", "scores_on_grey": {k: round(v, 4) for k, v in scores.items()}}


def print_summary(result: dict) -> None:
    """The human form of ``expressiond convert``'s result (``--json`` prints the dict)."""
    inp = result["input"]
    norm = ""
    if "mean" in inp or "scale" in inp:
        norm = f", (x - {inp.get('mean', 0)}) / {inp.get('scale', 1)}"
    print(
        f"{result['xml']}: {result['format']} -> IR {result['precision']}; input "
        f"{inp['size'][0]}x{inp['size'][1]} {inp['color']} {inp['layout']}{norm}; "
        f"{result['output_kind']} over {len(result['labels'])} labels "
        f"({', '.join(result['labels'])})"
    )
    print(f"metadata: {result['metadata']}; checked on the CPU")
    print(f'use it: [classifier] model = "{result["xml"]}"')
