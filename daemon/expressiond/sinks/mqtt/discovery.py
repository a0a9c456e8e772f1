"""Home Assistant MQTT discovery, device-based: one retained config message describes the
device and all its entities (per camera: an ``event`` entity, a sensor with the current
expression, a face-count sensor, a presence binary_sensor, a diagnostic fps sensor, a
diagnostic ``connectivity`` binary_sensor (the camera connected or reconnecting), and an
``image`` entity when the camera's snapshot is on). Availability follows the status topic.
Every component says ``qos: 1``: Home Assistant subscribes with each component's own qos
(default 0) and ignores the device-level key. A reload that changes the cameras re-sends it;
the components of cameras that are gone (and the image of a camera whose snapshot is off)
are sent with only ``platform``, which makes Home Assistant delete them.

Payload shapes this relies on (the service builds them):
- event topic: the event payload; the entity's ``event_type`` is the expression for start
  and change, and ``end`` for an end, so an automation on ``happy`` never runs when the happy
  face leaves (the expression of an end is in its attributes);
- state topic (``publish_state``, tracking.current_state): ``{"count": n, "tracks":
  [{"track", "expression", "confidence", "box"}, ...]}``, published at start with count 0;
  the sensor shows the expression of the most confident track, ``none`` without faces;
- stats topic (``publish_stats``): ``{"cameras": {name: {"fps": float, "connected": bool,
  ...}}, ...}``.

Thread: payloads are built by the publisher (under its lock, or in "mqtt-publisher");
``remove_discovery`` runs in the main thread (``run --ha-remove``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt

from expressiond.errors import EXIT_OK, ConfigError, ExpressiondError
from expressiond.sinks.mqtt.connection import (
    connack_problem,
    connect_problem,
    connect_properties,
    default_client_id,
    make_client,
)
from expressiond.sinks.mqtt.credentials import read_password
from expressiond.sinks.mqtt.topics import Topics

log = logging.getLogger(__name__)

MAX_INBOUND_PAYLOAD = 64 * 1024  # larger messages on subscribed topics are ignored
ORIGIN = {
    "name": "expressiond",
    "support_url": "https://github.com/expressiond/expressiond",
}

END_EVENT_TYPE = "end"  # the event entity's event_type for every end event

# The event entity needs {"event_type": ...}; the other event fields become attributes.
_EVENT_TEMPLATE = (
    "{{ {'event_type': ('" + END_EVENT_TYPE + "' if value_json.type == 'end' else value_json.expression), "
    "'type': value_json.type, 'expression': value_json.expression, "
    "'confidence': value_json.confidence, 'track': value_json.track, "
    "'previous': value_json.previous, 'reason': value_json.reason | default(none), "
    "'id': value_json.id} | to_json }}"
)
_EXPRESSION_TEMPLATE = (
    "{% set t = value_json.tracks | default([]) | sort(attribute='confidence', reverse=true) "
    "| list %}{{ t[0].expression if t else 'none' }}"
)
_STATE_ATTRIBUTES = "{{ {'count': value_json.count, 'tracks': value_json.tracks} | to_json }}"
_COUNT_TEMPLATE = "{{ value_json.count | default(0) | int }}"
_PRESENCE_TEMPLATE = "{{ 'ON' if (value_json.count | default(0) | int) > 0 else 'OFF' }}"


def _fps_template(camera: str) -> str:
    fps = f"value_json.cameras['{camera}'].fps | round(1)"
    return (
        "{{ " + fps + f" if value_json.cameras is defined and '{camera}' in value_json.cameras else none }}}}"
    )


def _connectivity_template(camera: str) -> str:
    """ON/OFF from the camera's ``connected`` in the stats payload (sent at once when it
    changes, daemon/service.py); None (unknown) before the camera is in a payload."""
    known = f"value_json.cameras is defined and '{camera}' in value_json.cameras"
    return (
        "{{ ('ON' if value_json.cameras['" + camera + "'].connected else 'OFF') if " + known + " else none }}"
    )


def _camera_components(
    topics: Topics, cam: str, labels: Sequence[str], snapshot: bool = False
) -> dict[str, dict[str, Any]]:
    dev = topics.device_id
    state = topics.state(cam)
    components: dict[str, dict[str, Any]] = {
        f"{dev}_{cam}_expression_event": {
            "platform": "event",
            "name": f"{cam} expression",
            "unique_id": f"expressiond_{dev}_{cam}_expression_event",
            "state_topic": topics.event(cam),
            "event_types": [*labels, END_EVENT_TYPE],
            "value_template": _EVENT_TEMPLATE,
            "icon": "mdi:emoticon-outline",
        },
        f"{dev}_{cam}_expression": {
            "platform": "sensor",
            "name": f"{cam} current expression",
            "unique_id": f"expressiond_{dev}_{cam}_expression",
            "state_topic": state,
            "value_template": _EXPRESSION_TEMPLATE,
            "json_attributes_topic": state,
            "json_attributes_template": _STATE_ATTRIBUTES,
            "icon": "mdi:emoticon-outline",
        },
        f"{dev}_{cam}_faces": {
            "platform": "sensor",
            "name": f"{cam} faces",
            "unique_id": f"expressiond_{dev}_{cam}_faces",
            "state_topic": state,
            "value_template": _COUNT_TEMPLATE,
            "state_class": "measurement",
            "icon": "mdi:account-group",
        },
        f"{dev}_{cam}_presence": {
            "platform": "binary_sensor",
            "name": f"{cam} face present",
            "unique_id": f"expressiond_{dev}_{cam}_presence",
            "state_topic": state,
            "value_template": _PRESENCE_TEMPLATE,
            "device_class": "occupancy",
        },
        f"{dev}_{cam}_fps": {
            "platform": "sensor",
            "name": f"{cam} fps",
            "unique_id": f"expressiond_{dev}_{cam}_fps",
            "state_topic": topics.stats,
            "value_template": _fps_template(cam),
            "unit_of_measurement": "fps",
            "state_class": "measurement",
            "entity_category": "diagnostic",
        },
        f"{dev}_{cam}_connectivity": {
            "platform": "binary_sensor",
            "name": f"{cam} camera",
            "unique_id": f"expressiond_{dev}_{cam}_connectivity",
            "device_class": "connectivity",
            "state_topic": topics.stats,
            "value_template": _connectivity_template(cam),
            "entity_category": "diagnostic",
        },
    }
    image: dict[str, Any] = {"platform": "image"}
    if snapshot:
        image.update(
            name=f"{cam} snapshot",
            unique_id=f"expressiond_{dev}_{cam}_snapshot",
            image_topic=topics.snapshot(cam),
            content_type="image/jpeg",
        )
    components[f"{dev}_{cam}_snapshot"] = image
    for comp in components.values():
        if len(comp) > 1:
            comp["qos"] = 1
    return components


def discovery_payload(
    topics: Topics,
    cameras: Sequence[str],
    labels: Sequence[str],
    sw_version: str,
    removed: Sequence[str] = (),
    *,
    snapshots: Sequence[str] = (),
) -> dict[str, Any]:
    """The device config. ``removed``: cameras dropped by a reload; their components are sent
    with only ``platform``, which is how device-based discovery deletes a component while the
    device and the other components stay (an empty payload would delete the whole device).
    ``snapshots``: the cameras with an image entity (their ``snapshot`` is not "off")."""
    dev = topics.device_id
    components: dict[str, dict[str, Any]] = {}
    for cam in removed:
        for cid, comp in _camera_components(topics, cam, labels).items():
            components[cid] = {"platform": comp["platform"]}
    for cam in cameras:
        components.update(_camera_components(topics, cam, labels, cam in snapshots))
    return {
        "device": {
            "identifiers": [f"expressiond_{dev}"],
            "name": f"expressiond {dev}",
            "manufacturer": "expressiond",
            "model": "expressiond edge daemon",
            "sw_version": sw_version,
        },
        "origin": {**ORIGIN, "sw_version": sw_version},
        "availability": [
            {"topic": topics.status, "payload_available": "online", "payload_not_available": "offline"}
        ],
        "qos": 1,
        "components": components,
    }


def discovery_json(
    topics: Topics,
    cameras: Sequence[str],
    labels: Sequence[str],
    sw_version: str,
    removed: Sequence[str] = (),
    *,
    snapshots: Sequence[str] = (),
) -> bytes:
    payload = discovery_payload(topics, cameras, labels, sw_version, removed, snapshots=snapshots)
    return json.dumps(payload, separators=(",", ":")).encode()


def is_ha_online(payload: bytes) -> bool:
    """True only for a small UTF-8 payload that says ``online``. Oversized or binary payloads
    (anyone may publish on homeassistant/status) are ignored, never decoded at length."""
    if len(payload) > MAX_INBOUND_PAYLOAD:
        return False
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return text.strip() == "online"


def remove_discovery(
    mqtt_cfg: Any,
    device_id: str,
    cameras: Sequence[str] | None = None,
    *,
    timeout: float = 15.0,
) -> int:
    """``run --ha-remove``: publish an empty retained config, which makes Home Assistant delete
    the device and its entities; returns 0 (exit code) or raises ExpressiondError. Connects
    once with the daemon's own credentials and TLS settings (client id suffixed, so a running
    daemon is not kicked off the broker). ``cameras`` is accepted for symmetry and unused: the
    device-based config is one topic for all cameras."""
    if mqtt_cfg is None:
        raise ConfigError("--ha-remove needs an [mqtt] section in the config")
    topics = Topics(mqtt_cfg.prefix, device_id, mqtt_cfg.ha_prefix)
    client_id = f"{mqtt_cfg.client_id or default_client_id(device_id)}-ha-remove"
    client = make_client(mqtt_cfg, client_id, read_password(mqtt_cfg), will_topic=None)
    acks: dict[str, Any] = {}
    client.on_connect = lambda c, u, flags, rc, props: acks.__setitem__("connack", rc)
    host, port = mqtt_cfg.host, int(mqtt_cfg.port)
    try:
        client.connect(
            host, port, keepalive=int(mqtt_cfg.keepalive), clean_start=True, properties=connect_properties()
        )
    except (OSError, ValueError) as exc:
        raise ExpressiondError(
            f"cannot remove Home Assistant discovery: {connect_problem(exc, host, port)}"
        ) from None
    deadline = time.monotonic() + timeout
    info: mqtt.MQTTMessageInfo | None = None
    try:
        while time.monotonic() < deadline:
            rc = client.loop(0.1)
            connack = acks.get("connack")
            if connack is not None and connack.is_failure:
                raise ExpressiondError(
                    "cannot remove Home Assistant discovery: " + connack_problem(connack, mqtt_cfg, client_id)
                )
            if rc != mqtt.MQTT_ERR_SUCCESS:
                raise ExpressiondError(
                    f"cannot remove Home Assistant discovery: connection to {host}:{port} lost"
                )
            if connack is not None and info is None:
                info = client.publish(topics.ha_config, b"", qos=1, retain=True)
            if info is not None and info.is_published():
                log.info("removed Home Assistant discovery for device %s (%s)", device_id, topics.ha_config)
                return EXIT_OK
        raise ExpressiondError(
            f"cannot remove Home Assistant discovery: no answer from {host}:{port} within {timeout:.0f} s"
        )
    finally:
        if client.is_connected():
            client.disconnect()
            client.loop(0.1)
