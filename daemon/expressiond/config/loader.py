"""Loading the configuration: one TOML file -> a frozen, typed, validated ``Config``.

``load_config``/``parse_config`` only read the TOML text; they never look at model files,
camera devices or the network, so ``check-config`` and a SIGHUP reload are safe anywhere.
``check_model_files`` (and ``check_camera_sources``) are the separate step that looks at
the disk. Every operator mistake is a ConfigError (exit 78) with one line of the form
``/etc/expressiond/expressiond.toml:12: cameras[1].fps: must be ..., got -3`` (0-based
array indices); a model file that is missing is a ModelError of the same form.

``load_checked`` is the one place that does both steps, for the daemon's start, a SIGHUP reload
and ``check-config``. The keys live in model.py, the reading in schema.py, line finding in
lines.py.

Thread: none of its own; called from the main thread (start, reload, check-config).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from expressiond import paths
from expressiond.config.lines import KeyPath, format_path, key_lines
from expressiond.config.model import SAMPLES_SOURCE, Config, ModelConfig
from expressiond.config.schema import build_config
from expressiond.errors import ConfigError, ExpressiondError, ModelError, combine
from expressiond.sources.registry import is_live

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


DEFAULT_CONFIG_PATH = "/etc/expressiond/expressiond.toml"
MODEL_FILES = ("model.xml", "model.bin", "model.json")
_TOML_POSITION_RE = re.compile(r"\s*\(at line (\d+), column (\d+)\)$|\s*\(at end of document\)$")


def load_config(path: str | os.PathLike[str], *, require_cameras: bool = True) -> Config:
    """Read and validate the TOML file at ``path``. Raises ConfigError.

    ``require_cameras=False`` lets commands that only need [inference] and the models
    (classify, evaluate, benchmark) use a config without [[cameras]].
    """
    name = os.fspath(path)
    try:
        data = Path(name).read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{name}: config file not found; create it (config/expressiond.toml is the "
            "annotated default) or give the right path"
        ) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"{name}: cannot read the config file ({reason}); check the path and permissions"
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{name}:{line}: the file is not UTF-8 text; save it as UTF-8") from None
    return parse_config(text, name, require_cameras=require_cameras)


def parse_config(text: str, source: str = "<string>", *, require_cameras: bool = True) -> Config:
    """Validate TOML ``text``; ``source`` names it in messages. Raises ConfigError."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message, line = _syntax_message(exc, text, source)
        raise _problem(ConfigError, message, source, line, None, message.split(": ", 1)[1]) from None
    return build_config(data, source, key_lines(text), default_line=1, require_cameras=require_cameras)


def from_dict(data: Mapping[str, Any], source: str | None = None) -> Config:
    """Validate a dict shaped like ``Config.to_dict()`` (or like the TOML) into a Config.

    Raises ConfigError as parse_config does, without line numbers.
    """
    body = dict(data)
    written_source = body.pop("source", None)
    name = source or (written_source if isinstance(written_source, str) else "<dict>")
    return build_config(body, name, {}, default_line=None)


def load_checked(path: str | os.PathLike[str], *, require_cameras: bool = True) -> Config:
    """load_config, then check_model_files and check_camera_sources: what the daemon's start, a
    SIGHUP reload and ``check-config`` need before they trust a config."""
    cfg = load_config(path, require_cameras=require_cameras)
    check_files(cfg)
    return cfg


def check_files(cfg: Config) -> None:
    """The on-disk half of load_checked, for a caller that has set up logging in between:
    every missing model file and camera source at once."""
    _raise_all(_model_file_problems(cfg) + _camera_source_problems(cfg))


def _syntax_message(exc: Exception, text: str, source: str) -> tuple[str, int | None]:
    detail = str(exc).splitlines()[0] if str(exc) else "invalid TOML"
    line = getattr(exc, "lineno", None)  # Python >= 3.14 has it; older ones only in the text
    column = getattr(exc, "colno", None)
    match = _TOML_POSITION_RE.search(detail)
    if match:
        detail = detail[: match.start()]
        if match.group(1):
            line, column = int(match.group(1)), int(match.group(2))
        else:
            line = text.count("\n") + 1
    where = f"{source}:{line}" if line else source
    at_column = f" at column {column}" if column else ""
    return (
        f"{where}: TOML syntax error{at_column}: {detail}; fix that line (strings need "
        '"quotes", tables are [name], each camera is a [[cameras]] table)'
    ), line


def _problem(
    cls: type[ExpressiondError], message: str, source: str, line: int | None, key: str | None, text: str
) -> ExpressiondError:
    """An error whose ``details`` hold its one record (errors.problem_records)."""
    error = cls(message)
    error.details = ({"file": source, "line": line, "key": key, "message": text, "text": message},)  # type: ignore[attr-defined]
    return error


