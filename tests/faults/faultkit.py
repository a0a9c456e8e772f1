"""The real daemon as a subprocess, and the bookkeeping of the fault suite.

``Daemon`` runs ``python -m expressiond.cli run --config FILE --stdout`` with
``EXPRESSIOND_TRACE`` set (daemon/trace.py): the trace, written on the tracker's thread as
each tracker step hands its events on (after their spool commit, before stdout, journald or
MQTT see them), is the producer-side record; stdout (one JSON event per line, written later by
the "events" thread) and stderr (the log) are kept too. Every restart is a new "run" with its
own files; ``produced()`` is all runs' traced events in production order. ``tally`` compares
that record with what a subscriber received: lost, duplicates, and whether first deliveries
kept the order.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from broker import Broker, Collector

DEVICE_ID = "faultbox"
CAMERA = "door"
BASE = f"expressiond/{DEVICE_ID}"


def daemon_toml(
    *,
    models_dir: Path,
    cache_dir: Path | None,
    source: str | Path,
    broker: Broker | None = None,
    spool: Path | None = None,
    fps: float = 30,
    loop: bool = True,
    mqtt_extra: str = "",
    tls: str | None = None,
    ha_discovery: bool = False,
    stats_interval: float = 2,
    level: str = "INFO",
    camera_extra: str = "",
    more_cameras: str = "",
    device_id: str = DEVICE_ID,
) -> str:
    """A config for the fault runs: CPU FP32, two requests, one camera "door", reconnects
    capped at 1 s (the lowest the schema allows) so the tests see recoveries quickly.
    ``camera_extra``: more keys for door; ``more_cameras``: more [[cameras]] tables."""
    cache = f'cache_dir = "{cache_dir}"\n' if cache_dir else ""
    text = f"""device_id = "{device_id}"
models_dir = "{models_dir}"

[inference]
device = "CPU"
precision = "FP32"
num_requests = 2
{cache}
[[cameras]]
name = "{CAMERA}"
source = "{source}"
fps = {fps}
loop = {"true" if loop else "false"}
reconnect_max_s = 1
{camera_extra}
{more_cameras}
[logging]
level = "{level}"
journal = "no"
"""
    if broker is not None:
        spool_line = f'spool_path = "{spool}"\n' if spool else ""
        text += f"""
