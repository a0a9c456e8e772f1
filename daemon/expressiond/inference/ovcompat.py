"""One place that hides the OpenVINO generation.

Current OpenVINO (2023.1+, e.g. 2026.x) is used as ``import openvino as ov`` and has no
``openvino.runtime``; OpenVINO 2022.3 LTS (the last one with the MYRIAD plugin for the Neural
Compute Stick 2) keeps its API in ``openvino.runtime``. Both accept string property names in
``compile_model`` config, which is what the daemon uses.
"""

from __future__ import annotations

import openvino as _openvino

if hasattr(_openvino, "Core"):
    ov = _openvino
    LEGACY = False
else:  # pragma: no cover - exercised by the Python 3.10 / OpenVINO 2022.3 test run
    from openvino import runtime as ov  # type: ignore[no-redef]

    LEGACY = True

Core = ov.Core
AsyncInferQueue = ov.AsyncInferQueue
VERSION: str = ov.get_version()


def property_value(compiled, name: str, default=None):
    """Read a compiled-model property, returning ``default`` when the device lacks it."""
    try:
        value = compiled.get_property(name)
    except Exception:  # noqa: BLE001 - each plugin raises its own type for unknown keys
        return default
    return value
