"""Detector post-processing and crops follow face-api's rules exactly."""

from __future__ import annotations

import numpy as np

from expressiond.inference.faceapi import crop_box, decode_detections, js_round, nms_faceapi


def test_js_round_rounds_halves_up():
    assert [js_round(v) for v in (0.5, 1.5, 2.5, -0.5, 341.33)] == [1, 2, 3, 0, 341]


def test_nms_keeps_best_and_drops_overlaps_above_threshold():
    boxes = np.array([[0, 0, 1, 1], [0, 0, 1, 0.9], [0, 0, 0.5, 0.5], [2, 2, 3, 3]], np.float32)
    scores = np.array([0.9, 0.95, 0.8, 0.4], np.float32)
    # box 1 (best) suppresses box 0 (IoU 0.9); box 2 overlaps box 1 by 0.25/0.9 < 0.5: kept;
    # box 3 is under the score threshold
    assert nms_faceapi(boxes, scores, 100, 0.5, 0.5) == [1, 2]
    assert nms_faceapi(boxes, scores, 1, 0.5, 0.5) == [1]


def test_boxes_are_rescaled_by_rounded_resized_dims():
    # 1920x1280 -> resized 512x341 (rounded): pad_y = 512 / 341, not 1.5
    boxes = np.array([[0.5, 0.25, 0.6, 0.5]], np.float32)
    ((score, rel, px),) = decode_detections(boxes, np.array([0.9], np.float32), 1920, 1280)
    assert score == np.float32(0.9)
    assert abs(rel[1] - 0.5 * 512 / 341) < 1e-9
    assert abs(rel[0] - 0.25) < 1e-9
    assert abs(px[3] - (0.6 - 0.5) * 512 / 341 * 1280) < 1e-3


def test_crop_is_clipped_at_borders_and_floored():
    assert crop_box((-10.5, 5.7, 30.2, 20.9), 100, 100) == (0, 5, 19, 20)
    assert crop_box((90.2, 95.5, 30.0, 30.0), 100, 100) == (90, 95, 9, 4)
