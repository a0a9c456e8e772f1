"""Where events go. The pipeline knows only this interface; mqtt/, stdout and journald
implement it."""

from __future__ import annotations

import sys
import threading
from typing import Protocol, TextIO

from .events import ExpressionEvent


class EventSink(Protocol):
    def emit(self, event: ExpressionEvent) -> None:
        """Take one event. Must not block the pipeline for long (bounded work)."""

    def close(self) -> None:
        """Flush and release. Called once at shutdown; emit is not called after it."""


class StdoutSink:
    """One event JSON object per line (``expressiond run --stdout``)."""

    def __init__(self, stream: TextIO | None = None):
        self._stream = stream or sys.stdout
        self._lock = threading.Lock()

    def emit(self, event: ExpressionEvent) -> None:
        line = event.to_json() + "\n"
        with self._lock:
            self._stream.write(line)
            self._stream.flush()

    def close(self) -> None:
        with self._lock:
            self._stream.flush()
