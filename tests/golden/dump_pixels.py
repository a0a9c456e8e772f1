"""Decode the face-api sample JPEGs with OpenCV and dump raw RGB pixels for record_faceapi.mjs.

JPEG decoders differ (libjpeg-turbo builds, IDCT and upsampling choices), so the golden recording
never decodes a JPEG in node: the pixels the original face-api models see are exactly the pixels
``cv2.imread`` gives our Python pipeline.

Usage: dump_pixels.py OUT_DIR JPEG [JPEG ...]

Writes, per image, OUT_DIR/<stem>.rgb (H*W*3 bytes, row-major, RGB order, uint8) and one
OUT_DIR/manifest.json describing all of them (name, width, height, sha256 of the JPEG bytes,
sha256 of the RGB bytes, raw file name) plus the OpenCV and numpy versions used.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import cv2
import numpy as np


def decode_rgb(path: Path) -> np.ndarray:
    """Return the image as an (H, W, 3) uint8 RGB array, decoded exactly as the daemon does."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"dump_pixels: cannot decode {path}")
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def dump(out_dir: Path, jpegs: list[Path]) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    images = []
    for jpeg in jpegs:
        data = jpeg.read_bytes()
        rgb = decode_rgb(jpeg)
        raw = rgb.tobytes()
        raw_name = jpeg.stem + ".rgb"
        (out_dir / raw_name).write_bytes(raw)
        images.append(
            {
                "name": jpeg.name,
                "width": int(rgb.shape[1]),
                "height": int(rgb.shape[0]),
                "jpeg_sha256": hashlib.sha256(data).hexdigest(),
                "rgb_sha256": hashlib.sha256(raw).hexdigest(),
                "raw": raw_name,
            }
        )
    manifest = {
        "decoder": "cv2.imread(IMREAD_COLOR) + cvtColor(BGR2RGB)",
        "opencv": cv2.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "images": images,
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        sys.stderr.write("usage: dump_pixels.py OUT_DIR JPEG [JPEG ...]\n")
        return 2
    manifest = dump(Path(argv[0]), [Path(p) for p in argv[1:]])
    for img in manifest["images"]:
        sys.stderr.write(f"dump_pixels: {img['name']} {img['width']}x{img['height']}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
