"""systemd integration: sd_notify over $NOTIFY_SOCKET, and structured logging to journald.

Notify: the protocol is one AF_UNIX datagram of ``KEY=value`` lines, so ``Notifier`` speaks it
directly (no libsystemd needed, works on any Python). Without $NOTIFY_SOCKET (a shell, a test)
every call is a no-op that returns False.

Journal: ``JournalHandler`` sends each record with structured fields, so an operator can run
``journalctl -u expressiond CAMERA=door``. Convention for callers (both forms may be mixed)::

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
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TextIO

from .errors import ConfigError

log = logging.getLogger(__name__)

JOURNAL_SOCKET = "/run/systemd/journal/socket"
SYSLOG_IDENTIFIER = "expressiond"
JOURNAL_MODES = ("auto", "yes", "no")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
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


# --- sd_notify ---------------------------------------------------------------------------


def _notify_address(value: str) -> str | None:
    """$NOTIFY_SOCKET -> a sendto() address: '@name' is abstract, '/path' a file socket."""
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # e.g. vsock: (systemd >= 254): not for a daemon on the host


class Notifier:
    """Sends sd_notify messages to the service manager; a no-op when not run by systemd.

    Thread-safe: each message is one sendto() on one datagram socket. A failed send is
    logged once and reported as False; it never raises, because losing a STATUS line must
    not take the pipeline down (a lost WATCHDOG=1 is what the watchdog is there to catch).
    """

    def __init__(self, address: str | None = None, environ: Mapping[str, str] | None = None):
        self._environ = os.environ if environ is None else environ
        raw = self._environ.get("NOTIFY_SOCKET", "") if address is None else address
        self._address = _notify_address(raw) if raw else None
        if raw and self._address is None:
            log.warning("NOTIFY_SOCKET=%s is not a unix socket address; not notifying", raw)
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=value`` lines as one datagram; True when it was sent."""
        if self._address is None:
            return False
        payload = "\n".join(assignments).encode("utf-8")
        try:
            with self._lock:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(payload, self._address)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning("sd_notify to %r failed: %s", self._address, exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Startup (or a reload) is complete: models compiled and warmed up."""
        return self.notify("READY=1", *_status_line(status))

    def status(self, text: str) -> bool:
        """One line for `systemctl status`."""
        return self.notify(*_status_line(text))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def reloading(self, status: str | None = None) -> bool:
        """A reload (SIGHUP) started; send ready() when it is done."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}", *_status_line(status))

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *_status_line(status))

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for more start/stop time (e.g. a first GPU compile without a model cache)."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")

    def watchdog_interval(self) -> float | None:
        """The watchdog timeout in seconds, or None when no watchdog applies to this process.

        Ping at least twice per interval (systemd's recommendation): a ping every
        ``interval / 2`` at the latest.
        """
        usec = self._environ.get("WATCHDOG_USEC", "")
        pid = self._environ.get("WATCHDOG_PID", "")
        if pid:
            try:
                if int(pid) != os.getpid():
                    return None
            except ValueError:
                return None
        try:
            value = int(usec)
        except ValueError:
            return None
        return value / 1_000_000 if value > 0 else None

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def _status_line(text: str | None) -> list[str]:
    if text is None:
        return []
    return ["STATUS=" + " ".join(text.splitlines())]


# --- journald ----------------------------------------------------------------------------


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


class _PriorityPrefixFormatter(logging.Formatter):
    """'<6>name: message': journald reads the <N> prefix of a stdout/stderr line as PRIORITY."""

    def format(self, record: logging.LogRecord) -> str:
        return f"<{journal_priority(record.levelno)}>{super().format(record)}"


def stream_is_journal(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """True when ``stream`` is the journal stream systemd connected ($JOURNAL_STREAM=dev:ino)."""
    try:
        dev, ino = (int(part) for part in environ.get("JOURNAL_STREAM", "").split(":"))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


def setup_logging(
    level: str | int = "INFO",
    journal: str = "auto",
    *,
    stream: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
    journal_socket: str = JOURNAL_SOCKET,
) -> str:
    """Configure the root logger once (call again on reload); return "journal" or "stderr".

    journal="auto": journald when systemd started us (stderr is $JOURNAL_STREAM or
    $INVOCATION_ID is set) and the journal socket exists, else plain stderr lines.
    "yes": journald or a ConfigError; "no": stderr (with <N> priority prefixes when stderr
    is the journal anyway).
    """
    env = os.environ if environ is None else environ
    out = sys.stderr if stream is None else stream
    if journal not in JOURNAL_MODES:
        raise ConfigError(f"logging.journal = {journal!r}: use one of auto, yes, no")
    if isinstance(level, str):
        if level.upper() not in LEVELS:
            raise ConfigError(f"logging.level = {level!r}: use one of {', '.join(LEVELS)}")
        level = logging.getLevelName(level.upper())
    socket_exists = os.path.exists(journal_socket)
    under_systemd = stream_is_journal(out, env) or bool(env.get("INVOCATION_ID"))
    if journal == "yes" and not socket_exists:
        raise ConfigError(
            f'logging.journal = "yes" but {journal_socket} does not exist (no journald): '
            'set journal = "auto" or "no"'
        )
    use_journal = journal == "yes" or (journal == "auto" and under_systemd and socket_exists)

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_expressiond", False)]:
        root.removeHandler(old)
        old.close()
    handler: logging.Handler
    if use_journal:
        handler = JournalHandler(socket_path=journal_socket)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(out)
        if stream_is_journal(out, env):
            handler.setFormatter(_PriorityPrefixFormatter("%(name)s: %(message)s"))
        else:
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler._expressiond = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    return "journal" if use_journal else "stderr"
