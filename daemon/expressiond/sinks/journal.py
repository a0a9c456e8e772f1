"""Every event as one log line with journald fields (CAMERA=, EXPRESSION=, TRACK=, EVENT_ID=,
EVENT_TYPE=), so that ``journalctl -u expressiond CAMERA=door`` lists a camera's events. Where
the line goes (journald or stderr) is the log setup's business (systemd/logsetup.py).

Thread: the service's "events" thread.
"""

from __future__ import annotations

import logging

from expressiond.events import ExpressionEvent
from expressiond.sinks.base import EventSink, SinkOptions

log = logging.getLogger(__name__)


class JournalSink(EventSink):
    @classmethod
    def build(cls, cfg, options: SinkOptions) -> JournalSink:
        return cls()  # always: the log is where an operator looks first

    def emit(self, event: ExpressionEvent) -> None:
        log.info(
            "%s %s: track %d %s %.2f",
            event.camera,
            event.type,
            event.track,
            event.expression,
            event.confidence,
            extra={
                "journal": {
                    "CAMERA": event.camera,
                    "EXPRESSION": event.expression,
                    "TRACK": event.track,
                    "EVENT_ID": event.id,
                    "EVENT_TYPE": event.type,
                }
            },
        )
