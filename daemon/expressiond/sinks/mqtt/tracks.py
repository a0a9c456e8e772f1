"""Events as spool rows, and the tracks a previous run left open.

Each event row goes with the change it makes to the open-track record (spool_db.py): a
start or change records the track as open with that payload, an end removes it; both in the
same transaction as the row. At the next start ``leftover`` reads the record: the tracks a
SIGKILL, crash or power cut left without an end, and the highest track id ever announced.

Thread: the caller's (the publisher's ``store`` and ``recover``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from expressiond.events import ExpressionEvent
from expressiond.sinks.base import Leftover
from expressiond.sinks.mqtt.spool import Spool
from expressiond.sinks.mqtt.spool_db import TrackChange
from expressiond.sinks.mqtt.topics import Topics

log = logging.getLogger(__name__)


def spool_rows(
    topics: Topics, events: Sequence[ExpressionEvent]
) -> tuple[list[tuple[str, bytes]], list[TrackChange]]:
    messages, changes = [], []
    for ev in events:
        payload = ev.to_json().encode()
        messages.append((topics.event(ev.camera), payload))
        changes.append(TrackChange(ev.camera, ev.track, None if ev.type == "end" else payload))
    return messages, changes


def leftover(spool: Spool) -> Leftover:
    opened, unreadable = [], []
    for change in spool.open_tracks():
        try:
            opened.append(ExpressionEvent.from_dict(json.loads(change.payload or b"")))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning(
                "spool %s: cannot read open track %s/%d (%s); forgot it", spool.path, *change[:2], exc
            )
            unreadable.append(TrackChange(change.camera, change.track, None))
    if unreadable:
        spool.append_many([], unreadable)
    return Leftover(open_tracks=tuple(opened), next_track=spool.max_track + 1)
