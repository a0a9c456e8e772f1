"""Bad input against the real daemon: malformed frames in an image-folder camera, and
oversized or binary payloads on the one topic it subscribes to (homeassistant/status).

Camera names, device ids and prefixes with MQTT wildcards are rejected at config time:
tests/unit/test_config_errors.py (named cases) and test_config_fuzz.py (the property)."""

from __future__ import annotations

import random
import re
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.client as mqtt
import pytest
from faultkit import (
    camera_stats,
    daemon_toml,
    settle_and_tally,
    subscriber,
    wait_delivered,
    wait_stats,
)

pytestmark = pytest.mark.integration


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` and holds (almost) no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def malformed_folder(folder: Path, photos: list[Path]) -> dict[str, list[str]]:
    """Good photos between malformed files; returns the file names by expected outcome."""
    folder.mkdir()
    photo = cv2.imread(str(photos[0]))
    rng = random.Random(7)
    kinds: dict[str, list[str]] = {"good": [], "converted": [], "bad": []}

    def put(name: str, kind: str, data: bytes | None = None, image=None) -> None:
        if image is not None:
            ok, buf = cv2.imencode(Path(name).suffix, image)
            assert ok
            data = buf.tobytes()
        (folder / name).write_bytes(data)
        kinds[kind].append(name)

    for i, p in enumerate(photos[:3]):
        put(f"{i * 20:02d}-good.jpg", "good", p.read_bytes())
    put("03-empty.jpg", "bad", b"")  # 0 bytes
    put("04-zero-size.png", "bad", png_header_only(0, 0))  # a 0x0 image
    put("05-gray.png", "converted", image=cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY))  # 1 channel
    put("06-16bit.png", "converted", image=photo.astype(np.uint16) * 257)  # 16-bit
    put("07-8k.jpg", "good", image=cv2.resize(photo, (7680, 4320)))  # 8K
    jpeg = photos[1].read_bytes()
    put("08-truncated.jpg", "bad", jpeg[: len(jpeg) // 2])
    put("09-garbage.jpg", "bad", bytes(rng.randrange(256) for _ in range(4096)))
    put("11-too-wide.png", "bad", image=np.zeros((16, 9000, 3), np.uint8))  # over 8192 px
    put("12-bomb.png", "bad", png_header_only(65535, 65535))  # 4.3 gigapixels claimed
    put("13-alpha.png", "converted", image=cv2.cvtColor(photo, cv2.COLOR_BGR2BGRA))
    return kinds


def test_malformed_frames_in_an_image_folder(
    broker, subscribers, daemon_factory, models_dir, ov_cache, sample_images, tmp_path, fault_row
):
    folder = tmp_path / "frames"
    kinds = malformed_folder(folder, sample_images)
    n_files = sum(len(v) for v in kinds.values())
    col = subscriber(broker, "frames")
    subscribers.append(col)
    d = daemon_factory(
        daemon_toml(
            models_dir=models_dir,
            cache_dir=ov_cache,
            source=folder,
            fps=10,
            broker=broker,
            spool=tmp_path / "state" / "spool.db",
        )
    )
    d.start().wait_ready()
    cam = camera_stats(col, lambda c: c.get("loops", 0) >= 2, timeout=60)
    assert cam.get("loops", 0) >= 2, cam
    assert d.alive, d.log()[-3000:]
    assert d.wait_produced(3, 30)
    assert wait_delivered(col, [e["id"] for e in d.produced()], 30)
    t = settle_and_tally(d, col)

    loops, bad, conv = cam["loops"], cam["bad_frames"], cam["frames_converted"]
    n_bad, n_conv = len(kinds["bad"]), len(kinds["converted"])
    warned = re.findall(r"skipped bad frame \d+: (\S+?):", d.log())
    fault_row.update(
        key="malformed-frames",
        fault="malformed frames (image folder)",
        how=f"{n_files} files looped at 10 fps: "
        + ", ".join(sorted(n.split("-", 1)[1].rsplit(".", 1)[0] for n in kinds["bad"] + kinds["converted"]))
        + ", 8k and 3 good photos",
        result=f"kept running; {bad} bad frames counted in stats over {loops} passes, "
        f"{conv} converted; one warning per bad file",
        **t.row(),
        details={
            "loops": loops,
            "bad_frames": bad,
            "frames_converted": conv,
            "frames_read": cam.get("frames_read"),
            "warned_files": sorted(set(warned)),
        },
    )
    assert n_bad * loops <= bad <= n_bad * (loops + 1), cam
    assert n_conv * loops <= conv <= n_conv * (loops + 1), cam
    assert sorted(warned) == sorted(kinds["bad"]), warned  # each bad file told once, not per pass
    assert t.lost == 0 and t.in_order, t
    assert "Traceback" not in d.log(), d.log()[-4000:]


def test_garbage_on_homeassistant_status_is_ignored(
    broker, subscribers, daemon_factory, models_dir, ov_cache, demo_clip, tmp_path, fault_row
):
    col = subscriber(broker, "ha")
    subscribers.append(col)
    ha = subscriber(broker, "ha-config")
    ha.client.subscribe("homeassistant/#", qos=1)
    subscribers.append(ha)
    d = daemon_factory(
        daemon_toml(
            models_dir=models_dir,
            cache_dir=ov_cache,
            source=demo_clip,
            broker=broker,
            spool=tmp_path / "state" / "spool.db",
            ha_discovery=True,
        )
    )
    d.start().wait_ready()
    assert d.wait_produced(3, 60)
    config_topic = "homeassistant/device/faultbox/config"
    assert ha.wait_for(lambda ms: any(m.topic == config_topic for m in ms), 20)

    rng = random.Random(11)
    mib = 1 << 20
    garbage = [
        (rng.randbytes(mib), False),  # 1 MiB of random bytes
        (b"online" * (mib // 6 + 1), False),  # 1 MiB that starts like "online"
        (b"online" + b"\0" * 32, False),
        (b"\xc3\x28\xa0\xa1 online", False),  # invalid UTF-8
        (b"\xff\xfe\x00o\x00n\x00l\x00i\x00n\x00e\x00", False),  # UTF-16 "online"
        (b"ONLINE", False),
        (b"offline", False),
        (rng.randbytes(4 * mib), True),  # retained: delivered again on every resubscribe
    ]
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="faults-ha-garbage")
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    try:
        for payload, retain in garbage:
            pub.publish("homeassistant/status", payload, qos=1, retain=retain).wait_for_publish(30)
        stats = wait_stats(
            col, lambda s: s.get("mqtt", {}).get("ignored_messages", 0) >= len(garbage), timeout=30
        )
        assert d.alive, d.log()[-3000:]
        n_config = sum(m.topic == config_topic for m in ha.snapshot())
        pub.publish("homeassistant/status", b"online", qos=1).wait_for_publish(30)
        resent = ha.wait_for(lambda ms: sum(m.topic == config_topic for m in ms) > n_config, 20)
        pub.publish("homeassistant/status", b"", qos=1, retain=True).wait_for_publish(30)
    finally:
        pub.loop_stop()
        pub.disconnect()
    assert d.wait_more(3, 60) >= 3, "no events after the garbage"
    t = settle_and_tally(d, col)

    ignored = stats.get("mqtt", {}).get("ignored_messages")
    fault_row.update(
        key="ha-status-garbage",
        fault="oversized / binary payloads on homeassistant/status",
        how="published 1 MiB random, 1 MiB 'online'*N, NUL-padded, invalid UTF-8, UTF-16, "
        "'ONLINE', 'offline' and a retained 4 MiB random payload while the daemon ran",
        result=f"all ignored (stats mqtt.ignored_messages = {ignored}); daemon kept publishing; "
        "a real 'online' still re-sent discovery",
        **t.row(),
        details={"ignored_messages": ignored, "discovery_resent": resent},
    )
    assert ignored is not None and ignored >= len(garbage), stats
    assert resent, "discovery not re-sent after a real 'online'"
    assert t.lost == 0 and t.in_order, t
    assert "Traceback" not in d.log()
