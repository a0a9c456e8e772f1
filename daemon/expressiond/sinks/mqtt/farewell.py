"""The clean goodbye of the MQTT link: retained ``offline``, then DISCONNECT.

If the PUBACK of ``offline`` does not come in time, the DISCONNECT carries reason 0x04
(disconnect with will) so that the broker publishes the last will (``offline``) itself.

Thread: "mqtt-publisher" (it owns the paho client), at the end of its loop.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

log = logging.getLogger(__name__)

DISCONNECT_WITH_WILL = 0x04
GOODBYE_S = 3.0


def say_offline(client: Any, out: Any, status_topic: str, io_timeout: float) -> bool:
    """Publish retained ``offline`` on a connected client and disconnect cleanly. False: the
    broker refused an in-flight event ("quota exceeded") and the link was just dropped."""
    deadline = time.monotonic() + GOODBYE_S
    while out.full and time.monotonic() < deadline and client.loop(io_timeout) == mqtt.MQTT_ERR_SUCCESS:
        out.settle()
    if not out.settle():
        client.disconnect()
        return False
    info = client.publish(status_topic, b"offline", qos=1, retain=True)
    while not info.is_published() and time.monotonic() < deadline:
        if client.loop(io_timeout) != mqtt.MQTT_ERR_SUCCESS:
            break
    out.settle()
    if info.is_published():
        client.disconnect()
    else:
        client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=DISCONNECT_WITH_WILL))
    if client.socket() is not None:  # paho closes it once DISCONNECT is written
        client.loop(io_timeout)
    log.info("MQTT disconnected (status offline)")
    return True
