"""Faces -> tracks -> smoothed expression -> events.

Per-frame classifier output flickers; operators want one event when a person starts showing
an expression and one when it changes, not one per frame. So faces are linked across frames
by box overlap (greedy IoU), each track's score vector is smoothed with an EMA, and an
expression must lead for ``min_duration_frames`` consecutive frames and pass
``enter_threshold`` before it is announced. "Lead" means top of the smoothed scores *and* of
that frame's raw scores: with smoothing alone a single extreme frame can keep a label on top
of the EMA for several frames, so counting raw agreement is what guarantees that one noisy
frame never makes an event, whatever ema_alpha is. A track's events always read
``start (change)* end``: one start, one end (when it is lost or at flush), never a second start.

Track ids come from a ``TrackIds`` shared by every tracker of the process (a reload builds a
new tracker, the ids go on) and seeded from the state the previous run left (the spool
database knows the highest id it announced), so an id is never reused on a device.

Thread: ``update``/``current_state`` from "inference-coordinator", ``flush`` and ``stats``
from the main thread; all state is under the tracker's lock; TrackIds has its own lock.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from expressiond.events import Box, ExpressionEvent, FrameResult, new_event_id, utc_iso

log = logging.getLogger(__name__)

MIN_DURATION_FLOOR = 2  # one frame alone must never make an event, whatever the config says


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def normalise_box(box: Box, width: int, height: int) -> Box:
    """Pixel box -> fractions of the frame, clipped to 0..1 (boxes may overhang the edge)."""
    if width <= 0 or height <= 0:
        return (0.0, 0.0, 0.0, 0.0)
    x0 = min(1.0, max(0.0, box[0] / width))
    y0 = min(1.0, max(0.0, box[1] / height))
    x1 = min(1.0, max(0.0, (box[0] + box[2]) / width))
    y1 = min(1.0, max(0.0, (box[1] + box[3]) / height))
    return (x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0))


@dataclass
class Track:
    """One face followed across frames."""

    id: int
    box: Box
    width: int
    height: int
    smoothed: dict[str, float] = field(default_factory=dict)
    leader: str | None = None  # top of smoothed and raw scores this frame, if they agree
    leader_run: int = 0  # consecutive frames it has led
    current: str | None = None  # announced expression (after start)
    missed: int = 0
    last_frame: int = 0


class TrackIds:
    """Increasing track ids, shared by the trackers of one process; ``first``: the first id
    to hand out (one more than the highest a previous run announced)."""

    def __init__(self, first: int = 1):
        self._next = max(1, int(first))
        self._lock = threading.Lock()

    def take(self) -> int:
        with self._lock:
            tid, self._next = self._next, self._next + 1
            return tid

    @property
    def next(self) -> int:
        with self._lock:
            return self._next


def idle_state(device_id: str, camera: str, wall: float, frame: int = 0) -> dict[str, Any]:
    """The state payload of a camera without announced faces (also published at start)."""
    return {
        "device_id": device_id,
        "camera": camera,
        "frame": frame,
        "ts": utc_iso(wall) if wall else None,
        "count": 0,
        "tracks": [],
    }


def restart_end(last: ExpressionEvent, now: float) -> ExpressionEvent:
    """The end of a track a previous run left open (its last start/change ``last``), made
    when the daemon starts again: reason "restart", timestamped now, the last known fields."""
    return dataclasses.replace(
        last, type="end", previous=None, reason="restart", timestamp=now, id=new_event_id()
    )


@dataclass
class _Camera:
    tracks: list[Track] = field(default_factory=list)
    frame: int = -1
    wall: float = 0.0


class ExpressionTracker:
    """Turns FrameResults (in frame order per camera) into ExpressionEvents.

    ``config`` is duck-typed like config.TrackingConfig (iou_threshold, max_missed_frames,
    ema_alpha, enter_threshold, exit_threshold, min_duration_frames). Thread-safe; meant to be
    fed by one pipeline thread and read (current_state/stats) by others.
    """

    def __init__(self, config: Any, device_id: str, ids: TrackIds | None = None):
        self.device_id = device_id
        self.ids = ids or TrackIds()
        self.iou_threshold = float(config.iou_threshold)
        self.max_missed = int(config.max_missed_frames)
        self.alpha = float(config.ema_alpha)
        self.enter = float(config.enter_threshold)
        self.exit = float(config.exit_threshold)
        self.min_duration = max(MIN_DURATION_FLOOR, int(config.min_duration_frames))
        self._cameras: dict[str, _Camera] = {}
        self._lock = threading.Lock()
        self.counters = {
            "frames": 0,
            "out_of_order": 0,
            "tracks_created": 0,
            "start": 0,
            "change": 0,
            "end": 0,
        }

    def update(self, result: FrameResult) -> list[ExpressionEvent]:
        """Feed one frame's faces; returns the events it caused (often none)."""
        with self._lock:
            cam = self._cameras.setdefault(result.camera, _Camera())
            if result.index <= cam.frame:
                self.counters["out_of_order"] += 1
                log.warning(
                    "camera %s: frame %d after %d ignored by the tracker",
                    result.camera,
                    result.index,
                    cam.frame,
                )
                return []
            self.counters["frames"] += 1
            cam.frame, cam.wall = result.index, result.captured_wall
            events: list[ExpressionEvent] = []
            matches = self._match(cam.tracks, result)
            matched_faces = set(matches.values())
            for track in list(cam.tracks):
                face_index = matches.get(track.id)
                if face_index is None:
                    # counted in source frames (index gaps), not frames that reached the
                    # tracker: on a busy box dropped frames still count as time without the face
                    track.missed = result.index - track.last_frame
                    if track.missed > self.max_missed:
                        cam.tracks.remove(track)
                        if track.current is not None:
                            events.append(self._event(result.camera, cam, track, "end", None, "gone"))
                    continue
                face = result.faces[face_index]
                track.box, track.missed, track.last_frame = face.box, 0, result.index
                track.width, track.height = result.width, result.height
                events.extend(self._observe(result.camera, cam, track, face.scores))
            for i, face in enumerate(result.faces):
                if i in matched_faces:
                    continue
                track = Track(self.ids.take(), face.box, result.width, result.height, last_frame=result.index)
                self.counters["tracks_created"] += 1
                cam.tracks.append(track)
                events.extend(self._observe(result.camera, cam, track, face.scores))
            return events

    def flush(self, camera: str | None = None) -> list[ExpressionEvent]:
        """End every track (of one camera or all): shutdown or end of stream.

        Track ids keep increasing afterwards; the end events (reason "stop") carry the last
        frame seen.
        """
        with self._lock:
            events = []
            names = [camera] if camera is not None else list(self._cameras)
            for name in names:
                cam = self._cameras.get(name)
                if cam is None:
                    continue
                for track in sorted(cam.tracks, key=lambda t: t.id):
                    if track.current is not None:
                        events.append(self._event(name, cam, track, "end", None, "stop"))
                cam.tracks.clear()
            return events

    def current_state(self, camera: str) -> dict[str, Any]:
        """Payload for the retained state topic: tracks that have an announced expression.

        It changes exactly when update()/flush() return events for this camera, so publish it
        then.
        """
        with self._lock:
            cam = self._cameras.get(camera, _Camera())
            tracks = [
                {
                    "track": t.id,
                    "expression": t.current,
                    "confidence": round(t.smoothed.get(t.current, 0.0), 4),
                    "box": [round(v, 4) for v in normalise_box(t.box, t.width, t.height)],
                }
                for t in sorted(cam.tracks, key=lambda t: t.id)
                if t.current is not None
            ]
            state = idle_state(self.device_id, camera, cam.wall, max(cam.frame, 0))
            state.update(count=len(tracks), tracks=tracks)
            return state

    def stats(self) -> dict[str, Any]:
        with self._lock:
            active = sum(len(c.tracks) for c in self._cameras.values())
            return {**self.counters, "tracks_active": active}

    # internals --------------------------------------------------------------------------
    def _match(self, tracks: list[Track], result: FrameResult) -> dict[int, int]:
        """Greedy IoU assignment: best overlapping pairs first; track id -> face index."""
        pairs = []
        for track in tracks:
            for i, face in enumerate(result.faces):
                overlap = iou(track.box, face.box)
                if overlap >= self.iou_threshold and overlap > 0:
                    pairs.append((overlap, -track.id, i, track.id))
        pairs.sort(reverse=True)
        matches: dict[int, int] = {}
        used: set[int] = set()
        for _, _, i, tid in pairs:
            if tid not in matches and i not in used:
                matches[tid] = i
                used.add(i)
        return matches

    def _observe(
        self, camera: str, cam: _Camera, track: Track, scores: dict[str, float]
    ) -> list[ExpressionEvent]:
        """Smooth the scores, then apply the hysteresis rules."""
        if not scores:
            return []
        if not track.smoothed:
            track.smoothed = {k: float(v) for k, v in scores.items()}
        else:
            a = self.alpha
            labels = list(track.smoothed) + [k for k in scores if k not in track.smoothed]
            for label in labels:
                old = track.smoothed.get(label, 0.0)
                track.smoothed[label] = a * float(scores.get(label, 0.0)) + (1 - a) * old
        s = track.smoothed
        leader = max(s, key=s.__getitem__)  # ties: first in label order
        if leader != max(scores, key=scores.__getitem__):
            track.leader, track.leader_run = None, 0  # raw and smoothed disagree: no run
            return []
        track.leader_run = track.leader_run + 1 if leader == track.leader else 1
        track.leader = leader
        if track.leader_run < self.min_duration:
            return []
        if track.current is None:
            if s[leader] >= self.enter:
                track.current = leader
                return [self._event(camera, cam, track, "start", None)]
            return []
        if leader == track.current:
            return []
        # a held expression (>= exit) yields only to one that passes enter; a released one
        # (< exit) yields to any sustained leader that is itself above exit
        released = s.get(track.current, 0.0) < self.exit
        if s[leader] >= self.enter or (released and s[leader] >= self.exit):
            previous, track.current = track.current, leader
            return [self._event(camera, cam, track, "change", previous)]
        return []

    def _event(
        self,
        camera: str,
        cam: _Camera,
        track: Track,
        kind: str,
        previous: str | None,
        reason: str | None = None,
    ) -> ExpressionEvent:
        assert track.current is not None
        self.counters[kind] += 1
        event = ExpressionEvent(
            device_id=self.device_id,
            camera=camera,
            frame=cam.frame,
            track=track.id,
            type=kind,
            expression=track.current,
            confidence=track.smoothed.get(track.current, 0.0),
            scores=dict(track.smoothed),
            previous=previous,
            box=normalise_box(track.box, track.width, track.height),
            timestamp=cam.wall,
            reason=reason,
        )
        log.debug("camera %s: track %d %s %s (%.2f)", camera, track.id, kind, track.current, event.confidence)
        return event
