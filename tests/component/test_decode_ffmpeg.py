"""The ffmpeg-program decoder (sources/decode/ffmpeg.py) and the choice of backend
(sources/decode/backend.py, decoder.py).

Real VA decode is NOT tested here: this box has no iGPU (no /dev/dri). What runs for real is
the same pipeline without ``-hwaccel``: the fps cap in ``select``, the skip branch counted from
stderr, frames read from the pipe, sizes scaled in the graph, end and errors, on files made
here (RTSP: tests/rtsp/test_decode_rtsp.py); the exact command line VAAPI would run; and the
software fallback when a VAAPI open fails (the real ffmpeg, given a regular file as its render
node: the only fake, with a stand-in ffmpeg script that lists hwaccels without vaapi).
"""

from __future__ import annotations

import logging
import os
import shutil
import stat

import numpy as np
import pytest
from needs import need
from rtsp.numbered import CELLS, frame_number, write_numbered_clip, write_numbered_h264
from unprivileged import run_python

from expressiond.sources.decode import DecodeOpenError, DecodeOptions, Decoder, choose_backend
from expressiond.sources.decode.backend import ffmpeg_hwaccels
from expressiond.sources.decode.ffmpeg import FfmpegDecoder, command, filter_graph, shown
from expressiond.sources.decode.pyav import AvDecoder

FRAMES = 90  # 3 s at 30 fps
FFMPEG = shutil.which("ffmpeg")
pytestmark = pytest.mark.needs_input(ok=bool(FFMPEG), what="ffmpeg", fix="apt-get install ffmpeg (make deps)")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("ffdecode")
    return {
        "gop30": write_numbered_h264(d / "gop30.mp4", FRAMES, fps=30, gop=30),
        "mjpeg": write_numbered_clip(d / "mjpeg.avi", frames=40, fps=10.0),
    }


def drain(dec, limit: int = 10000) -> list:
    """The image (or None for a skipped frame) of every read until the end."""
    out = []
    for _ in range(limit):
        ok, image, _t = dec.read()
        if not ok:
            break
        out.append(image)
    return out


def software(**kw) -> FfmpegDecoder:
    return FfmpegDecoder(DecodeOptions(decode="software", timeout_s=5, **kw), "door", hwaccel=False)


def test_the_cap_keeps_every_third_frame_of_30_fps_and_counts_the_rest(clips):
    dec = software(max_fps=10)
    dec.open(str(clips["gop30"]))
    try:
        assert (dec.codec, dec.size) == ("h264", (320, 240))
        got = drain(dec)
        assert (dec.status, dec.error) == ("end", "")
    finally:
        dec.close()
    kept = [image for image in got if image is not None]
    assert len(got) == FRAMES and dec.frames_decoded == FRAMES
    assert (dec.frames_converted, dec.frames_skipped) == (30, 60)
    assert [frame_number(image) for image in kept] == [(3 * k) % CELLS for k in range(30)]  # FpsCap's rule


def test_without_a_cap_every_frame_comes_as_pyav_decodes_it(clips):
    dec = software()
    dec.open(str(clips["gop30"]))
    ref = AvDecoder(DecodeOptions(decode="software"))
    ref.open(str(clips["gop30"]))
    try:
        got = drain(dec)
        theirs = [image for image in drain(ref) if image is not None]
    finally:
        dec.close()
        ref.close()
    assert len(got) == len(theirs) == FRAMES and dec.frames_skipped == 0
    assert [frame_number(image) for image in got] == [i % CELLS for i in range(FRAMES)]
    diff = np.abs(np.stack(got).astype(np.int16) - np.stack(theirs))
    assert diff.mean() < 2.0, diff.mean()  # swscale vs OpenCV's converter: rounding only


def test_mjpeg_at_half_the_rate_and_a_size_scaled_in_the_graph(clips):
    dec = software(max_fps=5, size=(160, 120))
    dec.open(str(clips["mjpeg"]))
    try:
        assert dec.size == (160, 120)
        got = drain(dec)
    finally:
        dec.close()
    kept = [image for image in got if image is not None]
    assert len(got) == 40 and dec.frames_skipped == 20
    assert {image.shape for image in kept} == {(120, 160, 3)}
    assert [frame_number(image) for image in kept] == [(2 * k) % CELLS for k in range(20)]


def test_open_errors_are_one_line_without_the_password(tmp_path):
    dec = software()
    with pytest.raises(DecodeOpenError, match=r"^cannot open .*nope\.mp4: No such file or directory$"):
        dec.open(str(tmp_path / "nope.mp4"))
    zeros = tmp_path / "zeros.mp4"
    zeros.write_bytes(bytes(1000))
    with pytest.raises(DecodeOpenError, match=r"zeros\.mp4: Invalid data found"):
        dec.open(str(zeros))
    with pytest.raises(DecodeOpenError) as err:  # nothing listens on port 9 of loopback
        dec.open("rtsp://admin:hunter2@127.0.0.1:9/stream")
    assert str(err.value) == "cannot open rtsp://admin:***@127.0.0.1:9/stream: Connection refused"
    assert dec.status == "closed"


def test_close_ends_the_process_at_once(clips):
    dec = software(max_fps=10)
    dec.open(str(clips["gop30"]))
    proc = dec._proc
    assert dec.read()[0]
    dec.close()  # ffmpeg is blocked writing to a full pipe: closing it ends the write
    assert proc.poll() is not None and dec._err_thread is not None and not dec._err_thread.is_alive()
    assert dec.read() == (False, None, None) and dec.error == "not open"


