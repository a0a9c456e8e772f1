"""Fixtures for tests against a real mosquitto on 127.0.0.1 (see broker.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from broker import LABELS, Broker, Collector, mqtt_config
from broker_fixtures import *  # noqa: F403 - the shared certs, broker_factory, broker fixtures

PROC_SCRIPT = Path(__file__).with_name("publisher_proc.py")


@pytest.fixture
def collector_factory() -> Iterator:
    collectors: list[Collector] = []

    def make(broker: Broker, topics: list[str], **kwargs) -> Collector:
        c = Collector(broker, topics, **kwargs).start()
        collectors.append(c)
        return c

    yield make
    for c in collectors:
        c.stop()


@pytest.fixture
def mqtt_cfg(tmp_path: Path):
    def make(broker: Broker, **overrides):
        overrides.setdefault("spool_path", tmp_path / "state" / "spool.db")
        return mqtt_config(broker, **overrides)

    return make


@pytest.fixture
def publisher_factory() -> Iterator:
    from expressiond.sinks.mqtt import Publisher

    pubs: list[Publisher] = []

    def make(cfg, device_id="dev1", cameras=("door",), labels=LABELS, **kw):
        p = Publisher(cfg, device_id, list(cameras), list(labels), "0.1.0-test", **kw)
        pubs.append(p)
        return p

    yield make
    for p in pubs:
        p.close(drain_timeout=0)
        assert not p._thread.is_alive(), "publisher thread must be joined by close()"


@pytest.fixture
def proc_cmd():
    def cmd(broker: Broker, spool: Path, ids_file: Path, **opts) -> list[str]:
        args = [
            sys.executable,
            str(PROC_SCRIPT),
            "--host",
            broker.host,
            "--port",
            str(broker.port),
            "--spool",
            str(spool),
            "--ids-file",
            str(ids_file),
        ]
        for k, v in opts.items():
            args += [f"--{k.replace('_', '-')}", str(v)]
        return args

    return cmd
