"""Read a tfjs weights manifest and its .bin shards into named numpy arrays.

Quantised entries (uint8 with scale/min) are de-quantised exactly as tfjs does:
``value = q * scale + min``, in float32.

Thread: the command's main thread.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from expressiond.errors import ModelBuildError

_DTYPES = {"float32": np.float32, "int32": np.int32, "uint8": np.uint8}


def load_weights(model_dir: Path, manifest_name: str) -> dict[str, np.ndarray]:
    manifest_path = Path(model_dir) / manifest_name
    try:
        groups = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelBuildError(f"{manifest_path}: cannot read weights manifest ({exc})") from exc
    weights: dict[str, np.ndarray] = {}
    for group in groups:
        data = b"".join((manifest_path.parent / p).read_bytes() for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            shape = [int(d) for d in spec["shape"]]
            count = int(np.prod(shape)) if shape else 1
            quant = spec.get("quantization")
            stored = _DTYPES[quant["dtype"] if quant else spec["dtype"]]
            size = count * np.dtype(stored).itemsize
            if offset + size > len(data):
                raise ModelBuildError(f"{manifest_path}: weight data is truncated at {spec['name']}")
            if quant:
                # tfjs computes in double precision, then stores float32
                raw = np.frombuffer(data, stored, count, offset).astype(np.float64)
                value = (raw * float(quant["scale"]) + float(quant["min"])).astype(_DTYPES[spec["dtype"]])
            else:
                value = np.frombuffer(data, stored, count, offset).copy()
            weights[spec["name"]] = value.reshape(shape)
            offset += size
        if offset != len(data):
            raise ModelBuildError(
                f"{manifest_path}: {len(data) - offset} unexpected trailing bytes in {group['paths']}"
            )
    return weights
