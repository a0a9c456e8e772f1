"""systemd/expressiond.service under a real systemd (PID 1 in a container on this machine).

Static: `systemd-analyze verify` says nothing, `systemd-analyze security` rates the loaded unit
<= 2.0, sysusers.d/tmpfiles.d give the user, device groups and config directory it relies on.

Behaviour: units derived from expressiond.service with only ExecStart replaced (plus
WatchdogSec=3 for the watchdog test, and one hardening key in the tests that show why a key is
set as it is), so User= and all hardening are the real ones. Their main process is a stand-in
for `expressiond run` (STANDIN below) that uses expressiond.systemd: READY/STATUS, RELOADING on
SIGHUP, STOPPING on SIGTERM, watchdog pings, journald fields over both transports, the optional
MQTT credential; and real OpenVINO CPU inference under the unit's hardening. No camera, GPU or
NCS2 exists here: device access is checked only as far as libusb (the NCS2's transport)
initialising under the unit's address families.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import time
from pathlib import Path

import pytest
from container import Container, wait_for

pytestmark = pytest.mark.system

REPO = Path(__file__).resolve().parents[2]
SYSTEMD_DIR = REPO / "systemd"
UNIT = SYSTEMD_DIR / "expressiond.service"
INSIDE_UNIT = "/etc/systemd/system/expressiond.service"
PREFIX = "/opt/expressiond"
STANDIN_PATH = "/usr/local/lib/expressiond-test/standin.py"
STANDIN_CMD = f"{PREFIX}/bin/python {STANDIN_PATH}"
# what the stand-in imports besides expressiond.systemd (versions: the wheelhouse's pins)
STANDIN_PACKAGES = ("openvino", "numpy", "systemd-python")

STANDIN = r'''
"""Stand-in for `expressiond run`: the daemon's systemd side, driven by the real unit."""
import argparse, ctypes, hashlib, logging, os, signal, sys, threading, time

from expressiond.systemd import JournalHandler, NativeJournalSender, Notifier, setup_logging

log = logging.getLogger("standin")


def note(what, **fields):
    log.info("stand-in: %s", what, extra={"journal": {"STANDIN": what, **fields}})


def openvino_check():
    import numpy as np
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 8, 32, 32)).astype(np.float32)
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    p = ops.parameter([1, 8, 32, 32], np.float32)
    conv = ops.convolution(p, ops.constant(w), [1, 1], [1, 1], [1, 1], [1, 1])
    compiled = ov.Core().compile_model(ov.Model([ops.relu(conv)], [p]), "CPU",
                                       {"INFERENCE_PRECISION_HINT": "f32"})
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    ref = sum(np.einsum("nchw,oc->nohw", xp[:, :, i:i + 32, j:j + 32], w[:, :, i, j])
              for i in range(3) for j in range(3))
    err = float(np.abs(compiled(x)[0] - np.maximum(ref, 0)).max())
    assert err < 1e-3, err
    return f"openvino {ov.__version__} max error {err:.2g}"


