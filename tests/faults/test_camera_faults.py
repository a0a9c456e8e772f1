"""Camera faults against the real daemon: a video file source removed and put back, and a
network stream whose server (a local ffmpeg) is killed and restarted.

The stream is HTTP multipart MJPEG served by ``ffmpeg -f mpjpeg -listen 1``: what many IP
cameras serve, through the same stream decoder (sources/decode: open/read timeouts) and
reconnect with backoff as rtsp://. RTSP itself, with a real RTSP server, over each transport,
and the per-camera stall are in test_rtsp_camera.py.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from broker import free_port
from faultkit import camera_stats, settle_and_tally, wait_delivered
from needs import needs

pytestmark = pytest.mark.integration
FFMPEG = shutil.which("ffmpeg")


def test_file_source_removed_and_put_back(watched, demo_clip, tmp_path, fault_row):
    clip = tmp_path / "hall.avi"
    shutil.copyfile(demo_clip, clip)
    away = tmp_path / "hall.avi.away"
    col, d = watched("file", source=clip)
    assert d.wait_produced(5, 60), d.log()[-3000:]
    clip.rename(away)  # the open file plays to its end; the reopen for the next pass fails
    assert d.wait_log(r"camera door: video file .* does not exist", 30), d.log()[-3000:]
    n_gone = len(d.produced())
    time.sleep(3)
    assert d.alive
    away.rename(clip)
    t_back = time.monotonic()
    assert d.wait_log(r"camera door: source back after", 20), d.log()[-3000:]
    back_s = time.monotonic() - t_back
    assert d.wait_more(5, 60) >= 5, "no events after the file came back"
    assert wait_delivered(col, [e["id"] for e in d.produced()], 30)
    cam = camera_stats(col, lambda c: c.get("reconnects", 0) >= 1)
    t = settle_and_tally(d, col)

    fault_row.update(
        key="camera-file-removed",
        fault="camera source removed (video file)",
        how="the looped video file renamed away for 3 s while playing, then put back",
        result=f"reopen failed {cam.get('open_failures')} times with backoff, back "
        f"{back_s:.1f} s after the file returned; events resumed",
        **t.row(),
        details={
            "open_failures": cam.get("open_failures"),
            "reconnects": cam.get("reconnects"),
            "events_before_removal": n_gone,
            "seconds_to_recover": round(back_s, 1),
        },
    )
    assert t.lost == 0 and t.in_order, t
    assert cam.get("open_failures", 0) >= 1 and cam.get("reconnects", 0) >= 1, cam


def serve_mjpeg(clip: Path, port: int, log: Path) -> subprocess.Popen:
    with open(log, "ab") as err:
        return subprocess.Popen(
            [
                FFMPEG,
                "-hide_banner",
                "-nostdin",
                "-loglevel",
                "warning",
                "-re",
                "-stream_loop",
                "-1",
                "-i",
                str(clip),
                "-c:v",
                "copy",
                "-f",
                "mpjpeg",
                "-listen",
                "1",
                f"http://127.0.0.1:{port}/cam",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


@needs(FFMPEG, "ffmpeg", "apt-get install ffmpeg (make deps does it)")
def test_stream_server_killed_and_restarted(watched, demo_clip, tmp_path, fault_row):
    port = free_port()
    ff_log = tmp_path / "ffmpeg.log"
    servers = [serve_mjpeg(demo_clip, port, ff_log)]
    try:
        col, d = watched("stream", source=f"http://127.0.0.1:{port}/cam")
        assert d.wait_log(r"camera door: opened stream source", 30), d.log()[-3000:]
        assert d.wait_produced(5, 60), d.log()[-3000:] + ff_log.read_text()
        servers[0].send_signal(signal.SIGKILL)
        servers[0].wait(10)
        t_kill = time.monotonic()
        assert d.wait_log(r"camera door: lost stream source", 20), d.log()[-3000:]
        lost_after_s = time.monotonic() - t_kill
        time.sleep(3)
        assert d.alive
        servers.append(serve_mjpeg(demo_clip, port, ff_log))
        t_back = time.monotonic()
        assert d.wait_log(r"camera door: source back after", 30), d.log()[-3000:]
        back_s = time.monotonic() - t_back
        assert d.wait_more(5, 60) >= 5, "no events after the stream came back"
        assert wait_delivered(col, [e["id"] for e in d.produced()], 30)
        cam = camera_stats(col, lambda c: c.get("reconnects", 0) >= 1)
        t = settle_and_tally(d, col)
    finally:
        for s in servers:
            if s.poll() is None:
                s.kill()
                s.wait(10)

    fault_row.update(
        key="camera-stream-killed",
        fault="camera stream server killed and restarted",
        how="HTTP MJPEG stream served by a local ffmpeg (-f mpjpeg -listen 1) SIGKILLed, "
        "restarted 3 s later on the same port",
        result=f"loss seen after {lost_after_s:.1f} s, reconnected {back_s:.1f} s after the "
        "server returned; events resumed",
        **t.row(),
        details={
            "open_failures": cam.get("open_failures"),
            "reconnects": cam.get("reconnects"),
            "seconds_to_notice": round(lost_after_s, 1),
            "seconds_to_recover": round(back_s, 1),
        },
    )
    assert t.lost == 0 and t.in_order, t
    assert cam.get("reconnects", 0) >= 1, cam
