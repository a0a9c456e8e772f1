"""The configuration as frozen, typed, keyword-only dataclasses: every key declared once, here.

Field names are the TOML key names (config/expressiond.toml is the annotated default). Each
field carries its type, default, rule and reload policy (keys.py); the schema reads the TOML
from these declarations, so a new key is one line here (plus its line in the shipped config).
Instances are immutable: a SIGHUP reload builds a new ``Config`` and swaps it in whole, so no
part ever sees a half-applied change.

Thread: none of its own; instances are immutable and shared between threads.
"""

from __future__ import annotations

import dataclasses
import json
import re
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from expressiond import paths
from expressiond.config.http import HttpConfig
from expressiond.config.keys import (
    RESTART,
    boolean,
    choice,
    custom,
    device,
    integer,
    number,
    path,
    table,
    text,
)
from expressiond.sources.decode.common import DECODE_MODES, RTSP_TRANSPORTS
from expressiond.sources.registry import kind_of, redact

SAMPLES_SOURCE = "samples"  # camera source meaning the clip <models_dir>/samples/demo.avi
CROP_POLICIES = ("auto", "model", "box", "square")  # [classifier] crop; see ClassifierConfig
PERFORMANCE_HINTS = ("LATENCY", "THROUGHPUT", "none")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
JOURNAL_MODES = ("auto", "yes", "no")
SNAPSHOT_MODES = ("off", "face", "frame")  # [[cameras]] snapshot; see CameraConfig
MAX_REQUESTS = 64
DEVICE_ID_RE = re.compile(r"^[a-z0-9_-]{1,64}$")
CAMERA_NAME_RE = re.compile(r"^[a-z0-9_-]{1,32}$")
FOURCC_RE = re.compile(r"^[A-Z0-9]{4}$")
TOPIC_LEVEL_RE = re.compile(r"^[a-z0-9_-]{1,64}$")
TOPIC_RULE = (
    "one or more MQTT topic levels of 1 to 64 characters of a-z, 0-9, _ and - joined by '/' "
    "(no +, #, spaces, upper case or empty levels)"
)
SOURCE_RULE = (
    "a V4L2 device (/dev/video0), a device index (0), a stream URL (rtsp://, http://, ...), "
    'a video file, an image folder or "samples"'
)


def hostname_device_id(hostname: str | None = None) -> str:
    """The default device_id: the host name, lowercased, [a-z0-9_-] only, at most 64 chars.

    Every other character becomes '-' (so "NUC.local" -> "nuc-local"), because device_id is
    an MQTT topic level. Falls back to "expressiond" if nothing is left.
    """
    name = socket.gethostname() if hostname is None else hostname
    cleaned = re.sub(r"[^a-z0-9_-]", "-", name.lower())[:64]
    return cleaned or "expressiond"


def is_topic(value: str) -> bool:
    return all(TOPIC_LEVEL_RE.fullmatch(level) for level in value.split("/"))


def _model_key(names: tuple[str, ...], default: Any, required: str = "") -> Any:
    return text(
        default,
        ", ".join(f'"{n}"' for n in names) + " or a path to an OpenVINO IR .xml file (with .bin and "
        ".json beside it)",
        ok=lambda v: (
            v in names or (not v.startswith(("face-api/", "omz/", "human/")) and v.lower().endswith(".xml"))
        ),
        required=required,
    )


@dataclass(frozen=True, kw_only=True)
class InferenceConfig:
    device: str = device("CPU")
    precision: str = choice("FP16", paths.PRECISIONS)  # FP16 | FP32 | INT8 (builtin models)
    num_requests: int | str = custom(
        "auto", f'an integer from 1 to {MAX_REQUESTS} or "auto"', reader="num_requests"
    )  # "auto" = OPTIMAL_NUMBER_OF_INFER_REQUESTS
    performance_hint: str = choice("THROUGHPUT", PERFORMANCE_HINTS)
    cache_dir: str | None = path()  # None = paths.default_cache_dir()


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """What both networks have. ``device``/``precision`` None = take them from [inference]."""

    model: str
    device: str | None = device()
    precision: str | None = choice(None, paths.PRECISIONS)

    @property
    def is_builtin(self) -> bool:
        """A model name (built or bundled), not a path to an .xml file."""
        return self.model in paths.NAMED_MODELS


