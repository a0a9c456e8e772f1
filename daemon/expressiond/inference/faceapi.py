"""Model wrappers: one network's output post-processing, nothing about scheduling.

Detector post-processing copies face-api's SsdMobilenetv1.locateFaces exactly (candidate
filter, greedy NMS, box rescaling by the *rounded* resized dimensions) so that boxes match the
original to 1e-3; the classifier crop copies extractFaceTensors (clip at the borders, floor).

Thread: "inference-coordinator" or an analyzer's caller; pure functions.
"""

from __future__ import annotations

import math

import numpy as np

from expressiond.events import Box


def js_round(x: float) -> int:
    """JavaScript Math.round: halves go up."""
    return math.floor(x + 0.5)


def nms_faceapi(
    boxes: np.ndarray, scores: np.ndarray, max_results: int, iou_threshold: float, score_threshold: float
) -> list[int]:
    cand = np.nonzero(scores > score_threshold)[0]
    order = cand[np.argsort(-scores[cand], kind="stable")]
    y0 = np.minimum(boxes[:, 0], boxes[:, 2])
    x0 = np.minimum(boxes[:, 1], boxes[:, 3])
    y1 = np.maximum(boxes[:, 0], boxes[:, 2])
    x1 = np.maximum(boxes[:, 1], boxes[:, 3])
    area = (y1 - y0) * (x1 - x0)
    selected: list[int] = []
    for i in order:
        if len(selected) >= max_results:
            break
        if selected:
            s = np.asarray(selected)
            iy = np.maximum(np.minimum(y1[i], y1[s]) - np.maximum(y0[i], y0[s]), 0.0)
            ix = np.maximum(np.minimum(x1[i], x1[s]) - np.maximum(x0[i], x0[s]), 0.0)
            inter = iy * ix
            iou = np.where((area[i] <= 0) | (area[s] <= 0), 0.0, inter / (area[i] + area[s] - inter))
            if np.any(iou > iou_threshold):
                continue
        selected.append(int(i))
    return selected


def decode_detections(
    boxes: np.ndarray,
    scores: np.ndarray,
    width: int,
    height: int,
    input_size: int = 512,
    score_threshold: float = 0.5,
    iou_threshold: float = 0.5,
    max_results: int = 100,
) -> list[tuple[float, Box, Box]]:
    """-> [(score, relative box (x, y, w, h) in 0..1 of the image, pixel box)] in NMS order."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    keep = nms_faceapi(boxes, scores, max_results, iou_threshold, score_threshold)
    scale = input_size / max(height, width)
    pad_x = input_size / js_round(width * scale)
    pad_y = input_size / js_round(height * scale)
    out = []
    for i in keep:
        top = max(0.0, float(boxes[i, 0])) * pad_y
        bottom = min(1.0, float(boxes[i, 2])) * pad_y
        left = max(0.0, float(boxes[i, 1])) * pad_x
        right = min(1.0, float(boxes[i, 3])) * pad_x
        rel = (left, top, right - left, bottom - top)
        px = (rel[0] * width, rel[1] * height, rel[2] * width, rel[3] * height)
        out.append((float(scores[i]), rel, px))
    return out


def crop_box(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    """face-api Box.clipAtImageBorders(...).floor(): integer x, y, w, h inside the image."""
    x, y, w, h = box
    cx, cy = max(x, 0.0), max(y, 0.0)
    cw = min(x + w - cx, width - cx)
    ch = min(y + h - cy, height - cy)
    return math.floor(cx), math.floor(cy), math.floor(cw), math.floor(ch)


def face_crop(image: np.ndarray, box: Box) -> np.ndarray | None:
    """The classifier input for one face, or None when the clipped box is empty."""
    x, y, w, h = crop_box(box, image.shape[1], image.shape[0])
    if w <= 0 or h <= 0:
        return None
    return np.ascontiguousarray(image[y : y + h, x : x + w])


def expression_scores(probs: np.ndarray, labels: tuple[str, ...]) -> dict[str, float]:
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    return {label: float(v) for label, v in zip(labels, p, strict=True)}
