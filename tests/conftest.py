"""Shared fixtures (the built model directory, the third-party data in shared/) and the
missing-input policy of needs.py: skip on a developer's box, fail under CI=true, and one
summary line at the end naming what was skipped."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
from needs import MARKER, NA_RE, WHAT_RE, need, under_ci
from shared_data import EXPRESSIONS, HOW_TO_FIX, SHARED, SHARED_FROM

from expressiond.inference import telemetry

telemetry.decline()  # tests import openvino directly too: no test run phones home

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(ok, what, fix): needs.needs(); skips, or fails under CI=true, when not ok"
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers(MARKER):
        need(mark.kwargs["ok"], mark.kwargs["what"], mark.kwargs["fix"])


def pytest_report_header(config: pytest.Config) -> str:
    policy = "missing inputs FAIL (CI set)" if under_ci() else "missing inputs skip (CI not set)"
    return f"expressiond: shared data {SHARED} ({SHARED_FROM}); {policy}"


def _reason(rep: pytest.TestReport) -> str:
    """A skip's reason (its longrepr is (path, line, "Skipped: ...")), or a failure's text."""
    if isinstance(rep.longrepr, tuple) and len(rep.longrepr) == 3:
        return str(rep.longrepr[2]).removeprefix("Skipped: ")
    return rep.longreprtext


def _counted(counter: Counter) -> str:
    return ", ".join(f"{k} ({n} test{'s' if n > 1 else ''})" for k, n in sorted(counter.items()))


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """One line after pytest's short summary: what was skipped (or, under CI, failed) for want
    of which input, what is not applicable to the version under test, and any other skip."""
    yield
    missing, failed, not_applicable, other = Counter(), Counter(), Counter(), Counter()
    seen: set[tuple[str, str]] = set()
    for kind in ("skipped", "failed", "error"):
        for rep in terminalreporter.stats.get(kind, []):
            if (rep.nodeid, kind) in seen or not hasattr(rep, "longreprtext"):
                continue
            seen.add((rep.nodeid, kind))
            text = _reason(rep)
            what = WHAT_RE.search(text)
            if what:
                (missing if kind == "skipped" else failed)[what.group(1)] += 1
            elif kind == "skipped":
                na = NA_RE.search(text)
                if na:
                    not_applicable[na.group(1).strip()] += 1
                else:
                    other[text.strip()[:80]] += 1
    parts = []
    if failed:
        parts.append(f"FAILED for missing inputs (CI={os.environ.get('CI')}): {_counted(failed)}")
    if missing:
        parts.append(f"skipped for missing inputs: {_counted(missing)}")
    if not_applicable:
        parts.append(f"not applicable here: {_counted(not_applicable)}")
    if other:
        parts.append(f"other skips: {_counted(other)}")
    if parts:
        terminalreporter.write_line("; ".join(parts), yellow=True, bold=True)


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """The IR built by `make models` (the Makefile builds it before the tests run)."""
    d = Path(os.environ.get("EXPRESSIOND_MODELS", REPO / "models" / "ir"))
    if not (d / "face-api" / "expression" / "FP32" / "model.xml").is_file():
        pytest.fail(f"models not built in {d}: run `make models` (make test does it)")
    return d


@pytest.fixture(scope="session")
def sample_images(models_dir) -> list[Path]:
    images = sorted((models_dir / "samples").glob("sample*.jpg"))
    assert len(images) == 6, "models build copies the 6 sample photos of the pinned package"
    return images


@pytest.fixture(scope="session")
def expressions_dir() -> Path:
    need((EXPRESSIONS / "labels.csv").is_file(), str(EXPRESSIONS), HOW_TO_FIX)
    return EXPRESSIONS
