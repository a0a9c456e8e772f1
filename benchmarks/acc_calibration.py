"""``benchmarks/accuracy.py --fit-calibration [--config FILE]``: the calibration file the daemon ships
(daemon/expressiond/inference/calibration/faceapi-human-mean.json, [classifier] calibration =
"auto"/"builtin"), fitted on the labelled dev photos through the daemon's own classifier path.

Each photo's best face from the default detector is classified by the default [classifier]
members (or those of --config FILE's [classifier], written to --calibration-out) with
calibration "none" (FP32, the scores the daemon combines), then the per-label log
offsets of the research row "fa + hm mean + bias" are fitted on all photos (acc_stats.fit_bias:
class-balanced, L2 1.0). The file records what it was fitted on (photos, their labels' sha256,
classes, sources, method, versions) and the same offsets' cross-validated top-1 (fitted inside
the folds, 5-fold x 10, as the variant table reports it) beside the in-sample one.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import acc_stats as st
import acc_views as av
import numpy as np

from expressiond import paths
from expressiond.config.calibration import CALIBRATION_SCHEMA, FLOOR, member_spec
from expressiond.config.model import ClassifierConfig
from expressiond.inference.analyzer import FaceAnalyzer, product_settings
from expressiond.inference.ovcompat import VERSION as OV_VERSION

L2 = 1.0  # the research row "fa + hm mean + bias" (acc_stats.Variant default)
RESEARCH_ROW = "fa + hm mean + bias"


def uncalibrated_scores(dev: av.DevSet, models: Path, classifier: ClassifierConfig) -> np.ndarray:
    """[n, 7] combined scores of ``classifier`` with no calibration, as the daemon makes them."""
    settings = product_settings(models, classifiers=replace(classifier, calibration="none"))
    analyzer = FaceAnalyzer(settings)
    if analyzer.labels != av.LABELS:
        raise SystemExit(
            f"--fit-calibration: the classifier's labels are {analyzer.labels}, not the 7: use an ensemble"
        )
    out = np.zeros((len(dev.images), len(av.LABELS)))
    for i, image in enumerate(dev.images):
        found = analyzer.detect(image)
        box = found[0][2] if found else (0.0, 0.0, float(image.shape[1]), float(image.shape[0]))
        scores = analyzer.classify_face(image, box) or {}
        out[i] = [scores.get(label, 0.0) for label in av.LABELS]
    return out


def fit_calibration(
    dev: av.DevSet,
    dev_dir: Path,
    models: Path,
    out: Path,
    folds: int,
    repeats: int,
    classifier: ClassifierConfig | None = None,
) -> dict:
    """Fit and write the calibration of ``classifier`` (default: the daemon's default set)."""
    classifier = classifier or ClassifierConfig()
    scores = uncalibrated_scores(dev, models, classifier)
    y = dev.labels
    logp = np.log(np.clip(scores, FLOOR, 1.0))
    offsets = st.fit_bias(logp, y, len(av.LABELS), L2)
    variant = st.Variant(RESEARCH_ROW, "view", ("daemon",), calibrate=True, l2=L2)
    cv = st.cv_predictions(variant, {"daemon": scores}, y, av.LABELS, folds, repeats)
    in_sample = np.argmax(logp + offsets, 1)
    labels_csv = (dev_dir / "labels.csv").read_bytes()
    result = {
        "schema": CALIBRATION_SCHEMA,
        "kind": "log_offsets",
        "combine": classifier.combine,
        "members": [member_spec(m) for m in classifier.members],
        "labels": list(av.LABELS),
        "log_offsets": {lab: round(float(o), 6) for lab, o in zip(av.LABELS, offsets, strict=True)},
        "fitted_on": {
            "command": "benchmarks/accuracy.py --fit-calibration",
            "photos": len(y),
            "labels_csv_sha256": hashlib.sha256(labels_csv).hexdigest(),
            "per_class": {lab: int(np.sum(y == i)) for i, lab in enumerate(av.LABELS)},
            "per_source": {s: dev.sources.count(s) for s in sorted(set(dev.sources))},
            "faces": "the best face of the default detector per photo, FP32 on CPU (f32)",
            "method": "softmax(log max(p, 1e-4) + b), b fitted class-balanced with L2 "
            f"{L2:g} by 400 gradient steps (benchmarks/acc_stats.py fit_bias), on every photo",
            "in_sample_top1": round(float(np.mean(in_sample == y)), 4),
            f"cv_top1_{folds}fold_x{repeats}": round(float(np.mean(cv == y)), 4),
            "research_row": RESEARCH_ROW,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "openvino": OV_VERSION,
            "python": platform.python_version(),
        },
    }
    out.write_text(json.dumps(result, indent=1) + "\n")
    return result


def default_out() -> Path:
    return paths.builtin_calibration()
