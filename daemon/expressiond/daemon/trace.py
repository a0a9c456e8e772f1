"""TEST-ONLY record of the events the tracker produced: with ``EXPRESSIOND_TRACE=FILE`` in the
environment, ``expressiond run`` appends one JSON line per event (id, ts, type, camera,
track, expression, reason) to FILE, on the tracker's thread, right after the events were made
durable and before any other output (stdout, journald, MQTT) sees them. The fault suite counts
loss against it. One ``write`` per tracker step on an O_APPEND descriptor, no fsync: a SIGKILL
keeps what was written (the page cache survives the process), a line is never half there.

Thread: ``write`` from the thread that delivers events (the service calls it under its
delivery lock); opened and closed by the main thread.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence

from expressiond.errors import ConfigError
from expressiond.events import ExpressionEvent, utc_iso

log = logging.getLogger(__name__)

ENV = "EXPRESSIOND_TRACE"


class EventTrace:
    def __init__(self, path: str):
        self.path = path
        try:
            self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise ConfigError(
                f"{ENV}={path!r}: cannot open it ({exc.strerror}); unset it in production"
            ) from None

    def write(self, events: Sequence[ExpressionEvent]) -> None:
        if self._fd is None or not events:
            return
        lines = "".join(
            json.dumps(
                {"id": e.id, "ts": utc_iso(e.timestamp), "type": e.type, "camera": e.camera,
                 "track": e.track, "expression": e.expression, "reason": e.reason},
                separators=(",", ":"),
            ) + "\n"
            for e in events
        )  # fmt: skip
        os.write(self._fd, lines.encode())

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def from_environ(environ: Mapping[str, str] | None = None) -> EventTrace | None:
    path = (os.environ if environ is None else environ).get(ENV, "")
    if not path:
        return None
    log.warning("%s=%r: TEST-ONLY event trace is active", ENV, path)
    return EventTrace(path)
