"""MQTT side of expressiond: the publisher (an EventSink), its on-disk spool, Home Assistant
discovery. Knows topics and payloads, not models or cameras."""

from __future__ import annotations

from .credentials import read_password
from .discovery import discovery_payload, remove_discovery
from .publisher import Publisher
from .spool import Spool
from .topics import Topics

MqttPublisher = Publisher  # the name service wiring uses

__all__ = [
    "MqttPublisher",
    "Publisher",
    "Spool",
    "Topics",
    "discovery_payload",
    "read_password",
    "remove_discovery",
]
