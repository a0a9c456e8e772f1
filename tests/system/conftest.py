"""System tier: a real systemd (PID 1) booted in a container on this machine.

Skipped (with the reason) when it cannot run here: not root, systemd-nspawn/nsenter/unshare
missing, no system python3 (with venv) for the container, no libusb. Under CI=true each of
these fails instead (`unavailable`): a green CI run means the tier ran. A container that
cannot boot although its tools are present is an error, never a skip. The checkout (with its
.venv and the wheelhouse) is shown inside at its own path wherever it is, /tmp included.
"""

from __future__ import annotations

import ctypes.util
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from container import Container, missing_prerequisites  # noqa: E402


def unavailable(reason: str) -> None:
    """The system tier cannot run here: skip on a developer's box, fail under CI=true."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true: the system tier cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


REPO = Path(__file__).resolve().parents[2]
# Python packages for `make install` inside the container, which has no network: wheels for
# the container's own python3 (the host's /usr/bin/python3 through the overlay), versions
# pinned to the test venv's. Kept between runs; rebuilt when the requirements change.
WHEELHOUSE = REPO / "build" / "system-wheelhouse"
CONTAINER_PYTHON = "/usr/bin/python3"
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
        unavailable(reason)
    with Container(overlays=[REPO]) as c:
        MEASURED["container boot"] = f"{c.boot_seconds:.2f} s"
        yield c


@pytest.fixture(scope="session")
def cannot_run() -> Callable[[str], None]:
    """`unavailable` for the tests: cannot_run(reason) skips, or fails under CI=true."""
    return unavailable


@pytest.fixture(scope="session")
def libusb() -> None:
    """libusb-1.0 on the host (so in the container): the NCS2's transport (test_unit_static)."""
    if ctypes.util.find_library("usb-1.0") is None:
        unavailable("libusb-1.0 is not installed (apt-get install libusb-1.0-0)")


def _requirements() -> list[str]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    project = meta["project"]
    return sorted(
        set(project["dependencies"])
        | set(project["optional-dependencies"].get("systemd", []))
        | set(meta["build-system"]["requires"])  # install.sh builds the package offline too
    )


@pytest.fixture(scope="session")
def wheelhouse() -> Path:
    """A folder of wheels that `make install` and the stand-in venv of test_unit_static use
    offline (PIP_NO_INDEX + PIP_FIND_LINKS): built once on the host (needs the package
    index, like `make setup`), then reused."""
    check = "import sys, ensurepip; assert sys.version_info >= (3, 10), sys.version"
    if not Path(CONTAINER_PYTHON).exists():
        unavailable(
            f"{CONTAINER_PYTHON} missing: install.sh needs the system python3 (apt-get install python3-venv)"
        )
    elif subprocess.run([CONTAINER_PYTHON, "-c", check], capture_output=True, timeout=60).returncode != 0:
        unavailable(f"{CONTAINER_PYTHON} is older than 3.10 or has no venv (apt-get install python3-venv)")
    freeze = subprocess.run(
        [sys.executable, "-m", "pip", "freeze"], capture_output=True, text=True, timeout=120
    ).stdout
    constraints = "".join(
        line + "\n" for line in freeze.splitlines() if line and line[0] not in "#-" and " @ " not in line
    )
    version = subprocess.run(
        [CONTAINER_PYTHON, "-c", "import sys; print(sys.version)"], capture_output=True, text=True
    ).stdout
    requirements = _requirements()
    key = hashlib.sha256("\0".join([version, constraints, *requirements]).encode()).hexdigest()
    stamp = WHEELHOUSE / ".key"
    if stamp.is_file() and stamp.read_text() == key:
        return WHEELHOUSE
    shutil.rmtree(WHEELHOUSE, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="expressiond-wheelhouse-") as tmp:
        venv, cfile = Path(tmp) / "venv", Path(tmp) / "constraints.txt"
        cfile.write_text(constraints)
        steps = [
            [CONTAINER_PYTHON, "-m", "venv", str(venv)],
            [
                str(venv / "bin/python"),
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--disable-pip-version-check",
                "-w",
                str(WHEELHOUSE),
                "-c",
                str(cfile),
                *requirements,
            ],
        ]
        for cmd in steps:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
            if r.returncode != 0:
                pytest.fail(f"building the wheelhouse failed: {' '.join(cmd)}\n{r.stderr[-3000:]}")
    stamp.write_text(key)
    return WHEELHOUSE


def pytest_terminal_summary(terminalreporter) -> None:
    if MEASURED:
        terminalreporter.write_sep("-", "system tier measurements")
        for key, value in MEASURED.items():
            terminalreporter.write_line(f"{key}: {value}")