def _error(cls: type[ExpressiondError], cfg: Config, path: KeyPath, text: str) -> ExpressiondError:
    """``<file>:<line>: <key.path>: <text>`` (the line when the key is written in the file)."""
    key = format_path(path)
    line = cfg.key_lines.get(key)
    where = f"{cfg.source}:{line}: {key}" if line else f"{cfg.source}: {key}"
    return _problem(cls, f"{where}: {text}", cfg.source, line, key, text)


def _raise_all(errors: list[ExpressiondError]) -> None:
    if errors:
        raise combine(errors)


def check_model_files(cfg: Config) -> None:
    """Raise ModelError/ConfigError unless every configured model's IR files are on disk
    (every missing model is reported, the first in the message, all on ``problems``).

    Builtin names resolve to <models_dir>/<name>/<precision>/model.{xml,bin,json} with
    models_dir from the config or paths.default_models_dir() and the precision of the model
    section or of [inference]. Any other model is a path to an .xml file that needs a .bin
    and a .json (metadata) of the same stem beside it. Relative paths are relative to the
    working directory. Reads file metadata only; no model is loaded, no device touched.
    """
    _raise_all(_model_file_problems(cfg))


def _model_file_problems(cfg: Config) -> list[ExpressiondError]:
    models_dir = cfg.models_path()
    if any(getattr(cfg, r).is_builtin for r in ("detector", "classifier")) and (
        cfg.models_dir is not None and not models_dir.is_dir()
    ):
        return [
            _error(
                ConfigError,
                cfg,
                ("models_dir",),
                f"directory {models_dir} does not exist; fix the path or build the models there: "
                f"expressiond models build --dir {models_dir}",
            )
        ]
    errors = []
    for role in ("detector", "classifier"):
        model: ModelConfig = getattr(cfg, role)
        key = (role, "model")
        if model.is_builtin:
            precision = cfg.model_precision(model)
            folder = paths.builtin_model_dir(models_dir, model.model, precision)
            missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
            if missing:
                errors.append(
                    _error(
                        ModelError,
                        cfg,
                        key,
                        f"{model.model} {precision} is not built: {', '.join(missing)} missing in "
                        f"{folder}; run: expressiond models build --dir {models_dir} (or set "
                        "models_dir / $EXPRESSIOND_MODELS to where the models are)",
                    )
                )
            continue
        xml = Path(model.model)
        if not xml.is_file():
            errors.append(_error(ConfigError, cfg, key, f"model file {xml} not found; fix the path"))
            continue
        missing = [str(p) for p in (xml.with_suffix(".bin"), xml.with_suffix(".json"))]
        missing = [p for p in missing if not Path(p).is_file()]
        if missing:
            errors.append(
                _error(
                    ModelError,
                    cfg,
                    key,
                    f"{xml.name} needs {' and '.join(missing)} beside it (weights and metadata of "
                    "the same name); copy them there or convert the model again with expressiond convert",
                )
            )
    return errors


def check_camera_sources(cfg: Config) -> None:
    """Raise ConfigError if a camera's video file, image folder or "samples" is missing (every
    such camera is reported, the first in the message, all on ``problems``).

    Devices (/dev/video*, indices) and URLs are not checked: they may appear later and the
    capture reconnects; checking them would touch hardware or the network.
    """
    _raise_all(_camera_source_problems(cfg))


def _camera_source_problems(cfg: Config) -> list[ExpressiondError]:
    errors = []
    for index, camera in enumerate(cfg.cameras):
        if is_live(camera.source):
            continue
        target = Path(camera.resolve_source(cfg.models_path()))
        if not target.exists():
            what = (
                "sample clip (made by `expressiond models build`)"
                if camera.source == SAMPLES_SOURCE
                else "video file or image folder"
            )
            errors.append(
                _error(
                    ConfigError,
                    cfg,
                    ("cameras", index, "source"),
                    f"{what} {target} does not exist; fix the path (relative paths start at the "
                    "working directory)",
                )
            )
    return errors


def precision_notes(cfg: Config) -> list[str]:
    """What runs in another precision than the config asks: a bundled model has no INT8 IR, so
    INT8 runs its FP16 IR (inference/metadata.resolve_model warns about it at compile too)."""
    notes = []
    for role in ("detector", "classifier"):
        model: ModelConfig = getattr(cfg, role)
        if not model.is_builtin:
            continue
        asked = cfg.model_precision(model)
        runs = paths.builtin_model_dir(cfg.models_path(), model.model, asked).name
        if runs != asked and runs in paths.PRECISIONS:
            notes.append(
                f"{role} {model.model} has no {asked} IR and runs its {runs} IR; set precision = "
                f'"{runs}" in [{role}] to say so, or use a model that has {asked} IR'
            )
    return notes
