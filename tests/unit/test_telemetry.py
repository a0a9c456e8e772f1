"""OpenVINO's telemetry stays off in the daemon and the model build (inference/telemetry.py).

Each case runs in a fresh interpreter with an empty $HOME (no consent file, the state of a
new box) and without the CI variables that would turn telemetry off by themselves. Any send
is pointed at a closed loopback port through the proxy variables, so nothing leaves this
machine even in the control case."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import openvino
import pytest
from needs import not_applicable

MODERN = hasattr(openvino, "Core")  # 2023.1+; 2022.3 keeps its API in openvino.runtime

PROBE = """
import json, sys, threading
{imports}
print(json.dumps({{"threads": sorted(t.name for t in threading.enumerate())}}))
"""


def run_probe(home, imports: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TF_BUILD", "JENKINS_URL")}
    closed = "http://127.0.0.1:9"  # discard port, nothing listens: a send fails at once
    env.update(HOME=str(home), https_proxy=closed, HTTPS_PROXY=closed, http_proxy=closed, HTTP_PROXY=closed)
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(imports=imports)],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def written(home) -> list[str]:
    return sorted(str(p.relative_to(home)) for p in home.rglob("*"))


def test_a_bare_import_of_openvino_would_phone_home(tmp_path):
    """The control: what the guard prevents happens on this OpenVINO (if a release drops its
    telemetry this fails, and the guard can go)."""
    if not MODERN:
        not_applicable("this OpenVINO (2022.3) does not start telemetry on import")
    probe = run_probe(tmp_path, "import openvino")
    assert "intel/openvino_ga_cid" in written(tmp_path)
    assert any(name.startswith("ThreadPoolExecutor") for name in probe["threads"]), probe


@pytest.mark.parametrize(
    "imports",
    [
        "import expressiond.inference.ovcompat",  # the daemon's way in
        "import expressiond.tools.modelbuild.build",  # expressiond models build
        "from expressiond.daemon import main",  # everything `expressiond run` loads
    ],
)
def test_the_daemon_and_the_build_never_do(tmp_path, imports):
    if "modelbuild" in imports and not MODERN:
        not_applicable("the model build needs OpenVINO 2023.1 or newer")
    probe = run_probe(tmp_path, imports + "\nimport openvino")
    assert written(tmp_path) == [], "nothing written under $HOME"
    assert probe["threads"] == ["MainThread"], "no sender thread"


def test_the_users_own_consent_file_is_left_alone(tmp_path):
    consent = tmp_path / "intel" / "openvino_telemetry"
    consent.parent.mkdir()
    consent.write_text("1")
    run_probe(tmp_path, "import expressiond.inference.ovcompat")
    assert consent.read_text() == "1" and written(tmp_path) == ["intel", "intel/openvino_telemetry"]
