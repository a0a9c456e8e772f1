"""Home Assistant's side of MQTT discovery, for tests: the templates of a discovery component
rendered the way HA's MQTT entities render them, with Jinja2 (HA's template engine is Jinja2
in an immutable sandbox; its MQTT entities pass ``value`` = the payload text and
``value_json`` = the parsed payload, and strip the rendered text). The HA-specific filters
the discovery uses are defined here with HA's semantics (``to_json``; ``int`` that refuses a
non-number without a default); Jinja's own ``default``, ``sort``, ``list``, ``round`` are HA's
too. Then, per platform, what HA does with the rendered text:

- ``event``: the text is a JSON object whose ``event_type`` must be one of the component's
  ``event_types`` (else HA logs an error and fires nothing); the rest become attributes;
- ``sensor``: the text is the state;
- ``binary_sensor``: ``payload_on`` (default ``ON``) is on, ``payload_off`` (``OFF``) is off,
  anything else leaves the state unchanged (HA logs a warning);
- ``json_attributes_template``: the text is a JSON object, the attributes.

Used by tests/unit/test_ha_templates.py (made payloads) and the fault suite (payloads the
real daemon published). Thread: the test's.
"""

from __future__ import annotations

import json
from typing import Any

from jinja2 import Undefined
from jinja2.filters import do_int
from jinja2.sandbox import ImmutableSandboxedEnvironment

_SENTINEL = object()


def _to_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _int(value: Any, default: Any = _SENTINEL, base: int = 10) -> Any:
    result = do_int(value, default=_SENTINEL, base=base)
    if result is _SENTINEL:
        if default is _SENTINEL:
            raise ValueError(f"Template error: int got invalid input '{value}' and no default was specified")
        return default
    return result


def ha_environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=Undefined)
    env.filters["to_json"] = _to_json
    env.filters["from_json"] = json.loads
    env.filters["int"] = _int
    return env


_ENV = ha_environment()


def render(template: str, payload: bytes | str) -> str:
    """What HA's ``async_render_with_possible_json_value`` gives for this payload."""
    text = payload.decode() if isinstance(payload, bytes) else payload
    variables: dict[str, Any] = {"value": text}
    try:
        variables["value_json"] = json.loads(text)
    except ValueError:
        pass
    return _ENV.from_string(template).render(**variables).strip()


def event_fired(component: dict, payload: bytes | str) -> dict | None:
    """The event an HA ``event`` entity fires for this payload (``event_type`` + attributes),
    or None when HA would refuse it (event_type not declared)."""
    fired = json.loads(render(component["value_template"], payload))
    if fired.get("event_type") not in component["event_types"]:
        return None
    return fired


def sensor_state(component: dict, payload: bytes | str) -> str:
    return render(component["value_template"], payload)


def binary_sensor_state(component: dict, payload: bytes | str) -> str | None:
    text = render(component["value_template"], payload)
    if text == component.get("payload_on", "ON"):
        return "on"
    if text == component.get("payload_off", "OFF"):
        return "off"
    return None


def attributes(component: dict, payload: bytes | str) -> dict:
    return json.loads(render(component["json_attributes_template"], payload))