def libusb_check():
    lib, ctx = ctypes.CDLL("libusb-1.0.so.0"), ctypes.c_void_p()
    rc = lib.libusb_init(ctypes.byref(ctx))
    assert rc == 0, f"libusb_init: {rc}"
    lib.libusb_exit(ctx)
    return "libusb_init ok"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ping-for", type=float, default=3600)
    ap.add_argument("--exit", type=int)
    ap.add_argument("--check", choices=["openvino", "libusb"])
    args = ap.parse_args()
    mode = setup_logging("INFO", "auto")
    notifier = Notifier()
    backend = next((h.backend for h in logging.getLogger().handlers if hasattr(h, "backend")), "")
    note("up", LOG_MODE=mode, JOURNAL_BACKEND=backend, WATCHDOG_S=notifier.watchdog_interval())
    if args.exit is not None:
        log.error("stand-in: config error, exiting %d", args.exit)
        return args.exit
    if args.check:
        note("check", RESULT=openvino_check() if args.check == "openvino" else libusb_check())
        notifier.ready("check passed")
        return 0
    log.info("face on %s is %s", "door", "happy",
             extra={"journal": {"CAMERA": "door", "EXPRESSION": "happy", "TRACK": 3}})
    native = logging.getLogger("standin.native")
    native.propagate = False
    native.addHandler(JournalHandler(sender=NativeJournalSender()))
    native.warning("native path", extra={"camera": "porch", "device": "CPU"})
    native.info("big: %s", "y" * 300_000, extra={"camera": "big"})
    try:
        with open(os.path.join(os.environ["CREDENTIALS_DIRECTORY"], "mqtt-password"), "rb") as f:
            data = f.read()
        note("credential", CRED_BYTES=len(data), CRED_SHA256=hashlib.sha256(data).hexdigest())
    except (KeyError, OSError) as exc:
        note("credential", CRED_BYTES=-1, RESULT=str(exc))
    with open(os.path.join(os.environ["STATE_DIRECTORY"], "runs"), "a") as f:
        f.write("run\n")
    for path in ("/opt/expressiond/probe", "/etc/probe", "/var/tmp/probe"):
        try:
            open(path, "w").close()
            note("probe", PROBE=path, RESULT="ok")
        except OSError as exc:
            note("probe", PROBE=path, RESULT=exc.strerror)
    hup, term = threading.Event(), threading.Event()
    signal.signal(signal.SIGHUP, lambda *_: hup.set())
    signal.signal(signal.SIGTERM, lambda *_: term.set())
    notifier.ready("stand-in ready")
    interval = notifier.watchdog_interval() or 1.0
    started, pinging = time.monotonic(), True
    while not term.wait(interval / 4):
        if hup.is_set():
            hup.clear()
            notifier.reloading("reloading")
            note("reloaded")
            notifier.ready("reloaded")
        if pinging and time.monotonic() - started < args.ping_for:
            notifier.watchdog()
        elif pinging:
            pinging = False
            note("no-pings")
    notifier.stopping("draining")
    note("stopping")
    return 0


