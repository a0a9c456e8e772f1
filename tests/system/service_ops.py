"""What test_service_system.py does to the installed expressiond service in the container:
its config, systemctl/journalctl/mosquitto_sub calls with bounded waits, parsed results."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from container import INSIDE_ENV, Container, wait_for

REPO = Path(__file__).resolve().parents[2]
IN_REPO = f"cd {shlex.quote(str(REPO))} && "  # for shell commands run inside
UNIT = "expressiond"
CONF = "/etc/expressiond/expressiond.toml"
CLIP = "/opt/expressiond/share/expressiond/models/samples/demo.avi"
DEVICE_ID = "sdtest"
PORT = 1883  # the container's own loopback: nothing else listens there
TOPIC = f"expressiond/{DEVICE_ID}"
STATUS_RE = re.compile(r'Status: "([^"]*)"')


def config(camera: str = "door", top: str = "", stats_interval: int = 2) -> str:
    """The test config: CPU, the built-in models pinned, one file camera, the local broker."""
    return f"""{top}device_id = "{DEVICE_ID}"

[inference]
device = "CPU"
precision = "FP32"

[detector]
model = "face-api/ssd_mobilenetv1"

[classifier]
model = "face-api/expression"

[[cameras]]
name = "{camera}"
source = "{CLIP}"
fps = 10
loop = true

[mqtt]
host = "127.0.0.1"
port = {PORT}
stats_interval = {stats_interval}
"""


# --- helpers ---------------------------------------------------------------------------------


def show(c: Container, *props: str) -> dict[str, str]:
    out = c.systemctl("show", *(f"-p{p}" for p in props), UNIT).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def write_config(c: Container, text: str) -> None:
    c.write(CONF, text, 0o640)
    c.run(["chown", "root:expressiond", CONF])


def ensure_running(c: Container, text: str, restart: bool = False) -> str:
    """The service active with config ``text`` (restarted when anything differs); returns the
    invocation id."""
    if c.run(["cat", CONF], check=False).stdout != text:
        write_config(c, text)
        restart = True
    if restart or show(c, "ActiveState")["ActiveState"] != "active":
        r = c.systemctl("restart", UNIT, check=False, timeout=200)
        assert r.returncode == 0, journal_text(c)
    return show(c, "InvocationID")["InvocationID"]


def journal(c: Container, *matches: str, unit: str = UNIT) -> list[dict]:
    out = c.run(["journalctl", "--no-pager", "-o", "json", "-u", unit, *matches], check=False).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def journal_text(c: Container, *matches: str, unit: str = UNIT) -> str:
    return c.run(["journalctl", "--no-pager", "-o", "cat", "-u", unit, *matches], check=False).stdout


def logged(c: Container, pattern: str, *matches: str, unit: str = UNIT, timeout: float = 15) -> list[dict]:
    """The unit's journal entries whose MESSAGE matches ``pattern`` (journalctl -g); waits,
    bounded, for at least one: journald may store a line a moment after systemd acted."""
    return wait_for(
        lambda: journal(c, *matches, "-g", pattern, unit=unit),
        timeout,
        0.2,
        f"journal {unit} {' '.join(matches)} -g {pattern!r}",
    )


def mqtt_sub(c: Container, topic: str, count: int, wait_s: int) -> list[tuple[str, str]]:
    """Up to ``count`` (topic, payload) pairs within ``wait_s`` seconds (retained ones first)."""
    r = c.run(
        [
            "mosquitto_sub",
            "-h",
            "127.0.0.1",
            "-p",
            str(PORT),
            "-q",
            "1",
            "-v",
            "-t",
            topic,
            "-C",
            str(count),
            "-W",
            str(wait_s),
        ],
        check=False,
        timeout=wait_s + 15,
    )
    return [tuple(line.split(" ", 1)) for line in r.stdout.splitlines() if " " in line]


def status_line(c: Container) -> str:
    m = STATUS_RE.search(c.systemctl("status", "--no-pager", "-n0", UNIT, check=False).stdout)
    return m[1] if m else ""


def flowing_status(c: Container, camera: str, timeout: float = 30) -> str:
    """Wait until `systemctl status` shows frames flowing on ``camera`` and the broker up."""

    def probe():
        line = status_line(c)
        m = re.search(rf"\b{camera} (\d+\.\d) fps", line)
        return line if m and float(m[1]) > 0 and "broker connected" in line else None

    return wait_for(probe, timeout, 0.5, f"a STATUS= line with {camera} fps > 0, broker connected")


def make_install(c: Container, wheelhouse: Path, path_first: str = "", check: bool = True):
    """`make install` from the checkout inside, offline (pip: only the wheelhouse); with
    ``path_first`` put before PATH."""
    path = f"{path_first}:{INSIDE_ENV['PATH']}" if path_first else INSIDE_ENV["PATH"]
    return c.run(
        IN_REPO + f"PATH={shlex.quote(path)} PIP_NO_INDEX=1 PIP_FIND_LINKS={shlex.quote(str(wheelhouse))}"
        " make install",
        check=check,
        timeout=600,
    )


def checkout_fingerprint(c: Container) -> str:
    """What `make install` installs from the checkout (read live through the overlay)."""
    return c.run(
        IN_REPO + "find pyproject.toml README.md daemon systemd config models/ir -type f"
        " ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*.egg-info/*'"
        " | LC_ALL=C sort | xargs -d '\\n' sha256sum | sha256sum",
        timeout=120,
    ).stdout
