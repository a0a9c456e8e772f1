"""The benchmark's pure parts: argument parsing, the child daemon's config, medians and ratios
per round, stream aggregation, the target check of bench_all and the OpenCV plots."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from expressiond.config import Config, InferenceConfig, load_config
from expressiond.errors import UsageError
from expressiond.tools.benchmark import run as bm
from expressiond.tools.benchmark.daemon import DaemonResult, clip_camera, config_toml
from expressiond.tools.benchmark.report import plot, plot_targets
from expressiond.tools.benchmark.streams import aggregate, summarise

REPO = Path(__file__).resolve().parents[2]


def _bench_all():
    spec = importlib.util.spec_from_file_location("bench_all", REPO / "benchmarks" / "bench_all.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize(
    ("text", "want"), [("1,2,4", [1, 2, 4]), ("4, 1,1", [1, 4]), (None, None), ("", None)]
)
def test_parse_streams(text, want):
    assert bm.parse_streams(text) == want


@pytest.mark.parametrize("text", ["x", "0,1", "1,17", "1;2"])
def test_parse_streams_refuses(text):
    with pytest.raises(UsageError, match="--streams"):
        bm.parse_streams(text)


def test_child_config_loads_with_every_camera(tmp_path):
    cfg = Config(
        models_dir=str(tmp_path),
        inference=InferenceConfig(precision="FP16", num_requests=3, performance_hint="LATENCY"),
    )
    cams = tuple(clip_camera(f"cam{i}", tmp_path / "clip.avi", 30) for i in range(3))
    path = tmp_path / "c.toml"
    path.write_text(config_toml(cfg, cams))
    loaded = load_config(path)
    assert [c.name for c in loaded.cameras] == ["cam0", "cam1", "cam2"]
    assert {(c.fps, c.loop, c.source) for c in loaded.cameras} == {(30.0, True, str(tmp_path / "clip.avi"))}
    assert loaded.inference == InferenceConfig(
        device="CPU", precision="FP16", num_requests=3, performance_hint="LATENCY", cache_dir=None
    )
    assert loaded.mqtt is None and loaded.logging.level == "WARNING"
    assert loaded.models_dir == str(tmp_path)


def _row(kind, mode, fps, cpu=100.0, **kw):
    return {
        "kind": kind,
        "mode": mode,
        "fps": fps,
        "faces_per_s": fps * 2,
        "cpu_ms_per_frame": cpu,
        "load_avg": 1.0,
        "latency_ms": {"p50": 10.0, "p99": 20.0},
        **kw,
    }


def _round(sync, a1, a2, e2e, bapp):
    return [
        _row("sync", "sync loop (write-up)", sync, 120.0),
        _row("async", "async pipeline, 1 requests", a1),
        _row("async", "async pipeline, 2 requests", a2, 90.0),
        _row("e2e", "end-to-end run, 30 fps source", e2e, 100.0, peak_rss_mib=300.0),
        _row("bapp", "benchmark_app detector", bapp, 80.0),
        _row("bapp", "benchmark_app detector, dynamic shape", bapp / 2, 80.0),
        _row("bapp", "benchmark_app classifier", 100.0, 5.0),
    ]


def test_ratios_are_taken_within_a_round_then_medianed():
    rounds = [_round(4, 3, 8, 9, 10), _round(2, 2, 3, 5, 5), _round(5, 4, 6, 10, 20)]
    per_round = [bm.round_ratios(r) for r in rounds]
    assert [r["async_vs_sync"] for r in per_round] == [2.0, 1.5, 1.2]
    assert [r["e2e_vs_benchmark_app"] for r in per_round] == [0.9, 1.0, 0.5]
    assert per_round[0]["e2e_vs_benchmark_app_dynamic"] == 1.8
    assert per_round[0]["async_vs_sync_per_cpu"] == round(120 / 90, 3)
    assert per_round[0]["e2e_vs_benchmark_app_per_cpu"] == 0.8
    # 2 faces per frame: ceiling 1 / (1/10 + 2/100) fps, 80 + 2 x 5 CPU ms per frame
    assert per_round[0]["e2e_vs_inference_ceiling"] == round(9 * (0.1 + 0.02), 3)
    assert per_round[0]["e2e_vs_inference_ceiling_per_cpu"] == 0.9
    table = bm.median_table(rounds)
    assert [r["fps"] for r in table] == [4, 3, 6, 9, 10, 5, 100]
    assert table[0]["fps_rounds"] == [4, 2, 5]
    assert table[3]["peak_rss_mib"] == 300.0


def _daemon(name, fps, rss, cpu, frames, p99):
    return DaemonResult(
        name,
        1,
        None,
        [],
        fps=fps,
        frames=frames,
        peak_rss_mib=rss,
        pss_mib=rss / 2,
        cpu_s=cpu,
        latency_p50_ms=[p99 / 2],
        latency_p99_ms=[p99],
    )


def test_stream_summary_and_ratios():
    one = summarise([_daemon("one", 9.0, 400.0, 10.0, 90, 300.0)], cores=2, load=1.0)
    sep = summarise([_daemon(f"s{i}", 2.0, 300.0, 2.5, 20, 200.0 + i) for i in range(4)], cores=2, load=1.0)
    assert one["fps_per_core"] == 4.5 and one["frames_per_cpu_s"] == 9.0
    assert sep["total_fps"] == 8.0 and sep["rss_mib"] == 1200.0 and sep["p99_ms"] == 203.0
    assert sep["fps_per_gib"] == round(8.0 / (1200 / 1024), 3)
    runs = [
        {"round": 1, "n": 4, "one": one, "separate": sep},
        {"round": 2, "n": 4, "one": dict(one, total_fps=6.0), "separate": dict(sep, total_fps=8.0)},
    ]
    out = aggregate(runs, [4], 10.0, 30.0, 2)
    assert out["by_n"]["4"]["fps_rounds"] == [1.125, 0.75]
    assert out["ratios"]["one_process_vs_n_processes_fps"] == pytest.approx(0.9375, abs=1e-3)
    assert out["ratios"]["one_process_vs_n_processes_rss"] == pytest.approx(400 / 1200, abs=1e-3)
    assert out["table"][0]["separate"]["processes"] == 4


@pytest.mark.parametrize(
    ("measured", "op", "goal", "met"),
    [
        (2.0, ">=", 1.8, True),
        (1.7, ">=", 1.8, False),
        (120.0, "<", 150.0, True),
        (150.0, "<", 150.0, False),
        (0.5, "<=", 0.5, True),
        (None, ">=", 1.0, None),
    ],
)
def test_target_check(measured, op, goal, met):
    t = _bench_all().target("x", measured, op, goal)
    assert t["met"] is met
    if measured is not None:
        assert t["score"] == pytest.approx(measured / goal if ">" in op else goal / measured, abs=1e-3)


def test_plots_are_drawn(tmp_path):
    table = bm.median_table([_round(4, 3, 8, 9, 10)])
    result = {
        "table": table,
        "ratios": {"async_vs_sync": 2.0},
        "device": "CPU",
        "precision": "FP32",
        "rounds": 1,
        "date": "2026-01-01T00:00:00+00:00",
        "machine": "test",
        "load_avg_start": [1, 1, 1],
        "load_avg_end": [1, 1, 1],
    }
    plot(result, tmp_path / "a.png")
    one = {"total_fps": 8.0, "rss_mib": 400.0}
    sep = {"total_fps": 6.0, "rss_mib": 900.0}
    result["streams"] = {"source_fps": 30.0, "table": [{"n": 2, "one": one, "separate": sep}]}
    plot(result, tmp_path / "b.png")
    a, b = cv2.imread(str(tmp_path / "a.png")), cv2.imread(str(tmp_path / "b.png"))
    assert a.shape[1] == b.shape[1] == 1000 and b.shape[0] > a.shape[0]
    assert (a < 200).any()  # something is drawn
    targets = [_bench_all().target("fps", 2.0, ">=", 1.8), _bench_all().target("ms", 200.0, "<", 150.0)]
    plot_targets(targets, tmp_path / "t.png", "targets")
    t = cv2.imread(str(tmp_path / "t.png"))
    green = np.all(t == (80, 170, 80), axis=2).sum()
    red = np.all(t == (60, 60, 220), axis=2).sum()
    assert green > 100 and red > 100  # one met, one missed
