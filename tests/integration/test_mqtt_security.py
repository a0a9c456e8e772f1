"""Credentials, TLS and refusals against a real mosquitto: a refused or failed connection is
told once in operator words, retried with backoff, never reported as connected (no
``online``), never crashes; the password never reaches a log line."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from broker import make_event, wait_until

pytestmark = pytest.mark.integration
SECRET = "s3cret-Pa55-for-dev1"
WRONG = "Wr0ng-pa55-4711"
STATUS = "expressiond/dev1/status"
EVENTS = "expressiond/dev1/+/event"


def secret_file(d: Path, text: str, mode: int = 0o600) -> Path:
    p = d / f"pw-{abs(hash(text)) % 10**6}"
    p.write_text(text + "\n")
    p.chmod(mode)
    return p


def never_connected_while_retrying(pub, seconds: float, min_attempts: int) -> None:
    """Sample ``connected`` for ``seconds``: never true; the publisher keeps retrying, but no
    faster than its backoff allows (each wait is at least half of min(cap, 0.5 s))."""
    t0 = time.monotonic()
    attempts0 = pub.stats()["connect_attempts"]
    while time.monotonic() - t0 < seconds:
        assert not pub.connected
        assert not pub.stats()["connected"]
        time.sleep(0.01)
    attempts = pub.stats()["connect_attempts"]
    assert attempts >= min_attempts, pub.stats()
    shortest_wait = min(pub._cfg.reconnect_max_s, 0.5) / 2
    assert attempts - attempts0 <= seconds / shortest_wait + 2, "backoff not applied"
    assert pub._thread.is_alive()


def assert_no_secret_logged(caplog, *secrets: str) -> None:
    assert caplog.records, "expected captured log records"
    for r in caplog.records:
        text = " ".join([r.getMessage(), repr(r.args), r.exc_text or ""])
        for s in secrets:
            assert s not in text, f"secret leaked in log record: {r.name}: {r.getMessage()}"


def tls_cfg(
    ca: Path | None, cert: Path | None = None, key: Path | None = None, insecure: bool = False
) -> SimpleNamespace:
    return SimpleNamespace(
        ca_file=str(ca) if ca else None,
        cert_file=str(cert) if cert else None,
        key_file=str(key) if key else None,
        insecure=insecure,
    )


@pytest.fixture
def auth_broker(broker_factory):
    return broker_factory(users={"dev1": SECRET, "watcher": "watch-pw"})


def test_password_file_authenticates_and_password_is_never_logged(
    auth_broker, collector_factory, mqtt_cfg, publisher_factory, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG)  # everything, paho's packet log included
    col = collector_factory(auth_broker, [EVENTS], username="watcher", password="watch-pw")
    pw = secret_file(tmp_path, SECRET, 0o640)  # group-readable is fine (root:expressiond)
    pub = publisher_factory(mqtt_cfg(auth_broker, username="dev1", password_file=str(pw)))
    pub.emit(make_event(0))
    assert col.wait_for(lambda ms: len(ms) == 1, 15)
    pub.close()
    assert_no_secret_logged(caplog, SECRET)
    plain = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "plain text" in r.getMessage()
    ]
    assert plain == [
        f"MQTT: the password of user 'dev1' goes to {auth_broker.host}:{auth_broker.port} in plain text "
        "(no [mqtt.tls]): anyone who can see that traffic can read it; add [mqtt.tls] (the broker's "
        "TLS port, usually 8883)"
    ]


def test_a_password_over_tls_gets_no_plain_text_warning(
    broker_factory, certs, mqtt_cfg, publisher_factory, tmp_path, caplog
):
    caplog.set_level(logging.WARNING, logger="expressiond")
    broker = broker_factory(certs=certs, users={"dev1": SECRET})
    pw = secret_file(tmp_path, SECRET, 0o600)
    pub = publisher_factory(mqtt_cfg(broker, username="dev1", password_file=str(pw), tls=tls_cfg(certs.ca)))
    assert wait_until(lambda: pub.connected, 15)
    assert not [r for r in caplog.records if "plain text" in r.getMessage()]


def test_wrong_password_is_told_once_retried_and_never_connected(
    auth_broker, collector_factory, mqtt_cfg, publisher_factory, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG)
    watcher = collector_factory(auth_broker, [STATUS], username="watcher", password="watch-pw")
    pw = secret_file(tmp_path, WRONG)
    pub = publisher_factory(
        mqtt_cfg(auth_broker, username="dev1", password_file=str(pw), reconnect_max_s=0.5)
    )
    pub.emit(make_event(0))
    never_connected_while_retrying(pub, 4.0, min_attempts=3)
    told = [r for r in caplog.records if r.levelno >= logging.WARNING and "not authorised" in r.getMessage()]
    assert len(told) == 1, [r.getMessage() for r in told]
    msg = told[0].getMessage()
    assert told[0].levelno == logging.ERROR and "'dev1'" in msg and str(pw) in msg
    assert watcher.snapshot() == [], "no 'online' may be published without a CONNACK"
    assert pub.spool_depth == 1  # kept for when the credentials are fixed
    pub.close(drain_timeout=0)
    assert_no_secret_logged(caplog, WRONG, SECRET)


def test_systemd_credential_wins_over_password_file(
    auth_broker, mqtt_cfg, publisher_factory, tmp_path, monkeypatch, caplog
):
    caplog.set_level(logging.DEBUG)
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt-password").write_text(SECRET)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    pw = secret_file(tmp_path, WRONG)
    pub = publisher_factory(mqtt_cfg(auth_broker, username="dev1", password_file=str(pw)))
    assert wait_until(lambda: pub.connected, 15)
    pub.close()
    assert_no_secret_logged(caplog, SECRET, WRONG)


def test_refused_client_id_is_told_and_retried(
    broker_factory, mqtt_cfg, publisher_factory, collector_factory, caplog
):
    broker = broker_factory(extra_conf=["clientid_prefixes allowed-"])
    caplog.set_level(logging.INFO, logger="expressiond")
    pub = publisher_factory(mqtt_cfg(broker, reconnect_max_s=0.5))
    never_connected_while_retrying(pub, 3.0, min_attempts=3)
    told = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(told) == 1 and "'expressiond-dev1'" in told[0].getMessage()
    assert "client id" in told[0].getMessage()
    pub.close(drain_timeout=0)
    ok = publisher_factory(mqtt_cfg(broker, client_id="allowed-dev1"))
    assert wait_until(lambda: ok.connected, 15)


def test_tls_with_the_right_ca_connects(
    broker_factory, certs, collector_factory, mqtt_cfg, publisher_factory
):
    broker = broker_factory(certs=certs)
    col = collector_factory(broker, [EVENTS])
    pub = publisher_factory(mqtt_cfg(broker, tls=tls_cfg(certs.ca)))
    pub.emit(make_event(0))
    assert col.wait_for(lambda ms: len(ms) == 1, 15)


def test_tls_with_a_wrong_ca_is_told_and_retried(broker_factory, certs, mqtt_cfg, publisher_factory, caplog):
    broker = broker_factory(certs=certs)
    caplog.set_level(logging.INFO, logger="expressiond")
    pub = publisher_factory(mqtt_cfg(broker, tls=tls_cfg(certs.other_ca), reconnect_max_s=0.5))
    never_connected_while_retrying(pub, 3.0, min_attempts=3)
    told = [r for r in caplog.records if "certificate" in r.getMessage()]
    assert len(told) == 1 and told[0].levelno == logging.ERROR
    assert "rejected" in told[0].getMessage() and "[mqtt.tls] ca_file" in told[0].getMessage()


def test_tls_host_name_is_verified_unless_insecure(
    broker_factory, certs, mqtt_cfg, publisher_factory, caplog
):
    broker = broker_factory(certs=certs, server_cert=(certs.wrong_name_cert, certs.wrong_name_key))
    caplog.set_level(logging.INFO, logger="expressiond")
    strict = publisher_factory(mqtt_cfg(broker, tls=tls_cfg(certs.ca), reconnect_max_s=0.5))
    never_connected_while_retrying(strict, 2.0, min_attempts=2)
    assert any("mismatch" in r.getMessage().lower() for r in caplog.records)
    strict.close(drain_timeout=0)
    loose = publisher_factory(mqtt_cfg(broker, tls=tls_cfg(certs.ca, insecure=True)))
    assert any(r.levelno == logging.WARNING and "insecure = true" in r.getMessage() for r in caplog.records)
    assert wait_until(lambda: loose.connected, 15)


def test_tls_client_certificate(broker_factory, certs, mqtt_cfg, publisher_factory, caplog):
    broker = broker_factory(certs=certs, require_client_cert=True)
    caplog.set_level(logging.INFO, logger="expressiond")
    without = publisher_factory(mqtt_cfg(broker, tls=tls_cfg(certs.ca), reconnect_max_s=0.5))
    never_connected_while_retrying(without, 2.0, min_attempts=2)
    assert any("cert" in r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    without.close(drain_timeout=0)
    with_cert = publisher_factory(
        mqtt_cfg(broker, tls=tls_cfg(certs.ca, certs.client_cert, certs.client_key))
    )
    assert wait_until(lambda: with_cert.connected, 15)
