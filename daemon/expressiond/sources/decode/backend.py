"""Which decoder a camera gets: "vaapi" (the iGPU, through the ffmpeg program) or "software"
(PyAV), and why not vaapi when it was asked for or "auto".

VAAPI goes through Debian's ffmpeg program because the PyPI wheels of PyAV (checked: 17.1,
18.1) bundle an FFmpeg built without VAAPI (their hwdevices: cuda, qsv, drm, amf), so PyAV can
never use the iGPU; a PyAV built against the system FFmpeg would, but pip cannot install one.

Thread: none of its own; the ffmpeg probe is cached (one run per program and process).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

from expressiond.sources.decode.common import DECODE_MODES, VA_DEVICE

PROBE_TIMEOUT_S = 10.0


@functools.lru_cache(maxsize=8)
def ffmpeg_hwaccels(ffmpeg: str) -> tuple[tuple[str, ...], str]:
    """(the hwaccels ``ffmpeg -hwaccels`` lists, "" ) or ((), why it could not be asked)."""
    path = shutil.which(ffmpeg)
    if path is None:
        return (), f"no ffmpeg program ({ffmpeg}) for VAAPI decode: apt-get install ffmpeg"
    try:
        r = subprocess.run(
            [path, "-hide_banner", "-hwaccels"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return (), f"`{path} -hwaccels` failed ({exc})"
    if r.returncode != 0:
        return (), f"`{path} -hwaccels` exited {r.returncode}"
    lines = r.stdout.splitlines()
    start = next((i + 1 for i, line in enumerate(lines) if line.strip().endswith(":")), 0)
    return tuple(x.strip() for x in lines[start:] if x.strip()), ""


def choose_backend(decode: str, va_device: str = VA_DEVICE, ffmpeg: str = "ffmpeg") -> tuple[str, str]:
    """("vaapi" | "software", why not vaapi: "" when vaapi was chosen or not asked for). The
    device is looked at first: without a render node (CI, a box without an iGPU) ffmpeg is
    not even run."""
    if decode not in DECODE_MODES:
        raise ValueError(f"decode must be one of {', '.join(DECODE_MODES)}, not {decode!r}")
    if decode == "software":
        return "software", ""
    if not os.path.exists(va_device):
        return "software", f"no VA device {va_device} (no Intel/AMD GPU, or its driver is not loaded)"
    if not os.access(va_device, os.R_OK | os.W_OK):
        return "software", f"no access to {va_device}: add the service user to group render"
    accels, problem = ffmpeg_hwaccels(ffmpeg)
    if problem:
        return "software", problem
    if "vaapi" not in accels:
        listed = ", ".join(accels) or "none"
        return "software", f"{ffmpeg} has no VAAPI (its -hwaccels: {listed}): install Debian's ffmpeg"
    return "vaapi", ""
