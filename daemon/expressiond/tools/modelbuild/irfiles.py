"""The IR folders ``models build`` writes: one atomic writer (model.xml/.bin + model.json, all
or nothing) and the up-to-date check, shared by the FP32/FP16 build and the INT8 step.

Thread: the command's main thread.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from expressiond.errors import ModelBuildError
from expressiond.inference.bundled import sha256_file
from expressiond.tools.modelbuild.npm_package import FACE_API

NEEDS_NEW_OPENVINO = (
    "`expressiond models build` needs OpenVINO 2023.1 or newer (the opset API); build the "
    "IR on such a machine and copy the model folder: OpenVINO 2022.3 reads it"
)
try:  # the FP32/FP16 build and the INT8 step both write through here
    import openvino as ov
    from openvino import save_model
except ImportError as _exc:  # OpenVINO 2022.3: only openvino.runtime
    raise ModelBuildError(NEEDS_NEW_OPENVINO) from _exc

BUILDER_VERSION = 2  # bump when the generated graph changes


def is_up_to_date(target: Path) -> bool:
    meta_path = target / "model.json"
    try:
        meta = json.loads(meta_path.read_text())
        return (
            meta.get("builder_version") == BUILDER_VERSION
            and meta.get("source", {}).get("integrity") == FACE_API.integrity
            and all(sha256_file(target / f) == h for f, h in meta["ir_sha256"].items())
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False


def ir_is_current(target: Path, integrity: str, builder_version: int) -> bool:
    """model.xml/.bin/.json in ``target`` made from the same package by the same builder."""
    try:
        meta = json.loads((target / "model.json").read_text())
        return (
            meta.get("builder_version") == builder_version
            and meta["source"]["integrity"] == integrity
            and all(sha256_file(target / f) == h for f, h in meta["ir_sha256"].items())
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False


def save_ir(
    model: ov.Model, target: Path, compress_to_fp16: bool, metadata: Callable[[dict[str, str]], dict]
) -> None:
    """model.xml/.bin and model.json in ``target``, all or nothing: written to a temporary
    folder beside it and swapped in. ``metadata(hashes)`` gives model.json for the sha256 of
    the saved model.xml and model.bin."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    try:
        save_model(model, str(tmp / "model.xml"), compress_to_fp16=compress_to_fp16)
        hashes = {f: sha256_file(tmp / f) for f in ("model.xml", "model.bin")}
        (tmp / "model.json").write_text(json.dumps(metadata(hashes), indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
