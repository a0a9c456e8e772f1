"""Run a snippet of Python where file permissions apply: "permission denied" tests.

As root (CI, the system tier's box) permissions do not stop a process: it has CAP_DAC_OVERRIDE.
The snippet then runs under ``setpriv`` with that capability and CAP_DAC_READ_SEARCH out of
the bounding set (still uid 0, so the venv and the checkout stay readable wherever they are);
as any other user it runs as is. Use from any test module (tests/ is on sys.path)::

    from unprivileged import run_python
    r = run_python("import os; os.open('/tmp/x', os.O_RDWR)")
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from needs import need

REPO = Path(__file__).resolve().parents[1]


def run_python(code: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-c", code]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        need(setpriv, "setpriv (to drop CAP_DAC_OVERRIDE as root)", "apt-get install util-linux")
        argv = [setpriv, "--bounding-set=-dac_override,-dac_read_search", *argv]
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "daemon"), os.environ.get("PYTHONPATH", "")])
    )
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
