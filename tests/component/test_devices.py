"""Device handling with the real OpenVINO of this machine, which has a CPU and nothing else:
GPU, NPU and MYRIAD are genuinely absent here (no fakes), so their absent-device paths run for
real; AUTO:GPU,CPU really falls back to the CPU. What only real hardware can show (a GPU/NPU
compile, the NCS2) is not tested here; the static-shape path NPU/MYRIAD get runs on the CPU.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import cv2
import numpy as np
import pytest
from matching import match_boxes

from expressiond.errors import DeviceError
from expressiond.inference.analyzer import AnalyzerSettings, FaceAnalyzer
from expressiond.inference.devices import effective_precision, is_present, plan_device
from expressiond.inference.engine import cache_dir_for, compile_net
from expressiond.inference.metadata import resolve_model
from expressiond.inference.ovcompat import LEGACY, Core

from .test_bad_models import error_lines, run_daemon

# --- what a device string means, for a given list of present devices ------------------------


def test_plain_device_must_be_present():
    assert plan_device("CPU", ["CPU"]).device == "CPU"
    with pytest.raises(DeviceError) as err:
        plan_device("GPU", ["CPU"])
    msg = str(err.value)
    assert "GPU is not present (devices present: CPU)" in msg
    assert "apt install intel-opencl-icd" in msg and 'device = "AUTO:GPU,CPU"' in msg
    assert "\n" not in msg


def test_gpu_names_and_indices():
    assert is_present("GPU", ["CPU", "GPU.0", "GPU.1"]) and is_present("GPU.1", ["GPU.0", "GPU.1"])
    assert is_present("GPU.0", ["CPU", "GPU"]) and not is_present("GPU.1", ["CPU", "GPU"])
    with pytest.raises(DeviceError, match="GPU.2 is not present"):
        plan_device("GPU.2", ["CPU", "GPU.0", "GPU.1"])


def test_auto_list_falls_back_to_what_is_present():
    plan = plan_device("AUTO:GPU,CPU", ["CPU"])
    assert plan.device == "CPU" and plan.physical == ("CPU",)
    assert "GPU not present, running on CPU" in plan.note
    both = plan_device("AUTO:GPU,NPU,CPU", ["CPU", "GPU"])
    assert both.device == "AUTO:GPU,CPU" and both.static_shapes is False and both.wants_cache
    assert plan_device("AUTO", ["CPU"]).device == "CPU"
    with pytest.raises(DeviceError, match="GPU, NPU are not present"):
        plan_device("AUTO:GPU,NPU", ["CPU"])


def test_hetero_needs_every_device():
    with pytest.raises(DeviceError, match="GPU is not present"):
        plan_device("HETERO:GPU,CPU", ["CPU"])
    assert plan_device("HETERO:GPU,CPU", ["CPU", "GPU"]).device == "HETERO:GPU,CPU"


def test_myriad_messages_depend_on_the_openvino_generation():
    with pytest.raises(DeviceError, match="removed in OpenVINO 2023.0.*2022.3 LTS"):
        plan_device("MYRIAD", ["CPU"], legacy=False)
    with pytest.raises(DeviceError, match="pip wheel never had one"):
        plan_device("MYRIAD", ["CPU"], legacy=True, plugins={"MYRIAD": False})
    with pytest.raises(DeviceError, match="plug it in .* udev rule for USB vendor 03e7"):
        plan_device("MYRIAD", ["CPU"], legacy=True, plugins={"MYRIAD": True})
    assert plan_device("MYRIAD", ["CPU", "MYRIAD"], legacy=True).static_shapes


def test_static_shapes_and_cache_per_device(tmp_path, monkeypatch):
    monkeypatch.setenv("CACHE_DIRECTORY", str(tmp_path / "cache"))
    npu = plan_device("NPU", ["CPU", "NPU"])
    gpu = plan_device("GPU", ["CPU", "GPU"])
    cpu = plan_device("CPU", ["CPU"])
    assert npu.static_shapes and not gpu.static_shapes and not cpu.static_shapes
    assert plan_device("GPU", ["GPU"], legacy=True).static_shapes  # 2022.3's GPU plugin
    assert cache_dir_for(gpu, None) == cache_dir_for(npu, None) == str(tmp_path / "cache")
    assert cache_dir_for(cpu, None) is None and cache_dir_for(cpu, "/x") == "/x"


def test_myriad_forces_fp16(caplog):
    with caplog.at_level(logging.WARNING):
        assert effective_precision("MYRIAD", "FP32") == "FP16"
        assert effective_precision("AUTO:MYRIAD,CPU", "FP32") == "FP16"
    assert "runs FP16 only" in caplog.text
    assert effective_precision("MYRIAD", "FP16") == "FP16"
    assert effective_precision("GPU", "FP32") == "FP32"


# --- real OpenVINO on this machine -------------------------------------------------------------


@pytest.mark.parametrize(
    ("device", "hint"),
    [
        ("GPU", "intel-opencl-icd"),
        ("NPU", "NPU"),
        ("MYRIAD", "2022.3"),
        ("HETERO:GPU,CPU", "intel-opencl-icd"),
    ],
)
def test_absent_device_is_a_device_error_naming_what_exists(models_dir, device, hint):
    files = resolve_model("face-api/expression", models_dir, "FP16")
    with pytest.raises(DeviceError) as err:
        compile_net(files, "classifier", device, "FP16")
    assert "devices present: CPU" in str(err.value) and hint in str(err.value)


def test_run_on_absent_gpu_exits_78_before_ready(tmp_path, models_dir):
    code, stderr, messages = run_daemon(tmp_path, models_dir, device="GPU")
    assert code == 78, stderr[-2000:]
    (line,) = error_lines(stderr)
    assert "GPU is not present (devices present: CPU)" in line and "intel-opencl-icd" in line
    assert not any("READY=1" in m for m in messages)


def test_run_on_absent_myriad_warns_fp16_and_exits_78(tmp_path, models_dir):
    code, stderr, messages = run_daemon(tmp_path, models_dir, device="MYRIAD", precision="FP32")
    assert code == 78, stderr[-2000:]
    assert "runs FP16 only" in stderr
    (line,) = error_lines(stderr)
    assert "MYRIAD is not present" in line
    assert not any("READY=1" in m for m in messages)


def test_auto_with_fallback_starts_on_the_cpu_and_says_so(tmp_path, models_dir):
    code, stderr, messages = run_daemon(tmp_path, models_dir, device="AUTO:GPU,CPU", max_seconds=4)
    assert code == 0, stderr[-2000:]
    assert "AUTO:GPU,CPU: GPU not present, running on CPU" in stderr
    ready = [m for m in messages if "READY=1" in m]
    assert ready and "STATUS=CPU FP32" in ready[0], messages


def test_devices_command_lists_the_cpu_and_what_is_missing(models_dir):
    proc = subprocess.run(
        [sys.executable, "-m", "expressiond.cli", "devices", "--json", "--models", str(models_dir)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    (cpu,) = report["devices"]
    assert cpu["name"] == "CPU" and cpu["full_name"] and "FP32" in cpu["capabilities"]
    for role in ("detector", "classifier"):
        row = cpu["models"][role]
        assert row["compiles"] and row["optimal_requests"] >= 1
        assert row["execution_devices"] == ["CPU"] and row["compile_ms"] > 0
        assert report["configured"][role]["compiles"]
    missing = {a["name"]: a["install"] for a in report["not_present"]}
    assert set(missing) == {"GPU", "NPU", "MYRIAD"} and "intel-opencl-icd" in missing["GPU"]
    assert report["ok"] is True


def test_model_cache_is_used_on_the_second_compile(models_dir, tmp_path):
    """Cold vs cached compile on the CPU with CACHE_DIR (what GPU and NPU always get): the
    second compile, in a fresh Core as after a restart, loads the blob instead of compiling."""
    cache = tmp_path / "cache"
    timings = {}
    for name, role in (("face-api/ssd_mobilenetv1", "detector"), ("face-api/expression", "classifier")):
        files = resolve_model(name, models_dir, "FP32")
        cold = compile_net(files, role, "CPU", "FP32", "THROUGHPUT", str(cache), Core())
        blobs = sorted(p.name for p in cache.iterdir())
        warm = compile_net(files, role, "CPU", "FP32", "THROUGHPUT", str(cache), Core())
        assert blobs and sorted(p.name for p in cache.iterdir()) == blobs  # nothing new written
        if not LEGACY:  # 2022.3 has no LOADED_FROM_CACHE property
            assert cold.info["LOADED_FROM_CACHE"] is False
            assert warm.info["LOADED_FROM_CACHE"] is True
        timings[role] = (cold.info["compile_ms"], warm.info["compile_ms"])
    print("compile ms cold -> cached:", timings)
    assert len(list(cache.iterdir())) >= 2


def test_static_input_path_on_the_cpu(models_dir, sample_images):
    """What NPU/MYRIAD get (fixed input, frames fitted on the host) gives the same faces."""
    dynamic = FaceAnalyzer(AnalyzerSettings(models_dir))
    static = FaceAnalyzer(AnalyzerSettings(models_dir, static_shapes=True))
    assert static.detector.adapter.static_size == (512, 512)
    assert static.classifier.adapter.static_size == (112, 112)
    assert static.detector.compiled.inputs[0].get_partial_shape().is_static
    same_top = total = 0
    for path in sample_images[:3]:
        image = cv2.imread(str(path))
        a, b = dynamic.analyze(image), static.analyze(image)
        assert abs(len(a) - len(b)) <= 1, (path, len(a), len(b))
        # paired by box, one to one (never by position): every face of the shorter list found
        pairs = match_boxes([f.box for f in a], [f.box for f in b], min_iou=0.8)
        assert len(pairs) == min(len(a), len(b)), (path, pairs, len(a), len(b))
        for i, j, v in pairs:
            assert v > 0.8, (path, v)
            total += 1
            same_top += a[i].expression == b[j].expression
    assert same_top >= 0.8 * total, (same_top, total)


def test_static_pipeline_warm_up_accepts_any_frame_size(models_dir):
    from expressiond.inference.classifiers import ClassifierSet
    from expressiond.inference.factory import warm_up

    det = compile_net(
        resolve_model("face-api/ssd_mobilenetv1", models_dir, "FP32"),
        "detector",
        "CPU",
        "FP32",
        static_shapes=True,
    )
    cls = compile_net(
        resolve_model("face-api/expression", models_dir, "FP32"),
        "classifier",
        "CPU",
        "FP32",
        static_shapes=True,
    )
    assert warm_up(det, ClassifierSet.single(cls)) > 0
    batch = det.adapter.prepare(np.zeros((480, 640, 3), np.uint8))
    assert batch.shape == (1, 512, 512, 3)
