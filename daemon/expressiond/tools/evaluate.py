"""``expressiond evaluate DIR --labels CSV``: accuracy, per-class recall, confusion and detection
recall on labelled photos (one face each); ``evaluate_clip``/``run_clips``: faces per frame on
video clips (the detector's view of a real scene, no labels needed).

A label the classifier does not have (the Open Model Zoo emotions net has no fearful or
disgusted) is counted as a miss for every such image, not refused: the accuracy stays over all
images, and ``labels_not_in_model`` names them. A photo where no face is found is a miss too.

Thread: the command's main thread.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

from expressiond.errors import ExpressiondError, InputError, UsageError
from expressiond.inference.analyzer import FaceAnalyzer
from expressiond.tools import options
from expressiond.tools.imageio import read_image
from expressiond.tracking import iou

MAX_CLIP_FRAMES = 5000


def read_labels(csv_path: Path, known: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(file, label) rows of a CSV with the columns file,label. ``known`` is accepted for
    compatibility; labels outside it are kept (they count as misses)."""
    try:
        with open(csv_path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise UsageError(f"{csv_path}: cannot read labels ({exc.strerror})") from exc
    if not rows or "file" not in rows[0] or "label" not in rows[0]:
        raise UsageError(f"{csv_path}: needs a header with the columns file,label")
    out = []
    for n, row in enumerate(rows, 2):
        if not row["file"] or not row["label"]:
            raise UsageError(f"{csv_path}:{n}: file and label must not be empty")
        out.append((row["file"], row["label"]))
    return out


def _median_ms(values: list[float]) -> float | None:
    return round(float(np.median(values)) * 1000, 3) if values else None


def evaluate(analyzer: FaceAnalyzer, image_dir: Path, labels_csv: Path, crops: bool, progress=None) -> dict:
    items = read_labels(labels_csv)
    model_labels = analyzer.labels
    extra = [label for label in dict.fromkeys(lab for _f, lab in items) if label not in model_labels]
    labels = tuple(model_labels) + tuple(extra)
    index = {label: i for i, label in enumerate(labels)}
    confusion = [[0] * len(labels) for _ in labels]
    correct = found = 0
    errors = []
    per_image = []
    detect_s: list[float] = []
    classify_s: list[float] = []
    for k, (name, truth) in enumerate(items, 1):
        try:
            image = read_image(image_dir / name)
        except ExpressiondError as exc:
            errors.append(str(exc))
            continue
        if crops:
            t0 = time.perf_counter()
            scores = analyzer.classify(image)
            classify_s.append(time.perf_counter() - t0)
            found += 1
        else:
            t0 = time.perf_counter()
            faces = analyzer.detect(image)
            detect_s.append(time.perf_counter() - t0)
            if not faces:
                per_image.append({"file": name, "label": truth, "predicted": None})
                if progress:
                    progress(k, len(items))
                continue
            found += 1
            _score, _rel, box = faces[0]  # best first; one labelled face per image
            t0 = time.perf_counter()
            scores = analyzer.classify_face(image, box) or {}
            classify_s.append(time.perf_counter() - t0)
        if not scores:
            per_image.append({"file": name, "label": truth, "predicted": None})
            continue
        predicted = max(scores, key=scores.__getitem__)
        confusion[index[truth]][index[predicted]] += 1
        correct += predicted == truth
        per_image.append(
            {"file": name, "label": truth, "predicted": predicted, "confidence": round(scores[predicted], 4)}
        )
        if progress:
            progress(k, len(items))
    n = len(items) - len(errors)
    totals = [sum(1 for p in per_image if p["label"] == label) for label in labels]
    s = analyzer.settings
    cls = analyzer.classifier_config
    return {
        "n": n,
        "accuracy": correct / n if n else 0.0,
        "per_class_recall": {
            label: (confusion[i][i] / totals[i] if totals[i] else 0.0) for i, label in enumerate(labels)
        },
        "labels": list(labels),
        "labels_not_in_model": extra,
        "confusion": confusion,
        "detection_recall": found / n if n else 0.0,
        "device": s.device,
        "precision": s.precision,
        "crops": crops,
        "detector": None if crops else s.detector,
        "classifier": cls.model or "ensemble",
        "classifiers": [
            {
                "model": m.name,
                "weight": m.weight,
                "flip": m.net.adapter.flip,
                "crop": {"square": m.net.adapter.crop_square, "enlarge": m.net.adapter.crop_enlarge},
                "median_ms": _median_ms(seconds),
            }
            for m, seconds in zip(analyzer.classifiers.members, analyzer.member_seconds, strict=True)
        ],
        "combine": None if analyzer.classifiers.passthrough else analyzer.classifiers.combine_kind,
        "calibration": analyzer.classifiers.calibration.source if analyzer.classifiers.calibration else None,
        "flip": analyzer.classifier.adapter.flip,
        "crop": {
            "square": analyzer.classifier.adapter.crop_square,
            "enlarge": analyzer.classifier.adapter.crop_enlarge,
        },
        "ensemble": s.ensemble,
        # per face: detection, every member (its crop, inference and copy) and the whole
        # classification (all members and the combination)
        "median_ms": {"detect": _median_ms(detect_s), "classify": _median_ms(classify_s)},
        "errors": errors,
        "images": per_image,
    }


def print_report(result: dict) -> None:
    labels = result["labels"]
    print(
        f"images: {result['n']}  accuracy: {result['accuracy']:.3f}  "
        f"detection recall: {result['detection_recall']:.3f}  "
        f"({result['device']}, {result['precision']}{', crops' if result['crops'] else ''})"
    )
    if result.get("labels_not_in_model"):
        print("labels the model lacks (counted as misses): " + ", ".join(result["labels_not_in_model"]))
    print("per-class recall: " + ", ".join(f"{k} {v:.2f}" for k, v in result["per_class_recall"].items()))
    members = " + ".join(f"{m['model']} {m['median_ms'] or 0:.2f}" for m in result["classifiers"])
    how = (
        f", {result['combine']}" + (", calibrated" if result["calibration"] else "")
        if result["combine"]
        else ""
    )
    total = result["median_ms"]["classify"] or 0
    print(f"classifier ms per face (median): {members} -> {total:.2f} in all{how}")
    width = max(len(x) for x in labels) + 1
    print("confusion (rows: label, columns: predicted)")
    print(" " * width + " ".join(f"{x[:4]:>4}" for x in labels))
    for label, row in zip(labels, result["confusion"], strict=True):
        print(f"{label:<{width}}" + " ".join(f"{v:>4}" for v in row))
    for err in result["errors"]:
        print(f"expressiond: error: {err}", file=sys.stderr)


def dump_json(result: dict) -> None:
    print(json.dumps(result, indent=2))


# --- clips: faces per frame ----------------------------------------------------------------


def read_clip(path: str | Path, max_frames: int = MAX_CLIP_FRAMES) -> list[np.ndarray]:
    """Every frame of a video file (GIF, AVI, MP4, ...) as u8 BGR, at most ``max_frames``."""
    import cv2

    if not Path(path).is_file():
        raise InputError(f"{path}: no such video file")
    cap = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    try:
        while len(frames) < max_frames:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
    finally:
        cap.release()
    if not frames:
        raise InputError(f"{path}: OpenCV cannot read a frame from it (not a video?)")
    return frames


def evaluate_clip(analyzer: FaceAnalyzer, clip: str | Path, frames: list[np.ndarray] | None = None) -> dict:
    """Faces per frame (and their boxes) for every frame of a clip, with the detector's time."""
    frames = read_clip(clip) if frames is None else frames
    counts, boxes, times = [], [], []
    for frame in frames:
        t0 = time.perf_counter()
        faces = analyzer.detect(frame)
        times.append(time.perf_counter() - t0)
        counts.append(len(faces))
        boxes.append([[round(float(v), 4) for v in rel] for _s, rel, _px in faces])
    return {
        "clip": str(clip),
        "frames": len(frames),
        "size": [int(frames[0].shape[1]), int(frames[0].shape[0])],
        "detector": analyzer.settings.detector,
        "precision": analyzer.settings.precision,
        "faces_per_frame": counts,
        "faces_min": min(counts),
        "faces_mean": round(float(np.mean(counts)), 3),
        "faces_max": max(counts),
        "frames_without_face": sum(c == 0 for c in counts),
        "detect_ms_median": _median_ms(times),
        "boxes": boxes,  # relative (x, y, w, h) per face, per frame
    }


def lost_faces(reference: list[list], candidate: list[list], iou_min: float = 0.3) -> int:
    """Faces (relative boxes, per frame) in ``reference`` with no box of IoU >= iou_min in the
    same frame of ``candidate``: what switching from one detector to the other would lose."""
    lost = 0
    for ref_boxes, cand_boxes in zip(reference, candidate, strict=True):
        lost += sum(1 for r in ref_boxes if not any(iou(r, c) >= iou_min for c in cand_boxes))
    return lost


def run_clips(analyzer: FaceAnalyzer, clips: list[str], as_json: bool) -> int:
    """``expressiond evaluate-detector VIDEO...``: faces per frame per clip; exit 1 if a clip
    cannot be read."""
    results, failed = [], 0
    for clip in clips:
        try:
            result = evaluate_clip(analyzer, clip)
        except ExpressiondError as exc:
            failed += 1
            print(f"expressiond: error: {exc}", file=sys.stderr)
            results.append({"clip": clip, "error": str(exc)})
            continue
        results.append(result)
        if not as_json:
            print(
                f"{clip}: {result['frames']} frames, faces per frame min {result['faces_min']} "
                f"mean {result['faces_mean']:.2f} max {result['faces_max']}, "
                f"{result['frames_without_face']} without a face, detector "
                f"{result['detect_ms_median']:.1f} ms/frame (median)"
            )
    if as_json:
        print(json.dumps([{k: v for k, v in r.items() if k != "boxes"} for r in results], indent=2))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """``python -m expressiond.tools.evaluate VIDEO... [model options]`` (clip mode, as
    ``expressiond evaluate-detector``)."""
    parser = argparse.ArgumentParser(
        prog="python -m expressiond.tools.evaluate", description="faces per frame on video clips"
    )
    parser.add_argument("clips", nargs="+", metavar="VIDEO")
    options.add_model_options(parser)
    args = parser.parse_args(argv)
    try:
        return run_clips(options.analyzer(args), args.clips, args.json)
    except ExpressiondError as exc:
        print(f"expressiond: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
