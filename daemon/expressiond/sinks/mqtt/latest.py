"""Messages where only the newest counts: each camera's retained state and snapshot. The
service's threads put them; the network thread takes what changed since it last looked, and
after a reconnect takes them all again (the broker may have lost its retained store).

Thread: ``put`` from the service's "events" thread (or the main thread), ``take`` and
``resend_all`` from "mqtt-publisher"; everything under the object's lock.
"""

from __future__ import annotations

import threading
from typing import NamedTuple


class Message(NamedTuple):
    topic: str
    payload: bytes
    qos: int
    retain: bool


class Latest:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, Message] = {}
        self._dirty: dict[str, Message] = {}

    def put(self, topic: str, payload: bytes, qos: int = 1, retain: bool = True) -> None:
        """Replace the topic's message; an empty retained payload removes the broker's copy
        (and is not kept for resending)."""
        msg = Message(topic, payload, qos, retain)
        with self._lock:
            self._dirty[topic] = msg
            if payload:
                self._values[topic] = msg
            else:
                self._values.pop(topic, None)

    def take(self) -> list[Message]:
        with self._lock:
            out, self._dirty = list(self._dirty.values()), {}
            return out

    def resend_all(self) -> None:
        with self._lock:
            self._dirty = {**self._values, **self._dirty}
