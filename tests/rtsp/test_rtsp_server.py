"""The test RTSP server itself, read by OpenCV's FFmpeg backend (the daemon's reader today).

Real parts only: GStreamer's RTSP server on loopback, x264, FFmpeg's RTSP client. These tests
pin what the daemon's RTSP tests rely on: frames of the served clip arrive over TCP and UDP,
a transport the server refuses fails the open, credentials are checked, the stream loops,
and the server dies on SIGKILL and comes back on the same port.
"""

from __future__ import annotations

import time

import cv2
import pytest

from rtsp.numbered import CELLS, frame_number

OPEN_MS = 10000


def open_capture(url: str, transport: str | None, monkeypatch) -> cv2.VideoCapture:
    if transport:
        monkeypatch.setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", f"rtsp_transport;{transport}")
    else:
        monkeypatch.delenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", raising=False)
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000]
    return cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)


def read_numbers(cap: cv2.VideoCapture, count: int, budget_s: float = 20.0) -> list[int | None]:
    """Frame numbers of ``count`` frames read within ``budget_s``."""
    seen: list[int | None] = []
    deadline = time.monotonic() + budget_s
    while len(seen) < count and time.monotonic() < deadline:
        ok, image = cap.read()
        if not ok:
            break
        assert image.shape == (240, 320, 3), image.shape
        seen.append(frame_number(image))
    return seen


def assert_numbered_stream(seen: list[int | None], count: int) -> None:
    assert len(seen) == count, f"only {len(seen)} of {count} frames arrived"
    assert None not in seen, f"frames that are not the clip's: {seen}"
    steps = [(b - a) % CELLS for a, b in zip(seen, seen[1:], strict=False)]
    # a live 10 fps stream read as fast as it comes: consecutive source frames, the odd one
    # lost or repeated under load, never a jumble
    assert sum(s == 1 for s in steps) >= 0.8 * len(steps), seen


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_frames_of_the_clip_over_each_transport(rtsp_server, numbered_clip, monkeypatch, transport):
    srv = rtsp_server(numbered_clip)
    assert (srv.info["width"], srv.info["height"], srv.info["fps"]) == (320, 240, 10.0)
    cap = open_capture(srv.url(), transport, monkeypatch)
    try:
        assert cap.isOpened(), srv.log()
        seen = read_numbers(cap, 30)  # 3 s of a 2 s clip: it must wrap around
    finally:
        cap.release()
    assert_numbered_stream(seen, 30)
    wraps = sum(b < a for a, b in zip(seen, seen[1:], strict=False))
    assert wraps >= 1, f"the stream did not loop: {seen}"


@pytest.mark.parametrize("only, refused", [("tcp", "udp"), ("udp", "tcp")])
def test_a_transport_the_server_refuses_fails_the_open(
    rtsp_server, numbered_clip, monkeypatch, only, refused
):
    """Proves the transport tests above really used the transport they asked for."""
    srv = rtsp_server(numbered_clip, protocols=only)
    cap = open_capture(srv.url(), refused, monkeypatch)
    try:
        assert not cap.isOpened(), f"{refused} accepted by a {only}-only server"
    finally:
        cap.release()
    cap = open_capture(srv.url(), only, monkeypatch)
    try:
        assert cap.isOpened(), srv.log()
        assert_numbered_stream(read_numbers(cap, 10), 10)
    finally:
        cap.release()


@pytest.mark.parametrize("auth", ["basic", "digest"])
def test_credentials_are_checked(rtsp_server, numbered_clip, monkeypatch, auth):
    srv = rtsp_server(numbered_clip, user="cam", password="p@ss:w/rd", auth=auth)
    assert srv.url().startswith("rtsp://cam:p%40ss%3Aw%2Frd@127.0.0.1:")
    for user, password in (("cam", "wrong"), ("", ""), ("other", "p@ss:w/rd")):
        cap = open_capture(srv.url(user, password), "tcp", monkeypatch)
        try:
            assert not cap.isOpened(), f"{auth}: {user!r}/{password!r} let in"
        finally:
            cap.release()
    cap = open_capture(srv.url(), "tcp", monkeypatch)
    try:
        assert cap.isOpened(), srv.log()
        assert_numbered_stream(read_numbers(cap, 10), 10)
    finally:
        cap.release()


def test_killed_and_restarted_on_the_same_port(rtsp_server, numbered_clip, monkeypatch):
    srv = rtsp_server(numbered_clip)
    port = srv.port
    cap = open_capture(srv.url(), "tcp", monkeypatch)
    try:
        assert cap.isOpened(), srv.log()
        assert_numbered_stream(read_numbers(cap, 5), 5)
        srv.kill()
        t0 = time.monotonic()
        # frames already buffered may still come out; then reads fail, well within the timeout
        while time.monotonic() - t0 < 15 and cap.read()[0]:
            pass
        assert time.monotonic() - t0 < 15, "reads still succeed 15 s after the server was killed"
    finally:
        cap.release()
    assert not open_capture(srv.url(), "tcp", monkeypatch).isOpened(), "open succeeded with no server"
    srv.restart()
    assert srv.port == port
    cap = open_capture(srv.url(), "tcp", monkeypatch)
    try:
        assert cap.isOpened(), srv.log()
        assert_numbered_stream(read_numbers(cap, 10), 10)
    finally:
        cap.release()


def test_sigterm_exits_cleanly_and_frees_the_port(rtsp_server, numbered_clip, monkeypatch):
    srv = rtsp_server(numbered_clip)
    cap = open_capture(srv.url(), "tcp", monkeypatch)
    try:
        assert cap.isOpened(), srv.log()
        t0 = time.monotonic()
        assert srv.stop(10) == 0, srv.log()
        assert time.monotonic() - t0 < 10
    finally:
        cap.release()
    srv.start()  # the port is free again at once
    assert srv.starts == 2, "the port was still held after a clean exit"


def test_serves_the_sample_clip(rtsp_server, models_dir, monkeypatch):
    """The daemon's RTSP tests serve models/ir/samples/demo.avi (960x640, 10 fps)."""
    srv = rtsp_server(models_dir / "samples" / "demo.avi", path="/stream1")
    assert srv.url().endswith("/stream1")
    cap = open_capture(srv.url(), "udp", monkeypatch)
    try:
        assert cap.isOpened(), srv.log()
        frames = [cap.read() for _ in range(5)]
    finally:
        cap.release()
    assert all(ok and image.shape == (640, 960, 3) for ok, image in frames)
    assert max(float(image.std()) for _, image in frames) > 10, "flat frames: not the clip"


def test_missing_source_is_a_clear_error(tmp_path):
    from rtsp.fixtures import RtspServer, need_rtsp_server

    need_rtsp_server()
    srv = RtspServer(tmp_path / "nope.avi", tmp_path)
    with pytest.raises(AssertionError, match=r"exited 1: ERROR cannot decode .*nope\.avi"):
        srv.start(20)
