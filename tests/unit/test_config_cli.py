"""Every broken config of test_config_errors, through the real command line: `check-config`
and `run` exit 78 with exactly one line on stderr naming file:line and the key, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from expressiond.cli import main
from expressiond.errors import EXIT_CONFIG

from .test_config_errors import CASES, SYNTAX

assert len(CASES) >= 20


def _marked_line(text: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if "#<" in line)


@pytest.mark.parametrize(("case_id", "text", "key", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_check_config_exit_78(tmp_path, capsys, case_id, text, key, fragment):
    path = tmp_path / f"{case_id}.toml"
    path.write_text(text)
    rc = main(["check-config", str(path)])
    captured = capsys.readouterr()
    assert rc == EXIT_CONFIG
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"expressiond: error: {path}:{_marked_line(text)}: ")
    if key != SYNTAX:
        assert f": {key}: " in lines[0]
    assert fragment in lines[0]


@pytest.mark.parametrize("case_id", ["fps-negative", "duplicate-name", "unknown-top-key"])
def test_run_exits_78_before_touching_anything(tmp_path, case_id):
    text = next(c[1] for c in CASES if c[0] == case_id)
    path = tmp_path / "bad.toml"
    path.write_text(text)
    proc = subprocess.run(
        [sys.executable, "-m", "expressiond.cli", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == EXIT_CONFIG
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"expressiond: error: {path}:")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_missing_config_file_is_78(tmp_path, capsys):
    rc = main(["check-config", str(tmp_path / "nope.toml")])
    err = capsys.readouterr().err
    assert rc == EXIT_CONFIG and "nope.toml" in err and len(err.splitlines()) == 1
