"""The on-disk check of [classifier]: the members' labels (from their metadata files) and the
calibration file, so that a classifier set that cannot hold together is refused at start, at a
SIGHUP reload and by check-config with the file:line of the key to fix, before any model is
compiled.

Rules: an ensemble's members may only have labels among the 7 expression labels (events carry
those 7 whatever the members have); with two or more members each must share at least one label
with the others (else there is nothing to combine); the calibration must be readable, fitted for
these members, and name exactly the labels the events carry.

Thread: none of its own; called by loader.check_model_files (main thread), which makes each
problem's error (file, line, key) with ``error``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from expressiond import paths
from expressiond.config.calibration import CalibrationError, calibration_for, check_labels, output_labels
from expressiond.config.lines import KeyPath
from expressiond.config.model import Config
from expressiond.errors import ConfigError, ExpressiondError, ModelError


def metadata_path(cfg: Config, name: str) -> Path:
    """The metadata file of a model name or .xml path, at the classifier's precision."""
    if name in paths.NAMED_MODELS:
        precision = cfg.model_precision(cfg.classifier)
        return paths.builtin_model_dir(cfg.models_path(), name, precision) / "model.json"
    return Path(name).with_suffix(".json")


ErrorFactory = Callable[[type, KeyPath, str], ExpressiondError]  # loader._error for this config


def member_labels(cfg: Config, name: str) -> tuple[str, ...]:
    """The labels in a member's metadata file; ValueError saying why they cannot be read."""
    meta = metadata_path(cfg, name)
    try:
        raw = json.loads(meta.read_text())
        labels = raw["labels"]
        if not isinstance(labels, list) or not all(isinstance(x, str) and x for x in labels) or not labels:
            raise TypeError("labels must be a non-empty list of strings")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ValueError(
            f"{meta}: unreadable model metadata, no labels ({reason}); fix the metadata file or "
            "build the model again"
        ) from None
    return tuple(labels)


def classifier_set_problems(cfg: Config, error: ErrorFactory) -> list[ExpressiondError]:
    """Every reason the classifier set cannot run, each naming its key (empty: it can)."""
    classifier = cfg.classifier
    if classifier.is_ensemble:
        keys: list[KeyPath] = [
            ("classifier", "ensemble", i, "model") for i in range(len(classifier.ensemble))
        ]
    else:
        keys = [("classifier", "model")]
    problems: list[ExpressiondError] = []
    labels: list[tuple[str, ...]] = []
    for member, key in zip(classifier.members, keys, strict=True):
        try:
            labels.append(member_labels(cfg, member.model))
        except ValueError as exc:
            problems.append(error(ModelError, key, str(exc)))
    if problems:
        return problems
    if classifier.is_ensemble:
        for member, key, own in zip(classifier.members, keys, labels, strict=True):
            outside = [label for label in own if label not in paths.EXPRESSION_LABELS]
            if outside:
                problems.append(
                    error(
                        ConfigError,
                        key,
                        f"{member.model} has labels {outside} outside the 7 an ensemble's events carry "
                        f"({', '.join(paths.EXPRESSION_LABELS)}); rename them in its metadata or run "
                        "it alone with model = ...",
                    )
                )
        for i, (member, key) in enumerate(zip(classifier.members, keys, strict=True)):
            others = {label for j, own in enumerate(labels) if j != i for label in own}
            if len(labels) > 1 and not others & set(labels[i]):
                problems.append(
                    error(
                        ConfigError,
                        key,
                        f"{member.model} shares no label with the other members ({sorted(others)}), so "
                        "there is nothing to combine; remove it or use a classifier of the same expressions",
                    )
                )
    try:
        calibration = calibration_for(classifier)
        if calibration is not None:
            check_labels(calibration, output_labels(classifier, labels))
    except CalibrationError as exc:
        problems.append(error(ConfigError, ("classifier", "calibration"), str(exc)))
    return problems
