"""README figures come from committed commands: every block `make figures` writes is in its
file exactly once, and the blocks rendered from `make bench`'s and `make accuracy`'s committed
results are what their renderer prints for those files today (so results.json updated without `make
figures`, or a hand edit inside a block, fails here). Not the faults block: the fault suite
rewrites faults.json in the same `make test` run."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


figures = _load(REPO / "scripts" / "figures.py")


def test_every_generated_block_is_in_its_file_once():
    blocks = figures.renderers(REPO / "models" / "ir")
    assert len({name for _f, name, _r in blocks}) == len(blocks)
    for path, name, _render in blocks:
        text = path.read_text()
        assert text.count(f"<!-- BEGIN:{name} -->") == 1, (path.name, name)
        assert text.count(f"<!-- END:{name} -->") == 1, (path.name, name)
        assert text.index(f"<!-- BEGIN:{name} -->") < text.index(f"<!-- END:{name} -->")
        assert figures.block_text(text, name).strip(), f"{path.name}: block {name} is empty"


def test_replace_block_rewrites_only_the_block():
    text = "a\n<!-- BEGIN:x -->\nold 1\nold 2\n<!-- END:x -->\nb 0.72\n"
    out = figures.replace_block(text, "x", "new 0.68\n\n")
    assert out == "a\n<!-- BEGIN:x -->\nnew 0.68\n<!-- END:x -->\nb 0.72\n"
    with pytest.raises(SystemExit, match="no block y"):
        figures.replace_block(text, "y", "z")


@pytest.mark.parametrize(
    ("path", "name", "args"),
    [
        ("README.md", "bench", ["bench_table.py"]),
        ("README.md", "decode", ["decode.py", "--render"]),
        ("benchmarks/README.md", "targets", ["bench_table.py", "--part", "targets"]),
        ("benchmarks/README.md", "loaded", ["bench_table.py", "--part", "loaded"]),
        ("README.md", "accuracy-cv", ["accuracy.py", "--render", "--readme"]),
        ("benchmarks/README.md", "accuracy-variants", ["accuracy.py", "--render"]),
    ],
)
def test_rendered_blocks_match_their_results_files(path, name, args):
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert figures.block_text((REPO / path).read_text(), name) == out.rstrip() + "\n", (
        f"{path}: block {name} differs from what `make figures` renders from the committed "
        "results: run `make figures`"
    )


def test_speed_summary_states_load_and_face_api_workload():
    bench = _load(REPO / "benchmarks" / "bench_table.py")
    r = json.loads((REPO / "benchmarks" / "results.json").read_text())
    loaded = json.loads((REPO / "benchmarks" / "results-loaded.json").read_text())
    text = "\n".join(bench.summary_md(r, loaded))
    lo, hi = bench.load_range(r)
    assert f"load average {lo:.1f}-{hi:.1f}" in text
    p99 = next(x for x in r["benchmark"]["table"] if x["mode"].endswith("10 fps source, THROUGHPUT"))
    loaded_p99 = next(
        x for x in loaded["benchmark"]["table"] if x["mode"].endswith("10 fps source, THROUGHPUT")
    )
    assert f"{p99['latency_ms']['p99']:.0f} ms (default THROUGHPUT hint)" in text
    assert f"measured {loaded_p99['latency_ms']['p99']:.0f} / " in text
    # the ratio comes with its workload: photo sizes, faces, backend and precisions
    assert re.search(r"Workload: 6 photos \(1920x\d+.* px\) with \d+ faces \(\d-\d per photo\)", text)
    assert "tfjs wasm" in text and "FP16" in text and "INT8" in text


def test_fleet_block_is_what_its_results_file_renders():
    assert (
        figures.block_text((REPO / "README.md").read_text(), "fleet") == figures.fleet_block().rstrip() + "\n"
    ), "README.md: block fleet differs from benchmarks/fleet_sizing.json: run `make figures`"
    r = json.loads((REPO / "benchmarks" / "fleet_sizing.json").read_text())
    rate, capacity = r["events_per_camera"]["events_per_s"], r["broker_events_per_s"]
    assert r["cameras_at_half_capacity"] == int(capacity * 0.5 / rate)  # the arithmetic shown


def test_the_figures_name_the_configs_default_precision():
    from expressiond.config import InferenceConfig

    assert InferenceConfig().precision == figures.DEFAULT_PRECISION
