"""The per-label log offsets a classifier set's scores get ([classifier] calibration = ...):
the file format, reading it, and whether it was fitted for the configured members.

A calibration file (JSON, made by ``benchmarks/accuracy.py --fit-calibration``)::

    {"schema": 1, "kind": "log_offsets", "combine": "mean",
     "members": [{"model": "face-api/expression", "weight": 1.0, "flip": true,
                  "crop": "auto", "margin": null}, ...],
     "labels": ["neutral", ...], "log_offsets": {"neutral": 0.04, ...},
     "fitted_on": {... what it was fitted on: photos, their hash, method, date ...}}

Scores become softmax(log(max(p, 1e-4)) + offset) per face: the class-bias calibration of
benchmarks/acc_stats.py, fitted on class-balanced labelled photos. Offsets fitted for one set
of members are wrong for another, so a file applies only to the members it names (order aside).

Thread: none of its own; pure functions, called at config check and at model compile.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from expressiond import paths
from expressiond.config.model import ClassifierConfig, EnsembleMember

CALIBRATION_SCHEMA = 1
FLOOR = 1e-4  # scores are clipped here before the log (benchmarks/acc_stats.py EPS)


class CalibrationError(ValueError):
    """Why a calibration cannot be used; the caller adds where it was configured."""


@dataclass(frozen=True)
class Calibration:
    source: str  # the file it was read from
    combine: str
    members: tuple[dict[str, Any], ...]
    offsets: dict[str, float]  # label -> log offset
    fitted_on: dict[str, Any] = field(default_factory=dict, compare=False)


def member_spec(member: EnsembleMember) -> dict[str, Any]:
    """How a calibration file names a member (one of ClassifierConfig.members: resolved)."""
    return {
        "model": member.model,
        "weight": member.weight,
        "flip": member.flip,
        "crop": member.crop,
        "margin": member.margin,
    }


def describe(members: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> str:
    """ "face-api/expression (flip) + human/emotion" for messages."""
    parts = []
    for m in members:
        extras = [k for k in ("flip",) if m.get(k)]
        extras += [f"crop {m['crop']}"] if m.get("crop", "auto") != "auto" else []
        extras += [f"margin {m['margin']:g}"] if m.get("margin") is not None else []
        extras += [f"weight {m['weight']:g}"] if m.get("weight", 1.0) != 1.0 else []
        parts.append(m.get("model", "?") + (f" ({', '.join(extras)})" if extras else ""))
    return " + ".join(parts)


def read_calibration(path: Path | str) -> Calibration:
    """The calibration in ``path``, or CalibrationError saying what is wrong with the file."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise CalibrationError(f"calibration file {path} not found; fix the path") from None
    except OSError as exc:
        raise CalibrationError(f"cannot read calibration file {path} ({exc.strerror})") from None
    except ValueError as exc:
        raise CalibrationError(f"calibration file {path} is not JSON ({exc})") from None
    if (
        not isinstance(raw, dict)
        or raw.get("schema") != CALIBRATION_SCHEMA
        or raw.get("kind") != "log_offsets"
    ):
        raise CalibrationError(
            f'{path} is not a calibration file (needs "schema": 1 and "kind": "log_offsets"); make '
            "one with benchmarks/accuracy.py --fit-calibration"
        )
    offsets = raw.get("log_offsets")
    members = raw.get("members")
    if (
        not isinstance(offsets, dict)
        or not offsets
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in offsets.values())
        or not all(math.isfinite(v) for v in offsets.values())
    ):
        raise CalibrationError(f"{path}: log_offsets must be an object of label: finite number")
    if not isinstance(members, list) or not members or not all(isinstance(m, dict) for m in members):
        raise CalibrationError(f"{path}: members must be a list of the member tables it was fitted for")
    return Calibration(
        source=str(path),
        combine=str(raw.get("combine", "mean")),
        members=tuple(_normalised(m) for m in members),
        offsets={str(k): float(v) for k, v in offsets.items()},
        fitted_on=raw.get("fitted_on") or {},
    )


def _normalised(member: dict[str, Any]) -> dict[str, Any]:
    """A file's member with the keys it leaves out at the [classifier] defaults."""
    spec = {"model": str(member.get("model")), "weight": 1.0, "flip": True, "crop": "auto", "margin": None}
    spec.update({k: member[k] for k in spec if k in member})
    spec["weight"] = float(spec["weight"])
    return spec


def _key(members) -> list[str]:
    return sorted(json.dumps(m, sort_keys=True) for m in members)


def fits(calibration: Calibration, classifier: ClassifierConfig) -> bool:
    """Was it fitted for these members, combined this way (member order aside)?"""
    members = [member_spec(m) for m in classifier.members]
    return calibration.combine == classifier.combine and _key(calibration.members) == _key(members)


def calibration_for(classifier: ClassifierConfig) -> Calibration | None:
    """The calibration the config asks for: None for "none" (and for "auto" when the shipped
    one was fitted for other members); CalibrationError when it cannot be used."""
    value = classifier.calibration
    if value == "none":
        return None
    builtin = value in ("auto", "builtin")
    calibration = read_calibration(paths.builtin_calibration() if builtin else Path(value))
    if fits(calibration, classifier):
        return calibration
    if value == "auto":
        return None
    mine = describe([member_spec(m) for m in classifier.members])
    what = "the builtin calibration" if builtin else f"{value}"
    raise CalibrationError(
        f"{what} was fitted for {describe(calibration.members)} ({calibration.combine}), not for "
        f'{mine} ({classifier.combine}); set calibration = "none" or fit one for these members '
        "with benchmarks/accuracy.py --fit-calibration"
    )


def check_labels(calibration: Calibration, labels: tuple[str, ...]) -> None:
    """The offsets must name exactly the labels the classifier set puts in events."""
    if set(calibration.offsets) != set(labels):
        raise CalibrationError(
            f"{calibration.source} has offsets for {sorted(calibration.offsets)} but the classifier "
            f"set's labels are {list(labels)}; fit it again for these labels"
        )


def output_labels(classifier: ClassifierConfig, member_labels: list[tuple[str, ...]]) -> tuple[str, ...]:
    """What events carry: an ensemble the 7 expression labels, a single model its own."""
    if classifier.is_ensemble:
        return paths.EXPRESSION_LABELS
    return member_labels[0]
