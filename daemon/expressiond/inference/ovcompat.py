"""One place that hides the OpenVINO generation.

Current OpenVINO (2023.1+, e.g. 2026.x) is used as ``import openvino as ov`` and has no
``openvino.runtime``; OpenVINO 2022.3 LTS (the last one with the MYRIAD plugin for the Neural
Compute Stick 2) keeps its API in ``openvino.runtime``. Both accept string property names in
``compile_model`` config, which is what the daemon uses. Only flat string/number property
values are passed: a nested dict (DEVICE_PROPERTIES) crashes the 2022.3 Python binding.

Thread: none of its own; import-time facts and thin wrappers.
"""

from __future__ import annotations

import re

from expressiond.inference import telemetry

telemetry.decline()  # before the first import of openvino: it would phone home

import openvino as _openvino  # noqa: E402

if hasattr(_openvino, "Core"):
    ov = _openvino
    from openvino import opset8 as opset

    LEGACY = False
else:  # pragma: no cover - exercised by the Python 3.10 / OpenVINO 2022.3 test run
    from openvino import runtime as ov  # type: ignore[no-redef]
    from openvino.runtime import opset8 as opset  # type: ignore[no-redef]

    LEGACY = True

from openvino.preprocess import ColorFormat, PrePostProcessor, ResizeAlgorithm  # noqa: E402

Core = ov.Core
AsyncInferQueue = ov.AsyncInferQueue
Layout = ov.Layout
Type = ov.Type
PartialShape = ov.PartialShape
VERSION: str = ov.get_version()

__all__ = [
    "LEGACY",
    "VERSION",
    "AsyncInferQueue",
    "ColorFormat",
    "Core",
    "Layout",
    "PartialShape",
    "PrePostProcessor",
    "ResizeAlgorithm",
    "Type",
    "error_reason",
    "opset",
    "ov",
    "port_name",
    "property_value",
    "save_model",
    "short_version",
]

# OpenVINO's messages carry a stack of "Exception from src/...:123:" and "Check '...' failed
# at ...:" lines around the one sentence an operator can use.
_NOISE = re.compile(
    r"^(Exception from \S+|Check '.*' failed at \S+|\[ ?GENERAL_ERROR ?\]\s*$|"
    r"Converting input model$|Please, check your environment$|"
    r"Traceback|File \")"
)


def error_reason(exc: BaseException, limit: int = 200) -> str:
    """The informative line of an OpenVINO exception, for a one-line operator message."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not _NOISE.match(ln)]
    for prefix in ("[ GENERAL_ERROR ]", "[ NOT_FOUND ]", "[ NOT_IMPLEMENTED ]"):
        useful = [ln.removeprefix(prefix).strip() for ln in useful]
    text = ": ".join(ln for ln in useful if ln) or (lines or [type(exc).__name__])[-1]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def port_name(port, fallback: str = "(unnamed)") -> str:
    """A tensor's name; 2022.3 raises for a tensor without one where 2023+ returns ""."""
    try:
        return port.get_any_name() or fallback
    except RuntimeError:
        return fallback


def save_model(model, xml_path, compress_to_fp16: bool = False) -> None:
    """Write IR (.xml + .bin). 2022.3 has only ``serialize`` (no FP16 compression)."""
    if hasattr(ov, "save_model"):
        ov.save_model(model, str(xml_path), compress_to_fp16=compress_to_fp16)
    else:  # pragma: no cover - OpenVINO 2022.3
        from pathlib import Path

        ov.serialize(model, str(xml_path), str(Path(xml_path).with_suffix(".bin")))


def short_version() -> str:
    """e.g. "2026.4.1" from "2026.4.1-22982-e213a147257-releases/2026/4"."""
    return VERSION.split("-")[0]


def property_value(compiled, name: str, default=None):
    """Read a compiled-model property, returning ``default`` when the device lacks it."""
    try:
        value = compiled.get_property(name)
    except Exception:  # noqa: BLE001 - each plugin raises its own type for unknown keys
        return default
    return value
