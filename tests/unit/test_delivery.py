"""The service's delivery of events (daemon/service.py): a sink that stores events gets each
tracker step's events on the thread that made them, before any other sink, the trace or the
"events" thread sees them; journald and stdout lines are written by the "events" thread, never
by the tracker's; at start the tracks a previous run left open are ended (reason "restart"),
track ids go on from the stored highest one, and every camera's state is count 0."""

from __future__ import annotations

import json
import threading
import time

from expressiond.config import parse_config
from expressiond.daemon.service import Service
from expressiond.daemon.trace import EventTrace
from expressiond.events import ExpressionEvent
from expressiond.sinks import EventSink, Leftover
from expressiond.sinks.journal import JournalSink

CONFIG = """device_id = "box"
[[cameras]]
name = "door"
source = "0"
[[cameras]]
name = "hall"
source = "1"
snapshot = "face"
"""


class Recorder(EventSink):
    """A sink of the test (sinks are an extension point): records what it got, on which
    thread, in which order across all recorders."""

    def __init__(self, log: list, stores: bool, leftover: Leftover | None = None):
        self.stores_events = stores
        self.log, self._leftover = log, leftover

    def _note(self, what: str, *args) -> None:
        self.log.append(
            (
                type(self).__name__ if not self.stores_events else "store",
                what,
                threading.current_thread().name,
                args,
            )
        )

    def store(self, events) -> None:
        self._note("store", [e.id for e in events])

    def emit(self, event) -> None:
        self._note("emit", event.id)

    def recover(self):
        return self._leftover

    def publish_state(self, camera, state) -> None:
        self._note("state", camera, state["count"])

    def publish_snapshot(self, camera, jpeg) -> None:
        self._note("snapshot", camera, len(jpeg))


def event(kind="start", track=3, camera="door", reason=None) -> ExpressionEvent:
    return ExpressionEvent(
        device_id="box", camera=camera, frame=5, track=track, type=kind, expression="happy",
        confidence=0.9, scores={"happy": 0.9, "sad": 0.1}, previous=None, box=(0.1, 0.1, 0.2, 0.2),
        timestamp=time.time(), reason=reason,
    )  # fmt: skip


def drain(service: Service) -> None:
    service._events.put(None)
    service._event_thread.join(5)
    assert not service._event_thread.is_alive()


def test_events_are_stored_on_the_producing_thread_before_anything_else(tmp_path, caplog):
    log: list = []
    store, other = Recorder(log, True), Recorder(log, False)
    trace = EventTrace(str(tmp_path / "trace"))
    service = Service(parse_config(CONFIG), [other, store, JournalSink()], trace=trace)
    evs = [event(), event("change", track=4)]
    caplog.set_level("INFO", logger="expressiond.sinks.journal")

    def tracker_step():
        traced_before = (tmp_path / "trace").read_text()
        service._deliver(evs, "door", {"count": 2})
        assert traced_before == ""  # nothing traced before the store

    t = threading.Thread(target=tracker_step, name="inference-coordinator")
    t.start()
    t.join(5)
    # the store is done on the producing thread; nothing else has run yet
    assert log == [("store", "store", "inference-coordinator", ([e.id for e in evs],))]
    traced = [json.loads(line) for line in (tmp_path / "trace").read_text().splitlines()]
    assert [t["id"] for t in traced] == [e.id for e in evs]
    service._event_thread.start()
    drain(service)
    later = log[1:]
    assert [(w, thread) for _, w, thread, _ in later] == [
        ("emit", "events"),
        ("emit", "events"),
        ("state", "events"),
        ("state", "events"),
    ]
    assert all(who == "Recorder" for who, what, _, _ in later if what == "emit"), "store sinks get no emit"
    journal_threads = {r.threadName for r in caplog.records if r.name == "expressiond.sinks.journal"}
    assert journal_threads == {"events"}, "journald is written off the tracker's thread"
    assert service.events.snapshot()["emitted"] == 2


def test_start_ends_what_the_previous_run_left_open_and_goes_on_with_its_ids():
    log: list = []
    left = Leftover(open_tracks=(event("start", 41), event("change", 42, camera="hall")), next_track=43)
    store, other = Recorder(log, True, left), Recorder(log, False)
    service = Service(parse_config(CONFIG), [store, other])
    service._event_thread.start()
    service._recover()
    drain(service)
    assert service.track_ids.next == 43
    stored = [args[0] for who, what, _, args in log if what == "store"]
    assert len(stored) == 2 and all(len(ids) == 1 for ids in stored)
    ends = [args for who, what, _, args in log if what == "emit"]
    assert len(ends) == 2
    states = [(args[0], args[1]) for who, what, _, args in log if what == "state" and who == "Recorder"]
    assert ("door", 0) in states and ("hall", 0) in states
    # snapshot off on door: its retained picture is cleared (empty); hall's (face) untouched
    snaps = {args for who, what, _, args in log if what == "snapshot" and who == "Recorder"}
    assert snaps == {("door", 0)}
    assert service.events.snapshot()["restart_ended"] == 2


def test_restart_end_keeps_the_last_fields_and_marks_the_reason():
    from expressiond.tracking import restart_end

    last = event("change", 9)
    end = restart_end(last, 1_800_000_000.0)
    assert (end.type, end.reason, end.previous, end.track, end.expression) == (
        "end",
        "restart",
        None,
        9,
        "happy",
    )
    assert end.id != last.id and end.timestamp == 1_800_000_000.0 and end.box == last.box
    assert json.loads(end.to_json())["reason"] == "restart"
