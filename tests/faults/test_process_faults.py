"""Process faults against the real daemon: SIGTERM and SIGKILL while the broker is away
(then a restart on the same spool, then the broker back), and SIGHUP with broken configs.

The producer-side record is the daemon's event trace (EXPRESSIOND_TRACE, faultkit.py): the
tracker's thread writes it right after the tracker step's spool commit, before stdout,
journald or MQTT see the events. A SIGKILL may land anywhere, so 0 lost means: no event that
left the tracker's thread is ever lost.
"""

from __future__ import annotations

import json
import shutil
import signal
import time

import pytest
from broker import Collector
from faultkit import DEVICE_ID, daemon_toml, settle_and_tally, subscriber, wait_delivered

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_signal_during_broker_outage_then_restart(sig, broker, watched, tmp_path, fault_row):
    col, d = watched(f"sig{int(sig)}")
    assert d.wait_produced(5, 60)
    assert wait_delivered(col, [e["id"] for e in d.produced()], 30)
    broker.stop()
    assert d.wait_more(10, 30) >= 10  # spooled during the outage
    t0 = time.monotonic()
    if sig == signal.SIGKILL:
        d.kill_after_next_event()  # right after the tracker made an event
        rc, t0 = d.exit_codes[-1], d.killed_at
    else:
        d.send(sig)
        rc = d.wait_exit(30)
    stop_s = time.monotonic() - t0
    first_run = d.produced()
    if sig == signal.SIGTERM:
        assert rc == 0, d.log()[-3000:]
        assert d.wait_log(r"unsent events stay in the spool for the next start", 1, run=0)
    else:
        assert rc == -signal.SIGKILL
    d.start().wait_ready()  # same config, same spool; the broker is still down
    assert d.wait_log(r"unsent events from an earlier run will be sent first", 5), d.log(1)
    assert d.wait_more(5, 60) >= 5
    broker.start()
    t = settle_and_tally(d, col)

    name = "SIGTERM" if sig == signal.SIGTERM else "SIGKILL"
    lost_first = [e["id"] for e in first_run if e["id"] in set(t.lost_ids)]
    fault_row.update(
        key=f"{name.lower()}-during-outage",
        fault=f"{name} during a broker outage",
        how=f"broker stopped; {name} to the daemon "
        + ("within ms of the tracker making " if sig == signal.SIGKILL else "after ")
        + f"its event {len(first_run)}; daemon restarted on the same spool while the broker was "
        "still down; broker back",
        result=f"exited {rc} in {stop_s:.1f} s; spooled events sent after the restart, in order"
        + (f"; {len(lost_first)} of the killed run's events lost" if sig == signal.SIGKILL else ""),
        **t.row(),
        details={"exit_code": rc, "seconds_to_exit": round(stop_s, 2), "events_first_run": len(first_run)},
    )
    assert t.in_order, t
    assert t.lost == 0, t


def test_sighup_with_broken_configs_keeps_the_old_one(
    broker, subscribers, daemon_factory, models_dir, ov_cache, demo_clip, tmp_path, fault_row
):
    col = subscriber(broker, "hup")
    subscribers.append(col)
    good = daemon_toml(
        models_dir=models_dir,
        cache_dir=ov_cache,
        source=demo_clip,
        broker=broker,
        spool=tmp_path / "state" / "spool.db",
    )
    d = daemon_factory(good)
    d.start().wait_ready()
    assert d.wait_produced(5, 60)
    bad_model = tmp_path / "bad-model"
    bad_model.mkdir()
    (bad_model / "model.xml").write_text("<net name='broken'><layers><layer id=")
    (bad_model / "model.bin").write_bytes(b"\0" * 64)
    shutil.copyfile(
        models_dir / "face-api" / "ssd_mobilenetv1" / "FP32" / "model.json", bad_model / "model.json"
    )
    broken = {
        "TOML syntax error": good.replace('name = "door"', 'name = "door\n[[cameras]'),
        "unknown key": good + "\nframerate = 30\n",
        "value out of range": good.replace("fps = 30", "fps = -5"),
        "wrong type": good.replace("num_requests = 2", 'num_requests = "two"'),
        "camera name with MQTT wildcard": good.replace('name = "door"', 'name = "door/#"'),
        "password in the file": good + '\npassword = "hunter2"\n',
        "not UTF-8": b'device_id = "\xff\xfe"\n\x00\x80garbage',
        "file removed": None,
        "missing model file": good + '\n[detector]\nmodel = "/nonexistent/model.xml"\n',
        "corrupt model IR": good + f'\n[detector]\nmodel = "{bad_model / "model.xml"}"\n',
        "device not present": good.replace('device = "CPU"', 'device = "GPU"'),
        "video file missing": good.replace(str(demo_clip), str(tmp_path / "gone.avi")),
        "image folder missing": good.replace(str(demo_clip), str(tmp_path / "no-such-folder")),
    }
    failures = 0
    for what, text in broken.items():
        if text is None:
            d.config.unlink()
        elif isinstance(text, bytes):
            d.config.write_bytes(text)
        else:
            d.config.write_text(text)
        d.send(signal.SIGHUP)
        failures += 1
        assert d.wait_log(r"reload failed, still running the previous config", 60, count=failures), (
            f"{what}:\n{d.log()[-3000:]}"
        )
        assert d.alive, f"{what}: the daemon died:\n{d.log()[-3000:]}"
        assert d.wait_more(2, 60) >= 2, f"{what}: no events after the failed reload"
    assert "configuration reloaded" not in d.log()
    # a good config again (one visible change) is taken
    d.config.write_text(good.replace("fps = 30", "fps = 25"))
    d.send(signal.SIGHUP)
    assert d.wait_log(r"configuration reloaded from", 60), d.log()[-3000:]
    assert d.wait_more(3, 60) >= 3
    reasons = [
        line.split("previous config: ", 1)[1].replace(str(tmp_path), "<tmp>")
        for line in d.log().splitlines()
        if "reload failed, still running the previous config" in line
    ]
    assert len(reasons) == failures, reasons
    missing = [r for r in reasons if "cameras[0].source: video file or image folder" in r]
    assert len(missing) == 2, reasons
    for reason, target in zip(missing, ("gone.avi", "no-such-folder"), strict=True):
        assert reason.startswith("<tmp>/daemon/expressiond.toml:"), reason
        assert reason.endswith(
            f"<tmp>/{target} does not exist; fix the path (relative paths start at the working directory)"
        ), reason
    t = settle_and_tally(d, col)

    fault_row.update(
        key="sighup-broken-config",
        fault="SIGHUP with a broken config",
        how=f"{len(broken)} broken configs, each followed by SIGHUP: "
        + ", ".join(broken)
        + "; then a good one",
        result=f"all {failures} refused with one line each, old config kept running; the good "
        "one was applied",
        **t.row(),
        details={"reasons": reasons},
    )
    assert t.lost == 0 and t.in_order, t
    assert len(reasons) == failures
    assert all("\n" not in r and "Traceback" not in r for r in reasons)
    assert "Traceback" not in d.log(), d.log()[-4000:]


