"""The benchmark's measuring parts on the real daemon: ``run --stats-json``, child daemons
measured from outside (READY over a private $NOTIFY_SOCKET, /proc for CPU and memory, taskset
pinning), and ``expressiond benchmark --streams`` end to end with tiny durations. Real
OpenVINO on the CPU, the demo clip as the camera; nothing faked."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from expressiond.config import Config
from expressiond.tools.benchmark.daemon import DaemonSpec, clip_camera, run_group
from expressiond.tools.benchmark.report import print_table

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clip(models_dir) -> Path:
    path = models_dir / "samples" / "demo.avi"
    assert path.is_file(), "models build writes the demo clip"
    return path


def test_run_writes_its_final_stats(tmp_path, models_dir, clip):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        textwrap.dedent(f"""
        models_dir = "{models_dir}"
        [[cameras]]
        name = "door"
        source = "{clip}"
        fps = 10
        loop = true
        """)
    )
    out = tmp_path / "stats.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "expressiond.cli",
            "run",
            "--config",
            str(cfg),
            "--no-mqtt",
            "--max-seconds",
            "4",
            "--stats-json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    stats = json.loads(out.read_text())
    assert stats["inference"]["frames"] > 0
    assert stats["cameras"]["door"]["frames_read"] >= stats["inference"]["frames"]
    assert stats["cameras"]["door"]["latency_p99_ms"] > 0
    # VmHWM of the daemon itself: more than OpenVINO + two compiled models, far from 2 GiB
    assert 100 < stats["peak_rss_mib"] < 2048


class _AffinityProbe:
    def __init__(self):
        self.allowed: dict[int, str] = {}

    def window_start(self, pids):
        for pid in pids:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("Cpus_allowed_list:"):
                    self.allowed[pid] = line.split(":", 1)[1].strip()

    def window_end(self, pids):
        pass


def test_pinned_child_daemons_are_measured_from_outside(tmp_path, models_dir, clip):
    cpu = sorted(os.sched_getaffinity(0))[0]
    cfg = Config(models_dir=str(models_dir))
    specs = [
        DaemonSpec("pinned", (clip_camera("cam0", clip, 10),), (cpu,)),
        DaemonSpec("two", (clip_camera("cam0", clip, 10), clip_camera("cam1", clip, 10))),
    ]
    probe = _AffinityProbe()
    pinned, two = run_group(cfg, specs, 5.0, tmp_path, observer=probe)
    for r in (pinned, two):
        assert r.error is None and r.exit_code == 0, r.error
        assert r.frames > 0 and r.fps > 0 and r.cpu_s > 0
        assert 4.5 < r.window_s < 30 and r.startup_s > 0
        assert 100 < r.peak_rss_mib < 2048 and r.pss_mib and r.pss_mib <= r.peak_rss_mib
    assert sorted(probe.allowed.values())[0] == str(cpu)  # taskset -c took effect
    assert len(two.latency_p99_ms) == 2 and pinned.cameras == 1
    assert pinned.num_requests == 1  # OpenVINO sees one core: one stream, one request


def test_benchmark_command_with_streams(tmp_path, models_dir, clip):
    out, png = tmp_path / "b.json", tmp_path / "b.png"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "expressiond.cli",
            "benchmark",
            "--models",
            str(models_dir),
            "--clip",
            str(clip),
            "--seconds",
            "1",
            "--max-requests",
            "1",
            "--streams",
            "1",
            "--out",
            str(out),
            "--plot",
            str(png),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    for key in (
        "async_vs_sync",
        "e2e_vs_benchmark_app",
        "one_process_vs_n_processes_fps",
        "one_process_vs_n_processes_rss",
    ):
        assert result["ratios"][key] is not None and result["ratios"][key] > 0, key
    assert set(result["latency_ms"]) == {"p50", "p99"}
    assert result["device"] == "CPU" and result["precision"] == "FP32"
    assert 100 < result["peak_rss_mib"] < 2048
    kinds = [r["kind"] for r in result["table"]]
    assert kinds[:3] == ["sync", "async", "e2e"] and "latency" in kinds
    assert result["streams"]["table"][0]["separate"]["processes"] == 1
    assert png.stat().st_size > 5000
    # --json: the same document on stdout and nothing else (the table is left out; progress
    # went to stderr); the table (what stdout shows without --json) renders from it
    assert json.loads(proc.stdout) == result
    table = io.StringIO()
    print_table(result, table)
    assert "one/separate" in table.getvalue() and "ratios" in table.getvalue()
