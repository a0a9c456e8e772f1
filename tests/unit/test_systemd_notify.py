"""expressiond.systemd: sd_notify datagrams, journal fields and the native journal protocol.

Real AF_UNIX datagram sockets bound in tmp_path (and one abstract socket) stand in for
systemd's notify socket and journald's socket; the exact bytes are asserted. Whether journald
itself accepts them is proven in tests/system (a real journald in a container).
"""

from __future__ import annotations

import array
import io
import logging
import os
import socket
import struct
import time
import uuid

import pytest

from expressiond import systemd as sd
from expressiond.errors import ConfigError


@pytest.fixture
def receiver(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify.sock")
    sock.bind(path)
    sock.settimeout(5)
    yield sock, path
    sock.close()


def recv(sock) -> bytes:
    return sock.recv(65536)


def test_ready_status_watchdog_stopping_exact_datagrams(receiver):
    sock, path = receiver
    n = sd.Notifier(environ={"NOTIFY_SOCKET": path})
    assert n.enabled
    assert n.ready("2 cameras, CPU")
    assert recv(sock) == b"READY=1\nSTATUS=2 cameras, CPU"
    assert n.ready()
    assert recv(sock) == b"READY=1"
    assert n.status("camera door: reconnecting\nin 5 s")
    assert recv(sock) == b"STATUS=camera door: reconnecting in 5 s"
    assert n.watchdog()
    assert recv(sock) == b"WATCHDOG=1"
    assert n.stopping("draining")
    assert recv(sock) == b"STOPPING=1\nSTATUS=draining"
    assert n.extend_timeout(90)
    assert recv(sock) == b"EXTEND_TIMEOUT_USEC=90000000"
    n.close()


def test_reloading_carries_monotonic_usec(receiver):
    sock, path = receiver
    n = sd.Notifier(environ={"NOTIFY_SOCKET": path})
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert n.reloading("reloading config")
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    lines = recv(sock).decode().split("\n")
    assert lines[0] == "RELOADING=1"
    key, value = lines[1].split("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after
    assert lines[2:] == ["STATUS=reloading config"]


def test_abstract_socket_address():
    name = "expressiond-test-" + uuid.uuid4().hex
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        n = sd.Notifier(environ={"NOTIFY_SOCKET": "@" + name})
        assert n.watchdog()
        assert sock.recv(100) == b"WATCHDOG=1"


def test_no_notify_socket_is_a_noop(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = sd.Notifier()
    assert not n.enabled
    assert n.ready("x") is False
    assert n.watchdog() is False


def test_unsupported_address_disables(caplog):
    n = sd.Notifier(environ={"NOTIFY_SOCKET": "vsock:2:1234"})
    assert not n.enabled
    assert n.ready() is False
    assert "not a unix socket address" in caplog.text


def test_vanished_socket_returns_false_and_warns_once(tmp_path, caplog):
    n = sd.Notifier(environ={"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert n.enabled
    with caplog.at_level(logging.WARNING, logger="expressiond.systemd"):
        assert n.watchdog() is False
        assert n.watchdog() is False
    assert caplog.text.count("sd_notify") == 1


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "1500000"}, 1.5),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "x"}, None),
    ],
)
def test_watchdog_interval(env, expected):
    assert sd.Notifier(environ=env).watchdog_interval() == expected


# --- journal fields ----------------------------------------------------------------------


def _capture_logger(name="expressiond.test"):
    sent: list[list[tuple[str, str]]] = []
    handler = sd.JournalHandler(sender=sent.append)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, sent


