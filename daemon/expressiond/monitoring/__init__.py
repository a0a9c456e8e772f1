"""The metrics and health endpoint of ``[http]``: GET /metrics (Prometheus text format),
/healthz (the process is alive) and /readyz (it does its job: models compiled, cameras up or
reconnecting within their budget, events delivered or spooled).

- readiness.py  what "ready" means, from one Observation (pure)
- metrics.py    the Prometheus metric families, from one Observation
- server.py     the HTTP server thread that serves the latest Observation

The service's main thread hands an Observation (daemon/records.py) to ``MonitorServer.update``
about once a second; the endpoint reads nothing else, so a scrape never touches the frame path.

Thread: see server.py.
"""

from expressiond.monitoring.server import MonitorServer

__all__ = ["MonitorServer"]
