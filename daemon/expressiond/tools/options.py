"""The model options the one-shot commands share (classify, evaluate, evaluate-detector and
``python -m expressiond.tools.evaluate``), and the analyzer they describe.

Thread: the command's main thread.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from expressiond.config.model import CROP_POLICIES, ClassifierConfig, Config
from expressiond.paths import DEFAULT_DETECTOR, PRECISIONS, default_models_dir

if TYPE_CHECKING:
    from expressiond.inference.analyzer import FaceAnalyzer


def models_dir(args: argparse.Namespace) -> Path:
    return Path(args.models) if getattr(args, "models", None) else default_models_dir()


def add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        metavar="FILE",
        help="take [detector], [classifier] and the [inference] device/precision from this TOML "
        "config (default: the daemon's defaults; the options below override it)",
    )
    p.add_argument("--device", default=None, help="OpenVINO device string (default CPU)")
    p.add_argument("--precision", default=None, choices=PRECISIONS, help="IR precision (default FP32)")
    p.add_argument("--models", metavar="DIR", help="built model directory (default: %(default)s)")
    p.add_argument(
        "--detector", default=None, help=f"detector: model name or .xml (default {DEFAULT_DETECTOR})"
    )
    p.add_argument(
        "--classifier",
        default=None,
        help="one classifier (builtin name or .xml) instead of the configured set (default: the "
        "[classifier] ensemble, face-api/expression + human/emotion)",
    )
    p.add_argument("--threshold", type=float, default=None, help="face score threshold")
    p.add_argument(
        "--flip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="average each face with its mirror image (default: on for --classifier; for a set, "
        "as [classifier] says; given, it is every member's that does not set its own)",
    )
    p.add_argument(
        "--crop",
        default=None,
        choices=CROP_POLICIES,
        help="how a face box becomes the classifier input (default: auto)",
    )
    p.add_argument("--margin", type=float, default=None, help="scale the face box first")
    p.add_argument(
        "--calibration",
        default=None,
        metavar="auto|builtin|none|FILE",
        help="the set's score calibration (default: as [classifier] says, auto)",
    )
    p.add_argument(
        "--fit-crops",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fit each face crop to the classifier's own size with OpenCV, as the "
        "daemon does (default: on; --no-fit-crops: the model's own resize, exactly "
        "as face-api preprocesses)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")


def classifier_config(args: argparse.Namespace, base: ClassifierConfig) -> ClassifierConfig:
    """[classifier] of the config (``base``) with the command-line options applied."""
    changes: dict = {}
    if args.classifier:
        changes = {"model": args.classifier, "ensemble": (), "calibration": "none"}
    for key in ("flip", "crop", "margin", "calibration"):
        if getattr(args, key, None) is not None:
            changes[key] = getattr(args, key)
    return replace(base, **changes)


def analyzer(args: argparse.Namespace) -> FaceAnalyzer:
    """The analyzer the options describe (OpenVINO is loaded here, not when parsing)."""
    from expressiond.inference.analyzer import AnalyzerSettings, FaceAnalyzer

    cfg = Config()
    if getattr(args, "config", None):
        from expressiond.config import load_config
        from expressiond.config.loader import check_model_files

        cfg = load_config(args.config, require_cameras=False)
        if not getattr(args, "models", None):
            check_model_files(cfg)
    models = models_dir(args) if getattr(args, "models", None) or not cfg.models_dir else cfg.models_path()
    return FaceAnalyzer(
        AnalyzerSettings(
            models_dir=models,
            device=args.device or cfg.inference.device,
            precision=args.precision or cfg.inference.precision,
            detector=args.detector or cfg.detector.model,
            classifiers=classifier_config(args, cfg.classifier),
            score_threshold=args.threshold,
            fit_crops=args.fit_crops,
        )
    )
