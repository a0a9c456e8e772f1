"""The schema: parsed TOML (a dict) -> the frozen dataclasses of model.py, or ConfigError.

Every table is read the same way, from the key declarations of its dataclass (keys.py); what
one key cannot say alone (two keys that go together, a default that depends on another table)
is a rule of ``TABLE_RULES``. Every problem is collected with its key path and line; the error
names the first one in file order and counts the rest (all are on ``error.problems``).

Thread: none of its own; pure functions, called by whoever loads a config.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from expressiond.config.http import HttpConfig, is_loopback, split_listen
from expressiond.config.keys import Key, keys
from expressiond.config.lines import KeyPath, format_path
from expressiond.config.model import (
    CALIBRATIONS,
    DEVICE_ID_RE,
    MAX_MEMBERS,
    MAX_REQUESTS,
    CameraConfig,
    ClassifierConfig,
    Config,
    DetectorConfig,
    EnsembleMember,
    ModelConfig,
    MqttConfig,
    TlsConfig,
    TrackingConfig,
)
from expressiond.config.values import MISSING, Checker, Section, show
from expressiond.sources.base import url_scheme
from expressiond.sources.registry import is_live, kind_of, spec_problem


def build_config(
    data: Mapping[str, Any],
    source: str,
    lines: dict[KeyPath, int],
    *,
    default_line: int | None,
    require_cameras: bool = True,
) -> Config:
    """Validate ``data`` into a Config, or raise ConfigError naming source:line: key.path."""
    checker = Checker(source, lines, default_line, context={"require_cameras": require_cameras})
    root = Section(checker, data, ())
    values = read_table(root, Config)
    root.finish()
    checker.raise_if_any()
    key_lines = MappingProxyType({format_path(p): n for p, n in lines.items()})
    return Config(source=source, key_lines=key_lines, **values)


def read_table(sec: Section, cls: type) -> dict[str, Any]:
    """The keys of ``cls`` read from ``sec`` (unwritten ones left out: the dataclass default
    applies), then the table's own rules. Call ``sec.finish()`` after it."""
    values: dict[str, Any] = {}
    for rule in TABLE_FIRST_RULES.get(cls, ()):
        rule(sec, values)
    own = _own_keys(cls)
    for f, key in keys(cls):
        if f.name in own and own[0] == f.name:
            _forbid_siblings(sec, cls)
        value = read_key(sec, f, key)
        if value is not MISSING:
            values[f.name] = value
    for rule in TABLE_RULES.get(cls, ()):
        rule(sec, values)
    return values


def read_key(sec: Section, f: dataclasses.Field, key: Key) -> Any:
    """One key's value, MISSING when it is not written (or wrong: the problem is recorded)."""
    name = f.name
    if key.read.startswith("custom:"):
        return READERS[key.read.partition(":")[2]](sec, name, key)
    if not sec.present(name):
        sec.raw(name)  # known, so never "unknown key"
        if key.required:
            sec.require(name, key.required)
        return MISSING
    if key.read == "table":
        sub = sec.table(name)
        if sub is None:
            return MISSING
        table = read_table(sub, key.table)
        sub.finish()
        return _build(key.table, table)
    if key.read == "number":
        value = sec.number(name, MISSING, key.rule, key.ok)
    elif key.read == "integer":
        value = sec.integer(name, MISSING, key.rule, key.ok)
    elif key.read == "boolean":
        value = sec.boolean(name, MISSING)
    elif key.read == "string":
        value = sec.string(name, MISSING, key.rule, key.ok, suggest=key.suggest)
    elif key.read == "path":
        value = sec.path(name, MISSING)
    elif key.read == "choice":
        value = sec.choice(name, MISSING, key.choices)
    elif key.read == "device":
        value = sec.device(name, MISSING)
    else:  # pragma: no cover - a declaration error, caught by the unit tests
        raise ValueError(f"{name}: unknown key kind {key.read!r}")
    return value


def _build(cls: type, values: dict[str, Any]) -> Any:
    """An instance, or MISSING when a required key is missing (the problem is recorded)."""
    try:
        return cls(**values)
    except TypeError:
        return MISSING


# -- tables of two kinds of model -------------------------------------------------------------
_ROLES = {DetectorConfig: ("detector", ClassifierConfig), ClassifierConfig: ("classifier", DetectorConfig)}


def _own_keys(cls: type) -> list[str]:
    """The keys only this kind of model has (after the shared ones, in declaration order)."""
    if cls not in _ROLES:
        return []
    shared = {f.name for f in dataclasses.fields(ModelConfig)}
    return [f.name for f, _k in keys(cls) if f.name not in shared]


