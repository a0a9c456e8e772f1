"""The networks of [classifier] as one classifier: each member crops the face its own way (its
metadata and crop/margin settings) and runs its own request; ``combine`` turns the members'
scores for one face into the set's scores.

An ensemble's labels are the 7 expression labels whatever its members have. ``combine``
"mean": per label, the weighted mean over the members that have the label (a label no member
has scores 0); then, with a calibration, softmax(log(max(p, 1e-4)) + offset) per label: the
class-bias calibration of benchmarks/acc_stats.py, so the daemon's scores equal the research
harness's. One model alone ([classifier] model = ...) keeps its own labels and its scores
pass through unchanged.

Thread: built in the main thread; ``crops`` and ``combine`` run in "inference-coordinator" (or
the one-shot command's thread); both only read the set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from expressiond.config.calibration import (
    FLOOR,
    Calibration,
    CalibrationError,
    calibration_for,
    check_labels,
    output_labels,
)
from expressiond.config.model import ClassifierConfig, EnsembleMember
from expressiond.errors import ConfigError, ModelError
from expressiond.inference.engine import CompiledNet


@dataclass(frozen=True)
class Member:
    net: CompiledNet
    weight: float
    positions: tuple[int, ...]  # where each of the net's labels sits in the set's labels

    @property
    def name(self) -> str:
        return self.net.meta.name


class ClassifierSet:
    def __init__(
        self,
        nets: list[CompiledNet],
        weights: list[float],
        labels: tuple[str, ...],
        *,
        calibration: Calibration | None = None,
        combine: str = "mean",
    ):
        if combine != "mean":
            raise ValueError(f"unknown combine {combine!r}")
        self.labels = tuple(labels)
        self.members = tuple(
            Member(net, float(w), tuple(self.labels.index(label) for label in net.meta.labels))
            for net, w in zip(nets, weights, strict=True)
        )
        self.calibration = calibration
        self.combine_kind = combine
        self._offsets = (
            None if calibration is None else np.array([calibration.offsets[label] for label in self.labels])
        )
        # one network whose labels are the set's and no calibration: scores pass through as they are
        first = self.members[0].net.meta.labels
        self.passthrough = len(self.members) == 1 and first == self.labels and calibration is None
        weights_per_label = np.zeros(len(self.labels))
        for m in self.members:
            weights_per_label[list(m.positions)] += m.weight
        self._norm = np.where(weights_per_label > 0, weights_per_label, 1.0)

    @classmethod
    def single(cls, net: CompiledNet) -> ClassifierSet:
        """One network with its own labels (what a single ``model = ...`` is)."""
        return cls([net], [1.0], net.meta.labels)

    @property
    def nets(self) -> tuple[CompiledNet, ...]:
        return tuple(m.net for m in self.members)

    def crops(self, image: np.ndarray, box) -> list[np.ndarray] | None:
        """Each member's input for the face at ``box``; None when a member gets no pixels."""
        out = []
        for m in self.members:
            crop = m.net.adapter.crop(image, box)
            if crop is None:
                return None
            out.append(crop)
        return out

    def combine(self, outputs: list[tuple[np.ndarray, ...]]) -> dict[str, float]:
        """The set's scores from each member's fetched outputs (in member order)."""
        if self.passthrough:
            return self.members[0].net.adapter.scores(outputs[0])
        total = np.zeros(len(self.labels))
        for m, out in zip(self.members, outputs, strict=True):
            values = np.fromiter(m.net.adapter.scores(out).values(), np.float64, len(m.positions))
            total[list(m.positions)] += m.weight * values
        scores = total / self._norm
        if self._offsets is not None:
            z = np.log(np.clip(scores, FLOOR, 1.0)) + self._offsets
            z = np.exp(z - z.max())
            scores = z / z.sum()
        return {label: float(v) for label, v in zip(self.labels, scores, strict=True)}

    @property
    def info(self) -> dict:
        """What OpenVINO reports for the first member (the stats' classifier entry as before),
        with every member's report under "members" for an ensemble."""
        out = dict(self.members[0].net.info)
        if not self.passthrough:
            out["members"] = [{"model": m.name, "weight": m.weight, **m.net.info} for m in self.members]
            out["combine"] = self.combine_kind
            out["calibration"] = self.calibration.source if self.calibration else None
        return out


def build_classifier_set(
    classifier: ClassifierConfig, compile_member: Callable[[EnsembleMember], CompiledNet]
) -> ClassifierSet:
    """Compile every member with ``compile_member`` and combine them as [classifier] says.
    (load_checked refuses a set that cannot hold together with the key's line first; this
    repeats the rules for callers that build from a config without it.)"""
    nets = [compile_member(m) for m in classifier.members]
    labels = output_labels(classifier, [n.meta.labels for n in nets])
    for net in nets:
        outside = [label for label in net.meta.labels if label not in labels]
        if outside:
            raise ModelError(
                f"{net.files.meta}: labels {outside} are not among the ensemble's {list(labels)}; "
                "rename them in the metadata or run the model alone with model = ..."
            )
    try:
        calibration = calibration_for(classifier)
        if calibration is not None:
            check_labels(calibration, labels)
    except CalibrationError as exc:
        raise ConfigError(f"classifier.calibration: {exc}") from None
    return ClassifierSet(
        nets,
        [m.weight for m in classifier.members],
        labels,
        calibration=calibration,
        combine=classifier.combine,
    )
