"""Build small test clips from the sample photos (the package's own pictures)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from expressiond.config.keys import default_of
from expressiond.config.model import TrackingConfig
from expressiond.inference.analyzer import AnalyzerSettings, FaceAnalyzer, product_settings


def face_tiles(models_dir: Path, sample_images: list[Path], size: int = 260) -> dict[str, np.ndarray]:
    """One face per expression found in the samples (face-api's SSD finds them in these group
    photos), cut with a margin and scaled to size x size, keyed by expression: the tile the
    daemon's default path (product_settings: its detector, classifier set and crops) is surest
    of on the clip's canvas, kept only when that score clears the default enter_threshold by
    0.05, so a clip of it makes its events."""
    finder = FaceAnalyzer(AnalyzerSettings(models_dir))
    daemon = FaceAnalyzer(product_settings(models_dir))
    floor = default_of(TrackingConfig, "enter_threshold") + 0.05
    tiles: dict[str, tuple[float, np.ndarray]] = {}
    for path in sample_images:
        image = cv2.imread(str(path))
        for _score, _rel, (x, y, w, h) in finder.detect(image):
            m = 0.45 * max(w, h)
            x0, y0 = int(max(0, x - m)), int(max(0, y - m))
            x1, y1 = int(min(image.shape[1], x + w + m)), int(min(image.shape[0], y + h + m))
            tile = cv2.resize(image[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_AREA)
            seen = daemon.analyze(canvas_with(tile))
            if len(seen) != 1 or seen[0].confidence < floor:
                continue
            face = seen[0]
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
