"""Tracker + smoothing + hysteresis on synthetic FrameResults (pure logic, no models)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from expressiond.events import Face, FrameResult
from expressiond.tracking import ExpressionTracker, TrackIds, iou, normalise_box

LABELS = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
WALL0 = 1_700_000_000.0


@dataclass(frozen=True)
class Cfg:
    iou_threshold: float = 0.3
    max_missed_frames: int = 10
    ema_alpha: float = 0.4
    enter_threshold: float = 0.6
    exit_threshold: float = 0.4
    min_duration_frames: int = 3


def scores(label: str, p: float = 0.9, second: str | None = None, q: float = 0.0) -> dict:
    rest = (1.0 - p - q) / (len(LABELS) - (2 if second else 1))
    out = {k: rest for k in LABELS}
    out[label] = p
    if second:
        out[second] = q
    return out


def face(box, label, p=0.9, **kw) -> Face:
    return Face(box=tuple(float(v) for v in box), score=0.99, scores=scores(label, p, **kw))


def frame(index: int, *faces: Face, camera: str = "door", w: int = 640, h: int = 480):
    return FrameResult(camera, index, index / 10, WALL0 + index / 10, w, h, tuple(faces))


def run(tracker, frames):
    events = []
    for fr in frames:
        events.extend(tracker.update(fr))
    return events


BOX = (64, 48, 128, 96)


def test_steady_face_one_start_then_end_at_flush():
    tr = ExpressionTracker(Cfg(), "dev1")
    events = run(tr, [frame(i, face(BOX, "happy")) for i in range(20)])
    assert [(e.type, e.frame, e.track, e.expression) for e in events] == [
        ("start", 2, 1, "happy")  # third frame: min_duration_frames=3
    ]
    start = events[0]
    assert start.device_id == "dev1" and start.camera == "door"
    assert start.confidence == pytest.approx(0.9)
    assert list(start.scores) == list(LABELS)  # label order kept
    assert start.box == pytest.approx((0.1, 0.1, 0.2, 0.2))
    assert start.timestamp == pytest.approx(WALL0 + 0.2)
    assert start.previous is None
    end = tr.flush()
    assert [(e.type, e.frame, e.track, e.expression) for e in end] == [("end", 19, 1, "happy")]
    assert end[0].timestamp == pytest.approx(WALL0 + 1.9)
    assert tr.flush() == []  # nothing left
    assert tr.stats()["start"] == 1 and tr.stats()["end"] == 1


@pytest.mark.parametrize("alpha", [0.05, 0.4, 1.0])
def test_single_noisy_frame_makes_no_event(alpha):
    tr = ExpressionTracker(Cfg(ema_alpha=alpha), "d")
    frames = [frame(i, face(BOX, "happy", 0.7)) for i in range(30)]
    frames[15] = frame(15, face(BOX, "sad", 0.99))  # one wrong classification
    frames[20] = frame(20, face(BOX, "happy", 0.7), face((400, 300, 80, 80), "angry", 0.99))
    events = run(tr, frames)
    assert [(e.type, e.expression) for e in events] == [("start", "happy")]
    assert tr.stats()["tracks_created"] == 2  # the one-frame false face got a track, no event


def test_one_frame_alone_never_events_even_with_min_duration_1():
    tr = ExpressionTracker(Cfg(min_duration_frames=1, ema_alpha=1.0), "d")
    assert tr.update(frame(0, face(BOX, "happy", 0.99))) == []
    assert [e.type for e in tr.update(frame(1, face(BOX, "happy", 0.99)))] == ["start"]


def test_sustained_change_emits_change_with_previous():
    tr = ExpressionTracker(Cfg(), "d")
    frames = [frame(i, face(BOX, "happy")) for i in range(10)]
    frames += [frame(i, face(BOX, "sad")) for i in range(10, 25)]
    events = run(tr, frames)
    assert [(e.type, e.expression, e.previous) for e in events] == [
        ("start", "happy", None),
        ("change", "sad", "happy"),
    ]
    # frame 10: smoothed still happy; 11..13: sad leads raw and smoothed -> change at 13
    assert events[1].frame == 13
    assert events[1].confidence >= 0.6 and events[1].scores["sad"] == events[1].confidence


def test_held_expression_needs_enter_but_released_one_yields_at_exit():
    tr = ExpressionTracker(Cfg(), "d")
    frames = [frame(i, face(BOX, "happy", 0.9)) for i in range(10)]
    # neutral leads but only at 0.5 (< enter) while happy stays above exit: held, no change
    frames += [frame(i, face(BOX, "neutral", 0.5, second="happy", q=0.45)) for i in range(10, 30)]
    events = run(tr, frames)
    assert [e.type for e in events] == ["start"]
    # happy drops under exit (0.4): released, and neutral (>= exit) takes over
    more = [frame(i, face(BOX, "neutral", 0.5, second="happy", q=0.2)) for i in range(30, 40)]
    events = run(tr, more)
    assert [(e.type, e.expression, e.previous) for e in events] == [("change", "neutral", "happy")]
    assert 0.4 <= events[0].confidence < 0.6


def test_two_faces_crossing_keep_their_ids():
    tr = ExpressionTracker(Cfg(), "d")
    frames = []
    for i in range(41):  # A moves right, B left, 40 px lower; they coincide in x at frame 20
        a = face((20 + 10 * i, 100, 100, 100), "happy")
        b = face((420 - 10 * i, 140, 100, 100), "sad")
        frames.append(frame(i, b, a) if i % 2 else frame(i, a, b))  # face order must not matter
    # near the crossing each track overlaps the *other* face above iou_threshold too (0.37),
    # so only best-first greedy matching keeps the identities
    assert iou((210, 100, 100, 100), (220, 140, 100, 100)) > Cfg().iou_threshold
    events = run(tr, frames) + tr.flush()
    by_track = {}
    for e in events:
        by_track.setdefault(e.track, []).append((e.type, e.expression))
    assert by_track == {1: [("start", "happy"), ("end", "happy")], 2: [("start", "sad"), ("end", "sad")]}
    ends = {e.track: e.box for e in events if e.type == "end"}
    assert ends[1][0] == pytest.approx(420 / 640) and ends[2][0] == pytest.approx(20 / 640)


def test_greedy_matching_takes_the_best_overlap_first():
    tr = ExpressionTracker(Cfg(), "d")
    a, b = (100, 100, 100, 100), (140, 100, 100, 100)  # two overlapping faces (IoU 0.43)
    run(tr, [frame(i, face(a, "happy"), face(b, "sad")) for i in range(4)])
    # each moved 5 px right: A->b' (0.38) and B->a' (0.48) also pass the threshold, the
    # right pairs (0.90) must win; faces come in the other order
    a2, b2 = (105, 100, 100, 100), (145, 100, 100, 100)
    assert tr.update(frame(4, face(b2, "sad"), face(a2, "happy"))) == []
    boxes = {t["track"]: t["box"][0] for t in tr.current_state("door")["tracks"]}
    assert boxes == {1: round(105 / 640, 4), 2: round(145 / 640, 4)}


def test_iou_threshold_decides_whether_a_moved_face_is_the_same_track():
    tr = ExpressionTracker(Cfg(iou_threshold=0.3), "d")
    tr.update(frame(0, face((0, 0, 100, 100), "happy")))
    tr.update(frame(1, face((48, 0, 100, 100), "happy")))  # IoU 0.35: same face
    assert tr.stats()["tracks_created"] == 1
    tr.update(frame(2, face((108, 0, 100, 100), "happy")))  # IoU 0.25: someone else
    assert tr.stats()["tracks_created"] == 2 and tr.stats()["tracks_active"] == 2


def test_face_lost_ends_after_max_missed_and_ids_never_reused():
    tr = ExpressionTracker(Cfg(max_missed_frames=10), "d")
    events = run(tr, [frame(i, face(BOX, "happy")) for i in range(10)])
    events += run(tr, [frame(i) for i in range(10, 25)])
    assert [(e.type, e.frame, e.track) for e in events] == [("start", 2, 1), ("end", 20, 1)]
    assert events[1].box == pytest.approx((0.1, 0.1, 0.2, 0.2))  # last seen box
    assert events[1].timestamp == pytest.approx(WALL0 + 2.0)
    # a gap of <= max_missed frames keeps the track
    events = run(tr, [frame(i, face(BOX, "sad")) for i in range(25, 30)])
    events += run(tr, [frame(i) for i in range(30, 40)])
    events += run(tr, [frame(i, face(BOX, "sad")) for i in range(40, 45)])
    assert [(e.type, e.track) for e in events] == [("start", 2)]
    tr.flush()
    events = run(tr, [frame(i, face(BOX, "sad")) for i in range(45, 50)])
    events += run(tr, [frame(i, face(BOX, "sad"), camera="hall") for i in range(3)])
    assert [(e.camera, e.track) for e in events] == [("door", 3), ("hall", 4)]  # one counter per device


def test_track_without_expression_ends_silently():
    tr = ExpressionTracker(Cfg(max_missed_frames=2), "d")
    flat = {k: 1 / len(LABELS) for k in LABELS}
    events = run(tr, [frame(i, Face(BOX, 0.9, flat)) for i in range(10)])
    events += run(tr, [frame(i) for i in range(10, 20)]) + tr.flush()
    assert events == [] and tr.stats()["tracks_active"] == 0


def test_normalised_boxes_are_clipped_to_the_frame():
    assert normalise_box((64, 48, 128, 96), 640, 480) == pytest.approx((0.1, 0.1, 0.2, 0.2))
    assert normalise_box((-20, 400, 100, 200), 640, 480) == pytest.approx(
        (0.0, 400 / 480, 80 / 640, 80 / 480)
    )
    assert normalise_box((1, 1, 1, 1), 0, 0) == (0.0, 0.0, 0.0, 0.0)
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    tr = ExpressionTracker(Cfg(), "d")
    events = run(tr, [frame(i, face((600, 440, 80, 80), "happy"), w=640, h=480) for i in range(5)])
    x, y, w, h = events[0].box
    assert (x, y) == pytest.approx((600 / 640, 440 / 480)) and x + w <= 1.0 and y + h <= 1.0


def test_out_of_order_frames_are_ignored_and_counted():
    tr = ExpressionTracker(Cfg(), "d")
    run(tr, [frame(i, face(BOX, "happy")) for i in range(5)])
    assert tr.update(frame(3, face(BOX, "sad"))) == []
    assert tr.stats()["out_of_order"] == 1 and tr.stats()["frames"] == 5


def test_current_state_lists_announced_tracks():
    tr = ExpressionTracker(Cfg(), "dev")
    run(tr, [frame(i, face(BOX, "happy"), face((400, 100, 64, 64), "sad")) for i in range(2)])
    assert tr.current_state("door")["tracks"] == []  # nothing announced yet
    run(tr, [frame(i, face(BOX, "happy"), face((400, 100, 64, 64), "sad")) for i in range(2, 4)])
    state = tr.current_state("door")
    assert state["device_id"] == "dev" and state["camera"] == "door" and state["frame"] == 3
    assert state["count"] == 2 and state["ts"].endswith("Z")
    assert [(t["track"], t["expression"]) for t in state["tracks"]] == [(1, "happy"), (2, "sad")]
    assert state["tracks"][0]["box"] == [0.1, 0.1, 0.2, 0.2]
    assert state["tracks"][0]["confidence"] == pytest.approx(0.9)
    tr.flush("door")
    assert tr.current_state("door")["tracks"] == []
    assert tr.current_state("nowhere")["tracks"] == []


# property: any stream, any config ------------------------------------------------------

LANES = [(40, 40, 120, 120), (240, 40, 120, 120), (440, 40, 120, 120)]
GRAMMAR = re.compile(r"^S(C)*E$")


@st.composite
def streams(draw):
    cfg = Cfg(
        iou_threshold=draw(st.sampled_from([0.1, 0.3, 0.5])),
        max_missed_frames=draw(st.integers(0, 4)),
        ema_alpha=draw(st.floats(0.05, 1.0)),
        enter_threshold=draw(st.floats(0.4, 0.9)),
        exit_threshold=draw(st.floats(0.1, 0.4)),
        min_duration_frames=draw(st.integers(1, 4)),
    )
    n = draw(st.integers(1, 60))
    frames = []
    for i in range(n):
        faces = []
        for lane in LANES:
            if draw(st.booleans()):
                jitter = draw(st.integers(-8, 8))
                box = (lane[0] + jitter, lane[1], lane[2], lane[3])
                label = draw(st.sampled_from(LABELS[:3]))
                faces.append(face(box, label, draw(st.floats(0.34, 1.0))))
        frames.append(frame(i, *faces))
    return cfg, frames


@settings(max_examples=300, deadline=None)
@given(streams())
def test_property_track_events_read_start_change_end(case):
    cfg, frames = case
    tr = ExpressionTracker(cfg, "d")
    seen: dict[int, list] = {}  # lane -> [(frame, raw argmax)], to check the duration rule
    events = []
    for fr in frames:
        for f in fr.faces:
            seen.setdefault(round(f.box[0] / 200), []).append((fr.index, f.expression))
        events.extend(tr.update(fr))
    events += tr.flush()
    per_track: dict[int, list] = {}
    for e in events:
        per_track.setdefault(e.track, []).append(e)
        assert 0.0 <= e.confidence <= 1.0 + 1e-9
        assert all(0.0 <= v <= 1.0 for v in e.box)
    floor = max(2, cfg.min_duration_frames)
    for seq in per_track.values():
        assert GRAMMAR.match("".join(e.type[0].upper() for e in seq))
        assert [e.frame for e in seq] == sorted(e.frame for e in seq)
        for prev, cur in zip(seq, seq[1:], strict=False):
            if cur.type == "change":
                assert cur.previous == prev.expression != cur.expression
            else:
                assert cur.expression == prev.expression
        for e in seq:
            if e.type in ("start", "change"):  # no event without a sustained raw leader
                lane = round(e.box[0] * 640 / 200)
                tops = [top for f, top in seen[lane] if f <= e.frame][-floor:]
                assert tops == [e.expression] * floor, (e, tops)
    assert tr.stats()["tracks_active"] == 0


def test_config_is_duck_typed_and_min_duration_floor_applies():
    tr = ExpressionTracker(replace(Cfg(), min_duration_frames=0), "d")
    assert tr.min_duration == 2


def test_missed_frames_are_counted_in_source_frames_not_delivered_ones():
    """On a busy box most frames are dropped before inference: a face absent for 15 source
    frames is lost even if only two of those frames reached the tracker."""
    tr = ExpressionTracker(Cfg(), "dev1")
    events = run(tr, [frame(i, face(BOX, "happy")) for i in range(5)])
    assert [e.type for e in events] == ["start"]
    # last seen at 4; at 15 it has been gone 11 source frames (> max_missed 10)
    events = run(tr, [frame(9), frame(15)])
    assert [(e.type, e.frame) for e in events] == [("end", 15)]
    run(tr, [frame(16, face(BOX, "happy"))])
    assert tr.stats()["tracks_created"] == 2  # the face coming back is a new track


def test_track_ids_go_on_across_trackers_and_from_a_seed():
    """A reload makes a new tracker on the service's TrackIds; a restart seeds it from the
    highest id the spool stored: ids are never handed out twice on one device."""
    ids = TrackIds(41)
    first = ExpressionTracker(Cfg(), "d", ids)
    a = run(first, [frame(i, face(BOX, "happy")) for i in range(5)])
    a += first.flush()
    second = ExpressionTracker(Cfg(), "d", ids)  # the reload
    b = run(second, [frame(i, face(BOX, "happy")) for i in range(5)])
    assert [(e.type, e.track, e.reason) for e in a] == [("start", 41, None), ("end", 41, "stop")]
    assert [(e.type, e.track) for e in b] == [("start", 42)]
    assert TrackIds(0).take() == 1 and ids.next == 43


def test_end_reasons_say_gone_or_stop():
    tr = ExpressionTracker(Cfg(max_missed_frames=2), "d")
    events = run(tr, [frame(i, face(BOX, "happy")) for i in range(4)] + [frame(i) for i in range(4, 8)])
    assert [(e.type, e.reason) for e in events] == [("start", None), ("end", "gone")]
    assert json.loads(events[1].to_json())["reason"] == "gone"
    with pytest.raises(ValueError, match="reason"):
        replace(events[0], reason="gone")
    with pytest.raises(ValueError, match="reason"):
        replace(events[1], reason=None)