def test_journal_fields_from_extra_and_attributes():
    logger, sent = _capture_logger()
    logger.warning(
        "track %d is %s",
        7,
        "happy",
        extra={"journal": {"EXPRESSION": "happy", "track": 7, "event_id": "e1"}, "camera": "door"},
    )
    fields = dict(sent[0])
    assert fields["MESSAGE"] == "track 7 is happy"
    assert fields["PRIORITY"] == "4"
    assert fields["SYSLOG_IDENTIFIER"] == "expressiond"
    assert fields["CODE_FILE"] == __file__
    assert fields["CODE_FUNC"] == "test_journal_fields_from_extra_and_attributes"
    assert int(fields["CODE_LINE"]) > 0
    assert fields["LOGGER"] == "expressiond.test"
    assert fields["THREAD_NAME"] == "MainThread"
    assert (fields["CAMERA"], fields["EXPRESSION"], fields["TRACK"]) == ("door", "happy", "7")
    assert fields["EVENT_ID"] == "e1"
    assert len(sent[0]) == len(fields)  # no duplicate keys


def test_journal_protected_and_invalid_field_names():
    logger, sent = _capture_logger()
    logger.info(
        "hello",
        extra={
            "journal": {
                "MESSAGE": "spoof",
                "PRIORITY": "0",
                "_UID": "0",
                "a-b.c": 1,
                "!!!": "dropped",
                "gpu temp": None,
            }
        },
    )
    fields = dict(sent[0])
    assert fields["MESSAGE"] == "hello"
    assert fields["PRIORITY"] == "6"
    assert fields["UID"] == "0"  # leading underscore (trusted fields) stripped
    assert fields["A_B_C"] == "1"
    assert "GPU_TEMP" not in fields
    assert not any(k.startswith("_") or not k for k in fields)


@pytest.mark.parametrize(
    ("level", "priority"),
    [
        (logging.DEBUG, 7),
        (logging.INFO, 6),
        (logging.WARNING, 4),
        (logging.ERROR, 3),
        (logging.CRITICAL, 2),
        (5, 7),
        (25, 6),
        (45, 3),
    ],
)
def test_priority_mapping(level, priority):
    assert sd.journal_priority(level) == priority


def test_exception_text_is_in_message():
    logger, sent = _capture_logger()
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("inference failed")
    message = dict(sent[0])["MESSAGE"]
    assert message.startswith("inference failed\nTraceback")
    assert "RuntimeError: boom" in message


def test_failed_send_falls_back_to_stderr(capsys):
    def broken(_fields):
        raise ConnectionRefusedError(111, "journald gone")

    handler = sd.JournalHandler(sender=broken)
    logger = logging.getLogger("expressiond.test.broken")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.error("camera %s lost", "door")
    assert capsys.readouterr().err == "<3>camera door lost\n"


# --- native protocol ---------------------------------------------------------------------


def test_native_encoding_exact_bytes():
    data = sd.encode_native([("MESSAGE", "line1\nline2"), ("CAMERA", "door"), ("E", "")])
    assert data == (b"MESSAGE\n" + struct.pack("<Q", 11) + b"line1\nline2\n" + b"CAMERA=door\n" + b"E=\n")


def test_native_sender_datagram(receiver):
    sock, path = receiver
    sender = sd.NativeJournalSender(path)
    handler = sd.JournalHandler(sender=sender)
    logger = logging.getLogger("expressiond.test.native")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.info("ping", extra={"camera": "door"})
    data = recv(sock)
    assert data.startswith(b"MESSAGE=ping\nPRIORITY=6\nSYSLOG_IDENTIFIER=expressiond\n")
    assert b"\nCAMERA=door\n" in data
    assert data.endswith(b"\n")
    sender.close()


def test_native_sender_large_entry_goes_through_sealed_memfd(receiver):
    import fcntl

    sock, path = receiver
    sender = sd.NativeJournalSender(path)
    big = "x" * 400_000  # larger than the default datagram limit (net.core.wmem_default)
    sender([("MESSAGE", big), ("CAMERA", "door")])
    msg, anc, _flags, _addr = sock.recvmsg(16, socket.CMSG_SPACE(4))
    assert msg == b""
    level, kind, payload = anc[0]
    assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
    fd = array.array("i", payload[:4])[0]
    try:
        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
        assert seals & fcntl.F_SEAL_WRITE and seals & fcntl.F_SEAL_SEAL
        os.lseek(fd, 0, os.SEEK_SET)
        with os.fdopen(os.dup(fd), "rb") as f:
            assert f.read() == b"MESSAGE=" + big.encode() + b"\nCAMERA=door\n"
    finally:
        os.close(fd)
        sender.close()


