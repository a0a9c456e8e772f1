"""The PyAV decoder (sources/decode/pyav.py, software) on real files (H.264 and MJPEG made
here with PyAV's own FFmpeg/x264).

Frames are numbered (tests/rtsp/numbered.py), so every check is on content: the frame the cap
kept is the frame of that time, decoded without corruption. The backend choice, VAAPI and the
fallback are in test_decode_ffmpeg.py.
"""

from __future__ import annotations

import logging

import av
import cv2
import numpy as np
import pytest
from rtsp.numbered import CELLS, H, W, frame_number, write_numbered_clip, write_numbered_h264

from expressiond.sources.decode import DecodeOpenError, DecodeOptions, FpsCap
from expressiond.sources.decode import pyav as decode_av
from expressiond.sources.decode.pyav import AvDecoder

FRAMES = 90  # 3 s at 30 fps


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("decode")
    return {
        "gop30": write_numbered_h264(d / "gop30.mp4", FRAMES, fps=30, gop=30),
        "gop3": write_numbered_h264(d / "gop3.mp4", FRAMES, fps=30, gop=3),
        "mjpeg": write_numbered_clip(d / "mjpeg.avi", frames=40, fps=10.0),
    }


def drain(dec: AvDecoder, limit: int = 10000) -> list[tuple[float, object]]:
    """(pts, image or None) of every read until the end."""
    out = []
    for _ in range(limit):
        ok, image, t = dec.read()
        if not ok:
            break
        out.append((t, image))
    return out


def check_content(kept: list[tuple[float, object]], fps: float) -> None:
    """Each kept image is the source frame of its timestamp (numbered i at i/fps)."""
    for t, image in kept:
        assert image.shape == (H, W, 3) and image.dtype.name == "uint8"
        assert frame_number(image) == round(t * fps) % CELLS, f"frame at {t:.3f} s is not the clip's"


def test_every_frame_without_a_cap(clips):
    dec = AvDecoder(DecodeOptions(decode="software"))
    dec.open(str(clips["gop30"]))
    got = drain(dec)
    assert dec.status == "end" and dec.codec == "h264"
    assert len(got) == FRAMES and all(image is not None for _, image in got)
    assert [round(t * 30) for t, _ in got] == list(range(FRAMES))
    check_content(got, 30)
    assert (dec.frames_decoded, dec.frames_converted, dec.frames_skipped) == (FRAMES, FRAMES, 0)


