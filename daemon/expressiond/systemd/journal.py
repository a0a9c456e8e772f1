"""Structured logging to journald: ``JournalHandler`` sends each record with structured
fields, so an operator can run ``journalctl -u expressiond CAMERA=door``. Convention for
callers (both forms may be mixed)::

    log.info("track %d: %s", 7, "happy",
             extra={"journal": {"CAMERA": "door", "EXPRESSION": "happy", "TRACK": 7}})
    log.info("camera %s reconnected", name, extra={"camera": name})

``extra={"journal": {...}}`` passes any field (names are upper-cased, characters outside
[A-Z0-9_] become ``_``); the record attributes ``camera``, ``expression``, ``track``,
``event_id`` and ``device`` become CAMERA, EXPRESSION, TRACK, EVENT_ID and DEVICE. MESSAGE,
PRIORITY (from the level), CODE_FILE/LINE/FUNC, SYSLOG_IDENTIFIER=expressiond, LOGGER and
THREAD_NAME are always set and cannot be overridden.

Transport: systemd-python's ``journal.sendv`` when importable (the ``systemd`` extra; it is
libsystemd's own client), else the native journal protocol written here to
/run/systemd/journal/socket, with a sealed memfd for entries larger than one datagram, as
libsystemd does. The fallback keeps structured logging when the extra could not be built
(it needs gcc and libsystemd-dev). A send that fails (journald gone) falls back to stderr.

Thread: any thread that logs; a handler sends under its lock.
"""

from __future__ import annotations

import array
import errno
import fcntl
import logging
import os
import re
import socket
import struct
import sys
from collections.abc import Callable, Iterable, Mapping

log = logging.getLogger(__name__)

JOURNAL_SOCKET = "/run/systemd/journal/socket"
SYSLOG_IDENTIFIER = "expressiond"
# record attribute -> journal field (see the module docstring)
STRUCTURED_ATTRIBUTES = {
    "camera": "CAMERA",
    "expression": "EXPRESSION",
    "track": "TRACK",
    "event_id": "EVENT_ID",
    "device": "DEVICE",
}
_PROTECTED_FIELDS = frozenset(
    {"MESSAGE", "PRIORITY", "CODE_FILE", "CODE_LINE", "CODE_FUNC", "SYSLOG_IDENTIFIER"}
)
_BAD_FIELD_CHARS = re.compile(r"[^A-Z0-9_]")

Fields = list[tuple[str, str]]
Sender = Callable[[Fields], None]


def journal_priority(levelno: int) -> int:
    """logging level -> syslog priority (journald PRIORITY=)."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


def journal_field_name(key: str) -> str | None:
    """A valid journal field name for ``key``, or None when nothing valid is left."""
    name = _BAD_FIELD_CHARS.sub("_", str(key).upper()).lstrip("_0123456789")[:64]
    return name or None


def record_fields(record: logging.LogRecord, message: str, identifier: str = SYSLOG_IDENTIFIER) -> Fields:
    """The journal fields for one record (see the module docstring for the convention)."""
    fields = {
        "MESSAGE": message,
        "PRIORITY": str(journal_priority(record.levelno)),
        "SYSLOG_IDENTIFIER": identifier,
        "CODE_FILE": record.pathname,
        "CODE_LINE": str(record.lineno),
        "CODE_FUNC": record.funcName,
        "LOGGER": record.name,
        "THREAD_NAME": str(record.threadName),
    }
    extra: list[tuple[str, object]] = [
        (field, getattr(record, attr))
        for attr, field in STRUCTURED_ATTRIBUTES.items()
        if getattr(record, attr, None) is not None
    ]
    given = getattr(record, "journal", None)
    if isinstance(given, Mapping):
        extra.extend(given.items())
    for key, value in extra:
        name = journal_field_name(key)
        if name is None or name in _PROTECTED_FIELDS or value is None:
            continue
        fields[name] = value if isinstance(value, str) else str(value)
    return list(fields.items())


def encode_native(fields: Iterable[tuple[str, str]]) -> bytes:
    """journald's native protocol: KEY=value lines; values with a newline are length-framed."""
    out = bytearray()
    for key, value in fields:
        data = value.encode("utf-8", "replace")
        if b"\n" in data:
            out += key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


class NativeJournalSender:
    """Writes entries to journald's native socket without libsystemd."""

    def __init__(self, path: str = JOURNAL_SOCKET):
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def __call__(self, fields: Fields) -> None:
        data = encode_native(fields)
        try:
            self._sock.sendto(data, self.path)
        except OSError as exc:
            if exc.errno not in (errno.EMSGSIZE, errno.ENOBUFS):
                raise
            self._send_memfd(data)

    def _send_memfd(self, data: bytes) -> None:
        """Too big for a datagram: pass a sealed memfd holding the entry (as libsystemd does)."""
        fd = os.memfd_create("expressiond-journal", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            seals = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals | fcntl.F_SEAL_SEAL)
            fds = array.array("i", [fd])
            self._sock.sendmsg([], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)], 0, self.path)
        finally:
            os.close(fd)

    def close(self) -> None:
        self._sock.close()


def systemd_python_sender() -> Sender | None:
    """systemd-python's sendv (the `systemd` extra), or None when it is not installed."""
    try:
        from systemd import journal
    except ImportError:
        return None

    def send(fields: Fields) -> None:
        journal.sendv(*(f"{key}={value}" for key, value in fields))

    return send


class JournalHandler(logging.Handler):
    """logging -> journald with structured fields; stderr when a send fails."""

    def __init__(
        self,
        level: int = logging.NOTSET,
        *,
        identifier: str = SYSLOG_IDENTIFIER,
        sender: Sender | None = None,
        socket_path: str = JOURNAL_SOCKET,
    ):
        super().__init__(level)
        self.identifier = identifier
        self._native: NativeJournalSender | None = None
        if sender is None:
            sender = systemd_python_sender()
            self.backend = "systemd-python"
        else:
            self.backend = "custom"
        if sender is None:
            sender = self._native = NativeJournalSender(socket_path)
            self.backend = "native"
        self._send = sender

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            fields = record_fields(record, message, self.identifier)
        except Exception:
            self.handleError(record)
            return
        try:
            self._send(fields)
        except OSError:
            try:
                sys.stderr.write(f"<{journal_priority(record.levelno)}>{message}\n")
                sys.stderr.flush()
            except Exception:
                self.handleError(record)

    def close(self) -> None:
        if self._native is not None:
            self._native.close()
        super().close()


# --- choosing where logs go --------------------------------------------------------------
