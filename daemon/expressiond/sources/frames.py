"""Making any decoded frame the u8 BGR image the models take, or saying why it is unusable.

Thread: the camera's "capture-<name>" thread (pure function).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

MAX_SIDE = 8192  # larger frames are refused: nobody streams that, it is a broken header


def normalise_image(image: Any) -> tuple[np.ndarray | None, str]:
    """Make any decoded image u8 BGR (H, W, 3).

    Returns (image, note): note names the conversion made ("" if none); image is None when the
    frame is unusable and note then says why.
    """
    if not isinstance(image, np.ndarray) or image.size == 0 or image.ndim not in (2, 3):
        return None, "empty or malformed frame"
    h, w = image.shape[:2]
    if h > MAX_SIDE or w > MAX_SIDE:
        return None, f"frame {w}x{h} larger than {MAX_SIDE} px on a side"
    notes = []
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
        notes.append("16-bit scaled to 8-bit")
    elif image.dtype.kind == "f":
        scale = 255.0 if float(np.nanmax(image)) <= 1.0 else 1.0
        image = np.clip(np.nan_to_num(image) * scale, 0, 255).astype(np.uint8)
        notes.append("float scaled to 8-bit")
    elif image.dtype != np.uint8:
        return None, f"unsupported pixel type {image.dtype}"
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels == 1:
        image = cv2.cvtColor(image.reshape(h, w), cv2.COLOR_GRAY2BGR)
        notes.append("gray converted to BGR")
    elif channels == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        notes.append("alpha dropped")
    elif channels != 3:
        return None, f"unsupported channel count {channels}"
    return np.ascontiguousarray(image), ", ".join(notes)
