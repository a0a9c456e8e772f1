"""Broker faults against the real daemon: mosquitto flapping down/up, and mosquitto restarted
with a renewed server certificate (same CA), then with a rogue one (another CA), then the
renewed one again. Counted: events the daemon printed (--stdout) vs events a persistent
subscriber received; nothing lost, first deliveries in production order."""

from __future__ import annotations

import ssl
import time

import pytest
from broker import _make_leaf
from faultkit import daemon_toml, settle_and_tally, subscriber, wait_delivered

pytestmark = pytest.mark.integration
DOWN_UP_S = [(2.0, 2.5), (3.0, 2.0), (1.5, 3.0), (4.0, 2.5)]  # (down, up) seconds, cycled


@pytest.mark.parametrize("seconds", [20, pytest.param(60, marks=pytest.mark.slow)])
def test_broker_flapping_loses_nothing(seconds, broker, watched, fault_row):
    col, d = watched("flap")
    assert d.wait_produced(5, 60), d.log()[-3000:]
    assert wait_delivered(col, [e["id"] for e in d.produced()], 30), "no delivery before the faults"

    flaps, made_while_down = 0, 0
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        down, up = DOWN_UP_S[flaps % len(DOWN_UP_S)]
        broker.stop()
        n0 = len(d.produced())
        time.sleep(down)
        made_while_down += len(d.produced()) - n0
        broker.start()
        flaps += 1
        time.sleep(up)
        assert d.alive, d.log()[-3000:]
    connects = d.log().count("MQTT connected to")
    t = settle_and_tally(d, col)

    fault_row.update(
        key="broker-flapping" if seconds <= 30 else "broker-flapping-long",
        fault=f"broker flapping ({seconds} s)",
        how=f"mosquitto stopped and restarted on the same port {flaps} times (down 1.5-4 s, "
        "up 2-3 s) while the daemon ran a 30 fps looped clip",
        result=f"{connects - 1} reconnects, {made_while_down} events made while down; "
        f"order {'kept' if t.in_order else 'BROKEN'}",
        **t.row(),
        details={"flaps": flaps, "reconnects": connects - 1, "events_made_while_down": made_while_down},
    )
    assert t.lost == 0, t
    assert t.in_order, t
    assert made_while_down > 0, "the outages must overlap event production"
    assert connects - 1 >= flaps - 1, f"{connects - 1} reconnects for {flaps} outages"


def served_certificate(host: str, port: int) -> bytes:
    pem = ssl.get_server_certificate((host, port), timeout=10)
    return ssl.PEM_cert_to_DER_cert(pem)


def der(path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text())


def test_broker_restarted_with_a_new_certificate(
    broker_factory, certs, subscribers, daemon_factory, models_dir, ov_cache, demo_clip, tmp_path, fault_row
):
    """Renewed certificate (new key, same CA): the daemon reconnects and verifies it. A rogue
    certificate from another CA in between: never connected, events kept in the spool."""
    ca = (certs.ca, certs.ca.with_suffix(".key"))
    other = (certs.other_ca, certs.other_ca.with_suffix(".key"))
    cdir = tmp_path / "renewed"
    cdir.mkdir()
    renewed = _make_leaf(cdir, "server-renewed", ca, "DNS:localhost,IP:127.0.0.1", "serverAuth")
    rogue = _make_leaf(cdir, "server-rogue", other, "DNS:localhost,IP:127.0.0.1", "serverAuth")
    broker = broker_factory(certs=certs)
    col = subscriber(broker, "newcert")
    subscribers.append(col)
    d = daemon_factory(
        daemon_toml(
            models_dir=models_dir,
            cache_dir=ov_cache,
            source=demo_clip,
            broker=broker,
            spool=tmp_path / "state" / "spool.db",
            tls=f'ca_file = "{certs.ca}"',
        )
    )
    d.start().wait_ready()
    assert d.wait_produced(5, 60)
    assert wait_delivered(col, [e["id"] for e in d.produced()], 30)
    assert served_certificate(broker.host, broker.port) == der(certs.server_cert)

    def restart_with(cert) -> None:
        broker.stop()
        broker.server_cert = cert
        broker.start()
        assert served_certificate(broker.host, broker.port) == der(cert[0])

    # 1. renewed certificate, same CA: reconnect and deliver
    restart_with(renewed)
    assert d.wait_log("MQTT connected to", 20, count=2), d.log()[-3000:]
    assert d.wait_more(5, 60) >= 5
    assert wait_delivered(col, [e["id"] for e in d.produced()], 30), "nothing after the renewal"
    # 2. rogue certificate (another CA): refused, events stay in the spool
    restart_with(rogue)
    n_rogue = len(d.produced())
    assert d.wait_log("presented a certificate that was rejected", 20), d.log()[-3000:]
    time.sleep(4)
    made_under_rogue = len(d.produced()) - n_rogue
    assert d.log().count("MQTT connected to") == 2, "connected to a broker with a rogue certificate"
    # 3. renewed certificate again: everything spooled arrives
    restart_with(renewed)
    assert d.wait_log("MQTT connected to", 20, count=3), d.log()[-3000:]
    t = settle_and_tally(d, col)

    fault_row.update(
        key="broker-new-certificate",
        fault="broker restart with a new certificate",
        how="mosquitto (TLS) restarted with a renewed server certificate (new key, same CA), "
        "then with a rogue one from another CA, then the renewed one again",
        result=f"renewed cert verified and accepted; rogue cert refused ({made_under_rogue} "
        "events spooled meanwhile, all delivered after)",
        **t.row(),
        details={"events_made_under_rogue_cert": made_under_rogue},
    )
    assert t.lost == 0, t
    assert t.in_order, t
    assert made_under_rogue > 0
