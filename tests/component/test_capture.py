"""Capture threads against real inputs: the sample clips in ../shared/data/video (read-only),
image folders written here with cv2 (including broken files), and a live MJPEG-over-HTTP
stream served by a local ffmpeg on 127.0.0.1.

The one fake edge: no V4L2 camera exists on this machine, so the device-path code is tested
only for "cannot open -> backoff -> one clear warning -> prompt stop".
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from needs import needs
from shared_data import HOW_TO_FIX, VIDEOS

from expressiond.events import Frame
from expressiond.sources import kind_of, probe, redact
from expressiond.sources.capture import CameraCapture
from expressiond.sources.folder import jpeg_complete
from expressiond.sources.frames import normalise_image
from expressiond.sources.slot import LatestFrameSlot

VIDEO_DIR = VIDEOS
AVI = VIDEO_DIR / "head-pose-face-detection-male.avi"
GIFS = {
    "head-pose-face-detection-male.gif": 62,
    "head-pose-face-detection-female-and-male.gif": 56,
    "face-demographics-walking-and-pause.gif": 41,
}
needs_clips = needs(AVI.is_file(), str(VIDEO_DIR), f"{AVI.name} absent: {HOW_TO_FIX}")


def camera(source, **kw):
    base = dict(
        name="cam", source=str(source), fps=30.0, loop=False, width=None, height=None, reconnect_max_s=2.0
    )
    base.update(kw)
    return SimpleNamespace(**base)


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while time.monotonic() < deadline:
        if predicate():
            return True
        pause.wait(0.02)
    return predicate()


def drain(cap: CameraCapture, timeout: float, until=None, consumer_delay: float = 0.0):
    """Consume frames until the source finishes (or until(frames) holds); bounded in time."""
    frames: list[Frame] = []
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while time.monotonic() < deadline:
        f = cap.slot.get(0.2)
        if f is None:
            if cap.finished:
                break
            continue
        frames.append(f)
        if until is not None and until(frames):
            break
        if consumer_delay:
            pause.wait(consumer_delay)
    return frames


def assert_delivered(frames, cap: CameraCapture, expected: list[int]) -> dict[int, Frame]:
    """Frames came in order, each expected index was delivered or counted as a drop."""
    idx = [f.index for f in frames]
    it = iter(expected)
    assert all(i in it for i in idx), (idx, expected)  # an ordered subsequence
    assert len(idx) + cap.stats().frames_dropped == len(expected)
    assert cap.stats().frames_dropped <= 2, "the consumer is fast: at most a stall or two"
    return {f.index: f for f in frames}


@pytest.fixture
def started():
    caps: list[CameraCapture] = []

    def _start(cam, **kw) -> CameraCapture:
        cap = CameraCapture(cam, **kw)
        caps.append(cap)
        cap.start()
        return cap

    yield _start
    for cap in caps:
        assert cap.stop(3.0), f"capture-{cap.name} did not stop"


# building blocks -----------------------------------------------------------------------


def test_slot_keeps_latest_counts_drops_and_wakes_on_close():
    wake = threading.Event()
    slot = LatestFrameSlot(wakeup=wake)
    img = np.zeros((2, 2, 3), np.uint8)
    assert slot.put(Frame("c", 0, 0.0, 0.0, img)) is False and wake.is_set()
    assert slot.put(Frame("c", 1, 0.0, 0.0, img)) is True
    assert slot.get(0).index == 1 and (slot.dropped, slot.published) == (1, 2)
    t0 = time.monotonic()
    assert slot.get(0.2) is None and 0.15 < time.monotonic() - t0 < 2.0
    threading.Timer(0.2, slot.close).start()
    t0 = time.monotonic()
    assert slot.get(10) is None and time.monotonic() - t0 < 2.0 and slot.closed


def test_normalise_image_converts_or_refuses():
    gray = np.full((4, 6), 7, np.uint8)
    out, note = normalise_image(gray)
    assert out.shape == (4, 6, 3) and (out == 7).all() and "gray" in note
    out, note = normalise_image(np.full((4, 6, 4), (1, 2, 3, 9), np.uint8))
    assert out.shape == (4, 6, 3) and tuple(out[0, 0]) == (1, 2, 3) and "alpha" in note
    out, note = normalise_image(np.full((4, 6, 3), 0xABCD, np.uint16))
    assert out.dtype == np.uint8 and (out == 0xAB).all() and "16-bit" in note
    out, note = normalise_image(np.full((4, 6, 3), 0.5, np.float32))
    assert out.dtype == np.uint8 and (out == 127).all()
    ok = np.zeros((4, 6, 3), np.uint8)
    assert normalise_image(ok)[1] == "" and normalise_image(ok)[0].shape == (4, 6, 3)
    for bad in (
        None,
        np.zeros((0, 0, 3), np.uint8),
        np.zeros((4, 6, 2), np.uint8),
        np.zeros((8193, 2), np.uint8),
        np.zeros((2, 2, 3), np.int64),
    ):
        image, why = normalise_image(bad)
        assert image is None and why


def test_source_kinds_redaction_and_problems(tmp_path):
    assert kind_of("/dev/video0") == kind_of("2") == "v4l2"
    assert kind_of("rtsp://cam/1") == kind_of("https://x/y.mjpg") == "stream"
    assert kind_of(str(tmp_path)) == "folder" and kind_of("clip.avi") == "file"
    assert redact("rtsp://admin:secret@10.0.0.5/s") == "rtsp://admin:***@10.0.0.5/s"
    assert redact("rtsp://u:p@ss@cam:554/x?a=b@c") == "rtsp://u:***@cam:554/x?a=b@c"
    assert redact("rtsp://token@cam/s") == "rtsp://***@cam/s"  # a lone user part may be a secret
    assert redact("/srv/clips/a@b.avi") == "/srv/clips/a@b.avi" and redact("2") == "2"
    assert "does not exist" in probe(str(tmp_path / "nope.avi"))
    assert "no .jpg" in probe(str(tmp_path))
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((4, 4, 3), np.uint8))
    assert probe(str(tmp_path)) is None


# video files -----------------------------------------------------------------------------


@needs_clips
def test_avi_is_paced_at_the_configured_fps_and_ends_cleanly(started):
    cap = started(camera(AVI, fps=30.0))
    t0 = time.monotonic()
    frames = drain(cap, timeout=20)
    assert cap.finished and cap.slot.get(0.5) is None  # end of stream, reported promptly
    assert_delivered(frames, cap, list(range(62)))
    assert all(f.image.shape == (270, 480, 3) and f.image.dtype == np.uint8 for f in frames)
    assert all(f.camera == "cam" for f in frames)
    span = frames[-1].captured_mono - frames[0].captured_mono
    assert 61 / 30 * 0.95 <= span <= 61 / 30 + 1.0, span  # real time, not as fast as decoding
    assert time.monotonic() - t0 < 61 / 30 + 3.0
    gaps = np.diff([f.captured_mono for f in frames])
    assert gaps.min() > 0 and np.median(gaps) == pytest.approx(1 / 30, rel=0.25)
    age = time.monotonic() - frames[0].captured_mono
    assert frames[0].captured_wall == pytest.approx(time.time() - age, abs=0.5)
    s = cap.stats()
    assert (s.frames_read, s.frames_published, s.frames_skipped) == (62, 62, 0)
    assert (s.bad_frames, s.reconnects, s.connected, s.finished) == (0, 0, False, True)
    assert s.fps == pytest.approx(30, rel=0.2)


@needs_clips
@pytest.mark.parametrize("name", sorted(GIFS))
def test_gifs_are_read_whole_and_resized(started, name):
    cap = started(camera(VIDEO_DIR / name, fps=50.0, width=160, height=90))
    frames = drain(cap, timeout=20)
    assert cap.finished and cap.stats().frames_read == GIFS[name]
    assert_delivered(frames, cap, list(range(GIFS[name])))
    assert {f.image.shape for f in frames} == {(90, 160, 3)}


@needs_clips
def test_loop_restarts_and_index_keeps_increasing(started):
    cap = started(camera(AVI, fps=60.0, loop=True))
    frames = drain(cap, timeout=20, until=lambda fr: fr[-1].index >= 130)
    by_index = assert_delivered(frames, cap, list(range(frames[-1].index + 1)))
    assert frames[-1].index >= 130 and not cap.finished
    assert cap.stats().loops >= 2 and cap.stats().reconnects == 0
    # frame k of a later pass is frame k of the clip again
    same = [k for k in range(62) if k in by_index and k + 62 in by_index]
    assert len(same) >= 55
    assert all(np.array_equal(by_index[k].image, by_index[k + 62].image) for k in same)
    assert not np.array_equal(by_index[same[0]].image, by_index[same[-1]].image)
    t0 = time.monotonic()
    assert cap.stop(2.0) and time.monotonic() - t0 < 1.0


@needs_clips
def test_slow_consumer_sees_gaps_and_drops_are_counted(started):
    cap = started(camera(AVI, fps=60.0))
    frames = drain(cap, timeout=30, consumer_delay=0.1)
    idx = [f.index for f in frames]
    s = cap.stats()
    assert idx == sorted(set(idx)) and idx[-1] == 61  # newest frame always wins
    assert 8 <= len(frames) <= 30  # ~1 s of clip consumed at ~10/s
    assert s.frames_dropped == 62 - len(frames) == s.frames_published - len(frames)
    assert max(np.diff(idx)) >= 3  # drops are visible as gaps


@needs_clips
def test_realtime_false_delivers_every_frame_to_a_slow_consumer(started):
    """realtime = false (offline analysis): the next frame is decoded only once the last one
    was taken, so a consumer at ~15 frames/s gets all 62 frames of a 60 fps clip, in order."""
    cap = started(camera(AVI, fps=60.0, realtime=False))
    frames = drain(cap, timeout=30, consumer_delay=0.06)
    s = cap.stats()
    assert [f.index for f in frames] == list(range(62))
    assert (s.frames_dropped, s.frames_skipped, s.frames_read) == (0, 0, 62)
    assert cap.finished
    span = frames[-1].captured_mono - frames[0].captured_mono
    assert span >= 61 * 0.06 * 0.9, span  # paced by the consumer, not by fps


@needs_clips
def test_realtime_false_runs_as_fast_as_the_consumer_not_at_fps(started):
    cap = started(camera(AVI, fps=2.0, realtime=False))  # 2 fps would take 31 s
    t0 = time.monotonic()
    frames = drain(cap, timeout=20)
    assert [f.index for f in frames] == list(range(62)) and cap.finished
    assert time.monotonic() - t0 < 10.0


@needs_clips
def test_realtime_false_stops_promptly_while_waiting_for_the_consumer(started):
    cap = started(camera(AVI, realtime=False))
    assert wait_until(lambda: cap.stats().frames_published == 1, 10.0)
    time.sleep(0.3)  # nobody takes the frame: the thread waits in the slot
    assert cap.stats().frames_read == 1
    t0 = time.monotonic()
    assert cap.stop(3.0) and time.monotonic() - t0 < 1.0


@needs_clips
def test_file_that_disappears_and_returns_reconnects(started, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="expressiond.sources.capture")
    clip = tmp_path / "clip.avi"
    shutil.copy(AVI, clip)
    cap = started(camera(clip, fps=120.0, loop=True, reconnect_max_s=0.5))
    assert len(drain(cap, timeout=10, until=lambda fr: len(fr) >= 5)) >= 5
    clip.rename(tmp_path / "away.avi")
    assert wait_until(lambda: cap.stats().open_failures >= 4, 15), cap.stats()
    assert not cap.connected
    before = cap.stats().frames_read
    (tmp_path / "away.avi").rename(clip)
    t_back = time.monotonic()
    frames = drain(cap, timeout=10, until=lambda fr: fr[-1].index > before + 5)
    assert frames and frames[-1].index > before + 5
    assert time.monotonic() - t_back < 0.5 * 1.25 + 3.0  # within one capped backoff + slack
    s = cap.stats()
    assert s.reconnects == 1 and s.connected
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "clip.avi does not exist" in warnings[0].getMessage()
    assert any("back after" in r.getMessage() and r.levelno == logging.INFO for r in caplog.records)


# image folders -----------------------------------------------------------------------------


def _write_folder(folder: Path) -> None:
    rng = np.random.default_rng(1)
    noisy = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    cv2.imwrite(str(folder / "000.jpg"), noisy)
    (folder / "001.jpg").write_bytes(b"")
    ok, jpg = cv2.imencode(".jpg", noisy)
    (folder / "002.jpg").write_bytes(jpg.tobytes()[: len(jpg) // 2])  # truncated
    cv2.imwrite(str(folder / "003.png"), np.full((30, 40, 3), 0x4080, np.uint16))
    cv2.imwrite(str(folder / "004.png"), np.full((30, 40), 200, np.uint8))
    cv2.imwrite(str(folder / "005.png"), np.full((30, 40, 4), (10, 20, 30, 0), np.uint8))
    cv2.imwrite(str(folder / "006.BMP"), np.full((30, 40, 3), 77, np.uint8))
    (folder / "007.txt").write_text("not an image")
    (folder / "008.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    cv2.imwrite(str(folder / "009.png"), np.zeros((2, 9000), np.uint8))  # absurdly wide


def test_image_folder_skips_bad_files_converts_odd_ones_and_ends(started, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="expressiond.sources.capture")
    _write_folder(tmp_path)
    cap = started(camera(tmp_path, fps=50.0))
    frames = drain(cap, timeout=10)
    assert cap.finished
    by_index = assert_delivered(frames, cap, [0, 3, 4, 5, 6])  # bad files leave index gaps
    assert all(f.image.dtype == np.uint8 and f.image.ndim == 3 and f.image.shape[2] == 3 for f in frames)
    expect = {
        3: lambda im: (im == 0x40).all(),  # 16-bit scaled
        4: lambda im: (im == 200).all(),  # gray -> BGR
        5: lambda im: tuple(im[0, 0]) == (10, 20, 30),  # alpha dropped
        6: lambda im: (im == 77).all(),
    }
    assert all(check(by_index[i].image) for i, check in expect.items() if i in by_index)
    s = cap.stats()
    assert (s.frames_read, s.bad_frames, s.frames_converted) == (9, 4, 3)
    text = "\n".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    for needle in ("001.jpg: empty file", "002.jpg: truncated JPEG", "008.png", "9000x2"):
        assert needle in text


def test_image_folder_loops_in_name_order_at_fps(started, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="expressiond.sources.capture")
    for i, value in enumerate((10, 20, 30)):
        cv2.imwrite(str(tmp_path / f"img{i}.png"), np.full((20, 20, 3), value, np.uint8))
    (tmp_path / "zz.jpg").write_bytes(b"")  # bad in every pass, warned about once
    cap = started(camera(tmp_path, fps=20.0, loop=True))
    frames = drain(cap, timeout=10, until=lambda fr: fr[-1].index >= 16)
    good = [i for i in range(frames[-1].index + 1) if i % 4 != 3]
    assert_delivered(frames, cap, good)
    assert all(int(f.image[0, 0, 0]) == (10, 20, 30)[f.index % 4] for f in frames)
    # pacing counts delivered frames only: a bad file does not cost a period
    span = frames[-1].captured_mono - frames[0].captured_mono
    n = len([i for i in good if frames[0].index <= i <= frames[-1].index]) - 1
    assert n / 20 * 0.95 <= span <= n / 20 + 1.0
    s = cap.stats()
    assert s.loops >= 3 and s.bad_frames >= 4
    warned = [r for r in caplog.records if "zz.jpg" in r.getMessage()]
    assert len(warned) == 1 and warned[0].levelno == logging.WARNING


def test_looping_folder_without_usable_image_backs_off_instead_of_spinning(started, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="expressiond.sources.capture")
    (tmp_path / "a.jpg").write_bytes(b"")
    (tmp_path / "b.png").write_bytes(b"junk")
    cap = started(camera(tmp_path, fps=30.0, loop=True, reconnect_max_s=1.0))
    time.sleep(2.0)
    s = cap.stats()
    # passes at ~0, 0.5, 1.5 s (+/- jitter): a handful of reads, not thousands
    assert 4 <= s.frames_read <= 10 and s.bad_frames == s.frames_read, s
    assert s.frames_published == 0 and s.reconnects == 0
    lost = [r for r in caplog.records if "no usable frame" in r.getMessage()]
    assert len(lost) == 1 and lost[0].levelno == logging.WARNING


def test_jpeg_completeness_check():
    ok, jpg = cv2.imencode(".jpg", np.full((64, 64, 3), 128, np.uint8))
    assert jpeg_complete(jpg) and not jpeg_complete(jpg[:-2]) and not jpeg_complete(jpg[:100])


# live sources ------------------------------------------------------------------------------


def test_missing_v4l2_device_backs_off_with_one_clear_warning(started, caplog):
    caplog.set_level(logging.DEBUG, logger="expressiond.sources.capture")
    path = next(f"/dev/video{n}" for n in range(9, 99) if not os.path.exists(f"/dev/video{n}"))
    cap = started(camera(path, name="door", reconnect_max_s=30.0))
    by_index = started(camera(path.removeprefix("/dev/video"), name="idx", reconnect_max_s=30.0))
    assert by_index.kind == cap.kind == "v4l2"
    time.sleep(2.5)
    # attempts at ~0, 0.5, 1.5 (+/- 25 % jitter), next one not before ~3.0 s
    assert 2 <= cap.stats().open_failures <= 4, cap.stats()
    assert not cap.connected and cap.stats().frames_read == 0
    assert cap.slot.get(0.05) is None and not cap.finished
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert (
        warnings.count(
            f"camera door: V4L2 device {path} does not exist (camera unplugged? see `ls /dev/video*`);"
            " retrying with backoff up to 30 s"
        )
        == 1
    )
    assert sum("camera idx:" in w for w in warnings) == 1
    t0 = time.monotonic()
    assert cap.stop(2.0) and by_index.stop(2.0)
    assert time.monotonic() - t0 < 1.0  # stop interrupts the backoff wait


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve_mjpeg(port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-stream_loop",
            "-1",
            "-i",
            str(AVI),
            "-an",
            "-c:v",
            "mjpeg",
            "-q:v",
            "5",
            "-f",
            "mpjpeg",
            "-listen",
            "1",
            f"http://127.0.0.1:{port}/stream",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _end(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@needs_clips
@needs(shutil.which("ffmpeg"), "ffmpeg", "apt-get install ffmpeg (make deps does it)")
def test_http_mjpeg_stream_fps_cap_and_reconnect(started, caplog):
    caplog.set_level(logging.INFO, logger="expressiond.sources.capture")
    port = _free_port()
    server = _serve_mjpeg(port)  # 12.5 fps, live pace
    try:
        cap = started(camera(f"http://127.0.0.1:{port}/stream", fps=5.0, reconnect_max_s=1.0))
        assert cap.kind == "stream"
        first = drain(cap, timeout=15, until=lambda fr: True)
        assert first, cap.stats()
        s0, t0 = cap.stats(), time.monotonic()
        frames = drain(cap, timeout=4.0, until=lambda fr: time.monotonic() - t0 >= 4.0)
        s, dt = cap.stats(), time.monotonic() - t0
        read_fps = (s.frames_read - s0.frames_read) / dt
        pub_fps = (s.frames_published - s0.frames_published) / dt
        assert 9.0 <= read_fps <= 14.0, read_fps  # read as fast as the stream delivers
        assert 4.0 <= pub_fps <= 5.6, pub_fps  # capped at 5 fps
        assert s.frames_skipped >= 0.4 * s.frames_read and s.frames_dropped == 0
        assert [f.index for f in frames] == sorted({f.index for f in frames})
        _end(server)
        assert wait_until(lambda: not cap.connected, 10), cap.stats()
        server = _serve_mjpeg(port)
        before = cap.stats().frames_read
        assert wait_until(lambda: cap.stats().frames_read > before + 3, 15), cap.stats()
        assert cap.stats().reconnects == 1 and cap.connected
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        # ffmpeg may not listen yet when the camera first tries: that is an open failure
        # (its own warning), not a reconnect
        assert sum("lost stream source" in w for w in warnings) == 1, warnings
    finally:
        _end(server)
