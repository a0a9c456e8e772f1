"""The daemon (``expressiond run``): main.py (the process edge: config, logging, signals, sinks,
fault plan), service.py (lifecycle, watchdog, reload, events to sinks), runtime.py (one
generation of cameras -> inference -> tracker), records.py (typed stats and health) and
faults.py (test-only fault injection, passed in as a constructor argument).

The daemon never imports expressiond.tools (tests/unit/test_architecture.py checks it).

Thread: see each module; main.py runs in the main thread.
"""
