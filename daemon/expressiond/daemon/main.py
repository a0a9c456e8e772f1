"""``expressiond run``: load and check the config, set up logging, signals and sinks, run the
service until SIGTERM/SIGINT (or the end of file inputs), then drain and flush. The edge of
the daemon: the only place that reads the process environment for the fault plan.

Thread: the main thread (signal handlers only set the service's events); the "stop-guard"
timer thread ends a stop that is stuck.
"""

from __future__ import annotations

import ctypes
import faulthandler
import json
import logging
import os
import resource
import signal
import sys
import threading
from pathlib import Path

from expressiond import __version__
from expressiond.config import MqttConfig, check_files, load_config
from expressiond.config.keys import default_of
from expressiond.daemon import faults, trace
from expressiond.daemon.service import Service
from expressiond.errors import EXIT_RUNTIME
from expressiond.inference.factory import classifier_labels
from expressiond.sinks import SinkOptions, build_sinks
from expressiond.systemd import Notifier, setup_logging

log = logging.getLogger(__name__)


def quiet_opencv() -> None:
    """OpenCV prints its own [ WARN ] lines on every failed open; capture.py reports those
    outages itself, once, with the camera name."""
    import cv2

    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except AttributeError:  # builds without the logging module
        pass


def name_os_threads() -> None:
    """Give each thread started from now on its Python name at the OS level too (Linux comm,
    15 bytes), so `ps -L -o tid,comm -p PID`, `top -H` and a debugger show "capture-door",
    "frames", "events"... instead of one name for all. (Python 3.14 does this itself.)"""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux/glibc: names stay Python-only
        return

    def hook(_frame, _event, _arg) -> None:  # runs once, at the thread's first call
        sys.setprofile(None)
        name = threading.current_thread().name.encode("utf-8", "replace")[:15]
        prctl(15, ctypes.c_char_p(name), 0, 0, 0)  # PR_SET_NAME

    threading.setprofile(hook)


def peak_rss_mib() -> float:
    """This process's peak RSS: VmHWM. (getrusage's ru_maxrss is no good in a child: Linux
    carries the parent's high-water mark across fork + exec.)"""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def write_stats(service: Service, path: str) -> None:
    """``run --stats-json FILE``: the final stats (the stats topic's payload) and the peak RSS,
    for benchmarks that measure the real daemon from outside."""
    stats = service.stats().to_dict()
    stats["peak_rss_mib"] = peak_rss_mib()
    try:
        Path(path).write_text(json.dumps(stats, default=str) + "\n")
    except OSError as exc:
        log.error("cannot write the stats to %s: %s", path, exc)


# A stop that takes longer than this is stuck (a driver call that never returns, a request that
# never completes): the thread stacks go to stderr (the journal) and the process exits 1, before
# systemd's TimeoutStopSec=20 would SIGKILL it without a word. Events are in the spool already:
# the guard first waits (up to HOLD_S) for a spool commit in progress, then keeps any other
# from starting, so it never exits between an event's making and its commit.
STOP_GUARD_S = 15.0
HOLD_S = 3.0


def _stop_stuck(service: Service) -> None:
    held = service.hold_delivery(HOLD_S)
    log.error(
        "stopping has taken over %.0f s and is stuck; the thread stacks follow on stderr; "
        "exiting with status 1 (spooled events are sent after the restart)%s",
        STOP_GUARD_S,
        "" if held else f"; a spool commit did not finish within {HOLD_S:.0f} s",
    )
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    sys.stderr.flush()
    os._exit(EXIT_RUNTIME)


def start_monitor(cfg):
    """The [http] endpoint, bound and serving (None without [http]): before the models compile,
    so /healthz answers and /readyz says "starting" meanwhile."""
    if cfg.http is None:
        return None
    from expressiond.monitoring import MonitorServer

    line = cfg.key_lines.get("http.listen") or cfg.key_lines.get("http")
    where = f"{cfg.source}:{line}: http.listen" if line else f"{cfg.source}: http.listen"
    return MonitorServer(cfg.http, where=where).start()


def run_daemon(
    config_path: str,
    *,
    stdout: bool = False,
    mqtt: bool = True,
    max_seconds: float | None = None,
    ha_remove: bool = False,
    stats_json: str | None = None,
    verbose: bool = False,
) -> int:
    """``verbose`` (``-v``): DEBUG logging whatever [logging] level says."""
    cfg = load_config(config_path)
    root = logging.getLogger()
    for handler in list(root.handlers):  # the CLI's bootstrap handler; setup_logging replaces it
        root.removeHandler(handler)
    setup_logging("DEBUG" if verbose else cfg.logging.level, cfg.logging.journal)
    check_files(cfg)
    quiet_opencv()
    name_os_threads()
    notifier = Notifier()
    if ha_remove:
        from expressiond.sinks.mqtt import remove_discovery

        return remove_discovery(cfg.mqtt, cfg.device_id, [c.name for c in cfg.cameras])
    plan = faults.from_environ()  # test-only (tests/faults); empty in production
    monitor = start_monitor(cfg)
    options = SinkOptions(stdout=stdout, mqtt=mqtt, labels=classifier_labels(cfg), version=__version__)
    record = trace.from_environ()  # test-only (tests/faults); None in production
    service = Service(
        cfg,
        build_sinks(cfg, options),
        notifier,
        faults=plan,
        trace=record,
        observer=monitor.update if monitor else None,
    )
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: service.stop_event.set())
        signal.signal(signal.SIGINT, lambda *_: service.stop_event.set())
        signal.signal(signal.SIGHUP, lambda *_: service.reload_event.set())
    try:
        service.start()
        stats_interval = cfg.mqtt.stats_interval if cfg.mqtt else default_of(MqttConfig, "stats_interval")
        return service.run(max_seconds=max_seconds, stats_interval=stats_interval)
    finally:
        guard = threading.Timer(STOP_GUARD_S, _stop_stuck, args=(service,))
        guard.name, guard.daemon = "stop-guard", True
        guard.start()
        service.stop()
        if monitor is not None:
            monitor.close()
        if stats_json:
            write_stats(service, stats_json)
        service.release()
        guard.cancel()
        log.info("stopped")