def test_the_vaapi_command_keeps_skipped_frames_on_the_gpu():
    url = "rtsp://viewer:hunter2@10.0.0.5:554/s"
    opts = DecodeOptions(decode="vaapi", rtsp_transport="udp", max_fps=10, size=(640, 360))
    argv = command(url, opts, hwaccel=True)
    hw = ["-hwaccel", "vaapi", "-hwaccel_device", "/dev/dri/renderD128", "-hwaccel_output_format", "vaapi"]
    i = argv.index("-hwaccel")
    assert argv[i : i + 6] == hw and i < argv.index("-i") and argv[argv.index("-i") + 1] == url
    assert argv[argv.index("-rtsp_transport") + 1] == "udp"
    assert argv[argv.index("-use_wallclock_as_timestamps") + 1] == "1"  # a live stream: arrival time
    assert argv[-7:] == ["-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "bgr24", "pipe:1"]
    graph = argv[argv.index("-filter_complex") + 1]
    keep = graph.split("[keep]", 2)[2]
    # the cap first, then (kept frames only) scale on the GPU, download, convert
    assert graph.startswith("[0:v]select='") and ":outputs=2[keep][skip];[skip]metadata=" in graph
    assert keep == "scale_vaapi=w=640:h=360:format=nv12,hwdownload,format=nv12,format=bgr24[out]"
    assert "hunter2" not in shown(argv) and "rtsp://viewer:***@10.0.0.5:554/s" in shown(argv)
    assert "-use_wallclock_as_timestamps" not in command("/srv/a.mp4", opts, hwaccel=True)
    plain = filter_graph(DecodeOptions(), hwaccel=True)
    assert plain == "[0:v]hwdownload,format=nv12,format=bgr24[out]"


def _node(tmp_path):
    node = tmp_path / "renderD128"
    node.touch()
    return node


def test_backend_choice(tmp_path):
    assert choose_backend("software") == ("software", "")
    with pytest.raises(ValueError, match="auto, software, vaapi"):
        choose_backend("gpu")
    backend, why = choose_backend("auto", str(tmp_path / "renderD128"))
    assert backend == "software" and why.startswith(f"no VA device {tmp_path}/renderD128 (no Intel/AMD GPU")
    node = _node(tmp_path)
    fake = tmp_path / "ffmpeg"  # stand-in: an ffmpeg built without VAAPI
    fake.write_text("#!/bin/sh\nprintf 'Hardware acceleration methods:\\ncuda\\ndrm\\n\\n'\n")
    fake.chmod(0o755)
    assert choose_backend("vaapi", str(node), str(fake)) == (
        "software",
        f"{fake} has no VAAPI (its -hwaccels: cuda, drm): install Debian's ffmpeg",
    )
    backend, why = choose_backend("auto", str(node), str(tmp_path / "none"))
    assert backend == "software" and why.startswith("no ffmpeg program")
    accels, problem = ffmpeg_hwaccels("ffmpeg")  # the real one
    assert problem == "" and accels, problem
    assert choose_backend("auto", str(node))[0] == ("vaapi" if "vaapi" in accels else "software")


def test_a_render_node_without_access_says_group_render(tmp_path):
    node = _node(tmp_path)
    node.chmod(0)
    code = (
        "from expressiond.sources.decode import choose_backend; "
        f"print(choose_backend('vaapi', {str(node)!r})[1])"
    )
    r = run_python(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"no access to {node}: add the service user to group render"
    assert stat.S_IMODE(os.stat(node).st_mode) == 0


@pytest.mark.parametrize("mode, level", [("vaapi", logging.WARNING), ("auto", logging.INFO)])
def test_no_render_node_decodes_in_software_said_once(clips, caplog, tmp_path, mode, level):
    dec = Decoder(DecodeOptions(decode=mode, va_device=str(tmp_path / "renderD128")), name="door")
    with caplog.at_level(logging.DEBUG, logger="expressiond.sources.decode"):
        for _ in range(3):  # reconnects do not repeat it
            dec.open(str(clips["gop30"]))
            assert dec.backend == "software" and isinstance(dec.impl, AvDecoder)
            assert frame_number(dec.read()[1]) == 0
            dec.close()
    lines = [r for r in caplog.records if "decoding in software" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == level and lines[0].camera == "door"
    assert lines[0].getMessage().startswith(f"camera door: decoding in software: no VA device {tmp_path}")


def test_a_vaapi_open_that_fails_falls_back_to_software_once(clips, caplog, tmp_path):
    """The real ffmpeg (Debian's lists vaapi), a "render node" that is a regular file: ffmpeg
    cannot make the VA device, the software open works, so the device was the problem."""
    need("vaapi" in ffmpeg_hwaccels("ffmpeg")[0], "an ffmpeg with VAAPI", "apt-get install ffmpeg (Debian's)")
    node = _node(tmp_path)
    dec = Decoder(DecodeOptions(decode="vaapi", va_device=str(node), timeout_s=10), name="door")
    assert dec.backend == "vaapi" and isinstance(dec.impl, FfmpegDecoder)
    with caplog.at_level(logging.INFO, logger="expressiond.sources.decode"):
        for _ in range(2):
            dec.open(str(clips["gop30"]))
            assert dec.backend == "software"
            assert frame_number(dec.read()[1]) == 0
            dec.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith(
        f"camera door: decoding in software: VAAPI failed on {node} (cannot open {clips['gop30']}: "
    ), lines
    assert "Device setup failed" in lines[0] or "VAAPI" in lines[0].split("(cannot open", 1)[1]
    # a source that does not open in software either is the source's fault: its error is raised
    dec = Decoder(DecodeOptions(decode="vaapi", va_device=str(node)), name="yard")
    with pytest.raises(DecodeOpenError, match="No such file"):
        dec.open(str(tmp_path / "nope.mp4"))
