"""``expressiond benchmark`` end to end in ~25 s, so that `make test` (which leaves out the
slow tests of test_benchmark_cli.py) still runs the command: every mode once (sync loop, async
pipeline with 1 and 2 requests, the real ``expressiond run`` as a child process, benchmark_app
on the detector static and dynamic and on the classifier, the 10 fps latency runs with both
hints) at 0.5 s per mode on the demo clip, real OpenVINO on the CPU. It checks the JSON's
shape and that every figure is a finite positive number, not speed (the box is shared).

OpenVINO 2022.3 (the Python 3.10 run) ships benchmark_app in openvino-dev, not in the openvino
wheel: there the three benchmark_app rows must say so and the ratios built on them be null,
the rest as above. With OpenVINO 2023+ benchmark_app comes with the wheel; missing, it is a
missing input (tests/needs.py)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

from needs import missing

from expressiond.config import InferenceConfig
from expressiond.inference.ovcompat import LEGACY

# DESIGN.md, "expressiond benchmark --json OUT writes at least ..." (now --out FILE; --json: stdout)
DESIGN_KEYS = {"ratios", "latency_ms", "peak_rss_mib", "device", "precision"}
DESIGN_RATIOS = {"async_vs_sync", "e2e_vs_benchmark_app"}
BAPP_RATIOS = {  # the ratios that need a benchmark_app row
    "e2e_vs_benchmark_app",
    "e2e_vs_benchmark_app_dynamic",
    "benchmark_app_vs_sync",
    "e2e_vs_benchmark_app_per_cpu",
    "e2e_vs_inference_ceiling",
    "e2e_vs_inference_ceiling_per_cpu",
    "e2e_vs_ceiling_with_decode_per_cpu",  # issue 18: + the decode row
    "ceiling_with_decode_cpu_ms",
}
MODES = [
    ("sync", "sync loop (write-up)"),
    ("async", "async pipeline, 1 requests"),
    ("async", "async pipeline, 2 requests"),
    ("e2e", "end-to-end run, every frame"),
    ("bapp", "benchmark_app detector"),
    ("bapp", "benchmark_app detector, dynamic shape"),
    ("bapp", "benchmark_app classifier"),
    ("decode", "decode, the file source (cv2)"),  # issue 18: the ceiling counts the decode
    ("latency", "end-to-end run, 10 fps source, THROUGHPUT"),
    ("latency", "end-to-end run, 10 fps source, LATENCY"),
]


def _no_nan(name: str):
    raise ValueError(f"{name} in the benchmark JSON")


def _positive(value, where: str) -> None:
    assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (where, value)


def _has_benchmark_app() -> bool:
    return bool(shutil.which("benchmark_app")) or Path(sys.executable).with_name("benchmark_app").exists()


def test_benchmark_smoke_every_mode_once(tmp_path, models_dir):
    bapp = _has_benchmark_app()
    if not bapp and not LEGACY:
        missing("benchmark_app", "it comes with the openvino wheel: make venv (pip install -e .)")
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "expressiond.cli",
            "benchmark",
            "--models",
            str(models_dir),
            "--seconds",
            "0.5",
            "--max-requests",
            "2",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    result = json.loads(out.read_text(), parse_constant=_no_nan)  # NaN/Infinity are not JSON

    assert set(result) >= DESIGN_KEYS, set(result)
    assert set(result["ratios"]) >= DESIGN_RATIOS
    assert result["device"] == "CPU" and result["precision"] == InferenceConfig().precision
    assert set(result["latency_ms"]) == {"p50", "p99"}
    for p in ("p50", "p99"):
        _positive(result["latency_ms"][p], f"latency_ms.{p}")
        _positive(result["latency_ms_latency_hint"][p], f"latency_ms_latency_hint.{p}")
    assert result["latency_ms"]["p50"] <= result["latency_ms"]["p99"]
    assert 100 < result["peak_rss_mib"] < 2048  # the `run` child: OpenVINO + two models
    assert len(result["ratios"]) == 11, sorted(result["ratios"])
    for key, value in result["ratios"].items():  # none left out for a failed mode
        if bapp or key not in BAPP_RATIOS:
            _positive(value, f"ratios.{key}")
        else:
            assert value is None, (key, value)
    if bapp:
        _positive(result["combined_ceiling_fps"], "combined_ceiling_fps")
    _positive(result["faces_per_frame"], "faces_per_frame")
    assert result["rounds"] == 1 and result["seconds_per_mode"] == 0.5 and result["num_requests"] >= 1
    assert {"date", "machine", "versions", "load_avg_start", "load_avg_end"} <= set(result)
    assert set(result["versions"]) >= {"expressiond", "openvino", "python"}

    table = result["table"]
    assert [(r["kind"], r["mode"]) for r in table] == MODES
    for row in table:
        mode = row["mode"]
        if row["kind"] == "bapp" and not bapp:  # OpenVINO 2022.3: the row says why it is empty
            assert row["error"] == "benchmark_app not found" and row["fps"] is None, row
            continue
        assert row["error"] is None, (mode, row["error"])
        _positive(row["fps"], f"{mode}: fps")
        _positive(row["frames"], f"{mode}: frames")
        _positive(row["cpu_ms_per_frame"], f"{mode}: cpu_ms_per_frame")
        _positive(row["latency_ms"]["p50"], f"{mode}: p50")
        if row["kind"] != "bapp":  # benchmark_app reports a median only
            _positive(row["latency_ms"]["p99"], f"{mode}: p99")
        if row["kind"] not in ("bapp", "decode"):  # the decode row decodes, finds nothing
            _positive(row["faces_per_s"], f"{mode}: faces/s")  # the demo clip shows faces
        if row["kind"] in ("e2e", "latency"):
            _positive(row["startup_s"], f"{mode}: startup_s")
            _positive(row["peak_rss_mib"], f"{mode}: peak_rss_mib")

    # the human output: the table and the ratios line
    for _kind, mode in MODES:
        assert mode in proc.stdout, mode
    assert "ratios (median of 1 round(s)): async_vs_sync" in proc.stdout
