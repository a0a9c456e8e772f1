"""The MQTT event sink: spool first, publish in order, delete on PUBACK.

One named thread ("mqtt-publisher") owns the paho client: it connects, runs paho's loop,
and moves spooled events into a bounded in-flight window. Nothing else touches the client,
so paho callbacks (which run in that thread) only record what happened.

Order guarantee: every connection sends the spool from its oldest unacknowledged event
upwards, in id (= emit) order, over one TCP stream; paho's own re-queue is dropped on every
disconnect, so nothing is ever sent from two places. Hence the broker receives the *first*
copy of each event in emit order, across outages and restarts. Duplicates (same event id)
happen only for events sent but not acknowledged before a disconnect or crash.

Events reach it through ``store`` (``stores_events``): on the tracker's thread, one fsynced
transaction per tracker step, rows plus the open-track record (tracks.py), before any other
sink sees the events. Retained state and snapshots (latest.py) and discovery (announce.py)
never touch the spool.

Thread: "mqtt-publisher" owns the client and its counters; store/emit (the tracker's thread)
append to the spool (SQLite, its own lock); publish_state and publish_snapshot go through
Latest, set_cameras through the Announcer, publish_stats under ``_side_lock``.
"""

from __future__ import annotations

import enum
import json
import logging
import random
import ssl
import threading
import time
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt

from expressiond.events import ExpressionEvent
from expressiond.paths import default_state_dir
from expressiond.sinks.base import EventSink
from expressiond.sinks.mqtt.announce import Announcer
from expressiond.sinks.mqtt.connection import (
    Backoff,
    closed_early_problem,
    connack_problem,
    connect_problem,
    connect_properties,
    default_client_id,
    disconnect_problem,
    last_paho_error,
    make_client,
)
from expressiond.sinks.mqtt.credentials import read_password
from expressiond.sinks.mqtt.discovery import is_ha_online
from expressiond.sinks.mqtt.farewell import say_offline
from expressiond.sinks.mqtt.latest import Latest
from expressiond.sinks.mqtt.outbox import Outbox
from expressiond.sinks.mqtt.spool import Spool
from expressiond.sinks.mqtt.topics import Topics
from expressiond.sinks.mqtt.tracks import spool_rows

log = logging.getLogger(__name__)


class _Link(enum.Enum):
    DOWN = "down"
    CONNECTING = "connecting"
    UP = "up"