def test_sighup_camera_change_resends_discovery(
    broker, subscribers, daemon_factory, models_dir, ov_cache, demo_clip, tmp_path
):
    """A reload that renames the camera (door -> hall) re-sends Home Assistant discovery: the
    retained device config then has hall's entities, and door's reduced to ``platform`` so
    Home Assistant deletes them (the device and its other entities stay)."""
    cfg_topic = f"homeassistant/device/{DEVICE_ID}/config"
    col = Collector(broker, [cfg_topic]).start()
    subscribers.append(col)
    good = daemon_toml(
        models_dir=models_dir,
        cache_dir=ov_cache,
        source=demo_clip,
        broker=broker,
        spool=tmp_path / "state" / "spool.db",
        ha_discovery=True,
    )
    d = daemon_factory(good)
    d.start().wait_ready()
    assert col.wait_for(lambda ms: len(ms) >= 1, 30), d.log()[-3000:]
    comps = json.loads(col.messages[0].payload)["components"]
    assert sorted(comps) == [
        f"{DEVICE_ID}_door_connectivity",
        f"{DEVICE_ID}_door_expression",
        f"{DEVICE_ID}_door_expression_event",
        f"{DEVICE_ID}_door_faces",
        f"{DEVICE_ID}_door_fps",
        f"{DEVICE_ID}_door_presence",
        f"{DEVICE_ID}_door_snapshot",
    ]

    d.config.write_text(good.replace('name = "door"', 'name = "hall"'))
    d.send(signal.SIGHUP)
    assert d.wait_log(r"configuration reloaded from", 60), d.log()[-3000:]
    hall_event = f'"{DEVICE_ID}_hall_expression_event"'.encode()
    assert col.wait_for(lambda ms: any(hall_event in m.payload for m in ms), 30), d.log()[-3000:]
    assert all(m.payload for m in col.messages), "the device config must never be emptied"

    late = Collector(broker, [cfg_topic]).start()
    subscribers.append(late)
    assert late.wait_for(lambda ms: len(ms) == 1, 10)
    assert late.messages[0].retain
    comps = json.loads(late.messages[0].payload)["components"]
    assert len(comps) == 14, sorted(comps)
    assert comps[f"{DEVICE_ID}_door_expression_event"] == {"platform": "event"}
    assert comps[f"{DEVICE_ID}_door_presence"] == {"platform": "binary_sensor"}
    assert comps[f"{DEVICE_ID}_door_expression"] == {"platform": "sensor"}
    assert comps[f"{DEVICE_ID}_door_fps"] == {"platform": "sensor"}
    hall = comps[f"{DEVICE_ID}_hall_expression_event"]
    assert hall["platform"] == "event" and hall["state_topic"] == f"expressiond/{DEVICE_ID}/hall/event"
    assert comps[f"{DEVICE_ID}_hall_expression"]["state_topic"] == f"expressiond/{DEVICE_ID}/hall/state"
    assert d.terminate() == 0, d.log()[-3000:]
