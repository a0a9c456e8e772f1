"""tests/matching.py, the IoU pairing the golden, INT8 and device tests rely on: one to one, the
same pairs for any order of either list, and a wrong result still fails."""

from __future__ import annotations

import itertools

import pytest
from matching import match_boxes, pair_all

# five faces in a row, as in a group photo (x, y, w, h; fractions of the image)
FACES = [(0.05 + 0.18 * k, 0.30 + 0.01 * k, 0.09, 0.12) for k in range(5)]


def _jitter(box, dx=0.004, dy=-0.003):
    x, y, w, h = box
    return (x + dx, y + dy, w * 1.02, h * 0.99)


def _content(pairs, expected, found):
    return sorted((tuple(expected[i]), tuple(found[j]), round(v, 12)) for i, j, v in pairs)


def test_same_pairs_for_every_order_of_both_lists():
    found = [_jitter(b) for b in FACES]
    want = _content(pair_all(FACES, found), FACES, found)
    assert len(want) == 5 and all(e == f_src for (e, _f, _v), f_src in zip(want, sorted(FACES), strict=True))
    for perm in itertools.permutations(range(5)):  # all 120 orders of the found faces
        shuffled = [found[k] for k in perm]
        assert _content(pair_all(FACES, shuffled), FACES, shuffled) == want
        reordered = [FACES[k] for k in perm]  # and of the expected ones
        assert _content(pair_all(reordered, found), reordered, found) == want


def test_one_to_one_even_when_a_box_overlaps_two_faces():
    expected = [(0.0, 0.0, 0.2, 0.2), (0.1, 0.0, 0.2, 0.2)]  # IoU 0.33 with each other
    between = (0.05, 0.0, 0.2, 0.2)  # IoU 0.6 with both
    pairs = match_boxes(expected, [between, expected[1]], min_iou=0.5)
    assert [(i, j) for i, j, _ in pairs] == [(0, 0), (1, 1)]  # not both to the same box
    with pytest.raises(AssertionError, match=r"1 of 2 expected faces not found"):
        pair_all(expected, [between, (0.7, 0.7, 0.2, 0.2)])  # one box cannot serve two faces


def test_a_wrong_result_fails_in_every_order():
    moved = [(FACES[0][0] + 0.09, *FACES[0][1:])] + FACES[1:]  # one box a face width off
    missing = FACES[1:]
    doubled = [FACES[1]] + FACES[1:]
    for bad in (moved, missing, doubled):
        for perm in itertools.permutations(range(len(bad))):
            with pytest.raises(AssertionError, match=r"#0 \[0\.05, 0\.3, 0\.09, 0\.12\]"):
                pair_all(FACES, [bad[k] for k in perm])


def test_threshold_is_inclusive_and_empty_lists():
    a = (0.0, 0.0, 1.0, 1.0)
    half = (0.0, 0.0, 0.5, 1.0)  # IoU exactly 0.5
    assert match_boxes([a], [half], 0.5) == [(0, 0, 0.5)]
    assert match_boxes([a], [half], 0.51) == []
    assert match_boxes([], [a]) == [] and pair_all([], [a]) == []
    with pytest.raises(AssertionError, match="best IoU 0.000"):
        pair_all([a], [])
