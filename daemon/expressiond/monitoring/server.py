"""The [http] endpoint: a small HTTP server in its own thread serving /metrics, /healthz and
/readyz from the latest Observation the service handed over.

Bounded: one thread answers one request at a time, each socket has a timeout (a client that
stalls is dropped after ``REQUEST_TIMEOUT_S``), bodies are small, and the thread never waits on
the daemon: ``update`` only swaps a reference. The socket is bound when the server is built,
before the models compile, so a port in use is a config error at start (exit 78, naming the
line of ``listen``) and /healthz answers while the models compile.

Thread: "http" runs serve_forever and every request; ``update`` is called from the service's
main thread; ``close`` from the main thread at shutdown.
"""

from __future__ import annotations

import http.server
import json
import logging
import socket
import threading
import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, exposition, generate_latest

from expressiond.config.model import HttpConfig
from expressiond.daemon.records import Observation
from expressiond.errors import ConfigError
from expressiond.monitoring.metrics import ObservationCollector
from expressiond.monitoring.readiness import readiness

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 5.0
# The classic text format every Prometheus (and VictoriaMetrics, Telegraf...) reads; newer
# prometheus_client announces 1.0.0 by default, for UTF-8 names that these metrics do not use.
METRICS_CONTENT_TYPE = getattr(exposition, "CONTENT_TYPE_PLAIN_0_0_4", CONTENT_TYPE_LATEST)
POLL_S = 0.25  # serve_forever's shutdown poll: how long close() may wait for the loop


class _Server(http.server.HTTPServer):
    allow_reuse_address = True  # a restart binds again while old connections are in TIME_WAIT
    monitor: MonitorServer


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    timeout = REQUEST_TIMEOUT_S
    server_version = "expressiond"
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802 - the name http.server looks up
        path = self.path.split("?", 1)[0]
        monitor = self.server.monitor
        if path == "/metrics":
            self._send(200, METRICS_CONTENT_TYPE, monitor.metrics_text())
        elif path == "/healthz":
            self._send_json(200, monitor.liveness())
        elif path == "/readyz":
            body = monitor.readiness()
            self._send_json(200 if body["ready"] else 503, body)
        else:
            self._send_json(404, {"error": "not found; try /metrics, /healthz or /readyz"})

    def _send_json(self, status: int, body: dict[str, Any]) -> None:
        self._send(status, "application/json", (json.dumps(body) + "\n").encode())

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        log.debug("http %s: " + format, self.address_string(), *args)


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class MonitorServer:
    """Serves the latest Observation; ``update`` is the service's observer."""

    def __init__(self, cfg: HttpConfig, *, where: str = "[http] listen"):
        host, port = cfg.address
        try:
            self._server = (_Server6 if ":" in host else _Server)((host, port), _Handler)
        except OSError as exc:
            raise ConfigError(
                f"{where}: cannot listen on {cfg.listen} ({exc.strerror or exc}); choose a free "
                "port (or stop what uses this one), or an address of this host"
            ) from None
        self._server.monitor = self
        self.address = self._server.server_address[:2]
        self._obs: Observation | None = None
        self._started_mono = time.monotonic()
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(ObservationCollector(lambda: self._obs, time.monotonic))
        self._thread = threading.Thread(target=self._serve, name="http", daemon=True)

    def start(self) -> MonitorServer:
        self._thread.start()
        host, port = self.address
        log.info("metrics and health on http://%s:%d/metrics, /healthz, /readyz", _bracket(host), port)
        return self

    def update(self, obs: Observation) -> None:
        self._obs = obs  # one reference swap: the "http" thread reads whole observations only

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(REQUEST_TIMEOUT_S + 1)
        self._server.server_close()

    # --- answers, in the "http" thread ---------------------------------------------------------
    def metrics_text(self) -> bytes:
        return generate_latest(self._registry)

    def liveness(self) -> dict[str, Any]:
        obs, now = self._obs, time.monotonic()
        return {
            "alive": True,
            "phase": obs.phase if obs else "starting",
            "uptime_s": round(now - self._started_mono, 1),
            "observation_age_s": None if obs is None else round(now - obs.at_mono, 1),
        }

    def readiness(self) -> dict[str, Any]:
        return readiness(self._obs, time.monotonic())

    def _serve(self) -> None:
        try:
            self._server.serve_forever(poll_interval=POLL_S)
        except Exception:  # noqa: BLE001 - the endpoint must never take the daemon down
            log.exception("the metrics endpoint stopped")
