"""Counters and a latency window that one thread writes and another reads (stats, health).

Every part that counts in its own thread (a camera, the inference coordinator, the event
emitter) and is read from the service's main thread keeps its numbers here, behind one lock,
instead of in plain attributes: ``+=`` on an attribute is not atomic across threads, and a
deque that grows while another thread copies it can raise.

Thread: any; every method takes the object's lock.
"""

from __future__ import annotations

import collections
import threading

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
        """fps over the last ``window_s`` seconds and latency_p50/p95/p99_ms over the window."""
        with self._lock:
            values = np.array(self._values, dtype=np.float64) * 1000
            times = np.array(self._times, dtype=np.float64)
        recent = times[times > now - window_s]
        span = (recent[-1] - recent[0]) if len(recent) > 1 else 0.0
        out: dict[str, float | None] = {"fps": round((len(recent) - 1) / span, 2) if span > 0 else 0.0}
        for p in (50, 95, 99):
            out[f"latency_p{p}_ms"] = round(float(np.percentile(values, p)), 1) if len(values) else None
        return out
