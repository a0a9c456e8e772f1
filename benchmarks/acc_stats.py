"""Combiners, cross-validation and paired statistics for benchmarks/accuracy.py (numpy only).

A variant turns the per-photo view scores ([n, 7] each, NaN where a model lacks a class) into
one predicted class per photo. Fixed variants (one view, a fixed-weight average) have nothing
to fit, so their cross-validated predictions are their in-sample ones; fitted variants (a
class-bias calibration, a logistic combiner) are fitted on the training folds only and predict
the held-out fold (repeated stratified k-fold, and leave-one-out).

``nested_selection`` estimates what *choosing the best row of the table* would score on
unseen photos: in each outer fold every variant is scored on the training part only (inner
CV for fitted ones), the best is taken and scored on the outer test fold.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from expressiond.inference.analyzer import merge_ensemble

EPS = 1e-4


@dataclass(frozen=True)
class Variant:
    name: str
    kind: str  # view | mean | geo | merge | logistic
    views: tuple[str, ...]
    weight: float = 0.5  # merge: the last view's weight on the labels it has
    calibrate: bool = False  # per-class offsets on top of a fixed combination, fitted
    l2: float = 1.0  # calibrate / logistic: L2 strength
    note: str = ""

    @property
    def fitted(self) -> bool:
        return self.calibrate or self.kind == "logistic"


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _argmax(scores: np.ndarray) -> np.ndarray:
    return np.argmax(np.nan_to_num(scores, nan=-1.0), 1)


def fixed_scores(v: Variant, scores: dict[str, np.ndarray], labels: tuple[str, ...]) -> np.ndarray:
    """[n, K] combined scores of a variant with nothing to fit."""
    mats = [scores[name] for name in v.views]
    if v.kind == "view":
        return mats[0]
    if v.kind == "mean":
        return np.nanmean(np.stack(mats), 0)
    if v.kind == "geo":  # normalised geometric mean (views with every class)
        return _softmax(np.mean(np.log(np.clip(np.stack(mats), EPS, 1.0)), 0))
    if v.kind == "merge":  # the mean of all but the last view, merge_ensemble'd with the last
        primary = np.nanmean(np.stack(mats[:-1]), 0)
        out = np.zeros_like(primary)
        for i in range(len(primary)):
            a = {lab: primary[i, k] for k, lab in enumerate(labels)}
            b = {lab: mats[-1][i, k] for k, lab in enumerate(labels) if not np.isnan(mats[-1][i, k])}
            merged = merge_ensemble(a, b, v.weight)
            out[i] = [merged[lab] for lab in labels]
        return out
    raise ValueError(v.kind)


def features(v: Variant, scores: dict[str, np.ndarray]) -> np.ndarray:
    """log-probabilities of the classes each view has, side by side."""
    cols = []
    for name in v.views:
        m = scores[name]
        keep = ~np.isnan(m).all(0)
        cols.append(np.log(np.clip(m[:, keep], EPS, 1.0)))
    return np.hstack(cols)


def _balance(y: np.ndarray, k: int) -> np.ndarray:
    """Per-sample weights that give every class the same total (mean 1): without them a
    leave-one-out fold, one photo short in its class, learns a bias against that class."""
    counts = np.bincount(y, minlength=k).astype(float)
    w = len(y) / (k * counts[y])
    return w[:, None]


def fit_bias(logp: np.ndarray, y: np.ndarray, k: int, l2: float, iters: int = 400) -> np.ndarray:
    """Per-class offsets b in softmax(log p + b), class-balanced, L2-penalised, by gradient
    descent."""
    onehot, sw = np.eye(k)[y], _balance(y, k)
    b = np.zeros(k)
    for _ in range(iters):
        g = (sw * (_softmax(logp + b) - onehot)).mean(0) + l2 * b / len(y)
        b -= 2.0 * g
    return b


def fit_logistic(x: np.ndarray, y: np.ndarray, k: int, l2: float, iters: int = 600):
    """Class-balanced multinomial logistic regression on standardised features: (mu, sd, W, b)."""
    mu, sd = x.mean(0), x.std(0) + 1e-6
    z = (x - mu) / sd
    n, d = z.shape
    onehot, sw = np.eye(k)[y], _balance(y, k)
    w, b = np.zeros((d, k)), np.zeros(k)
    lr = 1.0 / (0.5 * sw.max() * np.linalg.eigvalsh(z.T @ z / n).max() + l2 / n)
    for _ in range(iters):
        g = sw * (_softmax(z @ w + b) - onehot) / n
        w -= lr * (z.T @ g + l2 * w / n)
        b -= lr * g.sum(0)
    return mu, sd, w, b


def fit_predict(v: Variant, scores, y, train, test, labels, apply=None) -> np.ndarray:
    """Predicted classes for ``test`` from a fitted variant trained on ``train``; ``apply``:
    other scores of the same photos to predict from (FP16 with weights fitted on FP32)."""
    k = len(labels)
    apply = scores if apply is None else apply
    if v.calibrate:  # offsets on the log of the fixed combination's scores

        def logs(sc):
            return np.log(np.clip(np.nan_to_num(fixed_scores(v, sc, labels), nan=0.0), EPS, 1.0))

        b = fit_bias(logs(scores)[train], y[train], k, v.l2)
        return np.argmax(logs(apply)[test] + b, 1)
    mu, sd, w, b = fit_logistic(features(v, scores)[train], y[train], k, v.l2)
    return np.argmax(((features(v, apply)[test] - mu) / sd) @ w + b, 1)


def fitted_params(v: Variant, scores, y, labels) -> dict | None:
    """What a weights file would hold: the variant fitted on every photo (FP32 scores)."""
    if v.calibrate:
        x = np.log(np.clip(np.nan_to_num(fixed_scores(v, scores, labels), nan=0.0), EPS, 1.0))
        b = fit_bias(x, y, len(labels), v.l2)
        return {"log_offsets": {lab: round(float(o), 4) for lab, o in zip(labels, b, strict=True)}}
    if v.kind == "logistic":
        mu, sd, w, b = fit_logistic(features(v, scores), y, len(labels), v.l2)
        return {
            "mean": mu.round(5).tolist(),
            "sd": sd.round(5).tolist(),
            "W": w.round(5).tolist(),
            "b": b.round(5).tolist(),
        }
    return None


def stratified_folds(y: np.ndarray, folds: int, rng: np.random.Generator) -> list[np.ndarray]:
    out: list[list[int]] = [[] for _ in range(folds)]
    start = 0
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        for j, i in enumerate(idx):
            out[(start + j) % folds].append(int(i))
        start += len(idx)
    return [np.array(sorted(f)) for f in out]


def cv_predictions(v: Variant, scores, y, labels, folds: int, seeds: int, apply=None) -> np.ndarray:
    """[seeds, n] out-of-fold predictions (fixed variants: the in-sample ones, repeated)."""
    n = len(y)
    if not v.fitted:
        return np.tile(_argmax(fixed_scores(v, apply or scores, labels)), (seeds, 1))
    out = np.zeros((seeds, n), int)
    for s in range(seeds):
        for test in stratified_folds(y, folds, np.random.default_rng(1000 + s)):
            train = np.setdiff1d(np.arange(n), test)
            out[s, test] = fit_predict(v, scores, y, train, test, labels, apply)
    return out


def loo_predictions(v: Variant, scores, y, labels, apply=None) -> np.ndarray:
    if not v.fitted:
        return _argmax(fixed_scores(v, apply or scores, labels))
    n = len(y)
    out = np.zeros(n, int)
    for i in range(n):
        train = np.delete(np.arange(n), i)
        out[i] = fit_predict(v, scores, y, train, np.array([i]), labels, apply)[0]
    return out


def in_sample(v: Variant, scores, y, labels, apply=None) -> np.ndarray:
    if not v.fitted:
        return _argmax(fixed_scores(v, apply or scores, labels))
    everything = np.arange(len(y))
    return fit_predict(v, scores, y, everything, everything, labels, apply)


def recall_per_class(pred: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """[seeds, k] recall of each class for [seeds, n] predictions."""
    pred = np.atleast_2d(pred)
    return np.array([[np.mean(p[y == c] == c) for c in range(k)] for p in pred])


def binomial_two_sided(b: int, c: int) -> float:
    """Exact McNemar test: P(as or more lopsided than b vs c discordant photos | no difference)."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired(correct: np.ndarray, base: np.ndarray, draws: int = 5000, seed: int = 17) -> dict:
    """Paired bootstrap over photos of the accuracy difference (per-photo correctness may be
    a fraction over CV repeats) and McNemar on the majority verdicts."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(correct), (draws, len(correct)))
    diff = correct[idx].mean(1) - base[idx].mean(1)
    acc = correct[idx].mean(1)
    win, lose = correct >= 0.5, base >= 0.5
    b, c = int(np.sum(win & ~lose)), int(np.sum(~win & lose))
    return {
        "delta_points": round(float(correct.mean() - base.mean()) * 100, 1),
        "delta_90ci_points": [round(float(np.percentile(diff, q)) * 100, 1) for q in (5, 95)],
        "p_not_better": round(float(np.mean(diff <= 0)), 3),
        "accuracy_90ci": [round(float(np.percentile(acc, q)), 3) for q in (5, 95)],
        "mcnemar": {
            "only_variant_right": b,
            "only_default_right": c,
            "p": round(binomial_two_sided(b, c), 3),
        },
    }


def nested_selection(
    variants: list[Variant],
    scores,
    y,
    labels,
    folds: int,
    seeds: int,
    say: Callable[[str], None] | None = None,
) -> dict:
    """Accuracy of "take the variant that is best on the training photos", on held-out folds."""
    n = len(y)
    fixed = {v.name: _argmax(fixed_scores(v, scores, labels)) for v in variants if not v.fitted}
    accs, picks = [], {}
    correct = np.zeros((seeds, n))
    for s in range(seeds):
        rng = np.random.default_rng(5000 + s)
        for test in stratified_folds(y, folds, rng):
            train = np.setdiff1d(np.arange(n), test)
            best, best_score = None, -1.0
            for v in variants:
                if v.fitted:
                    hits = 0
                    for inner in stratified_folds(y[train], folds, rng):
                        tr, te = np.delete(train, inner), train[inner]
                        hits += int(np.sum(fit_predict(v, scores, y, tr, te, labels) == y[te]))
                    score = hits / len(train)
                else:
                    score = float(np.mean(fixed[v.name][train] == y[train]))
                if score > best_score + 1e-12:
                    best, best_score = v, score
            pred = (
                fit_predict(best, scores, y, train, test, labels) if best.fitted else fixed[best.name][test]
            )
            correct[s, test] = pred == y[test]
            picks[best.name] = picks.get(best.name, 0) + 1
        accs.append(float(correct[s].mean()))
        if say:
            say(f"nested selection: repeat {s + 1}/{seeds}: {accs[-1]:.3f}")
    return {
        "accuracy": round(float(np.mean(accs)), 4),
        "sd_over_repeats": round(float(np.std(accs)), 4),
        "picked": dict(sorted(picks.items(), key=lambda kv: -kv[1])),
        "per_photo_correct": correct.mean(0),
    }
