"""systemd integration: sd_notify (notify.py), structured logging to journald (journal.py) and
the choice between journald and stderr at start (logsetup.py).

Thread: see each module; the notifier and the journal handler may be used from any thread.
"""

from expressiond.systemd.journal import (
    JOURNAL_SOCKET,
    JournalHandler,
    NativeJournalSender,
    encode_native,
    journal_field_name,
    journal_priority,
    record_fields,
    systemd_python_sender,
)
from expressiond.systemd.logsetup import setup_logging, stream_is_journal
from expressiond.systemd.notify import Notifier

__all__ = [
    "JOURNAL_SOCKET",
    "JournalHandler",
    "NativeJournalSender",
    "Notifier",
    "encode_native",
    "journal_field_name",
    "journal_priority",
    "record_fields",
    "setup_logging",
    "stream_is_journal",
    "systemd_python_sender",
]
