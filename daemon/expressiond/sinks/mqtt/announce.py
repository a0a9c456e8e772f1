"""When and what Home Assistant discovery the publisher sends: the device config for the
current cameras (with an image entity for those whose ``snapshot`` is on), re-sent after a
reload that changes them and when Home Assistant says ``online``; cameras gone since the
start stay in it with only their ``platform`` (so Home Assistant deletes their entities).

Thread: ``set_cameras`` from the service's thread (reload), ``ha_online`` and ``due`` from
"mqtt-publisher"; state under the object's lock.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence

from expressiond.sinks.mqtt.discovery import discovery_json
from expressiond.sinks.mqtt.topics import Topics


class Announcer:
    def __init__(
        self,
        topics: Topics,
        cameras: Sequence[str],
        labels: Sequence[str],
        sw_version: str,
        snapshots: Sequence[str] = (),
        rng: random.Random | None = None,
    ):
        self._topics, self._labels, self._sw_version = topics, list(labels), sw_version
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._cameras, self._snapshots = list(cameras), list(snapshots)
        self._gone: list[str] = []
        self._payload = self._build()
        self._due: float | None = None

    def _build(self) -> bytes:
        return discovery_json(
            self._topics, self._cameras, self._labels, self._sw_version, self._gone, snapshots=self._snapshots
        )

    @property
    def payload(self) -> bytes:
        with self._lock:
            return self._payload

    def set_cameras(self, cameras: Sequence[str], snapshots: Sequence[str] = ()) -> None:
        """A reload changed the cameras (or their snapshot setting): send again now."""
        with self._lock:
            gone = [c for c in (*self._gone, *self._cameras) if c not in cameras]
            self._gone = list(dict.fromkeys(gone))
            self._cameras, self._snapshots = list(cameras), list(snapshots)
            self._payload = self._build()
            self._due = time.monotonic()

    def ha_online(self) -> None:
        """Home Assistant (re)started: send again within a second (jittered, as HA asks)."""
        with self._lock:
            self._due = time.monotonic() + self._rng.uniform(0.0, 1.0)

    def due(self) -> bytes | None:
        """The payload if a send is due now (then not again until asked)."""
        with self._lock:
            if self._due is None or time.monotonic() < self._due:
                return None
            self._due = None
            return self._payload
