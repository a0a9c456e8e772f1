"""The configuration as frozen, typed dataclasses, and its JSON form.

Field names are the TOML key names (see config/expressiond.toml, the annotated default).
Instances are immutable: a SIGHUP reload builds a new ``Config`` and swaps it in whole, so no
part ever sees a half-applied change. Validation lives in config_schema; this module only
holds the shapes, their defaults and small derived values.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from expressiond import paths

SAMPLES_SOURCE = "samples"  # camera source meaning the clip <models_dir>/samples/demo.avi
# network stream schemes a camera source may use; keep in step with capture.STREAM_SCHEMES
URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
DETECTOR_ONLY_KEYS = ("threshold", "nms_iou", "max_faces", "min_face_px")
CLASSIFIER_ONLY_KEYS = ("flip", "crop", "margin")
CLASSIFIER_KEYS = ("model", "device", "precision") + CLASSIFIER_ONLY_KEYS
CROP_POLICIES = ("auto", "model", "box", "square")  # [classifier] crop; see ModelConfig
_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def hostname_device_id(hostname: str | None = None) -> str:
    """The default device_id: the host name, lowercased, [a-z0-9_-] only, at most 64 chars.

    Every other character becomes '-' (so "NUC.local" -> "nuc-local"), because device_id is
    an MQTT topic level. Falls back to "expressiond" if nothing is left.
    """
    name = socket.gethostname() if hostname is None else hostname
    cleaned = re.sub(r"[^a-z0-9_-]", "-", name.lower())[:64]
    return cleaned or "expressiond"


@dataclass(frozen=True)
class InferenceConfig:
    device: str = "CPU"
    precision: str = "FP32"  # one of paths.PRECISIONS: FP32 | FP16 | INT8 (builtin models)
    num_requests: int | str = "auto"  # int >= 1 or "auto" (OPTIMAL_NUMBER_OF_INFER_REQUESTS)
    performance_hint: str = "THROUGHPUT"  # LATENCY | THROUGHPUT | none
    cache_dir: str | None = None  # None = paths.default_cache_dir()


@dataclass(frozen=True)
class ModelConfig:
    """One network. ``device``/``precision`` None = take them from [inference].

    The classifier uses only model, device, precision and CLASSIFIER_ONLY_KEYS; the detector
    does not use those. Each keeps the other's defaults (the schema rejects them).
    flip: average the scores of the face and its mirror image (one batch-2 request).
    crop: how a face box becomes the classifier input: "box" as found, "square" (the short
    side grown to the long one), "model" (the metadata's input.crop), "auto" ("square" for the
    builtin face-api/expression, else "model"). margin: scale the box about its centre first
    (None: the metadata's input.crop.enlarge with "model", else 1.0).
    """

    model: str
    device: str | None = None
    precision: str | None = None
    threshold: float = 0.5
    nms_iou: float = 0.5
    max_faces: int = 20
    min_face_px: int = 20
    flip: bool = True
    crop: str = "auto"
    margin: float | None = None

    @property
    def is_builtin(self) -> bool:
        """A model name (built or bundled), not a path to an .xml file."""
        return self.model in paths.NAMED_MODELS


@dataclass(frozen=True)
class CameraConfig:
    name: str
    source: str
    fps: float = 10.0
    loop: bool = False
    width: int | None = None
    height: int | None = None
    reconnect_max_s: float = 30.0
    # Files, folders and samples: False = every frame, as fast as inference takes them
    # (offline analysis); True = played at fps like a camera, the newest frame wins.
    realtime: bool = True

    @property
    def source_kind(self) -> str:
        """One of samples, index (V4L2 index), url, device (/dev/...) or path (file/folder)."""
        if self.source == SAMPLES_SOURCE:
            return "samples"
        if self.source.isdigit():
            return "index"
        if _URL_RE.match(self.source):
            return "url"
        if self.source.startswith("/dev/"):
            return "device"
        return "path"

    def resolve_source(self, models_dir: Path) -> str:
        """The source to open: "samples" becomes <models_dir>/samples/demo.avi (a clip of the
        sample photos made by `models build`), the rest is unchanged."""
        if self.source_kind == "samples":
            return str(paths.sample_clip(models_dir))
        return self.source


@dataclass(frozen=True)
class TrackingConfig:
    iou_threshold: float = 0.3
    max_missed_frames: int = 10
    ema_alpha: float = 0.4
    enter_threshold: float = 0.6
    exit_threshold: float = 0.4
    min_duration_frames: int = 3


@dataclass(frozen=True)
class TlsConfig:
    ca_file: str | None = None  # None = the system's CA store
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False


@dataclass(frozen=True)
class MqttConfig:
    host: str = "127.0.0.1"
    port: int = 1883  # the schema makes it 8883 when [mqtt.tls] is present and port is unset
    prefix: str = "expressiond"
    client_id: str | None = None
    username: str | None = None
    password_file: str | None = None
    keepalive: int = 30
    qos: int = 1
    spool_path: str | None = None  # None = <state dir>/spool.db
    spool_max_events: int = 100000
    stats_interval: float = 30.0
    ha_discovery: bool = True
    ha_prefix: str = "homeassistant"
    reconnect_max_s: float = 60.0
    tls: TlsConfig | None = None

    def resolved_spool_path(self) -> Path:
        return Path(self.spool_path) if self.spool_path else paths.default_state_dir() / "spool.db"


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "INFO"
    journal: str = "auto"  # auto | yes | no


@dataclass(frozen=True)
class Config:
    source: str = "<string>"
    device_id: str = field(default_factory=hostname_device_id)
    models_dir: str | None = None
    inference: InferenceConfig = InferenceConfig()
    detector: ModelConfig = ModelConfig(paths.DEFAULT_DETECTOR)
    classifier: ModelConfig = ModelConfig(paths.BUILTIN_CLASSIFIER)
    cameras: tuple[CameraConfig, ...] = ()
    tracking: TrackingConfig = TrackingConfig()
    mqtt: MqttConfig | None = None
    logging: LoggingConfig = LoggingConfig()
    # key path ("cameras[1].fps") -> line in `source`; for messages only, not part of equality
    key_lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)

    def models_path(self) -> Path:
        """models_dir if set, else paths.default_models_dir()."""
        return Path(self.models_dir) if self.models_dir else paths.default_models_dir()

    def model_device(self, model: ModelConfig) -> str:
        return model.device or self.inference.device

    def model_precision(self, model: ModelConfig) -> str:
        return model.precision or self.inference.precision

    def camera(self, name: str) -> CameraConfig:
        for camera in self.cameras:
            if camera.name == name:
                return camera
        raise KeyError(name)

    def to_dict(self, *, redact_secrets: bool = True) -> dict[str, Any]:
        """JSON-able form with the TOML key names (``check-config --json``).

        ``redact_secrets`` replaces passwords inside camera URLs with "***". The MQTT password
        never is in the config, only password_file. ``Config.from_dict(cfg.to_dict(
        redact_secrets=False))`` gives back an equal Config.
        """
        mqtt = None
        if self.mqtt is not None:
            mqtt = asdict(self.mqtt)
        return {
            "source": self.source,
            "device_id": self.device_id,
            "models_dir": self.models_dir,
            "inference": asdict(self.inference),
            "detector": {
                key: value for key, value in asdict(self.detector).items() if key not in CLASSIFIER_ONLY_KEYS
            },
            "classifier": {key: getattr(self.classifier, key) for key in CLASSIFIER_KEYS},
            "cameras": [_camera_dict(camera, redact_secrets) for camera in self.cameras],
            "tracking": asdict(self.tracking),
            "mqtt": mqtt,
            "logging": asdict(self.logging),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str | None = None) -> Config:
        """Validate a dict shaped like ``to_dict()`` (or like the TOML) into a Config.

        Raises ConfigError as parse_config does, without line numbers.
        """
        from expressiond.config_schema import build_config  # schema imports this module

        body = dict(data)
        written_source = body.pop("source", None)
        name = source or (written_source if isinstance(written_source, str) else "<dict>")
        return build_config(body, name, {}, default_line=None)


def _camera_dict(camera: CameraConfig, redact_secrets: bool) -> dict[str, Any]:
    out = asdict(camera)
    if redact_secrets and camera.source_kind == "url":
        out["source"] = redact_url(camera.source)
    return out


def redact_url(url: str) -> str:
    """rtsp://user:secret@host/x -> rtsp://user:***@host/x (for logs and JSON output)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))
    except ValueError:
        return url
