"""The model options the one-shot commands share (classify, evaluate, evaluate-detector and
``python -m expressiond.tools.evaluate``), and the analyzer they describe.

Thread: the command's main thread.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from expressiond.config.model import CROP_POLICIES
from expressiond.paths import BUILTIN_CLASSIFIER, DEFAULT_DETECTOR, PRECISIONS, default_models_dir

if TYPE_CHECKING:
    from expressiond.inference.analyzer import FaceAnalyzer


def models_dir(args: argparse.Namespace) -> Path:
    return Path(args.models) if getattr(args, "models", None) else default_models_dir()


def add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="CPU", help="OpenVINO device string (default CPU)")
    p.add_argument("--precision", default="FP32", choices=PRECISIONS, help="IR precision")
    p.add_argument("--models", metavar="DIR", help="built model directory (default: %(default)s)")
    p.add_argument("--detector", default=DEFAULT_DETECTOR, help="detector: model name or .xml")
    p.add_argument("--classifier", default=BUILTIN_CLASSIFIER, help="classifier: builtin or .xml")
    p.add_argument("--threshold", type=float, default=None, help="face score threshold")
    p.add_argument(
        "--flip",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="average each face with its mirror image (default: on)",
    )
    p.add_argument(
        "--crop",
        default="auto",
        choices=CROP_POLICIES,
        help="how a face box becomes the classifier input (default: auto)",
    )
    p.add_argument("--margin", type=float, default=None, help="scale the face box first")
    p.add_argument(
        "--fit-crops",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fit each face crop to the classifier's own size with OpenCV, as the "
        "daemon does (default: on; --no-fit-crops: the model's own resize, exactly "
        "as face-api preprocesses)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")


def analyzer(args: argparse.Namespace) -> FaceAnalyzer:
    """The analyzer the options describe (OpenVINO is loaded here, not when parsing)."""
    from expressiond.inference.analyzer import AnalyzerSettings, FaceAnalyzer

    return FaceAnalyzer(
        AnalyzerSettings(
            models_dir=models_dir(args),
            device=args.device,
            precision=args.precision,
            detector=args.detector,
            classifier=args.classifier,
            score_threshold=args.threshold,
            flip=args.flip,
            crop=args.crop,
            margin=args.margin,
            fit_crops=args.fit_crops,
        )
    )