def test_h264_with_a_long_gop_decodes_all_and_converts_only_kept_frames(clips):
    """30 fps, key frame every 1 s, cap 10 fps: P-frames must all be decoded (each refers to
    the one before), only one in three is converted, and the kept ones are intact."""
    dec = AvDecoder(DecodeOptions(decode="software", max_fps=10))
    dec.open(str(clips["gop30"]))
    got = drain(dec)
    kept = [(t, image) for t, image in got if image is not None]
    assert len(got) == FRAMES, "one result per frame, skipped ones included"
    assert [round(t * 30) for t, _ in kept] == list(range(0, FRAMES, 3))
    check_content(kept, 30)
    assert dec.frames_decoded == FRAMES and dec.packets_skipped == 0
    assert (dec.frames_converted, dec.frames_skipped) == (FRAMES // 3, FRAMES - FRAMES // 3)


def test_h264_with_key_frames_as_often_as_the_cap_decodes_key_frames_only(clips):
    """Key frame every 3rd frame (0.1 s) and a 10 fps cap: once 4 steady GOPs are seen, the
    P-frames are not decoded at all, and the cap still gets a frame every 0.1 s."""
    dec = AvDecoder(DecodeOptions(decode="software", max_fps=10))
    dec.open(str(clips["gop3"]))
    got = drain(dec)
    kept = [(t, image) for t, image in got if image is not None]
    assert [round(t * 30) for t, _ in kept] == list(range(0, FRAMES, 3))
    check_content(kept, 30)
    # the first 4 GOPs (12 frames) are decoded in full while the GOP is measured
    assert dec.packets_skipped == (FRAMES - 12) * 2 // 3, dec.packets_skipped
    assert dec.frames_decoded == FRAMES - dec.packets_skipped


def test_scene_cut_key_frames_do_not_switch_to_key_frames_only(tmp_path):
    """Three extra key frames 0.1 s apart in a 1 s GOP (scene cuts) are not a steady short
    GOP: everything is decoded and the cap keeps every 3rd frame as usual."""
    clip = write_numbered_h264(tmp_path / "cuts.mp4", 40, fps=30, gop=30, keys=frozenset({3, 6, 9}))
    dec = AvDecoder(DecodeOptions(decode="software", max_fps=10))
    dec.open(str(clip))
    kept = [(t, image) for t, image in drain(dec) if image is not None]
    assert dec.packets_skipped == 0
    assert [round(t * 30) for t, _ in kept] == list(range(0, 40, 3))
    check_content(kept, 30)


def test_a_gop_that_grows_costs_at_most_that_gop(tmp_path):
    """Key frames every 0.1 s for 4 gaps (key frames only from then on), then 1 s without one:
    the P-frames of that second were skipped, so the cap gets nothing until the next key
    frame, where decoding everything resumes. The price of not decoding: one GOP, once."""
    keys = frozenset({3, 6, 9, 12})
    clip = write_numbered_h264(tmp_path / "grows.mp4", 60, fps=30, gop=30, keys=keys)
    dec = AvDecoder(DecodeOptions(decode="software", max_fps=10))
    dec.open(str(clip))
    kept = [(t, image) for t, image in drain(dec) if image is not None]
    # after a gap the cap re-anchors 20 % of a period early (the OpenCV path's rule): 42, 44
    assert [round(t * 30) for t, _ in kept] == [0, 3, 6, 9, 12, 42, 44, 47, 50, 53, 56, 59]
    check_content(kept, 30)
    assert dec.packets_skipped == 29  # frames 13..41


def test_mjpeg_frames_above_the_cap_are_not_decoded(clips):
    """Intra-only: every other packet of a 10 fps MJPEG clip is never decoded at a 5 fps cap."""
    dec = AvDecoder(DecodeOptions(decode="software", max_fps=5))
    dec.open(str(clips["mjpeg"]))
    got = drain(dec)
    kept = [(t, image) for t, image in got if image is not None]
    assert dec.codec == "mjpeg" and len(got) == 40
    assert [round(t * 10) for t, _ in kept] == list(range(0, 40, 2))
    check_content(kept, 10)
    assert (dec.packets_skipped, dec.frames_decoded, dec.frames_converted) == (20, 20, 20)


def test_size_is_applied_in_the_conversion(clips):
    dec = AvDecoder(DecodeOptions(decode="software", size=(160, 120)))
    dec.open(str(clips["gop30"]))
    ok, image, _ = dec.read()
    assert ok and image.shape == (120, 160, 3)
    assert frame_number(image) == 0
    dec.close()
    assert dec.read()[0] is False and dec.status == "fail"


def test_fps_cap_rule():
    cap = FpsCap(10)
    times = [i / 30 for i in range(30)]
    assert [t for t in times if cap.keep(t)] == times[::3]
    cap = FpsCap(10)  # jitter of up to 20 % of a period early still counts
    assert [cap.keep(t) for t in (0.0, 0.085, 0.19, 0.25, 0.3)] == [True, True, True, False, True]
    cap = FpsCap(10)  # a jump back (a file looped, a camera restarted) starts afresh
    assert [cap.keep(t) for t in (5.0, 5.05, 0.0, 0.05, 0.1)] == [True, False, True, False, True]
    assert all(FpsCap(None).keep(t) for t in (0.0, 0.0, 0.001))


def test_timestamps_that_do_not_advance_switch_to_arrival_time(caplog):
    dec = AvDecoder(DecodeOptions(decode="software", max_fps=10))
    with caplog.at_level(logging.INFO, logger="expressiond.sources.decode.pyav"):
        times = [dec._time(1.0) for _ in range(decode_av.PTS_BAD_MAX + 2)]
    assert times[: decode_av.PTS_BAD_MAX] == [1.0] * decode_av.PTS_BAD_MAX
    assert times[-1] > 1000, "after PTS_BAD_MAX stuck timestamps the monotonic clock is used"
    assert sum("timestamps do not advance" in r.getMessage() for r in caplog.records) == 1


def test_software_mode_logs_nothing(clips, caplog):
    with caplog.at_level(logging.DEBUG, logger="expressiond.sources.decode.pyav"):
        dec = AvDecoder(DecodeOptions(decode="software"))
        dec.open(str(clips["gop30"]))
        dec.close()
    assert not [r for r in caplog.records if "software" in r.getMessage()]


def test_open_errors_are_one_clear_line(tmp_path):
    dec = AvDecoder(DecodeOptions(decode="software", timeout_s=3))
    with pytest.raises(DecodeOpenError, match=r"cannot open .*nope\.mp4: No such file"):
        dec.open(str(tmp_path / "nope.mp4"))
    text = tmp_path / "zeros.mp4"
    text.write_bytes(bytes(1000))
    with pytest.raises(DecodeOpenError, match=r"cannot open .*zeros\.mp4: Invalid data"):
        dec.open(str(text))
    # nothing listens on port 9 of loopback: refused at once, and the password is not told
    with pytest.raises(DecodeOpenError) as err:
        dec.open("rtsp://admin:hunter2@127.0.0.1:9/stream")
    assert "hunter2" not in str(err.value) and "rtsp://admin:***@127.0.0.1:9/stream" in str(err.value)


def test_same_pixels_as_opencv_within_rounding(models_dir, tmp_path):
    """A photo-like H.264 clip (the sample clip re-encoded): the BGR frames equal those of
    cv2.VideoCapture (the OpenCV path) within rounding, so models see what they saw before."""
    source = cv2.VideoCapture(str(models_dir / "samples" / "demo.avi"))
    clip = tmp_path / "photos.mp4"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 960, 640, "yuv420p"
        for _ in range(8):
            ok, image = source.read()
            assert ok
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        out.mux(stream.encode(None))
    source.release()
    dec = AvDecoder(DecodeOptions(decode="software"))
    dec.open(str(clip))
    cap = cv2.VideoCapture(str(clip), cv2.CAP_FFMPEG)
    try:
        for _ in range(8):
            ok, ours, _ = dec.read()
            ok_cv, theirs = cap.read()
            assert ok and ok_cv and ours.shape == theirs.shape == (640, 960, 3)
            diff = np.abs(ours.astype(np.int16) - theirs)
            assert diff.mean() < 2.0 and np.percentile(diff, 99.9) <= 6, (diff.mean(), diff.max())
            assert float(theirs.std()) > 20, "a flat frame would prove nothing"
    finally:
        dec.close()
        cap.release()


def test_a_reopen_starts_a_new_timeline(clips):
    """A reconnect (here: the file reopened 0.3 s in) restarts the cap and the timestamp
    checks: its first frame is kept, not dropped as 'before the next due time'."""
    dec = AvDecoder(DecodeOptions(decode="software", max_fps=10))
    dec.open(str(clips["gop30"]))
    assert [image is not None for _, image in (drain(dec, 10))] == [True, False, False] * 3 + [True]
    dec.open(str(clips["gop30"]))
    ok, image, t = dec.read()
    assert ok and t == 0.0 and image is not None and frame_number(image) == 0
    dec.close()