# --- setup_logging -----------------------------------------------------------------------


@pytest.fixture
def clean_root():
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    yield root
    for h in root.handlers:
        if getattr(h, "_expressiond", False):
            h.close()
    root.handlers[:], root.level = saved[0], saved[1]


def _journal_stream_env(f) -> dict[str, str]:
    st = os.fstat(f.fileno())
    return {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}


def test_auto_picks_journal_when_stderr_is_the_journal_stream(tmp_path, receiver, clean_root):
    _sock, path = receiver
    with open(tmp_path / "stderr", "w") as f:
        mode = sd.setup_logging(
            "debug", "auto", stream=f, environ=_journal_stream_env(f), journal_socket=path
        )
    assert mode == "journal"
    ours = [h for h in clean_root.handlers if getattr(h, "_expressiond", False)]
    assert len(ours) == 1 and isinstance(ours[0], sd.JournalHandler)
    assert clean_root.level == logging.DEBUG


def test_auto_uses_invocation_id_and_needs_the_socket(tmp_path, receiver, clean_root):
    _sock, path = receiver
    stream = io.StringIO()
    assert (
        sd.setup_logging("INFO", "auto", stream=stream, environ={"INVOCATION_ID": "ab"}, journal_socket=path)
        == "journal"
    )
    assert (
        sd.setup_logging(
            "INFO",
            "auto",
            stream=stream,
            environ={"INVOCATION_ID": "ab"},
            journal_socket=str(tmp_path / "none"),
        )
        == "stderr"
    )


def test_auto_ignores_a_foreign_journal_stream(tmp_path, receiver, clean_root):
    _sock, path = receiver
    with open(tmp_path / "a", "w") as a, open(tmp_path / "b", "w") as b:
        mode = sd.setup_logging("INFO", "auto", stream=a, environ=_journal_stream_env(b), journal_socket=path)
    assert mode == "stderr"


def test_stderr_lines_and_reconfiguration(clean_root):
    stream = io.StringIO()
    assert sd.setup_logging("WARNING", "no", stream=stream, environ={}) == "stderr"
    assert sd.setup_logging("INFO", "no", stream=stream, environ={}) == "stderr"
    logging.getLogger("expressiond.x").info("hello %s", "door")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1  # the first handler was replaced, not stacked
    assert lines[0].endswith(" INFO expressiond.x: hello door")


def test_no_with_journal_stderr_uses_priority_prefixes(tmp_path, clean_root):
    with open(tmp_path / "stderr", "w+") as f:
        sd.setup_logging("INFO", "no", stream=f, environ=_journal_stream_env(f))
        logging.getLogger("expressiond.x").warning("low disk")
        f.flush()
        f.seek(0)
        assert f.read() == "<4>expressiond.x: low disk\n"


def test_yes_without_journald_is_a_config_error(tmp_path, clean_root):
    with pytest.raises(ConfigError, match="does not exist"):
        sd.setup_logging("INFO", "yes", environ={}, journal_socket=str(tmp_path / "none"))


@pytest.mark.parametrize(("level", "journal"), [("LOUD", "auto"), ("INFO", "maybe")])
def test_bad_values_are_config_errors(level, journal, clean_root):
    with pytest.raises(ConfigError):
        sd.setup_logging(level, journal, environ={})


def test_handler_falls_back_to_native_protocol_without_systemd_python(monkeypatch, receiver):
    sock, path = receiver
    monkeypatch.setattr(sd.journal, "systemd_python_sender", lambda: None)
    handler = sd.JournalHandler(socket_path=path)
    assert handler.backend == "native"
    logger = logging.getLogger("expressiond.test.fallback")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.error("camera lost", extra={"camera": "door"})
    data = recv(sock)
    assert data.startswith(b"MESSAGE=camera lost\nPRIORITY=3\n")
    assert b"\nCAMERA=door\n" in data
    handler.close()
