"""Run the real daemon (``expressiond run``) as child processes and measure them from outside.

Nothing inside the daemon is patched: READY=1 and STOPPING=1 arrive over a private
$NOTIFY_SOCKET (the sd_notify protocol the daemon speaks to systemd), CPU time, peak RSS
(VmHWM) and PSS come from /proc/PID, and frames, fps and capture-to-result latency come from
the daemon's own final stats (``run --stats-json FILE``). A group of daemons starts together,
is measured over the same wall-clock window (from the last READY to one common SIGTERM) and
stops together, so N pinned processes and one N-camera process see the same conditions.

Thread: the command's main thread; the measured daemons are child processes.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from expressiond.config.model import CameraConfig, Config

log = logging.getLogger(__name__)

CLK_TCK = os.sysconf("SC_CLK_TCK")
START_TIMEOUT_S = 180.0  # compile + warm-up of several daemons at once on a busy 2-core box
STOP_TIMEOUT_S = 30.0


@dataclass
class DaemonSpec:
    """One ``expressiond run`` process: its cameras and the CPUs it is pinned to (None = all);
    ``own_session``: started in a session of its own (setsid), as systemd starts the unit."""

    name: str
    cameras: tuple[CameraConfig, ...]
    cpus: tuple[int, ...] | None = None
    own_session: bool = False


@dataclass
class DaemonResult:
    name: str
    cameras: int
    cpus: tuple[int, ...] | None
    command: list[str]
    fps: float = 0.0  # sum over its cameras of the daemon's own processed-frames rate
    frames: int = 0
    faces: int = 0
    latency_p50_ms: list[float] = field(default_factory=list)  # per camera
    latency_p99_ms: list[float] = field(default_factory=list)
    dropped: int = 0
    frames_read: int = 0  # decoded by the cameras (processed + dropped + in flight)
    peak_rss_mib: float = 0.0  # VmHWM, polled from /proc (else the daemon's own figure)
    pss_mib: float | None = None  # proportional set size at the end of the window
    cpu_s: float = 0.0  # user + system CPU seconds between READY and SIGTERM
    window_s: float = 0.0
    startup_s: float = 0.0  # launch to READY (import, compile, warm-up)
    num_requests: int | None = None
    inference_precision: str | None = None
    exit_code: int | None = None
    error: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


# --- config ------------------------------------------------------------------------------------
def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):  # e.g. [classifier] ensemble: an array of inline tables
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items() if v is not None) + " }"
    return json.dumps(str(value))  # a TOML basic string is JSON-compatible for these values


def _section(name: str | None, values: dict) -> list[str]:
    lines = [f"[{name}]"] if name else []
    lines += [f"{k} = {_toml_value(v)}" for k, v in values.items() if v is not None]
    return lines + [""]


def config_toml(cfg: Config, cameras: tuple[CameraConfig, ...]) -> str:
    """A complete TOML config: cfg's inference, models and tracking (its own TOML-shaped form,
    ``Config.to_dict``) with these cameras, no MQTT, warnings-only logging to stderr."""
    d = cfg.to_dict(redact_secrets=False)
    lines = _section(None, {"device_id": "bench", "models_dir": str(cfg.models_path())})
    for name in ("inference", "detector", "classifier", "tracking"):
        lines += _section(name, d[name])
    lines += _section("logging", {"level": "WARNING", "journal": "no"})
    for cam in cameras:
        lines += _section(
            "[cameras]",
            {k: v for k, v in asdict(cam).items() if k not in ("width", "height") or v is not None},
        )
    return "\n".join(lines)


# --- /proc ----------------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (all its threads), or None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_kib(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def pss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


# --- one child --------------------------------------------------------------------------------
class _Child:
    def __init__(self, spec: DaemonSpec, cfg: Config, workdir: Path, seconds_cap: float):
        self.spec = spec
        base = workdir / spec.name
        self.config = base.with_suffix(".toml")
        self.stats = base.with_suffix(".stats.json")
        self.stderr_path = base.with_suffix(".stderr")
        self.config.write_text(config_toml(cfg, spec.cameras))
        self.sock_path = str(base.with_suffix(".notify"))
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.sock_path)
        self.sock.setblocking(False)
        argv = [
            sys.executable,
            "-m",
            "expressiond.cli",
            "run",
            "--config",
            str(self.config),
            "--no-mqtt",
            "--stats-json",
            str(self.stats),
            "--max-seconds",
            f"{seconds_cap:g}",
        ]  # a safety net; we send SIGTERM first
        if spec.cpus is not None and shutil.which("taskset"):
            argv = ["taskset", "-c", ",".join(map(str, spec.cpus))] + argv
        self.command = argv
        self.proc: subprocess.Popen | None = None
        self.launched = self.ready_t = self.cpu_ready = self.cpu_end = None
        self.hwm_kib = 0
        self.pss_end: int | None = None

    def start(self) -> None:
        env = dict(os.environ, NOTIFY_SOCKET=self.sock_path, PYTHONUNBUFFERED="1")
        env.pop("WATCHDOG_USEC", None)
        env.pop("INVOCATION_ID", None)
        pin = self.spec.cpus
        preexec = None
        if pin is not None and self.command[0] != "taskset":

            def preexec() -> None:  # taskset's effect without taskset
                os.sched_setaffinity(0, pin)

        self.launched = time.monotonic()
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env,
                preexec_fn=preexec,
                start_new_session=self.spec.own_session,
            )

    def poll(self) -> None:
        """Read notify messages and sample memory; cheap, called every 100 ms."""
        while True:
            try:
                msg = self.sock.recv(4096).decode("utf-8", "replace")
            except (BlockingIOError, OSError):
                break
            if "READY=1" in msg.split("\n") and self.ready_t is None:
                self.ready_t = time.monotonic()
                self.cpu_ready = cpu_seconds(self.proc.pid)
        hwm = status_kib(self.proc.pid, "VmHWM")
        if hwm:
            self.hwm_kib = max(self.hwm_kib, hwm)

    @property
    def exited(self) -> bool:
        return self.proc.poll() is not None

    def stderr_tail(self) -> str:
        try:
            lines = self.stderr_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(lines[-3:])

    def close(self) -> None:
        self.sock.close()
        Path(self.sock_path).unlink(missing_ok=True)

    def result(self, window_s: float) -> DaemonResult:
        spec = self.spec
        r = DaemonResult(
            spec.name,
            len(spec.cameras),
            spec.cpus,
            self.command,
            exit_code=self.proc.returncode,
            window_s=round(window_s, 2),
        )
        if self.ready_t is not None:
            r.startup_s = round(self.ready_t - self.launched, 2)
        if self.cpu_ready is not None and self.cpu_end is not None:
            r.cpu_s = round(self.cpu_end - self.cpu_ready, 2)
        r.pss_mib = round(self.pss_end / 1024, 1) if self.pss_end else None
        try:
            stats = json.loads(self.stats.read_text())
        except (OSError, ValueError) as exc:
            r.error = f"no stats ({exc}); exit {self.proc.returncode}: {self.stderr_tail()}"
            r.peak_rss_mib = round(self.hwm_kib / 1024, 1)
            return r
        cams = stats.get("cameras", {}).values()
        inf = stats.get("inference", {})
        r.fps = round(sum(float(c.get("fps") or 0) for c in cams), 2)
        r.latency_p50_ms = [c.get("latency_p50_ms") for c in cams]
        r.latency_p99_ms = [c.get("latency_p99_ms") for c in cams]
        r.dropped = sum(int(c.get("frames_dropped") or 0) for c in cams)
        r.frames_read = sum(int(c.get("frames_read") or 0) for c in cams)
        r.frames, r.faces = int(inf.get("frames") or 0), int(inf.get("faces") or 0)
        r.num_requests = inf.get("num_requests")
        r.inference_precision = (inf.get("detector") or {}).get("INFERENCE_PRECISION_HINT")
        r.peak_rss_mib = round(self.hwm_kib / 1024, 1) or float(stats.get("peak_rss_mib") or 0)
        if self.proc.returncode not in (0, None):
            r.error = f"exit {self.proc.returncode}: {self.stderr_tail()}"
        return r


# --- a group ----------------------------------------------------------------------------------
def run_group(
    cfg: Config, specs: list[DaemonSpec], seconds: float, workdir: Path, interval: float = 0.1, observer=None
) -> list[DaemonResult]:
    """Start every daemon, wait for all READY, measure ``seconds``, SIGTERM all, collect.

    ``observer`` (optional, e.g. a profiler) gets ``window_start(pids)`` once all are READY
    and ``window_end(pids)`` just before the SIGTERM."""
    children = [_Child(spec, cfg, workdir, seconds_cap=seconds + START_TIMEOUT_S) for spec in specs]
    try:
        for child in children:
            child.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while any(c.ready_t is None for c in children):
            for c in children:
                c.poll()
            dead = [c for c in children if c.exited and c.ready_t is None]
            if dead:
                return _failed(
                    children,
                    f"{dead[0].spec.name} exited with "
                    f"{dead[0].proc.returncode} before READY: {dead[0].stderr_tail()}",
                )
            if time.monotonic() > deadline:
                return _failed(children, f"not READY within {START_TIMEOUT_S:.0f} s")
            time.sleep(interval)
        if observer is not None:
            observer.window_start([c.proc.pid for c in children])
        start = time.monotonic()
        end = start + seconds
        while time.monotonic() < end:
            for c in children:
                c.poll()
            time.sleep(min(interval, max(0.0, end - time.monotonic())))
        window_end = time.monotonic()
        for c in children:
            c.poll()
            c.cpu_end = cpu_seconds(c.proc.pid)
            c.pss_end = pss_kib(c.proc.pid)
        if observer is not None:
            observer.window_end([c.proc.pid for c in children])
        for c in children:
            if not c.exited:
                c.proc.send_signal(signal.SIGTERM)
        _wait_all(children, STOP_TIMEOUT_S, interval)
        return [c.result(window_end - c.ready_t) for c in children]
    finally:
        for c in children:
            if c.proc is not None and c.proc.poll() is None:
                c.proc.kill()
                c.proc.wait(10)
            c.close()


def _wait_all(children: list[_Child], timeout: float, interval: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(c.exited for c in children):
        for c in children:
            if not c.exited:
                c.poll()
        time.sleep(interval)
    for c in children:
        if not c.exited:
            log.warning("%s did not stop within %.0f s of SIGTERM; killing it", c.spec.name, timeout)
            c.proc.kill()
            c.proc.wait(10)


def _failed(children: list[_Child], error: str) -> list[DaemonResult]:
    for c in children:
        if not c.exited:
            c.proc.kill()
            c.proc.wait(10)
    out = []
    for c in children:
        r = c.result(0.0)
        r.error = error
        out.append(r)
    return out


def clip_camera(name: str, clip: Path, fps: float) -> CameraConfig:
    """The clip looping at ``fps`` like a camera, or with fps 0 every frame as fast as the
    daemon takes them (``realtime = false``): its capacity, with one decode per frame."""
    if fps <= 0:
        return CameraConfig(name=name, source=str(clip), loop=True, realtime=False)
    return CameraConfig(name=name, source=str(clip), fps=fps, loop=True)


def source_label(fps: float) -> str:
    """How a camera of the clip is played: "every frame" (realtime = false) or "30 fps"."""
    return "every frame" if fps <= 0 else f"{fps:g} fps"
