"""Build small test clips from the sample photos (the package's own pictures)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from expressiond.inference.analyzer import AnalyzerSettings, FaceAnalyzer


def face_tiles(models_dir: Path, sample_images: list[Path], size: int = 260) -> dict[str, np.ndarray]:
    """One confidently classified face per expression found in the samples, cut with a margin
    and scaled to size x size, keyed by expression."""
    analyzer = FaceAnalyzer(AnalyzerSettings(models_dir))
    tiles: dict[str, tuple[float, np.ndarray]] = {}
    for path in sample_images:
        image = cv2.imread(str(path))
        for face in analyzer.analyze(image):
            if face.confidence < 0.9:
                continue
            x, y, w, h = face.box
            m = 0.45 * max(w, h)
            x0, y0 = int(max(0, x - m)), int(max(0, y - m))
            x1, y1 = int(min(image.shape[1], x + w + m)), int(min(image.shape[0], y + h + m))
            tile = cv2.resize(image[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_AREA)
            best = tiles.get(face.expression)
            if best is None or face.confidence > best[0]:
                tiles[face.expression] = (face.confidence, tile)
    return {k: v[1] for k, v in tiles.items()}


def write_clip(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened(), "OpenCV cannot write MJPG AVI"
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def canvas_with(tile: np.ndarray, width: int = 640, height: int = 400, at: tuple[int, int] = (190, 70)):
    canvas = np.full((height, width, 3), 90, np.uint8)
    x, y = at
    canvas[y : y + tile.shape[0], x : x + tile.shape[1]] = tile
    return canvas


def expression_change_clip(
    path: Path, tiles: dict[str, np.ndarray], first: str, second: str, frames_each: int = 20, blank: int = 5
) -> Path:
    """blank, `first` face, `second` face at the same place, blank: one track that starts,
    changes and ends."""
    empty = np.full((400, 640, 3), 90, np.uint8)
    frames = [empty] * blank + [canvas_with(tiles[first])] * frames_each
    frames += [canvas_with(tiles[second])] * frames_each + [empty] * blank
    return write_clip(path, frames)