def _forbid_siblings(sec: Section, cls: type) -> None:
    """A detector key under [classifier] (or the reverse) names the table it belongs in."""
    role, other = _ROLES[cls]
    other_role = _ROLES[other][0]
    for name in _own_keys(other):
        sec.forbid(name, f"only the {other_role} uses {name}; move it to [{other_role}] or remove it")


# -- custom readers: called whether or not the key is written (raw() gives MISSING) -------------
def _device_id(sec: Section, name: str, key: Key) -> Any:
    return sec.string(name, MISSING, key.rule, DEVICE_ID_RE.fullmatch, suggest=64)


def _num_requests(sec: Section, name: str, key: Key) -> Any:
    raw = sec.raw(name)
    if raw is MISSING:
        return MISSING
    if raw == "auto" or (isinstance(raw, int) and not isinstance(raw, bool) and 1 <= raw <= MAX_REQUESTS):
        return raw
    sec.bad_value(name, key.rule, raw)
    return MISSING


def _camera_source(sec: Section, name: str, key: Key) -> Any:
    raw = sec.raw(name)
    if raw is MISSING:
        sec.require(name, key.required)
        return MISSING
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw <= 255:
        return str(raw)  # a V4L2 index written as a number
    if not isinstance(raw, str) or not raw.strip() or raw != raw.strip():
        sec.bad_value(name, key.rule, raw)
        return MISSING
    problem = spec_problem(raw)
    if problem:
        sec.bad(name, problem)
        return MISSING
    return raw


def _cameras(sec: Section, name: str, key: Key) -> Any:
    raw = sec.raw(name)
    require = sec.checker.context.get("require_cameras", True)
    if raw is MISSING:
        if require:
            sec.require(name, "add a [[cameras]] table with a name and a source")
        return MISSING
    if isinstance(raw, Mapping):
        sec.bad(name, "must be an array of tables: write [[cameras]] (double brackets)")
        return ()
    if not isinstance(raw, (list, tuple)):
        sec.bad_value(name, "an array of [[cameras]] tables", raw)
        return ()
    if not raw and require:
        sec.bad(name, "is empty: add a [[cameras]] table with a name and a source")
    cameras: list[CameraConfig] = []
    first_index: dict[str, int] = {}
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping):
            sec.checker.report((name, index), f"must be a table, got {show(item)}")
            continue
        cam_sec = Section(sec.checker, item, (name, index))
        values = read_table(cam_sec, CameraConfig)
        cam_sec.finish()
        camera = _build(CameraConfig, values)
        if camera is MISSING:
            continue
        if camera.name in first_index:
            cam_sec.bad(
                "name",
                f'duplicate camera name "{camera.name}" (cameras[{first_index[camera.name]}] '
                "has it too); give every camera its own name",
            )
            continue
        first_index[camera.name] = index
        cameras.append(camera)
    return tuple(cameras)


def _ensemble(sec: Section, name: str, key: Key) -> Any:
    raw = sec.raw(name)
    if raw is MISSING:
        return MISSING
    if isinstance(raw, Mapping) or not isinstance(raw, (list, tuple)) or not 1 <= len(raw) <= MAX_MEMBERS:
        sec.bad_value(name, key.rule, raw)
        return MISSING
    members: list[EnsembleMember] = []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping):
            sec.bad(name, f"[{index}] must be a table such as {{ model = ... }}, got {show(item)}")
            continue
        member_sec = Section(sec.checker, item, sec.prefix + (name, index))
        values = read_table(member_sec, EnsembleMember)
        member_sec.finish()
        member = _build(EnsembleMember, values)
        if member is MISSING:
            continue
        if member in members:
            member_sec.bad(
                "model",
                f"ensemble[{members.index(member)}] is the same network run the same way; remove one "
                "(or give them different flip, crop or margin)",
            )
            continue
        members.append(member)
    return tuple(members) if len(members) == len(raw) else MISSING


def _calibration(sec: Section, name: str, key: Key) -> Any:
    raw = sec.raw(name)
    if raw is MISSING:
        return MISSING
    if not isinstance(raw, str) or not raw.strip() or "\0" in raw:
        sec.bad_value(name, key.rule, raw)
        return MISSING
    if raw.strip().lower() in CALIBRATIONS and raw not in CALIBRATIONS:
        sec.bad(name, f'write "{raw.strip().lower()}" (lower case)')
        return MISSING
    return raw


READERS: dict[str, Callable[[Section, str, Key], Any]] = {
    "device_id": _device_id,
    "num_requests": _num_requests,
    "camera_source": _camera_source,
    "cameras": _cameras,
    "ensemble": _ensemble,
    "calibration": _calibration,
}


