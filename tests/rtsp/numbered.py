"""A clip whose frames say which they are: frame i lights cell i of a 5x4 grid.

Survives H.264 at any sane bitrate and a colour round trip, so a test can tell which source
frame a client received (and so that a looping stream wrapped, or that frames were skipped).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

COLS, ROWS = 5, 4
CELLS = COLS * ROWS
W, H = 320, 240


def numbered_frame(i: int, width: int = W, height: int = H) -> np.ndarray:
    frame = np.full((height, width, 3), 40, np.uint8)
    cw, ch = width // COLS, height // ROWS
    r, c = divmod(i % CELLS, COLS)
    frame[r * ch + 6 : (r + 1) * ch - 6, c * cw + 6 : (c + 1) * cw - 6] = 230
    return frame


def write_numbered_clip(path: Path, frames: int = CELLS, fps: float = 10.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (W, H))
    assert writer.isOpened(), "OpenCV cannot write MJPG AVI"
    for i in range(frames):
        writer.write(numbered_frame(i))
    writer.release()
    return path


def frame_number(image: np.ndarray) -> int | None:
    """The lit cell of a received frame (any size), or None if no single cell is clearly lit."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    h, w = gray.shape
    cw, ch = w // COLS, h // ROWS
    means = np.array(
        [gray[r * ch : (r + 1) * ch, c * cw : (c + 1) * cw].mean() for r in range(ROWS) for c in range(COLS)]
    )
    order = np.argsort(means)
    lit, runner_up = means[order[-1]], means[order[-2]]
    return int(order[-1]) if lit > 120 and runner_up < 80 else None


def write_numbered_h264(
    path: Path, frames: int, fps: int = 30, gop: int = 30, keys: frozenset[int] = frozenset()
) -> Path:
    """H.264 (x264 in PyAV's FFmpeg) in MP4 like a camera's: no B-frames, a key frame every
    ``gop`` frames and at the frames in ``keys`` (as a scene cut would), nowhere else."""
    import av  # the daemon's dependency; only this helper needs it

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0"}
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(numbered_frame(i), format="bgr24")
            if i in keys:
                frame.pict_type = av.video.frame.PictureType.I
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path
