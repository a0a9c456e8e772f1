"""``expressiond classify IMAGE...``: faces, expressions and confidences per photo.

Thread: the command's main thread.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import cv2

from expressiond.errors import ExpressiondError
from expressiond.events import Face
from expressiond.inference.analyzer import FaceAnalyzer
from expressiond.tools.imageio import read_image

log = logging.getLogger(__name__)


def face_json(face: Face) -> dict:
    return {
        "box": [round(float(v), 2) for v in face.box],
        "detection_score": round(face.score, 4),
        "expression": face.expression,
        "confidence": round(face.confidence, 4),
        "scores": {k: round(v, 4) for k, v in face.scores.items()},
    }


def annotate(image, faces: list[Face], out_path: Path) -> None:
    canvas = image.copy()
    thickness = max(2, round(max(image.shape[:2]) / 400))
    for face in faces:
        x, y, w, h = (round(v) for v in face.box)
        cv2.rectangle(canvas, (x, y), (x + w, y + h), (0, 220, 0), thickness)
        label = f"{face.expression} {face.confidence:.2f}"
        scale = thickness / 2.5
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        ty = max(y - base - 2, th + 2)
        cv2.rectangle(canvas, (x, ty - th - 2), (x + tw + 4, ty + base), (0, 220, 0), -1)
        cv2.putText(canvas, label, (x + 2, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness)
    if not cv2.imwrite(str(out_path), canvas):
        raise ExpressiondError(f"{out_path}: cannot write the annotated image")


def run_classify(analyzer: FaceAnalyzer, images: list[str], as_json: bool, annotate_dir: Path | None) -> int:
    results = []
    failed = 0
    if annotate_dir:
        annotate_dir.mkdir(parents=True, exist_ok=True)
    for path in images:
        try:
            image = read_image(path)
            faces = analyzer.analyze(image)
            if annotate_dir:
                annotate(image, faces, annotate_dir / (Path(path).stem + ".annotated.jpg"))
        except ExpressiondError as exc:
            failed += 1
            print(f"expressiond: error: {exc}", file=sys.stderr)
            results.append({"image": path, "faces": [], "error": str(exc)})
            continue
        results.append({"image": path, "faces": [face_json(f) for f in faces], "error": None})
        if not as_json:
            print(f"{path}: {len(faces)} face{'s' if len(faces) != 1 else ''}")
            for i, f in enumerate(faces, 1):
                x, y, w, h = (round(v) for v in f.box)
                print(f"  #{i} {f.expression:<9} {f.confidence:.2f}  box x={x} y={y} w={w} h={h}")
    if as_json:
        print(json.dumps(results, indent=2))
    return 1 if failed else 0
