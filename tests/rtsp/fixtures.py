"""Start, kill -9 and restart the real RTSP server of tests/rtsp/rtsp_server.py.

The server runs under the system Python (Debian's GStreamer bindings are not in the venv). A
missing binding or element is a missing input (needs.py): a skip here, a failure under CI.
Use the ``rtsp_server`` fixture (a factory; every server it made is stopped at teardown)::

    srv = rtsp_server(clip, user="cam", password="s3cret")
    cv2.VideoCapture(srv.url(), cv2.CAP_FFMPEG)   # rtsp://cam:s3cret@127.0.0.1:PORT/cam
    srv.kill()                                      # SIGKILL, like a camera losing power
    srv.restart()                                   # same port, same path, same credentials
    srv.freeze(); srv.thaw()                        # SIGSTOP/SIGCONT: a hung camera

Other test folders get the fixture with ``from rtsp.fixtures import rtsp_server  # noqa: F401``
in their conftest.py (tests/ is on sys.path).
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from needs import need

SERVER = Path(__file__).with_name("rtsp_server.py")
SYSTEM_PYTHON = os.environ.get("EXPRESSIOND_TEST_SYSTEM_PYTHON", "/usr/bin/python3")
FIX = (
    "apt-get install python3-gst-1.0 gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good "
    "gstreamer1.0-plugins-ugly (make deps does it)"
)
READY = "READY "


@functools.lru_cache(maxsize=1)
def unavailable() -> str | None:
    """Why the server cannot run here (its ``--check``), or None."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} (the system Python with Debian's GStreamer bindings)"
    try:
        r = subprocess.run(
            [SYSTEM_PYTHON, str(SERVER), "--check"], capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        return "a GStreamer that initialises within 60 s"
    if r.returncode != 0:
        return (r.stderr.strip().removeprefix("ERROR ").split(": apt-get", 1)[0] or "GStreamer")[:200]
    return None


def need_rtsp_server() -> None:
    why = unavailable()
    need(why is None, f"the test RTSP server: {why}", FIX)


class RtspServer:
    """One server process; ``info`` is its READY line (url, port, width, height, fps...)."""

    def __init__(
        self,
        source: Path | str,
        log_dir: Path,
        *,
        port: int = 0,
        path: str = "/cam",
        user: str = "",
        password: str = "",
        auth: str = "basic",
        protocols: str = "tcp,udp",
    ):
        self.source, self.log_dir, self.port, self.path = Path(source), Path(log_dir), port, path
        self.user, self.password, self.auth, self.protocols = user, password, auth, protocols
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}
        self.starts = 0

    def _argv(self) -> list[str]:
        argv = [SYSTEM_PYTHON, str(SERVER), "--source", str(self.source), "--port", str(self.port)]
        argv += ["--path", self.path, "--protocols", self.protocols]
        if self.user:
            argv += ["--user", self.user, "--password", self.password, "--auth", self.auth]
        return argv

    def start(self, timeout_s: float = 30.0) -> dict:
        """Start and wait for READY; a port still held (just after a kill) is retried until
        the deadline."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        deadline = time.monotonic() + timeout_s
        while True:
            self.starts += 1
            out = self.log_dir / f"rtsp-server-{self.starts}.out"
            err = self.log_dir / f"rtsp-server-{self.starts}.err"
            with open(out, "wb") as o, open(err, "wb") as e:
                self.proc = subprocess.Popen(self._argv(), stdin=subprocess.DEVNULL, stdout=o, stderr=e)
            while time.monotonic() < deadline:
                line = next((x for x in out.read_text().splitlines() if x.startswith(READY)), None)
                if line:
                    self.info = json.loads(line[len(READY) :])
                    self.port = self.info["port"]
                    return self.info
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
            text = err.read_text()
            if self.proc.poll() is None:
                self.kill()
                raise AssertionError(f"RTSP server not READY within {timeout_s:.0f} s: {text[-2000:]}")
            if "port in use" in text and time.monotonic() < deadline:
                time.sleep(0.2)
                continue
            raise AssertionError(f"RTSP server exited {self.proc.returncode}: {text[-2000:]}")

    def url(self, user: str | None = None, password: str | None = None) -> str:
        """The stream URL with the server's credentials (or those given; "" for none)."""
        user = self.user if user is None else user
        password = self.password if password is None else password
        base = self.info["url"]
        if not user:
            return base
        return base.replace("rtsp://", f"rtsp://{quote(user, safe='')}:{quote(password, safe='')}@", 1)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no teardown, sessions just vanish (a camera losing power)."""
        if self.alive:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def freeze(self) -> None:
        """SIGSTOP: connections stay open, nothing flows (a hung camera)."""
        assert self.alive
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM and wait; the exit code (None if it had to be killed)."""
        if not self.alive:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGCONT)  # if frozen
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def restart(self, timeout_s: float = 30.0) -> dict:
        """Start again on the same port (and path, credentials) after a kill or stop."""
        self.kill()
        return self.start(timeout_s)

    def log(self) -> str:
        return "".join(p.read_text() for p in sorted(self.log_dir.glob("rtsp-server-*.err")))


@pytest.fixture
def rtsp_server(tmp_path):
    """Factory: ``rtsp_server(source, **options) -> RtspServer`` started and READY."""
    need_rtsp_server()
    servers: list[RtspServer] = []

    def make(source: Path | str, **kwargs) -> RtspServer:
        log_dir = tmp_path / f"rtsp-server-{len(servers) + 1}"
        log_dir.mkdir()
        srv = RtspServer(source, log_dir, **kwargs)
        servers.append(srv)
        srv.start()
        return srv

    yield make
    for srv in servers:
        srv.stop()
