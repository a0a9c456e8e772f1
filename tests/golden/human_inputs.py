"""The face inputs of the human/emotion golden reference, made the same way by the recorder
(record_human.sh -> record_human.mjs) and by test_golden_human.py.

Faces: the 22 face-api detections of the six package sample photos recorded in
faceapi_reference.json (``crop_box``), each grown to a square about its centre and clipped at
the image (integers only), cut from the OpenCV-decoded RGB pixels (the recording's
``rgb_sha256`` proves the test decodes the same pixels). Two inputs per face:

- ``grey64``: the square sampled to 64x64 by nearest index (row ``y0 + (i * side) // 64``) and
  turned grey with integer weights ((299 R + 587 G + 114 B + 500) // 1000): a u8 image the
  network sees exactly, in node as ``g / 127.5 - 1`` and in our IR as a BGR crop whose three
  channels are ``g`` (64x64: no resize; grey weights that sum to 1; ``(g - 127.5) / 127.5``).
  This checks the conversion of the network itself.
- ``crop``: the square crop as it is (RGB u8), for human's whole preprocessing in node
  (tf.image.resizeBilinear to 64, its grey weights 0.2989/0.5870/0.1140, (g - 0.5) * 2) against
  the daemon's (OpenCV area resize to 64, OpenCV's grey weights, in the IR's front end).

Usage (the recorder): human_inputs.py OUT_DIR FACE_API_PACKAGE_DIR
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REFERENCE = HERE / "faceapi_reference.json"
SIDE = 64


def decode_rgb(path: Path) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"human_inputs: cannot decode {path}")
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def square_box(box: list[int], width: int, height: int) -> tuple[int, int, int]:
    """(x0, y0, side): the box grown to a square about its centre, moved inside the image."""
    x, y, w, h = box
    side = min(max(w, h), width, height)
    x0 = min(max(x + (w - side) // 2, 0), width - side)
    y0 = min(max(y + (h - side) // 2, 0), height - side)
    return x0, y0, side


def grey64(square: np.ndarray) -> np.ndarray:
    side = square.shape[0]
    idx = (np.arange(SIDE) * side) // SIDE
    small = square[idx][:, idx].astype(np.int64)
    g = (299 * small[..., 0] + 587 * small[..., 1] + 114 * small[..., 2] + 500) // 1000
    return g.astype(np.uint8)


def faces(images: dict[str, np.ndarray]) -> list[dict]:
    """Every recorded face-api detection with its square crop and grey64 input."""
    reference = json.loads(REFERENCE.read_text())
    out = []
    for entry in reference["images"]:
        rgb = images[entry["name"]]
        for k, det in enumerate(entry["detections"]):
            x0, y0, side = square_box(det["crop_box"], rgb.shape[1], rgb.shape[0])
            crop = np.ascontiguousarray(rgb[y0 : y0 + side, x0 : x0 + side])
            out.append(
                {
                    "name": f"{Path(entry['name']).stem}-{k}",
                    "image": entry["name"],
                    "square_box": [x0, y0, side],
                    "crop": crop,
                    "grey64": grey64(crop),
                }
            )
    return out


def sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def main(out_dir: Path, package_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    names = [entry["name"] for entry in json.loads(REFERENCE.read_text())["images"]]
    images = {name: decode_rgb(package_dir / "demo" / name) for name in names}
    manifest = []
    for face in faces(images):
        (out_dir / f"{face['name']}.crop").write_bytes(face["crop"].tobytes())
        (out_dir / f"{face['name']}.grey64").write_bytes(face["grey64"].tobytes())
        manifest.append(
            {
                "name": face["name"],
                "image": face["image"],
                "square_box": face["square_box"],
                "crop_sha256": sha256(face["crop"]),
                "grey64_sha256": sha256(face["grey64"]),
            }
        )
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: human_inputs.py OUT_DIR FACE_API_PACKAGE_DIR")
    main(Path(sys.argv[1]), Path(sys.argv[2]))
