"""Both decoders against the real RTSP server: PyAV (software) and the ffmpeg program (in its
software form: the VAAPI pipeline without -hwaccel; no iGPU here). Both transports,
credentials, a server that dies and comes back, a server that hangs. The served clip is
numbered (rtsp/numbered.py), 10 fps, 1 s GOP."""

from __future__ import annotations

import time

import pytest

from expressiond.sources.decode import DecodeOpenError, DecodeOptions
from expressiond.sources.decode.ffmpeg import FfmpegDecoder
from expressiond.sources.decode.pyav import AvDecoder
from rtsp.numbered import CELLS, frame_number

DECODERS = {
    "pyav": lambda opts, name="camera": AvDecoder(opts, name),
    "ffmpeg": lambda opts, name="camera": FfmpegDecoder(opts, name, hwaccel=False),
}


def read_for(dec, seconds: float) -> list[tuple[float, object]]:
    """(pts, image or None) of the reads made within ``seconds``; stops at a failure."""
    out = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ok, image, t = dec.read()
        if not ok:
            break
        out.append((t, image))
    return out


def check_capped_stream(dec, got: list[tuple[float, object]]) -> None:
    """5 fps cap on a 10 fps live stream: every frame decoded, every other one converted, each
    converted one an intact frame of the clip, two source frames after the one before."""
    kept = [image for _, image in got if image is not None]
    assert len(got) >= 20, f"{len(got)} frames in 3 s of a 10 fps stream"
    assert dec.frames_decoded == len(got) and dec.packets_skipped == 0  # a 1 s GOP: decode all
    assert abs(len(kept) - len(got) / 2) <= 2, (len(kept), len(got))
    numbers = [frame_number(image) for image in kept]
    assert None not in numbers, f"corrupt or foreign frames: {numbers}"
    steps = [(b - a) % CELLS for a, b in zip(numbers, numbers[1:], strict=False)]
    assert sum(s == 2 for s in steps) >= 0.75 * len(steps), numbers


@pytest.mark.parametrize("kind", DECODERS)
@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_live_stream_over_each_transport_with_the_cap(rtsp_server, numbered_clip, transport, kind):
    srv = rtsp_server(numbered_clip, protocols=transport)  # the other one would be refused
    dec = DECODERS[kind](DecodeOptions(rtsp_transport=transport, max_fps=5), "door")
    dec.open(srv.url())
    try:
        assert dec.codec == "h264"
        got = read_for(dec, 3.0)
    finally:
        dec.close()
    check_capped_stream(dec, got)
    assert dec.status != "fail", dec.error


@pytest.mark.parametrize("kind", DECODERS)
@pytest.mark.parametrize("auth", ["basic", "digest"])
def test_credentials(rtsp_server, numbered_clip, auth, kind):
    srv = rtsp_server(numbered_clip, user="cam", password="s3cr:t@x", auth=auth)
    dec = DECODERS[kind](DecodeOptions(decode="software", rtsp_transport="tcp", timeout_s=5))
    for user, password in (("cam", "wrong-pw"), ("", "")):
        with pytest.raises(DecodeOpenError) as err:
            dec.open(srv.url(user, password))
        text = str(err.value)
        assert "401" in text or "Unauthorized" in text, text
        assert "wrong-pw" not in text and "s3cr" not in text
    dec.open(srv.url())
    try:
        ok, image, _ = next(r for r in iter(dec.read, None) if r[1] is not None or not r[0])
    finally:
        dec.close()
    assert ok and frame_number(image) is not None


@pytest.mark.parametrize("kind", DECODERS)
@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_server_killed_then_back(rtsp_server, numbered_clip, transport, kind):
    """TCP sees the connection drop; UDP sees no more packets and times out (timeout_s)."""
    srv = rtsp_server(numbered_clip)
    opts = DecodeOptions(decode="software", rtsp_transport=transport, timeout_s=2.0)
    dec = DECODERS[kind](opts)
    dec.open(srv.url())
    assert len(read_for(dec, 1.0)) >= 5
    srv.kill()
    t0 = time.monotonic()
    read_for(dec, 15.0)
    noticed_s = time.monotonic() - t0
    assert dec.status == "fail" and dec.error, (dec.status, dec.error)
    assert noticed_s < opts.timeout_s + 3, f"{transport}: failure noticed after {noticed_s:.1f} s"
    dec.close()
    with pytest.raises(DecodeOpenError, match=r"cannot open rtsp://127\.0\.0\.1:\d+/cam: "):
        dec.open(srv.url())
    srv.restart()
    dec.open(srv.url())
    try:
        got = read_for(dec, 2.0)
    finally:
        dec.close()
    assert sum(image is not None for _, image in got) >= 10


@pytest.mark.parametrize("kind", DECODERS)
@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_a_hung_server_is_a_read_timeout(rtsp_server, numbered_clip, transport, kind):
    """SIGSTOP: the connection stays up and nothing arrives; read() fails after timeout_s."""
    srv = rtsp_server(numbered_clip)
    opts = DecodeOptions(decode="software", rtsp_transport=transport, timeout_s=2.0)
    dec = DECODERS[kind](opts)
    dec.open(srv.url())
    try:
        assert len(read_for(dec, 1.0)) >= 5
        srv.freeze()
        t0 = time.monotonic()
        read_for(dec, 15.0)
        noticed_s = time.monotonic() - t0
        failed = dec.status, dec.error
        t0 = time.monotonic()
        dec.close()  # still frozen: the TEARDOWN gets no answer
        close_s = time.monotonic() - t0
    finally:
        srv.thaw()
        dec.close()
    assert failed == ("fail", "no data for 2 s")
    assert close_s < opts.timeout_s + 1, f"close() took {close_s:.1f} s on a hung server"
    assert 1.0 < noticed_s < opts.timeout_s + 3, f"{transport}: noticed after {noticed_s:.1f} s"
    dec.open(srv.url())  # thawed: the server answers again
    try:
        assert sum(image is not None for _, image in read_for(dec, 1.5)) >= 5
    finally:
        dec.close()


@pytest.mark.parametrize("kind", DECODERS)
@pytest.mark.parametrize("served, asked", [("tcp", "udp"), ("udp", "tcp")])
def test_a_server_of_one_transport_refuses_the_other(rtsp_server, numbered_clip, kind, served, asked):
    """What makes the transport tests above (and the daemon's, tests/faults) proofs: the
    restricted server does not serve the other transport."""
    srv = rtsp_server(numbered_clip, protocols=served)
    dec = DECODERS[kind](DecodeOptions(decode="software", rtsp_transport=asked, timeout_s=3))
    t0 = time.monotonic()
    with pytest.raises(DecodeOpenError) as err:
        dec.open(srv.url())
    assert time.monotonic() - t0 < 3 * 3 + 2
    assert str(err.value) == f"cannot open {srv.url()}: Protocol not supported"  # RTSP 461
