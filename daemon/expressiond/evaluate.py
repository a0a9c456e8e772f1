"""``expressiond evaluate DIR --labels CSV``: accuracy, per-class recall and confusion."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from .errors import ExpressiondError, UsageError
from .imageio import read_image
from .inference.analyzer import FaceAnalyzer


def read_labels(csv_path: Path, known: tuple[str, ...]) -> list[tuple[str, str]]:
    try:
        with open(csv_path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise UsageError(f"{csv_path}: cannot read labels ({exc.strerror})") from exc
    if not rows or "file" not in rows[0] or "label" not in rows[0]:
        raise UsageError(f"{csv_path}: needs a header with the columns file,label")
    out = []
    for n, row in enumerate(rows, 2):
        if row["label"] not in known:
            raise UsageError(
                f"{csv_path}:{n}: label {row['label']!r} is not one of the model's: {', '.join(known)}"
            )
        out.append((row["file"], row["label"]))
    return out


def evaluate(analyzer: FaceAnalyzer, image_dir: Path, labels_csv: Path, crops: bool,
             progress=None) -> dict:
    labels = analyzer.labels
    items = read_labels(labels_csv, labels)
    index = {label: i for i, label in enumerate(labels)}
    confusion = [[0] * len(labels) for _ in labels]
    correct = found = 0
    errors = []
    per_image = []
    for k, (name, truth) in enumerate(items, 1):
        try:
            image = read_image(image_dir / name)
        except ExpressiondError as exc:
            errors.append(str(exc))
            continue
        if crops:
            scores = analyzer.classify(image)
            found += 1
        else:
            faces = analyzer.analyze(image)
            if not faces:
                per_image.append({"file": name, "label": truth, "predicted": None})
                continue
            found += 1
            scores = max(faces, key=lambda f: f.score).scores  # one labelled face per image
        predicted = max(scores, key=scores.__getitem__)
        confusion[index[truth]][index[predicted]] += 1
        correct += predicted == truth
        per_image.append({"file": name, "label": truth, "predicted": predicted})
        if progress:
            progress(k, len(items))
    n = len(items) - len(errors)
    totals = [sum(1 for p in per_image if p["label"] == label) for label in labels]
    result = {
        "n": n,
        "accuracy": correct / n if n else 0.0,
        "per_class_recall": {
            label: (confusion[i][i] / totals[i] if totals[i] else 0.0) for i, label in enumerate(labels)
        },
        "labels": list(labels),
        "confusion": confusion,
        "detection_recall": found / n if n else 0.0,
        "device": analyzer.settings.device,
        "precision": analyzer.settings.precision,
        "crops": crops,
        "errors": errors,
        "images": per_image,
    }
    return result


def print_report(result: dict) -> None:
    labels = result["labels"]
    print(f"images: {result['n']}  accuracy: {result['accuracy']:.3f}  "
          f"detection recall: {result['detection_recall']:.3f}  "
          f"({result['device']}, {result['precision']}{', crops' if result['crops'] else ''})")
    print("per-class recall: " + ", ".join(
        f"{k} {v:.2f}" for k, v in result["per_class_recall"].items()))
    width = max(len(x) for x in labels) + 1
    print("confusion (rows: label, columns: predicted)")
    print(" " * width + " ".join(f"{x[:4]:>4}" for x in labels))
    for label, row in zip(labels, result["confusion"], strict=True):
        print(f"{label:<{width}}" + " ".join(f"{v:>4}" for v in row))
    for err in result["errors"]:
        print(f"expressiond: error: {err}", file=sys.stderr)


def dump_json(result: dict) -> None:
    print(json.dumps(result, indent=2))
