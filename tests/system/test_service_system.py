"""The installed expressiond service under a real systemd: `make install`, start, events,
journal, reload, watchdog, config error, stop, `make uninstall`.

A real systemd (PID 1) boots in a container made from this machine's root (container.py).
`make install` runs inside it, offline (PIP_NO_INDEX + a wheelhouse built on the host, see
conftest.py), so the service is the installed venv /opt/expressiond with the real unit,
sysusers, tmpfiles, config and model paths. The daemon does real OpenVINO CPU inference on
the sample clip (a file camera with loop = true: no camera exists here) and publishes to a
mosquitto that runs inside the container as a transient unit (own loopback, so port 1883).
Tests run in file order and share the container; each one first puts the service in the
state it needs, so any of them can also run alone (-k).

Stalled pipeline: the capture thread of camera "door" (with the ffmpeg decode threads it
started, which inherit its OS name) is frozen with ptrace while the rest of the process runs,
as a V4L2 read stuck in a driver would leave it. A FIFO or an HTTP stream that stops sending
does not stall it: capture.py does not accept a FIFO as a video file (not a regular file; the
camera then counts as reconnecting) and gives network streams a 5 s read timeout, after which
the camera reconnects, and a reconnecting camera is by design no reason for a watchdog restart.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import pytest
from container import Container, wait_for
from service_ops import (
    CONF,
    DEVICE_ID,
    IN_REPO,
    PORT,
    TOPIC,
    UNIT,
    checkout_fingerprint,
    config,
    ensure_running,
    flowing_status,
    journal,
    journal_text,
    logged,
    make_install,
    mqtt_sub,
    show,
    write_config,
)

pytestmark = pytest.mark.system

DROPIN = "/etc/systemd/system/expressiond.service.d/50-test-watchdog.conf"
LABELS = {"neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"}
FREEZER = "/usr/local/lib/expressiond-test/freeze_thread.py"


# --- fixture ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def installed(container: Container, wheelhouse: Path, measured) -> dict[str, str]:
    """`make install` in the container (offline), a mosquitto unit, the test config. The
    test venv's interpreter (pyenv's on the build boxes) comes first in PATH, as in a shell
    here: the service must still get the system python3, which its ProtectHome=yes can see."""
    c = container
    before = checkout_fingerprint(c)
    t0 = time.monotonic()
    r = make_install(c, wheelhouse, os.path.dirname(os.path.realpath(sys.executable)), check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    measured["make install in the container (offline wheelhouse)"] = f"{time.monotonic() - t0:.1f} s"
    c.write(
        "/etc/sdtest/mosquitto.conf", f"listener {PORT} 127.0.0.1\nallow_anonymous true\npersistence false\n"
    )
    c.run(
        [
            "systemd-run",
            "--unit=sdtest-mosquitto",
            "--collect",
            "-p",
            "Type=exec",
            "/usr/sbin/mosquitto",
            "-c",
            "/etc/sdtest/mosquitto.conf",
        ]
    )
    wait_for(
        lambda: (
            c.run(
                ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(PORT), "-t", "sdtest/ping", "-m", "x"],
                check=False,
            ).returncode
            == 0
        ),
        15,
        0.2,
        "mosquitto in the container",
    )
    write_config(c, config("door"))
    c.copy_in(Path(__file__).with_name("freeze_thread.py"), FREEZER, 0o644)
    return {"output": r.stdout, "fingerprint": before}


# --- tests -----------------------------------------------------------------------------------


def test_installed_unit_is_enabled_verified_and_hardened(container, installed, measured):
    c = container
    assert "expressiond: installed" in installed["output"]
    assert c.systemctl("is-enabled", UNIT).stdout.strip() == "enabled"
    assert c.run(["/opt/expressiond/bin/expressiond", "--help"]).returncode == 0
    python = c.run("readlink -f /opt/expressiond/bin/python /usr/bin/python3").stdout.split()
    assert python[0] == python[1], python  # the venv is the system python's
    r = c.run(["systemd-analyze", "verify", "/etc/systemd/system/expressiond.service"], check=False)
    assert (r.returncode, r.stdout + r.stderr) == (0, "")
    out = c.run(["systemd-analyze", "security", "--no-pager", "expressiond.service"]).stdout
    m = re.search(r"Overall exposure level for expressiond\.service: (\d+\.\d+) (\S+)", out)
    assert m, out
    measured["security of the installed unit"] = f"{m[1]} {m[2]}"
    assert float(m[1]) <= 2.0, out


def test_make_install_again_changes_nothing(container, installed, wheelhouse, cannot_run):
    c = container
    before = checkout_fingerprint(c)
    again = make_install(c, wheelhouse).stdout
    if not installed["fingerprint"] == before == checkout_fingerprint(c):
        cannot_run("the checkout changed while this test ran (someone is editing it): not comparable")
    changed = [line for line in again.splitlines() if line.startswith("  ") and "up to date" not in line]
    assert "expressiond: up to date, nothing changed" in again, changed


def test_start_returns_only_after_ready(container, installed, measured):
    c = container
    write_config(c, config("door"))
    c.systemctl("stop", UNIT)
    t0 = time.monotonic()  # CLOCK_MONOTONIC: the same clock inside (no time namespace)
    r = c.systemctl("start", UNIT, check=False, timeout=200)
    t1 = time.monotonic()
    assert r.returncode == 0, journal_text(c)
    assert c.systemctl("is-active", UNIT).stdout.strip() == "active"
    p = show(
        c,
        "ExecMainStartTimestampMonotonic",
        "ActiveEnterTimestampMonotonic",
        "InvocationID",
        "StatusText",
        "Type",
        "NotifyAccess",
    )
    assert (p["Type"], p["NotifyAccess"]) == ("notify", "main")
    exec_start = int(p["ExecMainStartTimestampMonotonic"]) / 1e6
    active = int(p["ActiveEnterTimestampMonotonic"]) / 1e6
    assert t0 < exec_start < active < t1
    ready = logged(c, "ready: device_id", f"_SYSTEMD_INVOCATION_ID={p['InvocationID']}")
    assert len(ready) == 1, journal_text(c)
    prepared = float(re.search(r"compiled and warmed up in (\d+\.\d+) s", ready[0]["MESSAGE"])[1])
    # the daemon compiled and warmed up the models between its exec and READY=1, and systemd
    # counted the unit active only after that: as Type=simple/exec it would be ~0 s
    assert active - exec_start > prepared > 0.05
    measured["systemctl start: exec -> READY=1 (active)"] = (
        f"{active - exec_start:.2f} s (compile + warm-up {prepared:.2f} s; systemctl returned "
        f"after {t1 - t0:.2f} s)"
    )
    assert p["StatusText"].startswith("CPU FP32;"), p["StatusText"]


def test_events_reach_mosquitto_and_the_journal(container, installed, measured):
    c = container
    ensure_running(c, config("door"))
    got = mqtt_sub(c, f"{TOPIC}/+/event", 4, 60)
    assert len(got) == 4, journal_text(c)[-3000:]
    events = []
    for topic, payload in got:
        ev = json.loads(payload)
        assert topic == f"{TOPIC}/door/event"
        assert (ev["schema"], ev["camera"], ev["device_id"]) == (1, "door", DEVICE_ID)
        assert ev["type"] in ("start", "change", "end") and ev["expression"] in LABELS
        assert 0 <= ev["confidence"] <= 1 and set(ev["scores"]) == LABELS
        assert re.fullmatch(r"[0-9a-f]{32}", ev["id"])
        events.append(ev)
    uid = c.run(["id", "-u", "expressiond"]).stdout.strip()

    def logged():
        by_id = {e.get("EVENT_ID"): e for e in journal(c, "CAMERA=door")}
        return by_id if all(ev["id"] in by_id for ev in events) else None

    by_id = wait_for(logged, 15, 0.3, "the MQTT events in `journalctl -u expressiond CAMERA=door`")
    for ev in events:
        rec = by_id[ev["id"]]
        assert (rec["EXPRESSION"], rec["TRACK"], rec["EVENT_TYPE"]) == (
            ev["expression"],
            str(ev["track"]),
            ev["type"],
        )
        assert (rec["PRIORITY"], rec["SYSLOG_IDENTIFIER"]) == ("6", "expressiond")
        assert (rec["_SYSTEMD_UNIT"], rec["_UID"]) == ("expressiond.service", uid)
    line = flowing_status(c, "door")
    assert line.startswith("CPU FP32; door "), line
    measured["STATUS="] = line


def test_reload_applies_a_new_config(container, installed, measured):
    c = container
    ensure_running(c, config("door"))
    before = show(c, "MainPID", "NRestarts", "InvocationID")
    write_config(c, config("porch", stats_interval=3))  # [mqtt] changes take a restart
    c.systemctl("reload", "--no-block", UNIT)
    seen: list[tuple[str, str]] = []
    reloading_at = None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        p = show(c, "ActiveState", "StatusText")
        state = (p["ActiveState"], p["StatusText"])
        if not seen or seen[-1] != state:
            seen.append(state)
        if state[0] == "reloading" and reloading_at is None:
            reloading_at = time.monotonic()
        if reloading_at is not None and state[0] == "active" and "porch" in state[1]:
            break
        time.sleep(0.03)
    states = [s for s, _ in seen]
    assert "reloading" in states and states[-1] == "active", seen
    assert ("reloading", "reloading configuration") in seen, seen  # the daemon's RELOADING=1
    # systemd 252 (no Type=notify-reload) ends the reload job when ExecReload's kill exits;
    # the daemon's RELOADING=1 comes after that (its main loop sees SIGHUP within 0.1 s), so
    # `systemctl reload` returns at once and the unit shows "reloading" until READY=1
    logged(c, r"^Reloaded expressiond\.service")
    job = journal(c, "-g", r"^Reload(ing|ed) expressiond\.service")[-2:]
    job_s = (int(job[1]["__MONOTONIC_TIMESTAMP"]) - int(job[0]["__MONOTONIC_TIMESTAMP"])) / 1e6
    measured["reload: unit reloading -> active"] = (
        f"{time.monotonic() - reloading_at:.2f} s (the reload job itself, check-config + kill -HUP: "
        f"{job_s:.2f} s)"
    )
    after = show(c, "MainPID", "NRestarts", "InvocationID")
    assert after == before  # the same process, no restart
    got = mqtt_sub(c, f"{TOPIC}/porch/event", 1, 60)
    assert got and json.loads(got[0][1])["camera"] == "porch", got
    assert wait_for(
        lambda: [e for e in journal(c, "CAMERA=porch") if e.get("EVENT_ID")],
        15,
        0.3,
        "porch events in the journal",
    )
    ours = f"_SYSTEMD_INVOCATION_ID={before['InvocationID']}"
    logged(c, f"configuration reloaded from {CONF}", ours)
    assert logged(c, r"reload: mqtt changed; that takes `systemctl restart", ours)[0]["PRIORITY"] == "4"
    flowing_status(c, "porch")


def test_reload_of_a_broken_config_fails_and_keeps_the_daemon(container, installed, measured):
    """`systemctl reload` with a broken file: the job fails with the config error, the daemon
    is never signalled (same PID, no RELOADING, events keep flowing on the old config)."""
    c = container
    ensure_running(c, config("door"))
    before = show(c, "MainPID", "NRestarts", "InvocationID")
    ours = f"_SYSTEMD_INVOCATION_ID={before['InvocationID']}"
    daemon_reload_lines = "reload failed, still running|configuration reloaded"
    seen_before = len(journal(c, ours, "-g", daemon_reload_lines))
    good = c.run(["cat", CONF]).stdout
    try:
        write_config(c, good.replace('name = "door"', 'name = "Door"'))
        t0 = time.monotonic()
        r = c.systemctl("reload", UNIT, check=False, timeout=60)
        took = time.monotonic() - t0
        assert r.returncode != 0, (r.stdout, r.stderr)
        assert "failed" in r.stderr, r.stderr
        bad = logged(c, r"cameras\[0\]\.name: must be .*got \"Door\"; try \"door\"")
        assert bad[0]["MESSAGE"].startswith(f"expressiond: error: {CONF}:"), bad[0]["MESSAGE"]
        assert show(c, "MainPID", "NRestarts", "InvocationID") == before
        assert show(c, "ActiveState")["ActiveState"] == "active"
        flowing_status(c, "door")  # events still flow: the old config runs
        assert len(journal(c, ours, "-g", daemon_reload_lines)) == seen_before  # no SIGHUP
        measured["reload of a broken config: systemctl reload fails in"] = f"{took:.2f} s"
    finally:
        write_config(c, good)


def test_watchdog_restarts_a_stalled_capture(container, installed, measured):
    c = container
    c.write(DROPIN, "[Service]\nWatchdogSec=5\n")
    c.systemctl("daemon-reload")
    try:
        inv = ensure_running(c, config("door"), restart=True)
        assert show(c, "WatchdogUSec")["WatchdogUSec"] == "5s"
        flowing_status(c, "door")
        pid = show(c, "MainPID")["MainPID"]
        c.run(
            [
                "systemd-run",
                "--unit=sdtest-freeze",
                "--collect",
                "-p",
                "Type=exec",
                "/usr/bin/python3",
                FREEZER,
                pid,
                "capture-door",
            ]
        )
        frozen = logged(c, "^froze", unit="sdtest-freeze", timeout=20)[0]
        wait_for(lambda: int(show(c, "NRestarts")["NRestarts"]) >= 1, 60, 0.5, "a watchdog restart")
        restarted = time.monotonic()
        kill = logged(c, "Watchdog timeout")[-1]
        assert "Watchdog timeout (limit 5s)!" in kill["MESSAGE"]
        stall = logged(c, "pipeline stalled", f"_SYSTEMD_INVOCATION_ID={inv}")
        assert len(stall) == 1, journal_text(c, f"_SYSTEMD_INVOCATION_ID={inv}")[-3000:]
        assert stall[0]["PRIORITY"] == "4" and "door connected" in stall[0]["MESSAGE"]
        t_frozen = int(frozen["__MONOTONIC_TIMESTAMP"]) / 1e6
        t_stall = int(stall[0]["__MONOTONIC_TIMESTAMP"]) / 1e6
        t_kill = int(kill["__MONOTONIC_TIMESTAMP"]) / 1e6
        assert t_frozen < t_stall < t_kill
        assert "Failed with result 'watchdog'" in journal_text(c)
        wait_for(
            lambda: show(c, "ActiveState")["ActiveState"] == "active",
            60,
            0.5,
            "the restarted service to be active",
        )
        measured["watchdog (WatchdogSec=5): freeze -> stall logged -> kill -> restarted"] = (
            f"{t_stall - t_frozen:.1f} s -> {t_kill - t_frozen:.1f} s -> "
            f"{restarted - t_frozen:.1f} s (RestartSec=5)"
        )
    finally:
        c.systemctl("stop", "sdtest-freeze", check=False)
        c.run(["rm", "-f", DROPIN])
        c.systemctl("daemon-reload")
    flowing_status(c, "door", 60)  # the new process works


def test_config_error_fails_with_78_and_no_restart_loop(container, installed, measured):
    c = container
    write_config(c, config("door", top='colour = "blue"\n'))
    t0 = time.monotonic()
    r = c.systemctl("restart", UNIT, check=False, timeout=200)
    failed_after = time.monotonic() - t0
    assert r.returncode != 0
    p = show(c, "ActiveState", "Result", "ExecMainStatus", "NRestarts", "RestartUSec", "InvocationID")
    assert (p["ActiveState"], p["Result"], p["ExecMainStatus"], p["NRestarts"]) == (
        "failed",
        "exit-code",
        "78",
        "0",
    ), p
    logged(c, rf"{re.escape(CONF)}:1\b.*colour", f"_SYSTEMD_INVOCATION_ID={p['InvocationID']}")
    restart_s = float(p["RestartUSec"].rstrip("s"))
    time.sleep(restart_s + 2)  # long enough for Restart=on-failure to have restarted it
    p = show(c, "ActiveState", "NRestarts", "ExecMainStatus")
    assert (p["ActiveState"], p["NRestarts"], p["ExecMainStatus"]) == ("failed", "0", "78"), p
    measured["config error"] = (
        f"restart -> failed in {failed_after:.2f} s, exit 78, NRestarts 0 after {restart_s + 2:.0f} s"
    )
    write_config(c, config("door"))


def test_stop_publishes_offline_and_exits_cleanly(container, installed, measured):
    c = container
    inv = ensure_running(c, config("door"))
    wait_for(
        lambda: mqtt_sub(c, f"{TOPIC}/status", 1, 5) == [(f"{TOPIC}/status", "online")],
        30,
        0.5,
        "retained online",
    )
    cursor = c.run(["journalctl", "-n0", "--show-cursor", "-q"]).stdout.split("cursor: ", 1)[1].strip()
    t0 = time.monotonic()
    c.systemctl("stop", UNIT, timeout=60)
    took = time.monotonic() - t0
    p = show(c, "ActiveState", "Result", "ExecMainCode", "ExecMainStatus", "TimeoutStopUSec")
    assert (p["ActiveState"], p["Result"], p["ExecMainCode"], p["ExecMainStatus"]) == (
        "inactive",
        "success",
        "1",
        "0",
    ), p  # ExecMainCode 1 = CLD_EXITED: exited, not killed
    assert took < float(p["TimeoutStopUSec"].rstrip("s"))
    assert mqtt_sub(c, f"{TOPIC}/status", 1, 5) == [(f"{TOPIC}/status", "offline")]
    logged(c, r"MQTT disconnected \(status offline\)", f"_SYSTEMD_INVOCATION_ID={inv}")  # by the daemon
    stopping = journal_text(c, f"--after-cursor={cursor}")
    assert "Stopped expressiond.service" in stopping, stopping
    assert "SIGKILL" not in stopping and "Killing process" not in stopping, stopping
    measured["systemctl stop (drain, offline, exit 0)"] = f"{took:.2f} s"


def test_make_uninstall_removes_it_and_keeps_state(container, installed):
    c = container
    ensure_running(c, config("door"))  # so that there is state (the spool) to keep
    out = c.run(IN_REPO + "make uninstall", timeout=120).stdout
    assert "expressiond: uninstalled" in out, out
    assert show(c, "LoadState")["LoadState"] == "not-found"
    for gone in (
        "/opt/expressiond",
        "/etc/systemd/system/expressiond.service",
        "/etc/systemd/system/multi-user.target.wants/expressiond.service",
    ):
        assert c.run(["test", "-e", gone], check=False).returncode != 0, gone
    for kept in (CONF, "/var/lib/expressiond/spool.db"):
        assert c.run(["test", "-e", kept], check=False).returncode == 0, kept
