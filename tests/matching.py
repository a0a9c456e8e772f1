"""Pair the faces a run found with the faces it should find by content (box IoU), never by
position: on a CPU with AMX the FP16 IR runs in bf16 and two faces with near-equal scores can
swap places in a best-first list (issue 13).

The assignment is one-to-one, greedy on descending IoU, ties broken by the boxes' coordinates,
so it gives the same pairs for any order of either list. Greedy is optimal here: with
``min_iou`` >= 0.5 and boxes already separated by NMS, a box has at most one partner above the
threshold in practice, and greedy only differs from an optimal (Hungarian) assignment when a
box has two.
"""

from __future__ import annotations

from collections.abc import Sequence

from expressiond.tracking import iou

Box = Sequence[float]
MIN_IOU = 0.5  # a face found where the reference has one; the tolerances come after


def match_boxes(expected: Sequence[Box], found: Sequence[Box], min_iou: float = MIN_IOU):
    """-> sorted [(expected index, found index, IoU)], one-to-one, IoU >= min_iou."""
    candidates = []
    for i, e in enumerate(expected):
        for j, f in enumerate(found):
            v = iou(tuple(e), tuple(f))
            if v >= min_iou:
                candidates.append((-v, tuple(e), tuple(f), i, j))
    candidates.sort(key=lambda c: c[:3])  # content only: the indices never break a tie
    used_e: set[int] = set()
    used_f: set[int] = set()
    pairs = []
    for neg, _e, _f, i, j in candidates:
        if i not in used_e and j not in used_f:
            used_e.add(i)
            used_f.add(j)
            pairs.append((i, j, -neg))
    return sorted(pairs)


def pair_all(expected: Sequence[Box], found: Sequence[Box], min_iou: float = MIN_IOU):
    """``match_boxes``, asserting that every expected box has its partner; the message names
    the unmatched ones with their best IoU among the found boxes."""
    pairs = match_boxes(expected, found, min_iou)
    matched = {i for i, _, _ in pairs}
    lost = [
        f"#{i} {[round(v, 3) for v in e]} (best IoU {_best(e, found):.3f})"
        for i, e in enumerate(expected)
        if i not in matched
    ]
    assert not lost, f"{len(lost)} of {len(expected)} expected faces not found at IoU >= {min_iou}: {lost}"
    return pairs


def _best(box: Box, found: Sequence[Box]) -> float:
    return max((iou(tuple(box), tuple(f)) for f in found), default=0.0)
