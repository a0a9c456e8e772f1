"""Read and compile models with the configured device options; report what OpenVINO chose."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DeviceError, ModelError
from .metadata import ModelFiles, ModelMeta, load_meta
from .ovcompat import Core, property_value

log = logging.getLogger(__name__)

REPORTED_PROPERTIES = (
    "EXECUTION_DEVICES",
    "OPTIMAL_NUMBER_OF_INFER_REQUESTS",
    "INFERENCE_PRECISION_HINT",
    "PERFORMANCE_HINT",
)


def compile_config(device: str, precision: str, performance_hint: str | None,
                   cache_dir: str | None) -> dict[str, str]:
    """OpenVINO compile properties for the configured device and precision.

    FP32 asks for f32 inference explicitly: the CPU plugin otherwise runs bf16 on CPUs that
    have it, which changes results by ~1e-2. FP16 leaves the device its native choice.
    """
    cfg: dict[str, str] = {}
    if precision == "FP32" and device.split(":")[0].split(".")[0] in ("CPU", "GPU"):
        cfg["INFERENCE_PRECISION_HINT"] = "f32"
    if performance_hint and performance_hint.upper() != "NONE":
        cfg["PERFORMANCE_HINT"] = performance_hint.upper()
    if cache_dir:
        cfg["CACHE_DIR"] = str(cache_dir)
    return cfg


@dataclass
class CompiledNet:
    compiled: object
    meta: ModelMeta
    files: ModelFiles
    device: str
    config: dict
    info: dict = field(default_factory=dict)

    @property
    def input_name(self) -> str:
        return self.compiled.inputs[0].get_any_name()


_core: Core | None = None


def shared_core() -> Core:
    global _core
    if _core is None:
        _core = Core()
    return _core


def compile_net(files: ModelFiles, kind: str, device: str, precision: str,
                performance_hint: str | None = None, cache_dir: str | None = None,
                core: Core | None = None) -> CompiledNet:
    core = core or shared_core()
    meta = load_meta(files, kind)
    try:
        model = core.read_model(str(files.xml), str(files.bin))
    except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError subclasses
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{files.xml}: cannot read the model ({first}); rebuild or replace it") from exc
    if len(model.inputs) != 1:
        raise ModelError(f"{files.xml}: expected 1 input, the model has {len(model.inputs)}")
    rank = model.inputs[0].get_partial_shape().rank
    if rank.is_static and rank.get_length() != 4:
        raise ModelError(
            f"{files.xml}: input rank is {rank.get_length()}, expected 4 (N, H, W, C) u8 BGR images"
        )
    config = compile_config(device, precision, performance_hint, cache_dir)
    if cache_dir:
        Path(cache_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
    available = list(core.available_devices)
    try:
        compiled = core.compile_model(model, device, config)
    except Exception as exc:  # noqa: BLE001
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DeviceError(
            f"cannot compile {meta.name} for device {device!r} ({first[:200]}); "
            f"available devices: {', '.join(available) or 'none'}"
        ) from exc
    info = {name: _plain(property_value(compiled, name)) for name in REPORTED_PROPERTIES}
    log.info("compiled %s (%s) for %s: %s", meta.name, precision, device, info)
    return CompiledNet(compiled, meta, files, device, config, info)


def _plain(value):
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    if hasattr(value, "get_type_name"):  # ov.Type, e.g. f32
        return value.get_type_name()
    if value is None or isinstance(value, (int, float, bool)):
        return value
    return str(value)


def release_core() -> None:
    """Drop the shared Core (see Service.release: OpenVINO objects must die on our thread)."""
    global _core
    _core = None