@dataclass(frozen=True, kw_only=True)
class DetectorConfig(ModelConfig):
    model: str = _model_key(paths.DETECTOR_MODELS, paths.DEFAULT_DETECTOR)
    threshold: float = number(0.5, "a number > 0 and < 1", lambda v: 0 < v < 1)
    nms_iou: float = number(0.5, "a number > 0 and <= 1", lambda v: 0 < v <= 1)
    max_faces: int = integer(20, "an integer from 1 to 1000", lambda v: 1 <= v <= 1000)
    min_face_px: int = integer(20, "an integer from 0 to 4096 (pixels)", lambda v: 0 <= v <= 4096)


@dataclass(frozen=True, kw_only=True)
class EnsembleMember:
    """One network of [classifier] ensemble = [...]: weight = its share in the per-label mean;
    flip, crop, margin as in ClassifierConfig (None: the [classifier] table's)."""

    model: str = _model_key(
        paths.CLASSIFIER_MODELS,
        dataclasses.MISSING,
        required='add model = "face-api/expression" (or another classifier) to the member',
    )
    weight: float = number(1.0, "a number > 0 and <= 100", lambda v: 0 < v <= 100)
    flip: bool | None = boolean(None)
    crop: str | None = choice(None, CROP_POLICIES)
    margin: float | None = number(None, "a number from 0.5 to 4", lambda v: 0.5 <= v <= 4)


# Issue 17 (benchmarks/accuracy.py): face-api's net with flip + human's without, mean, then the
# shipped log offsets: CV top-1 0.661 vs 0.643 (face-api alone), every class >= 0.40, 1.5x cost.
DEFAULT_ENSEMBLE = (
    EnsembleMember(model=paths.BUILTIN_CLASSIFIER),
    EnsembleMember(model=paths.HUMAN_EMOTION, flip=False),
)
MAX_MEMBERS = 8
COMBINES = ("mean",)
CALIBRATIONS = ("auto", "builtin", "none")  # or a path to a calibration JSON
CALIBRATION_RULE = (
    '"auto" (the shipped calibration when it was fitted for these members, else none), '
    '"builtin" (the shipped one; an error for other members), "none", or a path to a '
    "calibration JSON made by benchmarks/accuracy.py --fit-calibration"
)


@dataclass(frozen=True, kw_only=True)
class ClassifierConfig(ModelConfig):
    """An ensemble of networks (``ensemble``, the default; events carry the 7 expression labels,
    inference/classifiers.py combines) or one network (``model``, its own labels). flip: average
    each face with its mirror image; crop: "box", "square", "model" (the metadata's input.crop)
    or "auto" ("square" for face-api/expression, else "model"); margin: scale the box first. With
    an ensemble they are what a member that does not set its own gets."""

    model: str | None = _model_key(paths.CLASSIFIER_MODELS, None)
    flip: bool = boolean(True)
    crop: str = choice("auto", CROP_POLICIES)
    margin: float | None = number(None, "a number from 0.5 to 4", lambda v: 0.5 <= v <= 4)
    ensemble: tuple[EnsembleMember, ...] = custom(
        DEFAULT_ENSEMBLE,
        f'an array of 1 to {MAX_MEMBERS} tables such as {{ model = "human/emotion", weight = 1.0 }}',
        reader="ensemble",
    )
    combine: str = choice("mean", COMBINES)
    calibration: str = custom("auto", CALIBRATION_RULE, reader="calibration")

    @property
    def is_ensemble(self) -> bool:
        return self.model is None

    @property
    def is_builtin(self) -> bool:
        """Every network is a model name (built or bundled), none a path to an .xml file."""
        return all(m.model in paths.NAMED_MODELS for m in self.members)

    @property
    def members(self) -> tuple[EnsembleMember, ...]:
        """The networks to run, flip/crop/margin resolved: the ensemble, or ``model`` alone."""
        if self.model is not None:
            return (EnsembleMember(model=self.model, flip=self.flip, crop=self.crop, margin=self.margin),)
        return tuple(
            EnsembleMember(
                model=m.model,
                weight=m.weight,
                flip=self.flip if m.flip is None else m.flip,
                crop=m.crop or self.crop,
                margin=self.margin if m.margin is None else m.margin,
            )
            for m in self.ensemble
        )


