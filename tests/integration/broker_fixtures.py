"""Broker fixtures shared by tests/integration and tests/faults (each conftest imports them):
session-wide test certificates and real mosquitto brokers stopped at teardown."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from broker import Broker, Certs, make_certs, mosquitto_available
from needs import need

__all__ = ["broker", "broker_factory", "certs"]


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator:
    brokers: list[Broker] = []

    def make(**kwargs) -> Broker:
        need(mosquitto_available(), "mosquitto", "apt-get install mosquitto (make deps does it)")
        b = Broker(tmp_path / f"broker{len(brokers)}", **kwargs)
        brokers.append(b)
        return b.start()

    yield make
    for b in brokers:
        b.stop()


@pytest.fixture
def broker(broker_factory) -> Broker:
    return broker_factory()
