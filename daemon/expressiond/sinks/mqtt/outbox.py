"""The in-flight window between the spool and paho: which message id carries which spool row.

Runs only in the publisher's network thread. Events go out in spool-id order starting at the
oldest unacknowledged row of this connection; a row leaves the spool only when its PUBACK
arrives. Control messages (status, discovery, retained state, stats) share the window,
because the broker's Receive Maximum counts every QoS 1 message: one too many and it answers
"quota exceeded" instead of taking the message.

Thread: "mqtt-publisher" only (paho's callbacks, which append acks, run in that thread).
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from expressiond.sinks.mqtt.connection import puback_problem
from expressiond.sinks.mqtt.spool import Spool

QUOTA_EXCEEDED = 0x97

Tell = Callable[[int, str], None]


class Outbox:
    def __init__(self, spool: Spool, qos: int, max_window: int, tell: Tell, who: tuple[str, str]):
        self.spool = spool
        self.qos = qos
        self.max_window = max(1, int(max_window))
        self.window = self.max_window
        self.tell = tell
        self.client_id, self.base = who
        self.inflight: dict[int, tuple[int | None, str]] = {}  # mid -> (spool id or None, topic)
        self.control: collections.deque[tuple[str, bytes, int, bool]] = collections.deque()
        self.acks: list[tuple[int, Any]] = []  # filled by paho's on_publish
        self.cursor = 0  # last spool id handed to paho on this connection
        self.sent = 0
        self.rejected = 0

    def reset(self, receive_maximum: int | None = None) -> None:
        """A new (or no) connection: forget everything in flight; resend from the spool head."""
        self.inflight.clear()
        self.acks.clear()
        self.control.clear()
        self.cursor = 0
        if receive_maximum:
            self.window = max(1, min(self.max_window, int(receive_maximum)))

    def add(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        self.control.append((topic, payload, qos, retain))

    @property
    def full(self) -> bool:
        return len(self.inflight) >= self.window

    def fill(self, client: mqtt.Client) -> None:
        """Publish queued control messages, then spooled events, up to the window."""
        while self.control and (self.control[0][2] == 0 or not self.full):
            topic, payload, qos, retain = self.control.popleft()
            info = client.publish(topic, payload, qos=qos, retain=retain)
            if qos:
                self.inflight[info.mid] = (None, topic)
        for row in self.spool.read_after(self.cursor, self.window - len(self.inflight)):
            self.cursor = row.id
            try:
                info = client.publish(row.topic, row.payload, qos=self.qos)
            except ValueError as exc:  # e.g. an invalid topic: never sendable, do not block
                self.rejected += 1
                self.spool.remove([row.id])
                self.tell(logging.ERROR, f"MQTT: dropped an unsendable event on {row.topic!r}: {exc}")
                continue
            self.inflight[info.mid] = (row.id, row.topic)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                break  # link trouble: the next loop() notices and everything is resent

    def settle(self) -> bool:
        """Remove acknowledged events from the spool. False: the broker answered "quota
        exceeded", and the caller must reconnect (resending only that message would let it
        overtake later ones)."""
        acks, self.acks = self.acks, []
        done: list[int] = []
        healthy = True
        for mid, reason in acks:
            entry = self.inflight.pop(mid, None)
            if entry is None:
                continue
            sid, topic = entry
            if reason is not None and reason.is_failure:
                if int(reason.value) == QUOTA_EXCEEDED:
                    self.tell(
                        logging.WARNING,
                        "MQTT broker answered 'quota exceeded'; reconnecting to resend in order",
                    )
                    healthy = False
                    break
                self.tell(
                    logging.ERROR,
                    puback_problem(reason, topic, sid is not None, self.client_id, self.base),
                )
                if sid is not None:
                    self.rejected += 1
                    done.append(sid)
            elif sid is not None:
                done.append(sid)
                self.sent += 1
        if done:
            self.spool.remove(done)
        return healthy
