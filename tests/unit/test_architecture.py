"""The package's shape, read from its source with ast (scripts/arch_report.py): no import cycle,
the daemon never imports the tools, the top level holds only the shared foundations, modules
stay about 400 lines, and every module says which thread runs it."""

from __future__ import annotations

import ast
import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "daemon" / "expressiond"


def _arch_report():
    spec = importlib.util.spec_from_file_location("arch_report", REPO / "scripts" / "arch_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


arch = _arch_report()
GRAPH = arch.graph(PACKAGE)
MODULES = arch.modules(PACKAGE)


def _reachable(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(GRAPH[name])
    return seen


def test_the_graph_sees_every_import_form():
    # a lazy import inside a function, a relative and an absolute one all count
    assert "expressiond.tools.evaluate" in GRAPH["expressiond.cli"]  # inside cmd_evaluate
    assert "expressiond.sources.registry" in GRAPH["expressiond.config.model"]
    assert "expressiond.inference.detectors" in GRAPH["expressiond.inference.adapters"]
    # and the cycle finder finds a planted cycle
    assert arch.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    assert arch.cycles(GRAPH) == []


def test_the_daemon_never_imports_the_tools():
    daemon = _reachable("expressiond.daemon.main")
    assert "expressiond.daemon.service" in daemon and "expressiond.sinks.mqtt.publisher" in daemon
    assert sorted(m for m in daemon if m.startswith("expressiond.tools")) == []


def test_config_and_sources_load_without_opencv_or_openvino():
    """The config (check-config, a reload) asks the source registry about kinds without
    importing OpenCV, numpy or OpenVINO: only the camera thread and inference need them."""
    for start in ("expressiond.config", "expressiond.sources"):
        reached = _reachable(start)
        heavy = ("expressiond.inference", "expressiond.sources.capture")
        assert not [m for m in reached if m.startswith(heavy)], start
        for name in reached:
            tree = ast.parse(MODULES[name].read_text())
            top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
            names = {a.name.split(".")[0] for n in top if isinstance(n, ast.Import) for a in n.names}
            names |= {(n.module or "").split(".")[0] for n in top if isinstance(n, ast.ImportFrom)}
            assert not names & {"cv2", "numpy", "openvino"}, name


def test_the_top_level_holds_only_the_shared_foundations():
    top = sorted(p.stem for p in MODULES.values() if p.parent == PACKAGE)
    assert top == ["__init__", "cli", "counters", "errors", "events", "paths", "tracking"]
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert packages == {"config", "daemon", "inference", "monitoring", "sinks", "sources", "systemd", "tools"}


def test_modules_stay_small():
    too_long = {n: len(p.read_text().splitlines()) for n, p in MODULES.items()}
    assert {n: lines for n, lines in too_long.items() if lines > 400} == {}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_states_its_thread(name):
    doc = ast.get_docstring(ast.parse(MODULES[name].read_text())) or ""
    assert any(line.startswith(("Thread:", "Threads:")) for line in doc.splitlines()), name


def test_the_fault_plan_is_read_from_the_environment_only_at_the_edge():
    """EXPRESSIOND_FAULTS is read by daemon/main.py (faults.from_environ) and passed down as a
    constructor argument; no module keeps a process-wide plan."""
    callers = set()
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "from_environ":
                callers.add(name)
            if isinstance(node, ast.Global):
                assert "_plan" not in node.names, name
    assert callers == {"expressiond.daemon.main"}
    faults_src = MODULES["expressiond.daemon.faults"].read_text()
    assert "def active(" not in faults_src


def test_arch_report_json_is_what_the_closing_note_quotes(capsys):
    assert arch.main(["--json", "--root", str(PACKAGE)]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["import_cycles"] == 0 and rep["top_level_modules"] == 6
    assert rep["longest_module"]["lines"] <= 400 and rep["modules"] == len(MODULES)