@dataclass(frozen=True, kw_only=True)
class CameraConfig:
    name: str = text(
        rule="1 to 32 characters of a-z, 0-9, _ and - (it is an MQTT topic level)",
        ok=CAMERA_NAME_RE.fullmatch,
        suggest=32,
        required='add name = "door" (a-z, 0-9, _ and -; it is an MQTT topic level)',
    )
    source: str = custom(
        rule=SOURCE_RULE, reader="camera_source", required=f"add source = ..., {SOURCE_RULE}"
    )
    fps: float = number(10.0, "a number > 0 and <= 120", lambda v: 0 < v <= 120)
    loop: bool = boolean(False)  # video files: start again at the end
    width: int | None = integer(None, "an integer from 16 to 8192 (pixels)", lambda v: 16 <= v <= 8192)
    height: int | None = integer(None, "an integer from 16 to 8192 (pixels)", lambda v: 16 <= v <= 8192)
    reconnect_max_s: float = number(30.0, "a number >= 1 and <= 3600 (seconds)", lambda v: 1 <= v <= 3600)
    # Files, folders and samples: False = every frame, as fast as inference takes them
    # (offline analysis); True = played at fps like a camera, the newest frame wins.
    realtime: bool = boolean(True)
    # Network streams: "auto" = VAAPI on the iGPU when there is one (ffmpeg), else software
    decode: str = choice("auto", DECODE_MODES)
    rtsp_transport: str = choice("tcp", RTSP_TRANSPORTS)  # rtsp:// and rtsps:// streams
    # V4L2: the pixel format asked of the camera (MJPG, YUYV, H264...); width/height go with it
    fourcc: str | None = text(None, "4 characters A-Z or 0-9, such as MJPG or YUYV", FOURCC_RE.fullmatch)
    # Live sources: a read that gives nothing for this many frame intervals (1/fps) while
    # connected is a stalled camera: reported and reconnected
    stall_intervals: int = integer(50, "an integer from 3 to 100000", lambda v: 3 <= v <= 100000)
    # Pictures over MQTT (retained <prefix>/<device_id>/<name>/snapshot, never spooled) on a
    # start/change: "off" (no pixels leave the box), "face" (the face crop), "frame" (the frame
    # with the faces boxed); at most one per snapshot_interval s, longest side snapshot_max_side.
    snapshot: str = choice("off", SNAPSHOT_MODES)
    snapshot_interval: float = number(5.0, "a number from 0.5 to 3600 (seconds)", lambda v: 0.5 <= v <= 3600)
    snapshot_max_side: int = integer(480, "an integer from 64 to 1920 (pixels)", lambda v: 64 <= v <= 1920)
    snapshot_quality: int = integer(80, "an integer from 30 to 95 (JPEG quality)", lambda v: 30 <= v <= 95)

    @property
    def source_kind(self) -> str:
        """ "samples", or the kind of sources.registry: v4l2, stream, folder or file."""
        if self.source == SAMPLES_SOURCE:
            return "samples"
        return kind_of(self.source)

    def resolve_source(self, models_dir: Path) -> str:
        """The source to open: "samples" becomes <models_dir>/samples/demo.avi (a clip of the
        sample photos made by `models build`), the rest is unchanged."""
        if self.source == SAMPLES_SOURCE:
            return str(paths.sample_clip(models_dir))
        return self.source


@dataclass(frozen=True, kw_only=True)
class TrackingConfig:
    iou_threshold: float = number(0.3, "a number > 0 and < 1", lambda v: 0 < v < 1)
    max_missed_frames: int = integer(10, "an integer from 0 to 10000", lambda v: 0 <= v <= 10000)
    ema_alpha: float = number(0.4, "a number > 0 and <= 1", lambda v: 0 < v <= 1)
    # On the default ensemble's calibrated scores (face-api alone had 0.6/0.4): its top score
    # passes 0.45 on 84 % of the dev photos, right on 63 % (face-api at 0.6: 79 %, 54 %).
    enter_threshold: float = number(0.45, "a number > 0 and <= 1", lambda v: 0 < v <= 1)
    exit_threshold: float = number(0.3, "a number >= 0 and < 1", lambda v: 0 <= v < 1)
    min_duration_frames: int = integer(3, "an integer from 1 to 10000", lambda v: 1 <= v <= 10000)


