"""Where things live on disk: the built model IR and the state directory.

Model IR layout (built by ``expressiond models build``)::

    <models_dir>/<name>/<precision>/model.xml, model.bin, model.json (metadata)

e.g. ``models/ir/face-api/expression/FP16/model.xml``. ``<models_dir>/samples/`` holds the
sample photos that came with the pinned upstream package and ``demo.avi``, a clip made from
them (the camera source "samples", used by ``make demo``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

BUILTIN_DETECTOR = "face-api/ssd_mobilenetv1"
BUILTIN_CLASSIFIER = "face-api/expression"
BUILTIN_MODELS = (BUILTIN_DETECTOR, BUILTIN_CLASSIFIER)
PRECISIONS = ("FP32", "FP16")


def default_models_dir() -> Path:
    """$EXPRESSIOND_MODELS, else ./models/ir when run from a checkout, else the venv's share dir.

    An installed daemon (/opt/expressiond venv) finds its models in
    /opt/expressiond/share/expressiond/models without any config.
    """
    env = os.environ.get("EXPRESSIOND_MODELS")
    if env:
        return Path(env)
    local = Path.cwd() / "models" / "ir"
    if local.is_dir():
        return local
    return Path(sys.prefix) / "share" / "expressiond" / "models"


def builtin_model_dir(models_dir: Path, name: str, precision: str) -> Path:
    return Path(models_dir) / name / precision


def samples_dir(models_dir: Path | None = None) -> Path:
    return Path(models_dir or default_models_dir()) / "samples"


def sample_clip(models_dir: Path | None = None) -> Path:
    """The demo clip made from the sample photos by ``models build`` (camera source "samples")."""
    return samples_dir(models_dir) / "demo.avi"


def default_state_dir() -> Path:
    """$STATE_DIRECTORY (systemd StateDirectory=), else $XDG_STATE_HOME/expressiond."""
    env = os.environ.get("STATE_DIRECTORY")
    if env:
        return Path(env.split(":")[0])
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "expressiond"


def default_cache_dir() -> Path:
    """$CACHE_DIRECTORY (systemd CacheDirectory=), else $XDG_CACHE_HOME/expressiond."""
    env = os.environ.get("CACHE_DIRECTORY")
    if env:
        return Path(env.split(":")[0])
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "expressiond"
