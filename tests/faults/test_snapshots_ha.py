"""Snapshots and Home Assistant semantics against the real daemon and a real mosquitto.

- ``snapshot = "face"``: a retained, decodable JPEG in which the real face detector finds the
  face, within snapshot_max_side, at most one per snapshot_interval, announced as an HA
  ``image`` entity, never in the spool;
- ``snapshot = "off"`` (the default): no pixels anywhere: a subscriber to ``#`` (every topic,
  Home Assistant's included) gets no image, the broker's own log shows every publish on a
  snapshot topic empty (the clearing of an old retained picture), the spool holds none;
- the discovery the daemon published, rendered as Home Assistant renders it
  (tests/ha_render.py), on the event payloads the daemon published: start and change fire the
  expression, every end fires ``end``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from broker import Collector
from faultkit import BASE, CAMERA, DEVICE_ID, event_payloads, wait_delivered
from ha_render import event_fired

pytestmark = pytest.mark.integration
SNAPSHOT = f"{BASE}/{CAMERA}/snapshot"
CONFIG = f"homeassistant/device/{DEVICE_ID}/config"
JPEG_SOI = b"\xff\xd8\xff"


def pictures(col: Collector) -> list:
    return [m for m in col.snapshot(lambda t: t == SNAPSHOT) if m.payload]


def spool_bytes(tmp_path) -> bytes:
    state = tmp_path / "state"
    return b"".join(p.read_bytes() for p in sorted(state.glob("spool.db*")))


def test_face_snapshots_are_bounded_rate_limited_jpegs_of_the_face(broker, watched, tmp_path, models_dir):
    interval = 1.0
    col, d = watched(
        "snapface",
        ha_discovery=True,
        camera_extra=f'snapshot = "face"\nsnapshot_interval = {interval}\nsnapshot_max_side = 160',
    )
    t0 = time.monotonic()
    assert col.wait_for(lambda ms: len(pictures(col)) >= 3, 60), d.log()[-3000:]
    window = time.monotonic() - t0
    snaps = pictures(col)
    firing = [e for e in d.produced() if e["type"] in ("start", "change")]
    # at most one per interval (counted over the whole window), and never more than events
    assert len(snaps) <= window / interval + 1 and len(snaps) <= len(firing), (len(snaps), window)
    sizes = []
    for m in snaps:
        assert m.payload.startswith(JPEG_SOI)
        image = cv2.imdecode(np.frombuffer(m.payload, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and max(image.shape[:2]) <= 160, image.shape
        sizes.append(len(m.payload))
    first = tmp_path / "snapshot.jpg"
    first.write_bytes(snaps[0].payload)
    found = subprocess.run(
        [
            sys.executable,
            "-m",
            "expressiond.cli",
            "classify",
            "--json",
            "--models",
            str(models_dir),
            str(first),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    (result,) = json.loads(found.stdout)
    side = max(cv2.imread(str(first)).shape[:2])
    faces = result["faces"]
    assert faces, f"no face in the snapshot: {result}"
    assert max(max(f["box"][2], f["box"][3]) for f in faces) >= 0.4 * side, "the face fills the crop"

    late = Collector(broker, [SNAPSHOT]).start()
    assert late.wait_for(lambda ms: len(ms) == 1, 10)
    assert late.messages[0].retain and late.messages[0].payload.startswith(JPEG_SOI)
    late.stop()
    cfg = Collector(broker, [CONFIG]).start()
    assert cfg.wait_for(lambda ms: len(ms) == 1, 10)
    image_entity = json.loads(cfg.messages[0].payload)["components"][f"{DEVICE_ID}_{CAMERA}_snapshot"]
    cfg.stop()
    assert image_entity["image_topic"] == SNAPSHOT and image_entity["content_type"] == "image/jpeg"
    assert d.terminate() == 0
    assert JPEG_SOI not in spool_bytes(tmp_path), "a snapshot reached the spool"
    print(f"snapshots: {len(snaps)} in {window:.1f} s, {min(sizes)}-{max(sizes)} bytes")


def test_snapshot_off_sends_no_pixels_and_ends_never_fire_the_expression(broker, watched, tmp_path):
    everything = Collector(broker, ["#"]).start()
    try:
        col, d = watched("snapoff", ha_discovery=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            kinds = [e["type"] for e in d.produced()]
            if kinds.count("end") >= 2 and len(kinds) >= 6:
                break
            time.sleep(0.2)
        assert wait_delivered(col, [e["id"] for e in d.produced()], 30)
        assert d.terminate() == 0
        messages = everything.snapshot()
    finally:
        everything.stop()

    # no pixels anywhere: no JPEG (or PNG) in any payload on any topic
    assert not [m.topic for m in messages if JPEG_SOI in m.payload or b"\x89PNG" in m.payload]
    on_snapshot = [m for m in messages if m.topic.endswith("/snapshot")]
    assert on_snapshot and all(m.payload == b"" for m in on_snapshot), "only the clearing message"
    publishes = re.findall(
        r"Received PUBLISH from \S+ \([^)]*'([^']+)', \.\.\. \((\d+) bytes\)\)", broker.log_text()
    )
    snapshot_sizes = [size for topic, size in publishes if topic.endswith("/snapshot")]
    assert snapshot_sizes and set(snapshot_sizes) == {"0"}, publishes  # mosquitto logs each PUBLISH
    assert JPEG_SOI not in spool_bytes(tmp_path)

    # Home Assistant's view of the events, from the discovery the daemon published
    config = json.loads(next(m.payload for m in messages if m.topic == CONFIG))
    components = config["components"]
    assert components[f"{DEVICE_ID}_{CAMERA}_snapshot"] == {"platform": "image"}
    entity = components[f"{DEVICE_ID}_{CAMERA}_expression_event"]
    seen = {}
    for payload in event_payloads(col):
        fired = event_fired(entity, json.dumps(payload))
        assert fired is not None, f"Home Assistant would refuse {payload}"
        want = "end" if payload["type"] == "end" else payload["expression"]
        assert fired["event_type"] == want and fired["type"] == payload["type"], (fired, payload)
        seen[payload["type"]] = seen.get(payload["type"], 0) + 1
    assert seen.get("start", 0) >= 1 and seen.get("end", 0) >= 2, seen