# -- rules across keys of one table -----------------------------------------------------------
def _camera_rules(sec: Section, values: dict[str, Any]) -> None:
    for key, other in (("width", "height"), ("height", "width")):
        if sec.present(key) and not sec.present(other):
            sec.bad(key, f"set {other} too (they go together), or remove {key}")
    source = values.get("source")
    if values.get("realtime") is False and "name" in values and source is not None and is_live(source):
        sec.bad(
            "realtime",
            "realtime = false only applies to video files, image folders and "
            "samples (a live camera or stream sets its own pace); remove it",
        )
    if source is None:
        return
    kind = kind_of(source, look=False)
    for key, applies, where in (
        ("decode", kind == "stream", "network streams"),
        ("rtsp_transport", url_scheme(source) in ("rtsp", "rtsps"), "rtsp:// and rtsps:// streams"),
        ("fourcc", kind == "v4l2", "V4L2 cameras (/dev/videoN)"),
    ):
        if not applies and values.get(key) not in (None, _default(CameraConfig, key)):
            sec.bad(key, f"applies only to {where}, not to this {kind} source; remove it")


def _classifier_rules(sec: Section, values: dict[str, Any]) -> None:
    """``model`` (one network) or ``ensemble`` (the default), not both."""
    if sec.present("model"):
        if sec.present("ensemble"):
            sec.bad("ensemble", "write either model = ... (one network) or ensemble = [...], not both")
        if sec.present("combine"):
            sec.bad("combine", "combine applies to an ensemble; remove it (model = ... is one network)")


def _tracking_rules(sec: Section, values: dict[str, Any]) -> None:
    enter = values.get("enter_threshold", _default(TrackingConfig, "enter_threshold"))
    leave = values.get("exit_threshold", _default(TrackingConfig, "exit_threshold"))
    if leave >= enter:
        key = "exit_threshold" if sec.present("exit_threshold") else "enter_threshold"
        sec.bad(
            key,
            f"exit_threshold ({leave:g}) must be lower than enter_threshold ({enter:g}) so "
            "expressions do not flicker; lower exit_threshold or raise enter_threshold",
        )


def _forbid_passwords(sec: Section, data: Mapping[str, Any], path: KeyPath) -> None:
    """A key named password anywhere under [mqtt] is an error: secrets stay out of the file."""
    for key, value in data.items():
        if str(key).lower() in ("password", "passwd"):
            sec.checker.report(
                path + (key,),
                "never write the password in the config file: put it in a file only the "
                'daemon can read and set password_file = "/etc/expressiond/mqtt-password"',
            )
        elif isinstance(value, Mapping):
            _forbid_passwords(sec, value, path + (key,))


def _mqtt_first(sec: Section, values: dict[str, Any]) -> None:
    _forbid_passwords(sec, sec.data, sec.prefix)


def _mqtt_rules(sec: Section, values: dict[str, Any]) -> None:
    if values.get("tls") is not None and not sec.present("port"):
        values["port"] = 8883
    if values.get("password_file") and not sec.present("username"):
        sec.bad("password_file", "set username too: MQTT sends a password only with a user name")


def _tls_rules(sec: Section, values: dict[str, Any]) -> None:
    if values.get("key_file") and not sec.present("cert_file"):
        sec.bad("key_file", "set cert_file too (the client certificate for this key)")


def _http_rules(sec: Section, values: dict[str, Any]) -> None:
    address = split_listen(values.get("listen", _default(HttpConfig, "listen")))
    if address and not is_loopback(address[0]) and not values.get("allow_remote"):
        sec.bad(
            "listen",
            f"{address[0]} is not a loopback address and the endpoints have no authentication: "
            "set allow_remote = true to serve /metrics and /readyz to the network (behind a "
            'firewall), or listen on "127.0.0.1:9108"',
        )


def _default(cls: type, name: str) -> Any:
    return next(f.default for f in dataclasses.fields(cls) if f.name == name)


Rule = Callable[[Section, dict[str, Any]], None]
TABLE_FIRST_RULES: dict[type, tuple[Rule, ...]] = {MqttConfig: (_mqtt_first,)}
TABLE_RULES: dict[type, tuple[Rule, ...]] = {
    CameraConfig: (_camera_rules,),
    ClassifierConfig: (_classifier_rules,),
    TrackingConfig: (_tracking_rules,),
    MqttConfig: (_mqtt_rules,),
    TlsConfig: (_tls_rules,),
    HttpConfig: (_http_rules,),
}