@dataclass(frozen=True, kw_only=True)
class TlsConfig:
    ca_file: str | None = path()  # None = the system's CA store
    cert_file: str | None = path()
    key_file: str | None = path()
    insecure: bool = boolean(False)


@dataclass(frozen=True, kw_only=True)
class MqttConfig:
    host: str = text(
        "127.0.0.1",
        "a host name or IP address (no scheme, port or spaces)",
        ok=lambda v: not any(c in v for c in " \t/@") and v.count(":") != 1,
    )
    # 8883 instead when [mqtt.tls] is present and port is not written (schema.py)
    port: int = integer(1883, "an integer from 1 to 65535", lambda v: 1 <= v <= 65535)
    prefix: str = text("expressiond", TOPIC_RULE, ok=is_topic)
    client_id: str | None = text(
        None,
        "1 to 128 characters without spaces, + or #",
        ok=lambda v: len(v) <= 128 and not any(c.isspace() or c in "+#" for c in v),
    )
    username: str | None = text(None)
    password_file: str | None = path()  # or a systemd credential; never the password itself
    keepalive: int = integer(30, "an integer from 5 to 3600 (seconds)", lambda v: 5 <= v <= 3600)
    # 0 is refused: an event would leave the spool when written to the socket, not when the
    # broker has it, so any disconnect could lose it (README, "MQTT")
    qos: int = integer(1, "1 or 2 (QoS 0 would let events be lost on a disconnect)", lambda v: v in (1, 2))
    spool_path: str | None = path()  # None = <state dir>/spool.db
    spool_max_events: int = integer(100000, "an integer from 1 to 10000000", lambda v: 1 <= v <= 10**7)
    stats_interval: float = number(30.0, "a number >= 1 and <= 86400 (seconds)", lambda v: 1 <= v <= 86400)
    ha_discovery: bool = boolean(True)
    ha_prefix: str = text("homeassistant", TOPIC_RULE, ok=is_topic)
    reconnect_max_s: float = number(60.0, "a number >= 1 and <= 3600 (seconds)", lambda v: 1 <= v <= 3600)
    tls: TlsConfig | None = table(TlsConfig, optional=True)

    def resolved_spool_path(self) -> Path:
        return Path(self.spool_path) if self.spool_path else paths.default_state_dir() / "spool.db"


@dataclass(frozen=True, kw_only=True)
class LoggingConfig:
    level: str = choice("INFO", LOG_LEVELS)
    journal: str = choice("auto", JOURNAL_MODES)


@dataclass(frozen=True, kw_only=True)
class Config:
    """The whole file. device_id, [mqtt], [http] and [logging] shape the MQTT connection, the
    endpoint's socket and the log set up at start: a reload keeps their old values (RESTART)
    instead of half-applying them."""

    source: str = "<string>"
    device_id: str = custom(
        factory=hostname_device_id,
        rule="1 to 64 characters of a-z, 0-9, _ and - (it is an MQTT topic level; leave it out to "
        "use the host name)",
        reader="device_id",
        reload=RESTART,
    )
    models_dir: str | None = path()
    inference: InferenceConfig = table(InferenceConfig)
    detector: DetectorConfig = table(DetectorConfig)
    classifier: ClassifierConfig = table(ClassifierConfig)
    cameras: tuple[CameraConfig, ...] = custom((), reader="cameras")
    tracking: TrackingConfig = table(TrackingConfig)
    mqtt: MqttConfig | None = table(MqttConfig, optional=True, reload=RESTART)
    http: HttpConfig | None = table(HttpConfig, optional=True, reload=RESTART)
    logging: LoggingConfig = table(LoggingConfig, reload=RESTART)
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
        never is in the config, only password_file. ``config.from_dict(cfg.to_dict(
        redact_secrets=False))`` gives back an equal Config.
        """
        out: dict[str, Any] = {"source": self.source}
        for f in fields(self):
            if f.name in ("source", "key_lines"):
                continue
            value = getattr(self, f.name)
            if f.name == "cameras":
                value = [_camera_dict(camera, redact_secrets) for camera in value]
            elif value is not None and not isinstance(value, str):
                value = json.loads(json.dumps(asdict(value)))  # tuples (ensemble) as lists
            out[f.name] = value
        return out


def _camera_dict(camera: CameraConfig, redact_secrets: bool) -> dict[str, Any]:
    out = asdict(camera)
    if redact_secrets:
        out["source"] = redact(camera.source)
    return out
