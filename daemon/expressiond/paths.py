"""Where things live on disk: the built model IR and the state directory.

Model IR layout (built by ``expressiond models build``)::

    <models_dir>/<name>/<precision>/model.xml, model.bin, model.json (metadata)

with precision FP32, FP16 or INT8 (quantised from FP32 when NNCF is installed), e.g.
``models/ir/face-api/expression/FP16/model.xml``. ``<models_dir>/samples/`` holds the sample
photos that came with the pinned upstream package and ``demo.avi``, a clip made from them (the
camera source "samples", used by ``make demo``; INT8 is calibrated on the photos).

Thread: none; pure functions of the environment.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

BUILTIN_DETECTOR = "face-api/ssd_mobilenetv1"
BUILTIN_CLASSIFIER = "face-api/expression"
# The mini-Xception emotion net of the npm package @vladmandic/human (oarriaga, MIT; 64x64 grey)
HUMAN_EMOTION = "human/emotion"
BUILTIN_MODELS = (BUILTIN_DETECTOR, BUILTIN_CLASSIFIER, HUMAN_EMOTION)  # built by `models build`
INT8_MODELS = (BUILTIN_DETECTOR, BUILTIN_CLASSIFIER)  # also quantised by `models build`
CLASSIFIER_MODELS = (BUILTIN_CLASSIFIER, HUMAN_EMOTION)  # the names [classifier] may use
# The labels of the builtin classifiers (face-api's order) and of every event of an ensemble
EXPRESSION_LABELS = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
# Third-party IR committed to the checkout under models/<name>/<precision>/ (see the SOURCES.md
# there); found in <models_dir>/<name>/ first, else in the checkout (bundled_model_dir).
BUNDLED_DETECTOR = "omz/face-detection-retail-0005"  # Open Model Zoo, Apache-2.0
BUNDLED_MODELS = (BUNDLED_DETECTOR,)
NAMED_MODELS = BUILTIN_MODELS + BUNDLED_MODELS  # every model name a config may use
# face-api's SSD finds no face in close-ups that fill the frame (0 of 70 dev photos); the
# bundled detector finds all 70, at a fifth of the cost (benchmarks/closeup.py)
DEFAULT_DETECTOR = BUNDLED_DETECTOR
DETECTOR_MODELS = (DEFAULT_DETECTOR, BUILTIN_DETECTOR)
FLOAT_PRECISIONS = ("FP32", "FP16")  # IR made from a source model (models build, convert)
PRECISIONS = FLOAT_PRECISIONS + ("INT8",)  # what a config may ask for; INT8: builtin models only


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
    """<models_dir>/<name>/<precision>. A bundled model missing there comes from the checkout.
    A model without INT8 IR (bundled ones, human/emotion) gives its FP16 IR for INT8."""
    folder = Path(models_dir) / name / precision
    no_int8 = precision == "INT8" and name not in INT8_MODELS
    if (folder / "model.xml").is_file() or (name not in BUNDLED_MODELS and not no_int8):
        return folder
    tries = (precision, "FP16") if no_int8 else (precision,)
    for p in tries:
        candidates = [Path(models_dir) / name / p]
        if name in BUNDLED_MODELS:
            candidates.append(bundled_model_dir(name, p))
        for candidate in candidates:
            if (candidate / "model.xml").is_file():
                return candidate
    return folder


def builtin_calibration() -> Path:
    """The class-score calibration shipped for the default ensemble ([classifier]
    calibration = "builtin"; made by benchmarks/accuracy.py --fit-calibration)."""
    return Path(__file__).resolve().parent / "inference" / "calibration" / "faceapi-human-mean.json"


def bundled_model_dir(name: str, precision: str) -> Path:
    """Where a bundled model's IR is committed: <checkout>/models/<name>/<precision>."""
    return Path(__file__).resolve().parents[2] / "models" / name / precision


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