sys.exit(main())
'''


def derive_unit(text: str, **replace: str | list[str] | None) -> str:
    """expressiond.service with some keys replaced (a list = repeated key, None = removed)."""
    out, seen = [], set()
    for line in text.splitlines():
        key = line.split("=", 1)[0] if "=" in line and not line.startswith("#") else None
        if key in replace:
            value = replace[key]
            if key not in seen and value is not None:
                out += [f"{key}={v}" for v in ([value] if isinstance(value, str) else value)]
            seen.add(key)
            continue
        out.append(line)
    missing = set(replace) - seen
    assert not missing, f"expressiond.service has no {sorted(missing)}: update the test"
    return "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def installed(container: Container, wheelhouse: Path, measured) -> None:
    """Unit, sysusers, tmpfiles copied in and applied; /opt/expressiond = a venv of the
    container's python3 with the packages the stand-in imports (from the wheelhouse, offline)
    and a copy of this checkout's expressiond package: nothing the service runs points into
    the checkout, which the unit's PrivateTmp/ProtectHome (or a 0700 parent) would hide."""
    c = container
    c.copy_in(SYSTEMD_DIR / "expressiond.sysusers", "/etc/sysusers.d/expressiond.conf")
    c.copy_in(SYSTEMD_DIR / "expressiond.tmpfiles", "/etc/tmpfiles.d/expressiond.conf")
    c.copy_in(UNIT, INSIDE_UNIT)
    c.run("systemd-sysusers && systemd-tmpfiles --create /etc/tmpfiles.d/expressiond.conf")
    t0 = time.monotonic()
    c.run(["/usr/bin/python3", "-m", "venv", PREFIX], timeout=120)
    pip = [f"{PREFIX}/bin/python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    c.run([*pip, "--no-index", "--find-links", str(wheelhouse), *STANDIN_PACKAGES], timeout=300)
    site_dir = c.run(
        [f"{PREFIX}/bin/python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
    ).stdout.strip()
    c.copy_in(REPO / "daemon" / "expressiond", f"{site_dir}/expressiond")
    # the console script pip would generate; verify wants ExecStart's binary to exist
    c.write(
        f"{PREFIX}/bin/expressiond",
        f"#!{PREFIX}/bin/python\nimport sys\nfrom expressiond.cli import main\nsys.exit(main())\n",
        0o755,
    )
    c.write(STANDIN_PATH, STANDIN)
    c.systemctl("daemon-reload")
    measured["stand-in venv (python3 -m venv, pip from the wheelhouse)"] = f"{time.monotonic() - t0:.1f} s"


def start(c: Container, name: str, **replace) -> tuple[int, float]:
    c.write(f"/etc/systemd/system/{name}.service", derive_unit(UNIT.read_text(), **replace))
    c.systemctl("daemon-reload")
    t0 = time.monotonic()
    rc = c.systemctl("start", name, check=False, timeout=120).returncode
    return rc, time.monotonic() - t0


def journal(c: Container, unit: str, *matches: str, full: bool = False) -> list[dict]:
    """The unit's journal entries matching FIELD=value; waits (bounded) for at least one."""
    cmd = ["journalctl", "--no-pager", "-o", "json", "-u", unit, *matches]
    if full:
        cmd.append("--all")  # else fields over 4 KiB come back as null

    def probe():
        out = c.run(cmd, check=False).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    return wait_for(probe, 15, 0.2, f"journal entries {unit} {' '.join(matches)}")


def journal_text(c: Container, unit: str) -> str:
    return c.run(["journalctl", "--no-pager", "-o", "cat", "-u", unit], check=False).stdout


def test_sysusers_and_tmpfiles(container, installed):
    c = container
    assert re.search(
        r"groups=.*\(video\).*\(render\)|groups=.*\(render\).*\(video\)", c.run(["id", "expressiond"]).stdout
    )
    fields = c.run(["getent", "passwd", "expressiond"]).stdout.strip().split(":")
    assert fields[5:] == ["/var/lib/expressiond", "/usr/sbin/nologin"]
    assert c.run(["stat", "-c", "%U:%G %a", "/etc/expressiond"]).stdout.strip() == "root:expressiond 750"
    assert c.run(["stat", "-c", "%U:%G %a", "/etc/credstore"]).stdout.strip() == "root:root 700"
    link = c.run(["readlink", "/etc/credstore/expressiond-mqtt-password"]).stdout.strip()
    assert link == "/etc/expressiond/mqtt-password"


def test_verify_is_silent(container, installed):
    r = container.run(["systemd-analyze", "verify", INSIDE_UNIT], check=False)
    assert (r.returncode, r.stdout + r.stderr) == (0, "")


def test_security_exposure_at_most_2(container, installed, measured):
    out = container.run(["systemd-analyze", "security", "--no-pager", "expressiond.service"]).stdout
    m = re.search(r"Overall exposure level for expressiond\.service: (\d+\.\d+) (\S+)", out)
    assert m, out
    measured["systemd-analyze security expressiond.service"] = f"{m[1]} {m[2]}"
    assert float(m[1]) <= 2.0, out


def test_ready_status_and_journal_fields(container, installed, measured):
    c = container
    rc, took = start(c, "sdt-notify", ExecStart=STANDIN_CMD)
    assert rc == 0, journal_text(c, "sdt-notify")
    measured["stand-in start until READY=1"] = f"{took:.2f} s"
    assert c.show("sdt-notify", "ActiveState") == "active"
    assert c.show("sdt-notify", "StatusText") == "stand-in ready"
    up = journal(c, "sdt-notify", "STANDIN=up")[0]
    assert up["LOG_MODE"] == "journal"  # setup_logging("auto") recognised the service
    assert up["WATCHDOG_S"] == "30.0"
    measured["journal transport"] = up["JOURNAL_BACKEND"]
    uid = c.run(["id", "-u", "expressiond"]).stdout.strip()
    door = journal(c, "sdt-notify", "CAMERA=door")[0]
    assert (door["MESSAGE"], door["EXPRESSION"], door["TRACK"]) == ("face on door is happy", "happy", "3")
    assert (door["PRIORITY"], door["SYSLOG_IDENTIFIER"], door["CODE_FUNC"]) == ("6", "expressiond", "main")
    assert door["CODE_FILE"] == STANDIN_PATH and int(door["CODE_LINE"]) > 0
    assert (door["_SYSTEMD_UNIT"], door["_UID"]) == ("sdt-notify.service", uid)
    porch = journal(c, "sdt-notify", "CAMERA=porch")[0]  # the native-protocol transport
    assert (porch["MESSAGE"], porch["DEVICE"], porch["PRIORITY"]) == ("native path", "CPU", "4")
    big = journal(c, "sdt-notify", "CAMERA=big", full=True)[0]  # > 1 datagram: sealed memfd
    assert big["MESSAGE"] == "big: " + "y" * 300_000
    probes = {e["PROBE"]: e["RESULT"] for e in journal(c, "sdt-notify", "STANDIN=probe")}
    assert probes == {
        "/opt/expressiond/probe": "Read-only file system",
        "/etc/probe": "Read-only file system",
        "/var/tmp/probe": "ok",
    }
    assert c.read("/var/lib/expressiond/runs") == "run\n"
    c.systemctl("stop", "sdt-notify")


def test_reload_and_stop(container, installed, measured):
    c = container
    # the unit's first ExecReload= runs `expressiond check-config` on the real config; the
    # stand-in has none (tests/system/test_service_system.py reloads the real service): keep
    # only the signal here
    assert start(c, "sdt-reload", ExecStart=STANDIN_CMD, ExecReload="/bin/kill -HUP $MAINPID")[0] == 0
    c.systemctl("reload", "sdt-reload")
    journal(c, "sdt-reload", "STANDIN=reloaded")
    wait_for(lambda: c.show("sdt-reload", "StatusText") == "reloaded", 10, what="reloaded")
    assert c.show("sdt-reload", "ActiveState") == "active"
    t0 = time.monotonic()
    c.systemctl("stop", "sdt-reload")
    took = time.monotonic() - t0
    measured["stand-in stop (SIGTERM -> STOPPING=1 -> exit)"] = f"{took:.2f} s"
    assert took < 20
    assert c.show("sdt-reload", "Result") == "success"
    assert c.show("sdt-reload", "ExecMainStatus") == "0"
    journal(c, "sdt-reload", "STANDIN=stopping")


def test_watchdog_restarts_when_pings_stop(container, installed, measured):
    c = container
    rc, _ = start(c, "sdt-watchdog", ExecStart=STANDIN_CMD + " --ping-for 2", WatchdogSec="3")
    assert rc == 0
    t0 = time.monotonic()
    wait_for(lambda: c.show("sdt-watchdog", "NRestarts") not in ("", "0"), 40, what="a watchdog restart")
    measured["watchdog: start -> restart (pings stop at 2 s, WatchdogSec=3, RestartSec=5)"] = (
        f"{time.monotonic() - t0:.1f} s"
    )
    text = journal_text(c, "sdt-watchdog")
    assert "Watchdog timeout (limit 3s)!" in text
    assert "Failed with result 'watchdog'" in text
    assert journal(c, "sdt-watchdog", "STANDIN=no-pings")
    c.systemctl("stop", "sdt-watchdog")


def test_exit_78_is_not_restarted_but_exit_1_is(container, installed):
    c = container
    assert start(c, "sdt-exit78", ExecStart=STANDIN_CMD + " --exit 78")[0] != 0
    assert start(c, "sdt-exit1", ExecStart=STANDIN_CMD + " --exit 1")[0] != 0
    wait_for(lambda: c.show("sdt-exit1", "NRestarts") not in ("", "0"), 20, what="restart")
    assert c.show("sdt-exit78", "NRestarts") == "0"  # RestartSec=5 has passed by now
    assert c.show("sdt-exit78", "ActiveState") == "failed"
    assert c.show("sdt-exit78", "ExecMainStatus") == "78"
    c.systemctl("stop", "sdt-exit1")


def test_mqtt_password_credential_is_optional(container, installed):
    """No /etc/expressiond/mqtt-password: the unit starts and has no credential (= no
    password). With the file (root:root 0600, unreadable for the service user): the service
    reads it as $CREDENTIALS_DIRECTORY/mqtt-password."""
    c = container
    c.run(["rm", "-f", "/etc/expressiond/mqtt-password"])
    assert start(c, "sdt-cred", ExecStart=STANDIN_CMD)[0] == 0
    first = journal(c, "sdt-cred", "STANDIN=credential")[0]
    assert first["CRED_BYTES"] == "-1" and "No such file" in first["RESULT"]
    c.write("/etc/expressiond/mqtt-password", "s3cret\n", 0o600)
    c.systemctl("restart", "sdt-cred")
    second = wait_for(
        lambda: [e for e in journal(c, "sdt-cred", "STANDIN=credential") if e["CRED_BYTES"] == "7"],
        15,
        what="the credential from the file",
    )
    assert second[0]["CRED_SHA256"] == hashlib.sha256(b"s3cret\n").hexdigest()
    c.systemctl("stop", "sdt-cred")
    c.run(["rm", "-f", "/etc/expressiond/mqtt-password"])


def test_openvino_inference_under_the_unit_hardening(container, installed, measured):
    """CPU inference works with the unit's SystemCallFilter=@system-service ~@privileged and
    fails with MemoryDenyWriteExecute=yes (oneDNN's JIT): why the unit leaves MDWE off."""
    c = container
    rc, took = start(c, "sdt-openvino", ExecStart=STANDIN_CMD + " --check openvino")
    assert rc == 0, journal_text(c, "sdt-openvino")
    result = journal(c, "sdt-openvino", "STANDIN=check")[0]["RESULT"]
    measured["openvino under expressiond.service hardening"] = f"ok ({result}, {took:.1f} s)"
    rc, _ = start(
        c, "sdt-openvino-mdwe", ExecStart=STANDIN_CMD + " --check openvino", MemoryDenyWriteExecute="yes"
    )
    text = journal_text(c, "sdt-openvino-mdwe")
    assert rc != 0, text
    reason = next((line for line in text.splitlines() if "protect" in line), "?")
    measured["openvino with MemoryDenyWriteExecute=yes"] = f"fails: {reason.strip()}"


def test_libusb_needs_netlink(container, installed, libusb):
    """The NCS2 is driven through libusb, whose init opens a netlink (udev) hotplug monitor:
    without AF_NETLINK in RestrictAddressFamilies it fails (-99), with the unit's it works."""
    c = container
    rc, _ = start(c, "sdt-libusb", ExecStart=STANDIN_CMD + " --check libusb")
    assert rc == 0, journal_text(c, "sdt-libusb")
    rc, _ = start(
        c,
        "sdt-libusb-nonetlink",
        ExecStart=STANDIN_CMD + " --check libusb",
        RestrictAddressFamilies="AF_UNIX AF_INET AF_INET6",
    )
    assert rc != 0
    assert "libusb_init: -99" in journal_text(c, "sdt-libusb-nonetlink")


def test_unit_has_no_shell_in_execstart():
    """ExecStart runs the venv's console script directly: the Python process is $MAINPID,
    which NotifyAccess=main and ExecReload=kill -HUP $MAINPID rely on."""
    execstart = [ln for ln in UNIT.read_text().splitlines() if ln.startswith("ExecStart=")]
    assert len(execstart) == 1
    argv = shlex.split(execstart[0].split("=", 1)[1])
    assert argv[0] == f"{PREFIX}/bin/expressiond" and argv[1] == "run"
