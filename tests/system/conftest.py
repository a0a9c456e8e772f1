"""System tier: a real systemd (PID 1) booted in a container on this machine.

Skipped (with the reason) when not root or when systemd-nspawn/nsenter/unshare are missing;
a container that cannot boot although they are present is an error, not a skip.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from container import Container, missing_prerequisites  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
# Numbers worth seeing after a run (boot time, security exposure, ...): tests add to it
# through the `measured` fixture; printed in the terminal summary.
MEASURED: dict[str, str] = {}


@pytest.fixture(scope="session")
def measured() -> dict[str, str]:
    return MEASURED


@pytest.fixture(scope="module")
def container() -> Iterator[Container]:
    reason = missing_prerequisites()
    if reason:
        pytest.skip(reason)
    with Container() as c:
        MEASURED["container boot"] = f"{c.boot_seconds:.2f} s"
        yield c


def pytest_terminal_summary(terminalreporter) -> None:
    if MEASURED:
        terminalreporter.write_sep("-", "system tier measurements")
        for key, value in MEASURED.items():
            terminalreporter.write_line(f"{key}: {value}")
