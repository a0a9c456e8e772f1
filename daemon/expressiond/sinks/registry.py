"""The sinks a run may have, and ``build_sinks``: each class decides from the config and the
run options whether it is wanted (``EventSink.build``). A new sink is one module plus one
line in ``SINKS``; the order is the order in which each event reaches them.

Thread: the main thread, at start.
"""

from __future__ import annotations

from expressiond.config import Config
from expressiond.sinks.base import EventSink, SinkOptions
from expressiond.sinks.journal import JournalSink
from expressiond.sinks.mqtt import MqttSink
from expressiond.sinks.stdout import StdoutSink

SINKS: tuple[type[EventSink], ...] = (JournalSink, StdoutSink, MqttSink)


def build_sinks(cfg: Config, options: SinkOptions) -> list[EventSink]:
    sinks = []
    for cls in SINKS:
        sink = cls.build(cfg, options)
        if sink is not None:
            sinks.append(sink)
    return sinks
