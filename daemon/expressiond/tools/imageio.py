"""Reading still images for the one-shot commands, with operator-readable failures.

Thread: the command's main thread.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from expressiond.errors import InputError

MAX_SIDE = 16384


def read_image(path: str | Path) -> np.ndarray:
    """u8 BGR image, or InputError saying why not (missing, not an image, truncated...)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise InputError(f"{p}: is a directory, not an image")
    try:
        data = np.fromfile(p, dtype=np.uint8)
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({exc.strerror})") from exc
    if data.size == 0:
        raise InputError(f"{p}: empty file")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InputError(f"{p}: not a readable image (JPEG, PNG, BMP, ...)")
    return to_bgr8(image, p)


def to_bgr8(image: np.ndarray, where: object = "frame") -> np.ndarray:
    """Normalise a decoded image to 3-channel u8 BGR (grey, alpha and 16-bit happen)."""
    if image.ndim not in (2, 3) or image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f"{where}: image has no pixels")
    if max(image.shape[:2]) > MAX_SIDE:
        raise InputError(f"{where}: image is {image.shape[1]}x{image.shape[0]}, larger than {MAX_SIDE}")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise InputError(f"{where}: unsupported pixel type {image.dtype}")
    if image.ndim == 2 or image.shape[2] == 1:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    elif image.shape[2] != 3:
        raise InputError(f"{where}: {image.shape[2]} channels, expected 1, 3 or 4")
    return np.ascontiguousarray(image)
