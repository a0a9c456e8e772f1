"""Counters, a latency window and histograms that one thread writes and another reads (stats,
health, metrics).

Every part that counts in its own thread (a camera, the inference coordinator, the event
emitter) and is read from the service's main thread keeps its numbers here, behind one lock,
instead of in plain attributes: ``+=`` on an attribute is not atomic across threads, and a
deque that grows while another thread copies it can raise.

Thread: any; every method takes the object's lock.
"""

from __future__ import annotations

import bisect
import collections
import threading
from dataclasses import dataclass

import numpy as np


class Counters:
    """Named integers; ``add`` from any thread, ``snapshot`` for a consistent read."""

    def __init__(self, *names: str):
        self._lock = threading.Lock()
        self._values = dict.fromkeys(names, 0)

    def add(self, name: str, n: int = 1) -> int:
        """Add ``n`` to ``name``; returns the new value."""
        with self._lock:
            self._values[name] += n
            return self._values[name]

    def set(self, name: str, value: int) -> None:
        with self._lock:
            self._values[name] = value

    def __getitem__(self, name: str) -> int:
        with self._lock:
            return self._values[name]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)


class LatencyWindow:
    """Capture-to-result latencies of the last N frames, for the fps and percentiles in stats."""

    def __init__(self, size: int = 2000):
        self._lock = threading.Lock()
        self._values: collections.deque[float] = collections.deque(maxlen=size)
        self._times: collections.deque[float] = collections.deque(maxlen=size)

    def add(self, latency_s: float, at: float) -> None:
        with self._lock:
            self._values.append(latency_s)
            self._times.append(at)

    def summary(self, now: float, window_s: float = 30.0) -> dict[str, float | None]:
        """fps and latency_p50/p95/p99_ms, both over the results of the last ``window_s``
        seconds (None: no result in the window; a camera that stopped has no latency now)."""
        with self._lock:
            values = np.array(self._values, dtype=np.float64) * 1000
            times = np.array(self._times, dtype=np.float64)
        in_window = times > now - window_s
        recent, values = times[in_window], values[in_window]
        span = (recent[-1] - recent[0]) if len(recent) > 1 else 0.0
        out: dict[str, float | None] = {"fps": round((len(recent) - 1) / span, 2) if span > 0 else 0.0}
        for p in (50, 95, 99):
            out[f"latency_p{p}_ms"] = round(float(np.percentile(values, p)), 1) if len(values) else None
        return out


# Inference latencies from 1 ms (a small model on a fast CPU) to 2.5 s (a loaded box, a cold GPU)
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass(frozen=True)
class HistogramSnapshot:
    """Cumulative counts per upper bound (Prometheus ``le``), the last one +Inf."""

    buckets: tuple[tuple[float, int], ...]
    sum: float
    count: int


class Histogram:
    """Counts of observations per bucket since the start: ``observe`` from any thread (a
    bisect and two additions under the lock), ``snapshot`` for the metrics endpoint."""

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS_S):
        self._bounds = tuple(sorted(bounds))
        self._lock = threading.Lock()
        self._counts = [0] * (len(self._bounds) + 1)
        self._sum = 0.0

    def observe(self, value: float) -> None:
        i = bisect.bisect_left(self._bounds, value)
        with self._lock:
            self._counts[i] += 1
            self._sum += value

    def snapshot(self) -> HistogramSnapshot:
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, running = [], 0
        for bound, n in zip((*self._bounds, float("inf")), counts, strict=True):
            running += n
            cumulative.append((bound, running))
        return HistogramSnapshot(tuple(cumulative), total, running)


class Tally:
    """Counts per key (a tuple of label values), keys made as they come: events by camera and
    type. ``add`` from any thread, ``snapshot`` for a consistent read."""

    def __init__(self):
        self._lock = threading.Lock()
        self._values: dict[tuple[str, ...], int] = {}

    def add(self, key: tuple[str, ...], n: int = 1) -> None:
        with self._lock:
            self._values[key] = self._values.get(key, 0) + n

    def snapshot(self) -> dict[tuple[str, ...], int]:
        with self._lock:
            return dict(self._values)
