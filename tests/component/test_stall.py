"""The per-camera stall watch (sources/stall.py) on the real CameraCapture threads.

The one fake is the source: a made-up live kind ("hang://") whose read blocks until the test
releases it, as a V4L2 read stuck in a driver would (no such device here; the RTSP freeze in
tests/faults/test_rtsp_camera.py is the real-stream version). Everything else is real: the
reader threads, the watch thread, the slot, the counters and the log records.
"""

from __future__ import annotations

import logging
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from expressiond.sources import registry, stall
from expressiond.sources.base import BaseSource, Read, SourceUnavailable
from expressiond.sources.capture import CameraCapture
from expressiond.systemd.journal import record_fields

FPS = 20.0


class HangSource(BaseSource):
    kind = "hang"
    live = True
    schemes = ("hang",)
    made: list[HangSource] = []
    hang_reads = threading.Event()  # set: every read blocks until ``release``
    hang_opens = threading.Event()
    release = threading.Event()
    read_s = 0.02

    def __init__(self, spec, options=None):
        super().__init__(spec, options)
        self.closed = self.opened = False
        self.published_after_release = 0
        type(self).made.append(self)

    def open(self) -> None:
        if type(self).hang_opens.is_set():
            type(self).release.wait(60)
            raise SourceUnavailable("the open that hung failed")
        self.opened = True

    def read(self) -> Read:
        if type(self).hang_reads.is_set():
            type(self).release.wait(60)
            return Read("ok", np.full((48, 64, 3), 200, np.uint8))  # must never reach the slot
        time.sleep(type(self).read_s)
        return Read("ok", np.full((48, 64, 3), 100, np.uint8))

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def hang_kind(monkeypatch):
    monkeypatch.setattr(registry, "SOURCE_KINDS", (HangSource, *registry.SOURCE_KINDS))
    HangSource.made = []
    for ev in (HangSource.hang_reads, HangSource.hang_opens, HangSource.release):
        ev.clear()
    HangSource.read_s = 0.02
    caps: list[CameraCapture] = []

    def start(**kw) -> CameraCapture:
        cam = dict(name="door", source="hang://x", fps=FPS, loop=False, width=None, height=None)
        cam.update({"reconnect_max_s": 1.0, "stall_intervals": 10, **kw})
        cap = CameraCapture(SimpleNamespace(**cam), backoff_start_s=0.1)
        caps.append(cap)
        cap.start()
        return cap

    yield start
    HangSource.release.set()
    for cap in caps:
        cap.stop(3.0)


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def frames(cap: CameraCapture, seconds: float) -> list:
    out, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        f = cap.slot.get(0.05)
        if f is not None:
            out.append(f)
    return out


def readers_alive() -> int:
    return sum(t.name == "capture-door" and t.is_alive() for t in threading.enumerate())


def test_a_hung_read_is_abandoned_reported_and_replaced_and_hung_readers_are_bounded(hang_kind, caplog):
    caplog.set_level(logging.INFO, logger="expressiond.sources")
    cap = hang_kind()
    assert cap.watch is not None and cap.watch.stall_after_s == 1.0  # 10 intervals at 20 fps (>= 1 s)
    assert frames(cap, 0.5) and cap.connected
    HangSource.hang_reads.set()
    t0 = time.monotonic()
    assert wait_until(lambda: cap.stats().stalls >= 1, 5), cap.stats()
    noticed_s = time.monotonic() - t0
    assert 0.9 <= noticed_s <= 1.8, noticed_s
    assert not cap.stats().connected
    # every new reader hangs too: after MAX_HUNG of them no new one, said once
    assert wait_until(lambda: cap.stats().stalls == stall.MAX_HUNG, 15), cap.stats()
    time.sleep(1.5)
    assert cap.stats().stalls == stall.MAX_HUNG and len(HangSource.made) == stall.MAX_HUNG
    assert readers_alive() == stall.MAX_HUNG and cap.reader is None
    assert not any(s.closed for s in HangSource.made), "nobody may close a handle a read is using"
    warnings = [r for r in caplog.records if "stalled: no frame for" in r.getMessage()]
    assert len(warnings) == stall.MAX_HUNG and all(r.levelno == logging.WARNING for r in warnings)
    assert warnings[0].getMessage().startswith("camera door: stalled: no frame for 1.")
    assert "while connected (2" in warnings[0].getMessage()  # about 20 frame intervals
    assert dict(record_fields(warnings[0], warnings[0].getMessage()))["CAMERA"] == "door"
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        f"camera door: {stall.MAX_HUNG} reads of this camera hang and never returned; no new attempt "
        "until one does (replug the camera, or restart the service)"
    ]
    # the driver comes back: the hung reads return, their readers close their own sources and
    # end without publishing; a new reader takes over and frames flow again
    HangSource.hang_reads.clear()
    HangSource.release.set()
    assert wait_until(lambda: cap.connected and cap.stats().frames_published > 0, 10)
    got = frames(cap, 1.0)
    assert got and {int(f.image[0, 0, 0]) for f in got} == {100}
    assert all(s.closed for s in HangSource.made[: stall.MAX_HUNG])
    assert wait_until(lambda: readers_alive() == 1, 5), readers_alive()
    s = cap.stats()
    assert (s.stalls, s.connected, s.reconnects) == (stall.MAX_HUNG, True, 1)
    assert any("camera door: source back after" in r.getMessage() for r in caplog.records)


def test_slow_reads_below_the_limit_are_no_stall(hang_kind):
    HangSource.read_s = 0.3  # 6 frame intervals, the limit is 10
    cap = hang_kind()
    got = frames(cap, 2.5)
    assert len(got) >= 5 and cap.stats().stalls == 0 and len(HangSource.made) == 1


def test_a_hung_open_is_abandoned_too(hang_kind, monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger="expressiond.sources")
    monkeypatch.setattr(stall, "OPEN_HANG_MIN_S", 1.0)
    HangSource.hang_opens.set()
    cap = hang_kind()
    assert cap.watch.open_hang_s == 3.0  # 3 x the read limit, as OPEN_HANG_MIN_S is lowered here
    assert wait_until(lambda: cap.stats().stalls >= 1, 6), cap.stats()
    assert any("camera door: opening the source hangs for 3 s" in r.getMessage() for r in caplog.records)
    HangSource.hang_opens.clear()
    HangSource.release.set()
    assert wait_until(lambda: cap.connected and cap.stats().frames_published > 0, 10), cap.stats()


def test_stop_is_bounded_while_a_read_hangs(hang_kind):
    cap = hang_kind(stall_intervals=100000)  # never abandoned: stop() itself must not wait for it
    assert frames(cap, 0.3)
    HangSource.hang_reads.set()
    time.sleep(0.3)
    t0 = time.monotonic()
    assert cap.stop(0.5) is False  # the reader is still in its read
    assert time.monotonic() - t0 < 2.0 and cap.slot.closed


def test_files_and_folders_are_not_watched(tmp_path):
    cam = SimpleNamespace(name="f", source=str(tmp_path / "a.avi"), fps=10, loop=False, width=None)
    cam.height, cam.reconnect_max_s = None, 1.0
    assert CameraCapture(cam).watch is None
