"""Where the daemon's log goes: journald (structured) or stderr, set up once at start.

Thread: the main thread (start, and again on reload).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import TextIO

from expressiond.config.model import JOURNAL_MODES, LOG_LEVELS
from expressiond.errors import ConfigError
from expressiond.systemd.journal import JOURNAL_SOCKET, JournalHandler, journal_priority


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
        if level.upper() not in LOG_LEVELS:
            raise ConfigError(f"logging.level = {level!r}: use one of {', '.join(LOG_LEVELS)}")
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
