"""Fixtures for the fault suite: real mosquitto brokers (tests/integration/broker.py), the
real daemon as a subprocess (faultkit.Daemon), a shared OpenVINO model cache so every start
does not compile again, and ``fault_row``, the test's row in benchmarks/faults.json."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "integration"))

from broker import Collector  # noqa: E402
from broker_fixtures import *  # noqa: E402, F403 - the shared certs, broker_factory, broker fixtures
from fault_results import update_row  # noqa: E402
from faultkit import Daemon, daemon_toml, subscriber  # noqa: E402
from needs import need  # noqa: E402
from rtsp.fixtures import rtsp_server  # noqa: E402, F401 - RTSP cameras (test_rtsp_camera.py)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


class FaultRow(dict):
    """The test fills it (fault, how, result, counts, details); written at teardown."""


@pytest.fixture
def fault_row(request) -> Iterator[FaultRow]:
    row = FaultRow()
    t0 = time.monotonic()
    yield row
    if "key" not in row:
        return
    rep = getattr(request.node, "rep_call", None)
    if rep is None or not rep.passed:
        why = "skipped" if rep is not None and rep.skipped else "FAILED"
        detail = str(getattr(rep, "longrepr", "") or "").strip().splitlines()
        last = next((ln for ln in detail if ln.startswith("E ")), detail[-1] if detail else "")
        row["result"] = f"{why}: {last[2:].strip()[:200] if last.startswith('E ') else last[:200]}"
    row["seconds"] = round(time.monotonic() - t0, 1)
    row["test"] = request.node.nodeid
    key = row.pop("key")
    update_row(key, dict(row))


@pytest.fixture(scope="session")
def ov_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ov-cache")


@pytest.fixture(scope="session")
def demo_clip(models_dir) -> Path:
    clip = models_dir / "samples" / "demo.avi"
    assert clip.is_file(), "models build makes samples/demo.avi"
    return clip


@pytest.fixture
def subscribers() -> Iterator[list[Collector]]:
    """Collectors to stop at teardown (append what faultkit.subscriber returns)."""
    cols: list[Collector] = []
    yield cols
    for c in cols:
        try:
            c.stop()
        except Exception:  # noqa: BLE001 - teardown of a client whose broker is gone
            pass


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator:
    daemons: list[Daemon] = []

    def make(config_text: str, name: str = "daemon", **kwargs) -> Daemon:
        workdir = tmp_path / name
        workdir.mkdir(parents=True, exist_ok=True)
        cfg = workdir / "expressiond.toml"
        cfg.write_text(config_text)
        d = Daemon(workdir, cfg, **kwargs)
        daemons.append(d)
        return d

    yield make
    for d in daemons:
        d.cleanup()


@pytest.fixture
def watched(broker, subscribers, daemon_factory, models_dir, ov_cache, demo_clip, tmp_path):
    """watched(name, env=None, **toml) -> (subscriber, ready daemon): the daemon publishing to
    ``broker`` from the demo clip (or toml's source) with its spool under tmp_path, and a
    persistent subscriber to all it publishes, both stopped after the test."""

    def start(name: str, env: dict | None = None, **toml):
        col = subscriber(broker, name)
        subscribers.append(col)
        toml = {"source": demo_clip, "spool": tmp_path / "state" / "spool.db", **toml}
        text = daemon_toml(models_dir=models_dir, cache_dir=ov_cache, broker=broker, **toml)
        d = daemon_factory(text, **({"env": env} if env else {}))
        d.start().wait_ready()
        return col, d

    return start


@pytest.fixture
def need_root() -> None:
    need(os.geteuid() == 0, "root (the test mounts a tmpfs)", "run the tests as root")
