"""The daemon's configuration: one TOML file -> a frozen, typed, validated ``Config``.

- model.py   the dataclasses; every key declared once there (type, default, rule, reload policy)
- keys.py    how a key is declared, and the reload policy derived from the declarations
- schema.py  reads a parsed TOML document from the declarations, plus the rules across keys
- values.py  typed getters for one table and the problem collector
- lines.py   where each key is written (for file:line in messages)
- loader.py  load_config / parse_config / from_dict, the on-disk checks, load_checked

Thread: none of its own; configs are immutable and shared between threads.
"""

from expressiond.config.keys import keep_restart_values, restart_changes
from expressiond.config.loader import (
    DEFAULT_CONFIG_PATH,
    check_camera_sources,
    check_files,
    check_model_files,
    from_dict,
    load_checked,
    load_config,
    parse_config,
    precision_notes,
)
from expressiond.config.model import (
    SAMPLES_SOURCE,
    CameraConfig,
    ClassifierConfig,
    Config,
    DetectorConfig,
    HttpConfig,
    InferenceConfig,
    LoggingConfig,
    ModelConfig,
    MqttConfig,
    TlsConfig,
    TrackingConfig,
    hostname_device_id,
)

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "SAMPLES_SOURCE",
    "CameraConfig",
    "ClassifierConfig",
    "Config",
    "DetectorConfig",
    "HttpConfig",
    "InferenceConfig",
    "LoggingConfig",
    "ModelConfig",
    "MqttConfig",
    "TlsConfig",
    "TrackingConfig",
    "check_camera_sources",
    "check_files",
    "check_model_files",
    "from_dict",
    "hostname_device_id",
    "keep_restart_values",
    "load_checked",
    "load_config",
    "parse_config",
    "precision_notes",
    "restart_changes",
]
