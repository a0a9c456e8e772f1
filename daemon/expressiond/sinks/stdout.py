"""``expressiond run --stdout``: one event JSON object per line (the MQTT payload).

Thread: the service's "events" thread writes; close comes from the main thread; both under
the sink's lock.
"""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from expressiond.events import ExpressionEvent
from expressiond.sinks.base import EventSink, SinkOptions


class StdoutSink(EventSink):
    def __init__(self, stream: TextIO | None = None):
        self._stream = stream or sys.stdout
        self._lock = threading.Lock()

    @classmethod
    def build(cls, cfg, options: SinkOptions) -> StdoutSink | None:
        return cls() if options.stdout else None

    def emit(self, event: ExpressionEvent) -> None:
        line = event.to_json() + "\n"
        with self._lock:
            self._stream.write(line)
            self._stream.flush()

    def close(self) -> None:
        with self._lock:
            self._stream.flush()
