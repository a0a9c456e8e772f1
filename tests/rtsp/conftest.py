"""The RTSP server fixture and the numbered clip its tests (and the decoder's) use."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtsp.fixtures import rtsp_server  # noqa: F401
from rtsp.numbered import write_numbered_clip


@pytest.fixture(scope="session")
def numbered_clip(tmp_path_factory) -> Path:
    """2 s at 10 fps, 320x240 MJPEG AVI: frame i shows one bright cell (i of a 5x4 grid)."""
    return write_numbered_clip(tmp_path_factory.mktemp("clips") / "numbered.avi")
