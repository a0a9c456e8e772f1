"""Decoding network streams for the stream source (sources/stream.py), per camera
``decode = "auto" | "software" | "vaapi"``:

- common.py   options, the open error, the fps cap rule, the config's vocabulary
- backend.py  which backend this box allows (render node, ffmpeg with VAAPI) and why not
- pyav.py     software decode in-process (PyAV), frames above the cap never converted
- ffmpeg.py   the ffmpeg program as a child process: VAAPI (or the same pipeline in software)
- decoder.py  ``Decoder``: the chosen backend, the software fallback, said once

This package's top level imports neither PyAV, OpenCV nor numpy (the config imports
common.py); pyav.py and ffmpeg.py are imported when a decoder is made.

Thread: a decoder belongs to its camera's "capture-<name>" thread.
"""

from expressiond.sources.decode.backend import choose_backend
from expressiond.sources.decode.common import (
    DECODE_MODES,
    RTSP_TRANSPORTS,
    VA_DEVICE,
    DecodeOpenError,
    DecodeOptions,
    FpsCap,
)
from expressiond.sources.decode.decoder import Decoder

__all__ = [
    "DECODE_MODES",
    "RTSP_TRANSPORTS",
    "VA_DEVICE",
    "DecodeOpenError",
    "DecodeOptions",
    "Decoder",
    "FpsCap",
    "choose_backend",
]
