"""Event sinks: the contract (base.py: ``EventSink`` with no-op defaults), one module per sink
(stdout.py, journal.py, mqtt/) and the registry that builds the sinks of a run (registry.py:
``SINKS``, ``build_sinks``).

Thread: see base.py for which thread calls which method.
"""

from expressiond.sinks.base import EventSink, Leftover, SinkHealth, SinkOptions
from expressiond.sinks.registry import SINKS, build_sinks

__all__ = ["SINKS", "EventSink", "Leftover", "SinkHealth", "SinkOptions", "build_sinks"]
