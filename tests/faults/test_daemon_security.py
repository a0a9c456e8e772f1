"""Security properties of the real daemon process: the files it creates are private, the MQTT
password never shows up anywhere we can capture, TLS verifies the broker by default and says
so loudly when told not to.

Running as its own unprivileged user and the `systemd-analyze security` score are checked on
the installed unit by tests/system/test_unit_static.py (test_security_exposure_at_most_2)."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest
from broker import Collector
from faultkit import BASE, daemon_toml, settle_and_tally, subscriber, wait_delivered

pytestmark = pytest.mark.integration
SECRET = "Fault-Suite-S3cret-7f1c9e"
WRONG = "Wr0ng-Guess-4d2a"


def test_state_and_cache_files_are_private(
    broker, subscribers, daemon_factory, models_dir, demo_clip, tmp_path, fault_row
):
    """Under a permissive umask (022) and without systemd's StateDirectoryMode/UMask, the
    daemon's directories are 0700 and its spool files 0600. The spool goes to its default
    place ($STATE_DIRECTORY/spool.db); the CPU has no default model cache, so one is
    configured (the GPU/NPU default is $CACHE_DIRECTORY, made the same way). OpenVINO itself
    chmods its cache blobs to 0440 (read-only); inside the 0700 cache directory nobody else
    can reach them, which is what is asserted for them."""
    state, cache = tmp_path / "var" / "state", tmp_path / "var" / "cache"
    col = subscriber(broker, "modes")
    subscribers.append(col)
    d = daemon_factory(
        daemon_toml(models_dir=models_dir, cache_dir=cache, source=demo_clip, broker=broker),
        env={"STATE_DIRECTORY": str(state), "CACHE_DIRECTORY": str(cache)},
        umask=0o022,
    )
    d.start().wait_ready()
    assert d.wait_produced(5, 60)
    assert wait_delivered(col, [e["id"] for e in d.produced()], 30)
    found: dict[str, str] = {}
    loose: list[str] = []
    for root in (state, cache):
        for p in [root, *sorted(root.rglob("*"))]:
            mode = stat.S_IMODE(p.lstat().st_mode)
            rel = str(p.relative_to(tmp_path))
            found[rel] = f"{mode:04o}"
            if p.is_dir():
                ok = mode == 0o700
            elif root == state:
                ok = mode == 0o600
            else:  # cache blob: nothing for others, nobody but the owner writes
                ok = not mode & 0o027 and p.parent == cache
            if not ok:
                loose.append(f"{rel} {oct(mode)}")
    t = settle_and_tally(d, col)
    names = {Path(k).name for k in found}
    blobs = sorted({v for k, v in found.items() if k.startswith("var/cache/")})
    fault_row.update(
        key="file-modes",
        fault="state, spool and cache file modes",
        how="daemon run under umask 022 with the state and cache directories not existing "
        "yet; every file and directory it made stat()ed",
        result=("private: " if not loose else "LOOSE: " + ", ".join(loose) + "; ")
        + "state and cache dirs 0700, spool.db/-wal/-shm 0600, OpenVINO cache blobs "
        + "/".join(blobs)
        + " inside the 0700 dir",
        **t.row(),
        details={"modes": found},
    )
    assert {"spool.db", "spool.db-wal", "spool.db-shm"} <= names, found
    assert any(k.startswith("var/cache/") and Path(k).suffix for k in found), found
    assert not loose, loose


def _captured(d, extra: list[bytes]) -> bytes:
    blobs = [d.out_text().encode(), d.log().encode(), *extra]
    return b"\n".join(blobs)


def test_mqtt_password_never_leaks(
    broker_factory, daemon_factory, models_dir, ov_cache, demo_clip, tmp_path, fault_row
):
    broker = broker_factory(users={"faultbox": SECRET, "watcher": "watch-pw"})
    watcher = Collector(
        broker, ["#"], client_id="faults-watcher", username="watcher", password="watch-pw"
    ).start()
    try:
        pw = tmp_path / "mqtt-password"
        pw.write_text(SECRET + "\n")
        pw.chmod(0o600)
        spool = tmp_path / "state" / "spool.db"
        extra = f'username = "faultbox"\npassword_file = "{pw}"\n'
        d = daemon_factory(
            daemon_toml(
                models_dir=models_dir,
                cache_dir=ov_cache,
                source=demo_clip,
                broker=broker,
                spool=spool,
                mqtt_extra=extra,
                ha_discovery=True,
                level="DEBUG",
            )
        )
        d.start().wait_ready()
        assert d.wait_produced(5, 60)
        assert wait_delivered(watcher, [e["id"] for e in d.produced()], 30), d.log()[-3000:]
        assert watcher.wait_for(lambda ms: any(m.topic == f"{BASE}/stats" for m in ms), 15)
        proc_bits = [Path(f"/proc/{d.pid}/{name}").read_bytes() for name in ("cmdline", "environ")]
        assert d.terminate() == 0
        spool_bytes = b"".join(p.read_bytes() for p in spool.parent.glob("spool.db*"))

        # a wrong password: refused, told once, never the password
        pw.write_text(WRONG + "\n")
        d.start().wait_ready()
        assert d.wait_log(
            r"MQTT broker (rejected the user name or password|refused the "
            r"connection: not authorised)",
            20,
        ), d.log(1)[-3000:]
        refused = next(ln for ln in d.log(1).splitlines() if "MQTT broker re" in ln)
        proc_bits.append(Path(f"/proc/{d.pid}/cmdline").read_bytes())
        assert d.terminate() == 0
        # a password file others can read: the daemon refuses to start, exit 78, one line
        pw.write_text(SECRET + "\n")
        pw.chmod(0o644)
        d.start()
        assert d.wait_exit(60) == 78, d.log(2)[-3000:]
        readable = d.log(2).strip().splitlines()[-1]
        time.sleep(0.5)
    finally:
        watcher.stop()
    mqtt_bytes = b"\n".join(m.topic.encode() + b" " + m.payload for m in watcher.snapshot())
    everything = _captured(d, [mqtt_bytes, spool_bytes, *proc_bits])
    leaks = [s for s in (SECRET, WRONG) if s.encode() in everything]
    fault_row.update(
        key="password-leak",
        fault="MQTT password in logs, stats, arguments or errors",
        how=f"password-protected mosquitto; password file; DEBUG logs of 3 runs (right, wrong, "
        f"world-readable password file), {len(watcher.snapshot())} MQTT messages (stats, "
        "discovery, events), /proc/PID/cmdline and environ, the spool, all grepped",
        result=("never found" if not leaks else "LEAKED") + f" in {len(everything)} bytes; "
        "errors name the file, not the password",
        events_produced=None,
        events_received=None,
        events_lost=None,
        duplicates=None,
        details={"refused_line": refused.split(": ", 1)[-1], "readable_line": readable},
    )
    assert not leaks, f"password found in captured output: {leaks}"
    assert str(pw) in refused and "password" in refused, refused
    assert "readable by every user" in readable and str(pw) in readable, readable


def test_tls_verifies_by_default_and_warns_when_insecure(
    broker_factory, certs, subscribers, daemon_factory, models_dir, ov_cache, demo_clip, tmp_path, fault_row
):
    good = broker_factory(certs=certs)
    wrong_name = broker_factory(certs=certs, server_cert=(certs.wrong_name_cert, certs.wrong_name_key))
    cases = {
        "system-cas": (good, ""),  # [mqtt.tls] present, no ca_file: the system's CAs
        "wrong-name": (wrong_name, f'ca_file = "{certs.ca}"'),
        "insecure": (wrong_name, f'ca_file = "{certs.ca}"\ninsecure = true'),
    }
    logs: dict[str, str] = {}
    t = None
    for name, (b, tls) in cases.items():
        col = subscriber(b, f"tls-{name}")
        subscribers.append(col)
        d = daemon_factory(
            daemon_toml(
                models_dir=models_dir,
                cache_dir=ov_cache,
                source=demo_clip,
                fps=10,
                broker=b,
                spool=tmp_path / name / "spool.db",
                tls=tls,
            ),
            name=name,
        )
        d.start().wait_ready()
        if name == "insecure":
            assert d.wait_produced(3, 60)
            assert wait_delivered(col, [e["id"] for e in d.produced()], 30), d.log()[-3000:]
            t = settle_and_tally(d, col)
        else:
            assert d.wait_log(r"certificate that was rejected", 20), d.log()[-3000:]
            time.sleep(2)
            assert "MQTT connected" not in d.log(), d.log()[-3000:]
            assert not col.snapshot(lambda t: t == f"{BASE}/status"), "online without TLS trust"
            assert d.terminate() == 0
        logs[name] = d.log()
    warning = next(
        (ln for ln in logs["insecure"].splitlines() if " WARNING " in ln and "insecure = true" in ln), ""
    )
    rejected = {
        n: next(ln for ln in logs[n].splitlines() if "certificate that was rejected" in ln)
        for n in ("system-cas", "wrong-name")
    }
    fault_row.update(
        key="tls-verification",
        fault="TLS verification default / insecure",
        how="daemon against a TLS mosquitto: [mqtt.tls] without ca_file (system CAs), with the "
        "right CA but a certificate for another host name, and with insecure = true",
        result="refused (unknown CA), refused (host name mismatch), connected with a WARNING "
        "for insecure = true",
        **(t.row() if t else {}),
        details={
            "warning": warning.split(": ", 1)[-1],
            **{k: v.split(": ", 1)[-1][:240] for k, v in rejected.items()},
        },
    )
    assert (
        "self-signed certificate in certificate chain" in rejected["system-cas"]
        or "unable to get local issuer" in rejected["system-cas"]
    ), rejected
    assert "mismatch" in rejected["wrong-name"].lower(), rejected
    assert warning, "no WARNING line for insecure = true"
    assert t is not None and t.lost == 0 and t.in_order, t
    assert "insecure" not in logs["wrong-name"] and "insecure" not in logs["system-cas"]
