"""Pure parts of expressiond.sinks.mqtt: password sources and checks, operator messages, backoff,
discovery payload, inbound payload filtering. No broker needed."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from expressiond.errors import EXIT_CONFIG, ConfigError
from expressiond.sinks.mqtt import MqttPublisher, Publisher
from expressiond.sinks.mqtt.connection import Backoff, connack_problem, tls_context
from expressiond.sinks.mqtt.credentials import read_password
from expressiond.sinks.mqtt.discovery import (
    MAX_INBOUND_PAYLOAD,
    discovery_payload,
    is_ha_online,
    remove_discovery,
)
from expressiond.sinks.mqtt.spool import Spool
from expressiond.sinks.mqtt.spool_db import TrackChange
from expressiond.sinks.mqtt.topics import Topics

SECRET = "top-Secret-pw-123"


def cfg(**kw) -> SimpleNamespace:
    base = dict(username="dev1", password_file=None, client_id=None, tls=None)
    base.update(kw)
    return SimpleNamespace(**base)


@pytest.fixture(autouse=True)
def no_credentials_dir(monkeypatch):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)


def pwfile(tmp_path, content: bytes | str = SECRET + "\n", mode: int = 0o600):
    p = tmp_path / "mqtt-password"
    p.write_bytes(content.encode() if isinstance(content, str) else content)
    p.chmod(mode)
    return p


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o640, 0o440])
def test_private_password_file_is_read_without_newline(tmp_path, mode):
    assert read_password(cfg(password_file=str(pwfile(tmp_path, mode=mode)))) == SECRET


@pytest.mark.parametrize(
    "mode,why",
    [
        (0o644, "readable by every user"),
        (0o604, "readable by every user"),
        (0o660, "writable by group or others"),
        (0o602, "writable by group or others"),
    ],
)
def test_loose_password_file_is_refused_with_the_fix(tmp_path, mode, why):
    p = pwfile(tmp_path, mode=mode)
    with pytest.raises(ConfigError) as e:
        read_password(cfg(password_file=str(p)))
    msg = str(e.value)
    assert why in msg and msg.endswith(f"chmod 600 {p}") and "\n" not in msg
    assert SECRET not in msg and e.value.exit_code == EXIT_CONFIG


@pytest.mark.parametrize(
    "content,why",
    [
        (b"", "empty"),
        (b"\n", "empty"),
        (b"\xff\xfe" + SECRET.encode(), "not UTF-8"),
        (SECRET + "\nsecond", "more than one line"),
    ],
)
def test_unusable_password_file_messages_never_contain_it(tmp_path, content, why):
    with pytest.raises(ConfigError, match=why) as e:
        read_password(cfg(password_file=str(pwfile(tmp_path, content))))
    assert SECRET not in str(e.value) and e.value.__cause__ is None


def test_missing_file_and_missing_username(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_password(cfg(password_file=str(tmp_path / "nope")))
    with pytest.raises(ConfigError, match="set \\[mqtt\\] username"):
        read_password(cfg(username=None, password_file=str(pwfile(tmp_path))))
    assert read_password(cfg()) is None
    assert read_password(cfg(username=None)) is None


def test_systemd_credential_takes_precedence(tmp_path, monkeypatch):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt-password").write_text("from-credential")
    (creds / "mqtt-password").chmod(0o444)  # systemd's own mode; not checked
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert read_password(cfg(password_file=str(pwfile(tmp_path)))) == "from-credential"
    assert read_password(cfg()) == "from-credential"


def reason(code: int) -> ReasonCode:
    return ReasonCode(PacketTypes.CONNACK, identifier=code)


def test_connack_messages_name_the_fix_and_never_the_password(tmp_path):
    c = cfg(password_file=str(pwfile(tmp_path)))
    bad = connack_problem(reason(0x86), c, "expressiond-dev1")
    assert "'dev1'" in bad and str(tmp_path) in bad and SECRET not in bad
    denied = connack_problem(reason(0x87), c, "expressiond-dev1")
    assert "not authorised" in denied and "'expressiond-dev1'" in denied and "ACL" in denied
    cid = connack_problem(reason(0x85), c, "expressiond-dev1")
    assert "client_id" in cid and "'expressiond-dev1'" in cid
    assert "MQTT 5" in connack_problem(reason(0x84), c, "x")
    anon = connack_problem(reason(0x87), cfg(username=None), "x")
    assert "anonymous" in anon and "no password configured" in anon


def test_backoff_is_capped_jittered_and_resets():
    b = Backoff(cap=8.0, base=0.5, rng=random.Random(1))
    delays = [b.next_delay() for _ in range(40)]
    nominal = [min(8.0, 0.5 * 2**i) for i in range(40)]
    assert all(d / 2 <= x <= d for x, d in zip(delays, nominal, strict=True))
    assert max(delays) <= 8.0 and min(delays[10:]) >= 4.0
    assert len({round(x, 6) for x in delays[10:]}) > 20, "jitter spreads retries"
    b.reset()
    assert b.next_delay() <= 0.5
    tiny = Backoff(cap=0.1, base=0.5)
    assert all(tiny.next_delay() <= 0.1 for _ in range(5))


def test_tls_config_errors_are_config_errors(tmp_path):
    tls = SimpleNamespace(
        ca_file=str(tmp_path / "missing.pem"), cert_file=None, key_file=None, insecure=False
    )
    with pytest.raises(ConfigError, match="ca_file"):
        tls_context(tls)
    tls = SimpleNamespace(ca_file=None, cert_file=None, key_file=str(tmp_path / "k"), insecure=False)
    with pytest.raises(ConfigError, match="key_file"):
        tls_context(tls)
    ctx = tls_context(SimpleNamespace(ca_file=None, cert_file=None, key_file=None, insecure=False))
    assert ctx.check_hostname


def test_topics():
    t = Topics("expressiond", "nuc-hall", "homeassistant")
    assert t.status == "expressiond/nuc-hall/status"
    assert t.event("door") == "expressiond/nuc-hall/door/event"
    assert t.state("door") == "expressiond/nuc-hall/door/state"
    assert t.stats == "expressiond/nuc-hall/stats"
    assert t.ha_config == "homeassistant/device/nuc-hall/config"
    assert t.ha_status == "homeassistant/status"


def test_discovery_payload_shape():
    t = Topics("expressiond", "nuc-hall", "homeassistant")
    labels = ["neutral", "happy"]
    d = discovery_payload(t, ["door", "yard"], labels, "1.2.3", snapshots=["yard"])
    assert d["device"]["identifiers"] == ["expressiond_nuc-hall"]
    assert d["device"]["sw_version"] == "1.2.3" and d["origin"]["sw_version"] == "1.2.3"
    assert d["availability"] == [
        {"topic": t.status, "payload_available": "online", "payload_not_available": "offline"}
    ]
    comps = d["components"]
    # per camera: event, expression, faces, presence, fps, connectivity, snapshot (door's only "platform":
    # its snapshot is off, so Home Assistant deletes an image entity left from when it was on)
    assert len(comps) == 14
    live = {k: c for k, c in comps.items() if len(c) > 1}
    assert len(live) == 13 and comps["nuc-hall_door_snapshot"] == {"platform": "image"}
    uids = [c["unique_id"] for c in live.values()]
    assert len(set(uids)) == 13
    assert all(c["qos"] == 1 for c in live.values()), "HA subscribes with each component's qos"
    ev = comps["nuc-hall_door_expression_event"]
    assert ev["platform"] == "event" and ev["event_types"] == [*labels, "end"]
    assert ev["state_topic"] == t.event("door") and "event_type" in ev["value_template"]
    assert comps["nuc-hall_yard_fps"]["state_topic"] == t.stats
    assert "'yard'" in comps["nuc-hall_yard_fps"]["value_template"]
    assert comps["nuc-hall_yard_expression"]["state_topic"] == t.state("yard")
    link = comps["nuc-hall_yard_connectivity"]
    assert (link["platform"], link["device_class"], link["state_topic"]) == (
        "binary_sensor",
        "connectivity",
        t.stats,
    )
    assert link["value_template"] == (
        "{{ ('ON' if value_json.cameras['yard'].connected else 'OFF') if value_json.cameras is defined "
        "and 'yard' in value_json.cameras else none }}"
    )
    assert link["entity_category"] == "diagnostic"
    assert comps["nuc-hall_yard_presence"]["platform"] == "binary_sensor"
    assert comps["nuc-hall_yard_presence"]["state_topic"] == t.state("yard")
    assert comps["nuc-hall_yard_faces"]["state_topic"] == t.state("yard")
    image = comps["nuc-hall_yard_snapshot"]
    assert image["platform"] == "image" and image["image_topic"] == "expressiond/nuc-hall/yard/snapshot"
    assert image["content_type"] == "image/jpeg"


def test_discovery_payload_removes_cameras_gone_by_platform_only_entries():
    """Device-based discovery deletes one component when its config is only ``platform``;
    an empty payload would delete the whole device, the cameras that stay included."""
    t = Topics("expressiond", "nuc-hall", "homeassistant")
    full = discovery_payload(t, ["door", "yard"], ["happy"], "1.2.3")["components"]
    d = discovery_payload(t, ["hall", "yard"], ["happy"], "1.2.3", removed=["door"])
    comps = d["components"]
    assert len(comps) == 21
    assert comps["nuc-hall_door_expression_event"] == {"platform": "event"}
    assert comps["nuc-hall_door_connectivity"] == {"platform": "binary_sensor"}
    assert comps["nuc-hall_door_expression"] == {"platform": "sensor"}
    assert comps["nuc-hall_door_fps"] == {"platform": "sensor"}
    assert comps["nuc-hall_door_presence"] == {"platform": "binary_sensor"}
    for key in ("nuc-hall_yard_expression_event", "nuc-hall_yard_expression", "nuc-hall_yard_fps"):
        assert comps[key] == full[key]
    assert comps["nuc-hall_hall_expression_event"]["state_topic"] == t.event("hall")
    assert comps["nuc-hall_hall_expression"]["unique_id"] == "expressiond_nuc-hall_hall_expression"


@pytest.mark.parametrize(
    "payload,online",
    [
        (b"online", True),
        (b" online\n", True),
        (b"offline", False),
        (b"", False),
        (b"\xff\xfeonline", False),
        (b"online" + b" " * MAX_INBOUND_PAYLOAD, False),
        (b"ONLINE", False),
    ],
)
def test_is_ha_online(payload, online):
    assert is_ha_online(payload) is online


def test_service_facing_names():
    assert MqttPublisher is Publisher
    with pytest.raises(ConfigError, match="needs an \\[mqtt\\] section"):
        remove_discovery(None, "dev1", ["door"])


def test_spool_keeps_open_tracks_and_the_highest_id_with_the_event_rows(tmp_path):
    """Rows and open-track changes commit together; a new Spool on the file (the next start)
    reads the tracks without an end and the highest track id ever stored."""
    path = tmp_path / "spool.db"
    spool = Spool(path, 100)
    ids = spool.append_many(
        [("t/event", b"s1"), ("t/event", b"s2")],
        [TrackChange("door", 5, b"s1"), TrackChange("hall", 9, b"s2")],
    )
    spool.append_many([("t/event", b"e1")], [TrackChange("door", 5, None)])
    spool.remove(ids)  # acknowledged rows go; the track record stays
    spool.close()
    again = Spool(path, 100)
    assert again.open_tracks() == [TrackChange("hall", 9, b"s2")]
    assert again.max_track == 9 and again.depth == 1
    again.append_many([("t/event", b"e2")], [TrackChange("hall", 9, None)])
    assert again.open_tracks() == [] and again.max_track == 9
    memory = Spool(":memory:", 10)
    memory.append_many([("t", b"x")], [TrackChange("door", 3, b"x")])
    assert memory.open_tracks() == [] and memory.max_track == 3
