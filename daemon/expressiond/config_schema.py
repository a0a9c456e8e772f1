"""The schema: parsed TOML (a dict) -> the frozen dataclasses of config_types, or ConfigError.

One function per table. Every problem is collected with its key path and line; the error
names the first one in file order and counts the rest (all are on ``error.problems``). The
rules here are the contract of config/expressiond.toml: keep the two in step.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from expressiond import paths
from expressiond.config_lines import KeyPath, format_path
from expressiond.config_types import (
    CLASSIFIER_ONLY_KEYS,
    CROP_POLICIES,
    DETECTOR_ONLY_KEYS,
    URL_SCHEMES,
    CameraConfig,
    Config,
    InferenceConfig,
    LoggingConfig,
    ModelConfig,
    MqttConfig,
    TlsConfig,
    TrackingConfig,
    hostname_device_id,
)
from expressiond.config_values import MISSING, Checker, Section, show

DEVICE_ID_RE = re.compile(r"^[a-z0-9_-]{1,64}$")
CAMERA_NAME_RE = re.compile(r"^[a-z0-9_-]{1,32}$")
TOPIC_LEVEL_RE = re.compile(r"^[a-z0-9_-]{1,64}$")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
PERFORMANCE_HINTS = ("LATENCY", "THROUGHPUT", "none")
MAX_REQUESTS = 64
TOPIC_RULE = (
    "one or more MQTT topic levels of 1 to 64 characters of a-z, 0-9, _ and - joined by '/' "
    "(no +, #, spaces, upper case or empty levels)"
)
SOURCE_RULE = (
    "a V4L2 device (/dev/video0), a device index (0), a stream URL (rtsp://, http://, ...), "
    'a video file, an image folder or "samples"'
)


def build_config(
    data: Mapping[str, Any],
    source: str,
    lines: dict[KeyPath, int],
    *,
    default_line: int | None,
    require_cameras: bool = True,
) -> Config:
    """Validate ``data`` into a Config, or raise ConfigError naming source:line: key.path."""
    checker = Checker(source, lines, default_line)
    root = Section(checker, data, ())
    device_id = root.string(
        "device_id",
        None,
        "1 to 64 characters of a-z, 0-9, _ and - (it is an MQTT topic level; "
        "leave it out to use the host name)",
        ok=DEVICE_ID_RE.fullmatch,
        suggest=64,
    )
    models_dir = root.path("models_dir")
    inference = _inference(root.table("inference"))
    detector = _model(root.table("detector"), paths.DEFAULT_DETECTOR, "detector")
    classifier = _model(root.table("classifier"), paths.BUILTIN_CLASSIFIER, "classifier")
    cameras = _cameras(root, require_cameras)
    tracking = _tracking(root.table("tracking"))
    mqtt = _mqtt(root.table("mqtt"))
    logging_config = _logging(root.table("logging"))
    root.finish()
    checker.raise_if_any()
    return Config(
        source=source,
        device_id=device_id or hostname_device_id(),
        models_dir=models_dir,
        inference=inference,
        detector=detector,
        classifier=classifier,
        cameras=cameras,
        tracking=tracking,
        mqtt=mqtt,
        logging=logging_config,
        key_lines=MappingProxyType({format_path(p): n for p, n in lines.items()}),
    )


def _inference(sec: Section | None) -> InferenceConfig:
    if sec is None:
        return InferenceConfig()
    device = sec.device("device") or "CPU"
    precision = sec.choice("precision", "FP32", paths.PRECISIONS)
    num_requests: int | str = "auto"
    raw = sec.raw("num_requests")
    if raw is not MISSING:
        if raw == "auto" or (isinstance(raw, int) and not isinstance(raw, bool) and 1 <= raw <= MAX_REQUESTS):
            num_requests = raw
        else:
            sec.bad_value("num_requests", f'an integer from 1 to {MAX_REQUESTS} or "auto"', raw)
    hint = sec.choice("performance_hint", "THROUGHPUT", PERFORMANCE_HINTS)
    cache_dir = sec.path("cache_dir")
    sec.finish()
    return InferenceConfig(device, precision, num_requests, hint, cache_dir)


def _model(sec: Section | None, builtin: str, role: str) -> ModelConfig:
    if sec is None:
        return ModelConfig(builtin)
    names = paths.DETECTOR_MODELS if role == "detector" else (builtin,)
    model = sec.string(
        "model",
        builtin,
        ", ".join(f'"{n}"' for n in names)
        + " or a path to an OpenVINO IR .xml file (with .bin and .json beside it)",
        ok=lambda v: v in names or (not v.startswith(("face-api/", "omz/")) and v.lower().endswith(".xml")),
    )
    device = sec.device("device")
    precision = sec.choice("precision", None, paths.PRECISIONS)
    if role == "classifier":
        for key in DETECTOR_ONLY_KEYS:
            sec.forbid(key, f"only the detector uses {key}; move it to [detector] or remove it")
        flip = sec.boolean("flip", True)
        crop = sec.choice("crop", "auto", CROP_POLICIES)
        margin = sec.number("margin", None, "a number from 0.5 to 4", lambda v: 0.5 <= v <= 4)
        sec.finish()
        return ModelConfig(model, device, precision, flip=flip, crop=crop, margin=margin)
    for key in CLASSIFIER_ONLY_KEYS:
        sec.forbid(key, f"only the classifier uses {key}; move it to [classifier] or remove it")
    threshold = sec.number("threshold", 0.5, "a number > 0 and < 1", lambda v: 0 < v < 1)
    nms_iou = sec.number("nms_iou", 0.5, "a number > 0 and <= 1", lambda v: 0 < v <= 1)
    max_faces = sec.integer("max_faces", 20, "an integer from 1 to 1000", lambda v: 1 <= v <= 1000)
    min_face_px = sec.integer(
        "min_face_px", 20, "an integer from 0 to 4096 (pixels)", lambda v: 0 <= v <= 4096
    )
    sec.finish()
    return ModelConfig(model, device, precision, threshold, nms_iou, max_faces, min_face_px)


def _cameras(root: Section, require: bool) -> tuple[CameraConfig, ...]:
    raw = root.raw("cameras")
    if raw is MISSING:
        if require:
            root.require("cameras", "add a [[cameras]] table with a name and a source")
        return ()
    if isinstance(raw, Mapping):
        root.bad("cameras", "must be an array of tables: write [[cameras]] (double brackets)")
        return ()
    if not isinstance(raw, (list, tuple)):
        root.bad_value("cameras", "an array of [[cameras]] tables", raw)
        return ()
    if not raw and require:
        root.bad("cameras", "is empty: add a [[cameras]] table with a name and a source")
    cameras: list[CameraConfig] = []
    first_index: dict[str, int] = {}
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping):
            root.checker.report(("cameras", index), f"must be a table, got {show(item)}")
            continue
        sec = Section(root.checker, item, ("cameras", index))
        camera = _camera(sec)
        if camera is None:
            continue
        if camera.name in first_index:
            sec.bad(
                "name",
                f'duplicate camera name "{camera.name}" (cameras[{first_index[camera.name]}] '
                "has it too); give every camera its own name",
            )
            continue
        first_index[camera.name] = index
        cameras.append(camera)
    return tuple(cameras)


def _camera(sec: Section) -> CameraConfig | None:
    name = sec.string(
        "name",
        None,
        "1 to 32 characters of a-z, 0-9, _ and - (it is an MQTT topic level)",
        ok=CAMERA_NAME_RE.fullmatch,
        suggest=32,
    )
    if not sec.present("name"):
        sec.require("name", 'add name = "door" (a-z, 0-9, _ and -; it is an MQTT topic level)')
    source = _camera_source(sec)
    fps = sec.number("fps", 10.0, "a number > 0 and <= 120", lambda v: 0 < v <= 120)
    loop = sec.boolean("loop", False)
    size_rule = "an integer from 16 to 8192 (pixels)"
    width = sec.integer("width", None, size_rule, lambda v: 16 <= v <= 8192)
    height = sec.integer("height", None, size_rule, lambda v: 16 <= v <= 8192)
    for key, other in (("width", "height"), ("height", "width")):
        if sec.present(key) and not sec.present(other):
            sec.bad(key, f"set {other} too (they go together), or remove {key}")
    reconnect = sec.number(
        "reconnect_max_s", 30.0, "a number >= 1 and <= 3600 (seconds)", lambda v: 1 <= v <= 3600
    )
    realtime = sec.boolean("realtime", True)
    sec.finish()
    if name is None or source is None:
        return None
    camera = CameraConfig(name, source, fps, loop, width, height, reconnect, realtime)
    if not realtime and camera.source_kind in ("index", "url", "device"):
        sec.bad(
            "realtime",
            "realtime = false only applies to video files, image folders and "
            "samples (a live camera or stream sets its own pace); remove it",
        )
    return camera


def _camera_source(sec: Section) -> str | None:
    raw = sec.raw("source")
    if raw is MISSING:
        sec.require("source", f"add source = ..., {SOURCE_RULE}")
        return None
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw <= 255:
        return str(raw)  # a V4L2 index written as a number
    if not isinstance(raw, str) or not raw.strip() or raw != raw.strip():
        sec.bad_value("source", SOURCE_RULE, raw)
        return None
    if "://" in raw:
        scheme = raw.split("://", 1)[0].lower()
        try:
            host = urlsplit(raw).hostname
        except ValueError:
            host = None
        if scheme not in URL_SCHEMES:
            schemes = ", ".join(f"{s}://" for s in URL_SCHEMES)
            sec.bad("source", f'URL scheme "{scheme}://" is not supported; use {schemes}')
            return None
        if not host:
            sec.bad("source", f"URL {show(raw)} has no host; write {scheme}://HOST[:PORT]/PATH")
            return None
    return raw


def _tracking(sec: Section | None) -> TrackingConfig:
    if sec is None:
        return TrackingConfig()
    iou = sec.number("iou_threshold", 0.3, "a number > 0 and < 1", lambda v: 0 < v < 1)
    missed = sec.integer("max_missed_frames", 10, "an integer from 0 to 10000", lambda v: 0 <= v <= 10000)
    alpha = sec.number("ema_alpha", 0.4, "a number > 0 and <= 1", lambda v: 0 < v <= 1)
    enter = sec.number("enter_threshold", 0.6, "a number > 0 and <= 1", lambda v: 0 < v <= 1)
    leave = sec.number("exit_threshold", 0.4, "a number >= 0 and < 1", lambda v: 0 <= v < 1)
    min_frames = sec.integer(
        "min_duration_frames", 3, "an integer from 1 to 10000", lambda v: 1 <= v <= 10000
    )
    if leave >= enter:
        key = "exit_threshold" if sec.present("exit_threshold") else "enter_threshold"
        sec.bad(
            key,
            f"exit_threshold ({leave:g}) must be lower than enter_threshold ({enter:g}) so "
            "expressions do not flicker; lower exit_threshold or raise enter_threshold",
        )
    sec.finish()
    return TrackingConfig(iou, missed, alpha, enter, leave, min_frames)


def _is_topic(value: str) -> bool:
    return all(TOPIC_LEVEL_RE.fullmatch(level) for level in value.split("/"))


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


def _mqtt(sec: Section | None) -> MqttConfig | None:
    if sec is None:
        return None
    _forbid_passwords(sec, sec.data, sec.prefix)
    host = sec.string(
        "host",
        "127.0.0.1",
        "a host name or IP address (no scheme, port or spaces)",
        ok=lambda v: not any(c in v for c in " \t/@") and v.count(":") != 1,
    )
    tls = _tls(sec.table("tls"))
    port = sec.integer("port", 8883 if tls else 1883, "an integer from 1 to 65535", lambda v: 1 <= v <= 65535)
    prefix = sec.string("prefix", "expressiond", TOPIC_RULE, ok=_is_topic)
    client_id = sec.string(
        "client_id",
        None,
        "1 to 128 characters without spaces, + or #",
        ok=lambda v: len(v) <= 128 and not any(c.isspace() or c in "+#" for c in v),
    )
    username = sec.string("username", None)
    password_file = sec.path("password_file")
    if password_file and not sec.present("username"):
        sec.bad("password_file", "set username too: MQTT sends a password only with a user name")
    keepalive = sec.integer("keepalive", 30, "an integer from 5 to 3600 (seconds)", lambda v: 5 <= v <= 3600)
    qos = sec.integer("qos", 1, "0, 1 or 2", lambda v: v in (0, 1, 2))
    spool_path = sec.path("spool_path")
    spool_max = sec.integer(
        "spool_max_events", 100000, "an integer from 1 to 10000000", lambda v: 1 <= v <= 10**7
    )
    stats_interval = sec.number(
        "stats_interval", 30.0, "a number >= 1 and <= 86400 (seconds)", lambda v: 1 <= v <= 86400
    )
    ha_discovery = sec.boolean("ha_discovery", True)
    ha_prefix = sec.string("ha_prefix", "homeassistant", TOPIC_RULE, ok=_is_topic)
    reconnect = sec.number(
        "reconnect_max_s", 60.0, "a number >= 1 and <= 3600 (seconds)", lambda v: 1 <= v <= 3600
    )
    sec.finish()
    return MqttConfig(
        host=host,
        port=port,
        prefix=prefix,
        client_id=client_id,
        username=username,
        password_file=password_file,
        keepalive=keepalive,
        qos=qos,
        spool_path=spool_path,
        spool_max_events=spool_max,
        stats_interval=stats_interval,
        ha_discovery=ha_discovery,
        ha_prefix=ha_prefix,
        reconnect_max_s=reconnect,
        tls=tls,
    )


def _tls(sec: Section | None) -> TlsConfig | None:
    if sec is None:
        return None
    ca_file = sec.path("ca_file")
    cert_file = sec.path("cert_file")
    key_file = sec.path("key_file")
    if key_file and not sec.present("cert_file"):
        sec.bad("key_file", "set cert_file too (the client certificate for this key)")
    insecure = sec.boolean("insecure", False)
    sec.finish()
    return TlsConfig(ca_file, cert_file, key_file, insecure)


def _logging(sec: Section | None) -> LoggingConfig:
    if sec is None:
        return LoggingConfig()
    level = sec.choice("level", "INFO", LOG_LEVELS)
    journal = sec.choice("journal", "auto", ("auto", "yes", "no"))
    sec.finish()
    return LoggingConfig(level, journal)
