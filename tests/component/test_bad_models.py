"""Broken model files stop `expressiond run` before READY with one clear line and exit 78.

Each case is a real file on disk, run through the real daemon in a subprocess with a real
$NOTIFY_SOCKET (a unix datagram socket bound by the test), so "before READY" is observed, not
assumed. The tiny models are built here with the OpenVINO opset API; the truncated one is the
builtin classifier with its .bin cut short.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from expressiond.inference.ovcompat import opset, ov, save_model


def tiny_classifier(
    path: Path,
    shape=(1, 3, 8, 8),
    classes: int = 5,
    meta: dict | None = None,
    weights: np.ndarray | None = None,
) -> Path:
    p = opset.parameter(list(shape), ov.Type.f32, name="image")
    flat = opset.reshape(p, opset.constant(np.array([1, -1], np.int64)), False)
    w = (
        weights
        if weights is not None
        else np.random.default_rng(1).normal(0, 1e-3, (int(np.prod(shape)), classes)).astype(np.float32)
    )
    probs = opset.softmax(opset.matmul(flat, opset.constant(w), False, False), 1)
    save_model(ov.Model([probs.output(0)], [p], "tiny"), path)
    layout = "NCHW" if len(shape) == 4 and shape[1] == 3 else None
    default = {
        "schema": 1,
        "name": "tiny",
        "kind": "classifier",
        "output_kind": "softmax",
        "labels": [f"class{i}" for i in range(classes)],
        "input": {"layout": layout, "color": "BGR"},
    }
    path.with_suffix(".json").write_text(json.dumps({**default, **(meta or {})}))
    return path


def binary_convolution(path: Path) -> Path:
    """A valid IR whose BinaryConvolution has f32 weights: OpenVINO reads it, the CPU plugin
    cannot compile it ("cpu_convert can't convert from f32 to u1"), in 2022.3 and 2026 alike."""
    import openvino  # noqa: F401 - opset1 path differs between generations

    try:
        from openvino import opset1
    except ImportError:  # pragma: no cover - OpenVINO 2022.3
        from openvino.runtime import opset1
    p = opset1.parameter([1, 3, 8, 8], ov.Type.f32, name="image")
    conv = opset1.binary_convolution(
        p,
        opset1.constant(np.ones((5, 3, 8, 8), np.float32)),
        [1, 1],
        [0, 0],
        [0, 0],
        [1, 1],
        "xnor-popcount",
        0.0,
    )
    probs = opset.softmax(opset.reshape(conv, opset.constant(np.array([1, 5], np.int64)), False), 1)
    save_model(ov.Model([probs.output(0)], [p], "binconv"), path)
    path.with_suffix(".json").write_text(
        json.dumps(
            {
                "kind": "classifier",
                "output_kind": "softmax",
                "labels": list("abcde"),
                "input": {"layout": "NCHW"},
            }
        )
    )
    return path


def truncated_builtin(path: Path, models_dir: Path) -> Path:
    src = models_dir / "face-api" / "expression" / "FP32"
    shutil.copyfile(src / "model.xml", path)
    path.with_suffix(".bin").write_bytes((src / "model.bin").read_bytes()[:100_000])
    shutil.copyfile(src / "model.json", path.with_suffix(".json"))
    return path


def custom_layer(path: Path, models_dir: Path) -> Path:
    """The builtin classifier with one layer turned into an op of an unknown extension opset."""
    src = models_dir / "face-api" / "expression" / "FP32"
    xml = (src / "model.xml").read_text()
    first = re.search(r'type="Multiply" version="opset\d+"', xml)
    path.write_text(xml.replace(first.group(0), 'type="FaceAlign" version="myextension"', 1))
    shutil.copyfile(src / "model.bin", path.with_suffix(".bin"))
    shutil.copyfile(src / "model.json", path.with_suffix(".json"))
    return path


def run_daemon(
    tmp_path: Path,
    models_dir: Path,
    classifier: str = "face-api/expression",
    detector: str = "face-api/ssd_mobilenetv1",
    command: str = "run",
    device: str = "CPU",
    precision: str = "FP32",
    max_seconds: float = 3,
):
    """`expressiond run` (or `devices`) on the sample clip -> (exit code, stderr, the
    $NOTIFY_SOCKET messages it sent)."""
    cfg = tmp_path / "bad.toml"
    cfg.write_text(
        textwrap.dedent(f"""
        device_id = "bad-models"
        models_dir = "{models_dir}"
        [inference]
        device = "{device}"
        precision = "{precision}"
        num_requests = 1
        [detector]
        model = "{detector}"
        [classifier]
        model = "{classifier}"
        [[cameras]]
        name = "door"
        source = "samples"
        """)
    )
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    try:
        args = (
            ["run", "--config", str(cfg), "--no-mqtt", "--max-seconds", str(max_seconds)]
            if command == "run"
            else ["devices", "--config", str(cfg)]
        )
        env = {"PATH": "/usr/bin:/bin", "NOTIFY_SOCKET": str(sock_path), "HOME": str(tmp_path)}
        proc = subprocess.run(
            [sys.executable, "-m", "expressiond.cli", *args],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
            env=env,
        )
        sock.setblocking(False)
        messages = []
        while True:
            try:
                messages.append(sock.recv(65536).decode())
            except BlockingIOError:
                break
    finally:
        sock.close()
    return proc.returncode, proc.stderr, messages


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("expressiond: error:")]


CASES = {
    "truncated bin": (
        lambda d, m: truncated_builtin(d / "cut.xml", m),
        r"cut\.xml: cannot read the model \(Incorrect weights in bin file!\); "
        r"cut\.bin is truncated",
    ),
    "input rank 3": (
        lambda d, m: tiny_classifier(d / "rank3.xml", shape=(1, 3, 64)),
        r"input image has rank 3 \(shape \[1, 3, 64\]\); expected a 4-D image",
    ),
    "label count": (
        lambda d, m: tiny_classifier(d / "labels.xml", meta={"labels": list("abcdefg")}),
        r"metadata lists 7 labels but the model's output .* gives 5 values",
    ),
    "input size": (
        lambda d, m: tiny_classifier(d / "size.xml", meta={"input": {"layout": "NCHW", "size": [64, 64]}}),
        r"metadata says input\.size 64x64 but the model input is 8x8",
    ),
    "colour channels": (
        lambda d, m: tiny_classifier(d / "grey.xml", meta={"input": {"layout": "NCHW", "color": "GRAY"}}),
        r"metadata says NCHW GRAY \(1 channel\) but the model input \[1, 3, 8, 8\]",
    ),
    "kind": (
        lambda d, m: tiny_classifier(
            d / "kind.xml", meta={"kind": "detector", "output_kind": "ssd_detection_out"}
        ),
        r"kind is 'detector' but this model is configured as the classifier; use it as "
        r"the detector or fix \"kind\" in the metadata",
    ),
    "head": (
        lambda d, m: tiny_classifier(d / "head.xml", meta={"output_kind": "sigmoid"}),
        r"metadata says output_kind sigmoid but the model's output comes from a Softmax",
    ),
    "bad json": (
        lambda d, m: (tiny_classifier(d / "json.xml"), (d / "json.json").write_text("{labels: oops"))[0],
        r"json\.json: unreadable model metadata",
    ),
    "unknown layer": (
        lambda d, m: custom_layer(d / "custom.xml", m),
        r"cannot read the model \(Cannot create FaceAlign layer .* opset: "
        r"myextension\); it uses a layer this OpenVINO cannot create",
    ),
    "layer the CPU cannot compile": (
        lambda d, m: binary_convolution(d / "binconv.xml"),
        r"cannot compile binconv for CPU \(.*cpu_convert can't "
        r"convert from: (f32|FP32) precision to: (u1|BIN)\); CPU "
        r"cannot run a layer of this model",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_classifier_exits_78_before_ready(tmp_path, models_dir, case):
    make, pattern = CASES[case]
    xml = make(tmp_path, models_dir)
    code, stderr, messages = run_daemon(tmp_path, models_dir, classifier=str(xml))
    assert code == 78, stderr[-2000:]
    lines = error_lines(stderr)
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[-2000:]
    assert re.search(pattern, lines[0]), lines[0]
    assert not any("READY=1" in m for m in messages), messages


def test_wrong_model_as_detector_exits_78_before_ready(tmp_path, models_dir):
    """A classifier's IR with metadata claiming a [1, 1, N, 7] detector."""
    xml = tiny_classifier(tmp_path / "det.xml", meta={"kind": "detector", "output_kind": "ssd_detection_out"})
    code, stderr, messages = run_daemon(tmp_path, models_dir, detector=str(xml))
    assert code == 78, stderr[-2000:]
    (line,) = error_lines(stderr)
    assert re.search(
        r"output_kind ssd_detection_out needs a \[1, 1, N, 7\] output but .* is "
        r"\[1, 5\]",
        line,
    ), line
    assert not any("READY=1" in m for m in messages)


def test_good_tiny_model_reaches_ready(tmp_path, models_dir):
    """The control: the same harness with a sound model sees READY=1 and exit 0."""
    xml = tiny_classifier(tmp_path / "good.xml")
    code, stderr, messages = run_daemon(tmp_path, models_dir, classifier=str(xml))
    assert code == 0, stderr[-2000:]
    assert any("READY=1" in m for m in messages), messages


def test_devices_command_reports_the_bad_model(tmp_path, models_dir):
    xml = tiny_classifier(tmp_path / "labels.xml", meta={"labels": list("abcdefg")})
    code, stderr, _ = run_daemon(tmp_path, models_dir, classifier=str(xml), command="devices")
    assert code == 78
    (line,) = error_lines(stderr)
    assert "metadata lists 7 labels" in line
