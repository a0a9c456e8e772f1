"""MQTT side of expressiond: the publisher (an EventSink), its on-disk spool, Home Assistant
discovery. Knows topics and payloads, not models or cameras.

Thread: the publisher's own "mqtt-publisher" thread owns the client (see publisher.py).
"""

from __future__ import annotations

from expressiond.sinks.mqtt.credentials import read_password
from expressiond.sinks.mqtt.discovery import discovery_payload, remove_discovery
from expressiond.sinks.mqtt.publisher import Publisher
from expressiond.sinks.mqtt.sink import MqttSink
from expressiond.sinks.mqtt.spool import Spool
from expressiond.sinks.mqtt.topics import Topics

MqttPublisher = Publisher  # the older name

__all__ = [
    "MqttPublisher",
    "MqttSink",
    "Publisher",
    "Spool",
    "Topics",
    "discovery_payload",
    "read_password",
    "remove_discovery",
]