[mqtt]
host = "{broker.host}"
port = {broker.port}
keepalive = 5
reconnect_max_s = 1
stats_interval = {stats_interval}
ha_discovery = {"true" if ha_discovery else "false"}
{spool_line}{mqtt_extra}
"""
        if tls is not None:
            text += f"\n[mqtt.tls]\n{tls}\n"
    return text


class Daemon:
    """One daemon, possibly started several times on the same config and spool."""

    def __init__(
        self,
        workdir: Path,
        config: Path,
        *,
        env: dict[str, str] | None = None,
        umask: int | None = None,
        stdout: bool = True,
    ):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config = Path(config)
        self.env = dict(os.environ)
        self.env.pop("EXPRESSIOND_FAULTS", None)
        self.env.update(env or {})
        self.umask = umask
        self.stdout = stdout
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs: list[tuple[Path, Path]] = []  # (stdout file, stderr file) per start
        self.traces: list[Path] = []  # EXPRESSIOND_TRACE file per start
        self.exit_codes: list[int] = []
        self.started_at = 0.0
        self.killed_at = 0.0  # time.monotonic() of the last kill_after_next_event

    # -- process ---------------------------------------------------------------------------
    def start(self, extra_args: Iterable[str] = ()) -> Daemon:
        assert self.proc is None or self.proc.poll() is not None, "daemon already running"
        n = len(self.runs)
        out, err = self.workdir / f"run{n}.out", self.workdir / f"run{n}.err"
        self.runs.append((out, err))
        self.traces.append(self.workdir / f"run{n}.trace")
        cmd = [sys.executable, "-m", "expressiond.cli", "run", "--config", str(self.config)]
        if self.stdout:
            cmd.append("--stdout")
        with open(out, "wb") as fo, open(err, "wb") as fe:
            self.proc = subprocess.Popen(
                [*cmd, *extra_args],
                stdout=fo,
                stderr=fe,
                env={**self.env, "EXPRESSIOND_TRACE": str(self.traces[-1])},
                start_new_session=True,  # its own process group: kill_group() is a power cut
                cwd=self.workdir,
                umask=-1 if self.umask is None else self.umask,
            )
        self.started_at = time.monotonic()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float = 120.0) -> Daemon:
        if not self.wait_log(r"ready: device_id=", timeout):
            raise AssertionError(f"daemon not ready within {timeout:.0f} s:\n{self.log()[-3000:]}")
        return self

    def send(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        rc = self.proc.wait(timeout)
        self.exit_codes.append(rc)
        return rc

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait (the unit's TimeoutStopSec is 20 s)."""
        if not self.alive:
            return self.proc.returncode if self.proc else 0
        self.send(signal.SIGTERM)
        return self.wait_exit(timeout)

    def kill(self) -> int:
        if not self.alive:
            return self.proc.returncode if self.proc else 0
        self.send(signal.SIGKILL)
        return self.wait_exit(15)

    def kill_group(self) -> int:
        """SIGKILL to the daemon's whole process group at once (every thread, any child):
        the nearest a test gets to pulling the plug (the page cache survives, see README)."""
        if not self.alive:
            return self.proc.returncode if self.proc else 0
        os.killpg(self.proc.pid, signal.SIGKILL)
        return self.wait_exit(15)

    def kill_after_next_event(self, group: bool = False, timeout: float = 30.0) -> int:
        """Wait (polling every 2 ms) for the trace to grow, then SIGKILL at once (the process
        group when ``group``): the kill lands while the events just made are fresh, most
        likely still on their way to the broker. Returns how many events had been traced."""
        n = len(self.produced())
        deadline = time.monotonic() + timeout
        while len(self.produced()) <= n and time.monotonic() < deadline and self.alive:
            time.sleep(0.002)
        assert len(self.produced()) > n, f"no event within {timeout:.0f} s:\n{self.log()[-2000:]}"
        self.killed_at = time.monotonic()
        if group:
            self.kill_group()
        else:
            self.kill()
        return len(self.produced())

    def cleanup(self) -> None:
        if self.alive:
            self.proc.kill()
            self.proc.wait(15)

    # -- records ---------------------------------------------------------------------------
    def log(self, run: int | None = None) -> str:
        runs = self.runs if run is None else [self.runs[run]]
        return "".join(err.read_text(errors="replace") for _out, err in runs if err.exists())

    def out_text(self) -> str:
        return "".join(out.read_text(errors="replace") for out, _err in self.runs if out.exists())

    def wait_log(self, pattern: str, timeout: float, run: int = -1, count: int = 1) -> bool:
        """Wait until the log of run ``run`` matches ``pattern`` ``count`` times; bounded."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            if len(rx.findall(self.log(run if run >= 0 else len(self.runs) + run))) >= count:
                return True
            if time.monotonic() >= deadline or not self.alive:
                return len(rx.findall(self.log(run if run >= 0 else len(self.runs) + run))) >= count
            time.sleep(0.1)

    def produced(self) -> list[dict]:
        """Every event the tracker produced (the trace: id, ts, type, camera, track, expression,
        reason), in production order, across runs."""
        return _json_lines(self.traces)

    def printed(self) -> list[dict]:
        """Every event the daemon printed on stdout, across runs. A line cut short by SIGKILL
        is ignored."""
        return _json_lines(out for out, _err in self.runs)

    def wait_produced(self, n: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.produced()) < n:
            if time.monotonic() >= deadline or not self.alive:
                return len(self.produced()) >= n
            time.sleep(0.1)
        return True

    def wait_more(self, n: int, timeout: float) -> int:
        """Wait for ``n`` more events than now; returns how many came."""
        before = len(self.produced())
        self.wait_produced(before + n, timeout)
        return len(self.produced()) - before

    # -- /proc -------------------------------------------------------------------------------
    def proc_sample(self) -> dict[str, int]:
        status = Path(f"/proc/{self.pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        ticks = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return {
            "rss_kb": int(fields["VmRSS"].split()[0]),
            "threads": int(fields["Threads"]),
            "fds": len(os.listdir(f"/proc/{self.pid}/fd")),
            "cpu_s": (int(ticks[11]) + int(ticks[12])) / os.sysconf("SC_CLK_TCK"),
        }


def _json_lines(paths: Iterable[Path]) -> list[dict]:
    rows = []
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    return rows


# -- MQTT side ------------------------------------------------------------------------------
def subscriber(broker: Broker, name: str, **kw) -> Collector:
    """A persistent-session subscriber to everything the daemon publishes: QoS 1 messages
    published while it is away (broker restarts) are queued for it by mosquitto."""
    return Collector(broker, [f"{BASE}/#"], client_id=f"faults-{name}", persistent=True, **kw).start()


def event_payloads(col: Collector) -> list[dict]:
    return [json.loads(m.payload) for m in col.snapshot(lambda t: t.endswith("/event"))]


def wait_stats(col: Collector, predicate: Callable[[dict], bool], timeout: float = 15.0) -> dict:
    """The first stats message (retained, every stats_interval) for which predicate holds,
    else the last one seen within timeout."""
    topic = f"{BASE}/stats"
    col.wait_for(lambda ms: any(m.topic == topic and predicate(json.loads(m.payload)) for m in ms), timeout)
    msgs = [json.loads(m.payload) for m in col.snapshot(lambda t: t == topic)]
    return next((s for s in msgs if predicate(s)), msgs[-1] if msgs else {})


def camera_stats(
    col: Collector, predicate: Callable[[dict], bool], camera: str = CAMERA, timeout: float = 15.0
) -> dict:
    """Like wait_stats, for the "cameras"/<camera> part of the stats."""
    s = wait_stats(col, lambda s: predicate(s.get("cameras", {}).get(camera, {})), timeout)
    return s.get("cameras", {}).get(camera, {})


def wait_delivered(col: Collector, ids: Iterable[str], timeout: float) -> bool:
    want = set(ids)

    def done(msgs) -> bool:
        got = set()
        for m in msgs:
            if m.topic.endswith("/event"):
                got.add(json.loads(m.payload)["id"])
        return want <= got

    return col.wait_for(done, timeout)


@dataclass
class Tally:
    produced: int
    received: int  # distinct produced events that arrived
    lost: int
    duplicates: int  # deliveries beyond the first of an event
    unexpected: int  # arrived but not in the producer record
    in_order: bool  # first deliveries in production order
    lost_ids: list[str] = field(default_factory=list)

    def row(self) -> dict:
        return {
            "events_produced": self.produced,
            "events_received": self.received,
            "events_lost": self.lost,
            "duplicates": self.duplicates,
            "in_order": self.in_order,
        }


def tally(produced: list[dict], received: list[dict]) -> Tally:
    order = [e["id"] for e in produced]
    assert len(set(order)) == len(order), "the daemon printed an event id twice"
    first: dict[str, int] = {}
    for i, p in enumerate(received):
        first.setdefault(p["id"], i)
    wanted = set(order)
    arrived = [i for i in order if i in first]
    by_first_delivery = sorted(arrived, key=first.__getitem__)
    lost = [i for i in order if i not in first]
    return Tally(
        produced=len(order),
        received=len(arrived),
        lost=len(lost),
        duplicates=len(received) - len(first),
        unexpected=len(set(first) - wanted),
        in_order=by_first_delivery == arrived,
        lost_ids=lost[:20],
    )


def settle_and_tally(daemon: Daemon, col: Collector, *, stop: bool = True, timeout: float = 60.0) -> Tally:
    """Wait for what the daemon produced so far to arrive, stop it (SIGTERM: drain, flush,
    offline) unless it has exited, wait for the rest (all bounded), and count. Events still
    spooled at a SIGTERM stay for the next start, so the first wait is what makes "received"
    mean "delivered by this run"."""
    if stop and daemon.alive:
        wait_delivered(col, [e["id"] for e in daemon.produced()], timeout)
        rc = daemon.terminate()
        assert rc == 0, f"daemon exited {rc} on SIGTERM:\n{daemon.log()[-3000:]}"
    wait_delivered(col, [e["id"] for e in daemon.produced()], timeout)
    return tally(daemon.produced(), event_payloads(col))