class Publisher(EventSink):
    """EventSink publishing to MQTT. Starts its thread when built (``autostart=False`` to call
    ``start()`` later); ``close()`` drains, says offline, joins."""

    stores_events = True
    IO_TIMEOUT = 0.05  # paho loop select timeout: the longest a new event waits when idle
    CONNACK_TIMEOUT = 15.0
    STABLE_AFTER = 10.0  # a connection that lasted this long resets the reconnect backoff

    def __init__(
        self,
        mqtt_cfg: Any,
        device_id: str,
        cameras: Sequence[str],
        labels: Sequence[str],
        sw_version: str,
        *,
        snapshots: Sequence[str] = (),
        window: int = 64,
        rng: random.Random | None = None,
        autostart: bool = True,
    ):
        self._cfg = mqtt_cfg
        self.topics = Topics(mqtt_cfg.prefix, device_id, mqtt_cfg.ha_prefix)
        self.client_id = mqtt_cfg.client_id or default_client_id(device_id)
        self._rng = rng or random.Random()
        self._client = make_client(
            mqtt_cfg, self.client_id, read_password(mqtt_cfg), will_topic=self.topics.status
        )
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message
        self._discovery = (
            Announcer(self.topics, cameras, labels, sw_version, snapshots, self._rng)
            if mqtt_cfg.ha_discovery
            else None
        )
        self._backoff = Backoff(float(mqtt_cfg.reconnect_max_s), rng=self._rng)
        spool_path = mqtt_cfg.spool_path or str(default_state_dir() / "spool.db")
        self._spool = Spool(spool_path, int(mqtt_cfg.spool_max_events))
        self._out = Outbox(
            self._spool, int(mqtt_cfg.qos), window, self._tell, (self.client_id, self.topics.base)
        )
        # network-thread state (callbacks run in that thread too)
        self._link = _Link.DOWN
        self._connack: tuple[Any, Any] | None = None
        self._disconnect_reason: Any = None
        self._need_delay = False
        self._up_since = 0.0
        self._connect_started = 0.0
        self._told: set[str] = set()
        self._ever_up = False
        # shared with the pipeline / service threads
        self._side_lock = threading.Lock()
        self._latest = Latest()
        self._pending_stats: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="mqtt-publisher", daemon=True)
        self.reconnects = self.connect_attempts = self.ignored_messages = 0
        if autostart:
            self.start()

    # -- EventSink + service API -----------------------------------------------------------
    def start(self) -> Publisher:
        if self._thread.is_alive() or self._closed:
            return self
        log.info(
            "MQTT: publishing to %s:%s as %r under %s/ (spool %s, %d events waiting)",
            self._cfg.host,
            self._cfg.port,
            self.client_id,
            self.topics.base,
            self._spool.path,
            self._spool.depth,
        )
        self._thread.start()
        return self

    def store(self, events: Sequence[ExpressionEvent]) -> None:
        """Durably spool the events and their open-track changes in one transaction (returns
        after the commit); the network thread sends them."""
        if self._closed:
            log.warning("MQTT publisher is closed; %d events not spooled", len(events))
            return
        if events:
            self._spool.append_many(*spool_rows(self.topics, events))

    def emit(self, event: ExpressionEvent) -> None:
        """One event: ``store([event])``."""
        self.store([event])

    def publish_state(self, camera: str, state: dict[str, Any]) -> None:
        """Retained current state of a camera; only the latest per camera is kept."""
        self._latest.put(self.topics.state(camera), json.dumps(state, separators=(",", ":")).encode())

    def publish_stats(self, stats: dict[str, Any]) -> None:
        """Retained stats; the publisher's own fields are added under "mqtt" when sent."""
        with self._side_lock:
            self._pending_stats = dict(stats)

    def set_cameras(self, cameras: Sequence[str], snapshots: Sequence[str] = ()) -> None:
        """After a reload: re-send discovery for these cameras (announce.py)."""
        if self._discovery is not None:
            self._discovery.set_cameras(cameras, snapshots)

    @property
    def connected(self) -> bool:
        return self._link is _Link.UP

    @property
    def spool_depth(self) -> int:
        return self._spool.depth

    @property
    def rejected(self) -> int:
        return self._out.rejected

    @property
    def dropped(self) -> int:
        """Events that will not be delivered: spool overflow plus broker refusals."""
        return self._spool.dropped + self.rejected

    def stats(self) -> dict[str, Any]:
        return {
            "connected": self.connected,
            "spool_depth": self.spool_depth,
            "dropped": self.dropped,
            "dropped_spool_full": self._spool.dropped,
            "rejected": self.rejected,
            "unstored": self._spool.unstored,
            "reconnects": self.reconnects,
            "connect_attempts": self.connect_attempts,
            "sent": self._out.sent,
            "ignored_messages": self.ignored_messages,
        }

    def close(self, drain_timeout: float = 5.0) -> None:
        """Give queued events up to ``drain_timeout`` s to be acknowledged (if connected),
        publish ``offline``, disconnect, join the thread, close the spool. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            deadline = time.monotonic() + drain_timeout
            while self.connected and self._spool.depth and time.monotonic() < deadline:
                self._stop.wait(0.02)
            self._stop.set()
            self._thread.join(timeout=drain_timeout + self._client.connect_timeout + 5)
            if self._thread.is_alive():
                log.error("MQTT publisher thread did not stop in time")
        if self._spool.depth:
            log.info("MQTT: %d unsent events stay in the spool for the next start", self._spool.depth)
        self._spool.close()

    # -- paho callbacks: record only -------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connack = (reason_code, properties)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._disconnect_reason = reason_code

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._out.acks.append((mid, reason_code))

    def _on_message(self, client, userdata, msg) -> None:
        if msg.topic == self.topics.ha_status and is_ha_online(msg.payload):
            if self._discovery is not None:
                self._discovery.ha_online()
            return
        self.ignored_messages += 1
        log.debug("MQTT: ignored a %d-byte message on %s", len(msg.payload), msg.topic)

    # -- network thread --------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._link is _Link.DOWN:
                    self._connect_once()
                else:
                    self._after_loop(self._client.loop(self.IO_TIMEOUT))
            except Exception:
                log.exception("MQTT publisher: unexpected error; reconnecting")
                self._link_lost()
        try:
            self._say_offline()
        except Exception:
            log.exception("MQTT publisher: error while disconnecting")

    def _tell(self, level: int, message: str, key: str | None = None) -> None:
        """Log a problem once per distinct reason (``key``, default the message) until the
        next successful connection; repeats go to DEBUG."""
        key = key or message
        if key in self._told:
            log.debug("%s", message)
            return
        self._told.add(key)
        log.log(level, "%s", message)

    def _connect_once(self) -> None:
        if self._need_delay and self._stop.wait(self._backoff.next_delay()):
            return
        self._need_delay = True
        self.connect_attempts += 1
        self._connack = None
        host, port = self._cfg.host, int(self._cfg.port)
        try:
            rc = self._client.connect(
                host,
                port,
                keepalive=int(self._cfg.keepalive),
                clean_start=True,
                properties=connect_properties(),
            )
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            # TLS failures are configuration problems; a refused TCP connect is an outage.
            level = logging.ERROR if isinstance(exc, ssl.SSLError) else logging.WARNING
            self._tell(level, connect_problem(exc, host, port) + "; retrying, events are kept in the spool")
            return
        self._link = _Link.CONNECTING
        self._connect_started = time.monotonic()
        if rc != mqtt.MQTT_ERR_SUCCESS:  # sending CONNECT failed (e.g. a TLS alert)
            self._link_lost()

    def _after_loop(self, rc: int) -> None:
        connack, self._connack = self._connack, None
        if connack is not None:
            reason, props = connack
            if reason.is_failure:  # never connected: paho has closed the socket
                self._tell(logging.ERROR, connack_problem(reason, self._cfg, self.client_id) + "; retrying")
                self._link = _Link.DOWN
                self._link_lost()
                return
            self._link_up(props)
        if rc != mqtt.MQTT_ERR_SUCCESS or self._client.socket() is None:
            self._link_lost()
            return
        now = time.monotonic()
        if self._link is _Link.CONNECTING and now - self._connect_started > self.CONNACK_TIMEOUT:
            self._tell(
                logging.WARNING,
                f"MQTT broker at {self._cfg.host}:{self._cfg.port} "
                f"did not answer CONNECT within {self.CONNACK_TIMEOUT:.0f} s; retrying",
            )
            self._link_lost()
            return
        if self._link is _Link.UP:
            if self._backoff.attempt and now - self._up_since > self.STABLE_AFTER:
                self._backoff.reset()
            self._pump()

    def _link_up(self, props: Any) -> None:
        self._link = _Link.UP
        self._up_since = time.monotonic()
        self._told.clear()
        if self._ever_up:
            self.reconnects += 1
        self._ever_up = True
        self._reset_inflight(getattr(props, "ReceiveMaximum", None) or 65535)
        self._out.add(self.topics.status, b"online", 1, True)
        if self._discovery is not None:
            self._client.subscribe(self.topics.ha_status, qos=1)
            self._out.add(self.topics.ha_config, self._discovery.payload, 1, True)
        else:  # ha_discovery = false: an empty retained config removes an earlier device entry
            self._out.add(self.topics.ha_config, b"", 1, True)
        self._latest.resend_all()
        log.info(
            "MQTT connected to %s:%s as %r (%d events waiting in the spool)",
            self._cfg.host,
            self._cfg.port,
            self.client_id,
            self._spool.depth,
        )

    def _link_lost(self) -> None:
        was_up = self._link is _Link.UP
        was_connecting = self._link is _Link.CONNECTING
        self._link = _Link.DOWN
        reason, self._disconnect_reason = self._disconnect_reason, None
        if was_up:
            log.warning(
                "%s; %d events kept in the spool; reconnecting",
                disconnect_problem(reason, self.client_id),
                self._spool.depth,
            )
        elif was_connecting:
            self._tell(
                logging.WARNING,
                closed_early_problem(self._cfg, last_paho_error(self._client)),
                key="closed before CONNACK",
            )
        self._reset_inflight()

    def _reset_inflight(self, receive_maximum: int | None = None) -> None:
        """Forget everything paho holds: the next connection resends from the spool head."""
        self._client.drop_out_messages()
        self._out.reset(receive_maximum)

    def _settle(self) -> bool:
        if self._out.settle():
            return True
        self._client.disconnect()
        self._link_lost()
        return False

    def _pump(self) -> None:
        if not self._settle():
            return
        discovery = self._discovery.due() if self._discovery is not None else None
        if discovery is not None:
            self._out.add(self.topics.ha_config, discovery, 1, True)
        for msg in self._latest.take():
            self._out.add(*msg)
        with self._side_lock:
            stats, self._pending_stats = self._pending_stats, None
        if stats is not None:
            body = json.dumps({**stats, "mqtt": self.stats()}, separators=(",", ":"), default=str)
            self._out.add(self.topics.stats, body.encode(), 0, True)
        self._out.fill(self._client)

    def _say_offline(self) -> None:
        if self._link is _Link.UP and not say_offline(
            self._client, self._out, self.topics.status, self.IO_TIMEOUT
        ):
            self._link_lost()
        self._link = _Link.DOWN
