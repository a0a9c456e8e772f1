"""Fault injection for the fault-suite tests (tests/faults). TEST-ONLY: never set in production.

Enabled only by the environment variable ``EXPRESSIOND_FAULTS``, which ``expressiond run``
reads once at start (``from_environ``) and passes to the Service as a constructor argument;
unset, the plan is empty and every hook is a no-op. The value is a ``;``-separated list of
faults:

``infer-raise:frame=N``
    the N-th frame handed to inference (counted from 1 over all cameras, again from 1 after
    a SIGHUP reload) fails to start its inference request, as OpenVINO's ``start_async``
    does when a device refuses a request. Several ``frame=`` faults may be given.
``infer-raise:from=N``
    every frame from the N-th on fails: a device that died and stays dead.
``stop-hang``
    stopping the frame path blocks for ever, as a driver call that never returns would: the
    daemon's shutdown guard must end the process.

A malformed value is a ConfigError (exit 78), so a typo in a test cannot silently test
nothing.

Thread: the hooks run in the runtime's "frames" feeder (before_submit) and the main thread
(before_stop); a plan is immutable.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from expressiond.errors import ConfigError

log = logging.getLogger(__name__)

ENV = "EXPRESSIOND_FAULTS"


class InjectedFault(RuntimeError):
    """Raised by a hook where a real device or runtime error would be raised."""


@dataclass(frozen=True)
class FaultPlan:
    raise_at: frozenset[int] = frozenset()  # submission numbers (1-based) that fail
    raise_from: int | None = None  # every submission from this one on fails
    stop_hang: bool = False

    def __bool__(self) -> bool:
        return bool(self.raise_at) or self.raise_from is not None or self.stop_hang

    def before_stop(self) -> None:
        """Called when the frame path starts to stop; blocks for ever under stop-hang."""
        if self.stop_hang:
            log.warning("%s: stop-hang: blocking the stop for ever", ENV)
            threading.Event().wait()

    def before_submit(self, number: int) -> None:
        """Called with the 1-based number of a frame about to be submitted to inference."""
        if number in self.raise_at or (self.raise_from is not None and number >= self.raise_from):
            raise InjectedFault(f"injected inference failure on frame submission {number} ({ENV})")


def parse(spec: str) -> FaultPlan:
    raise_at: set[int] = set()
    raise_from: int | None = None
    stop_hang = False
    for item in filter(None, (part.strip() for part in spec.split(";"))):
        if item == "stop-hang":
            stop_hang = True
            continue
        name, _, args = item.partition(":")
        key, _, value = args.partition("=")
        if name != "infer-raise" or key not in ("frame", "from") or not value.isdigit() or int(value) < 1:
            raise ConfigError(
                f"{ENV}={spec!r}: cannot use {item!r}; this test-only variable takes "
                '"infer-raise:frame=N", "infer-raise:from=N" (N >= 1) or "stop-hang"; '
                "unset it in production"
            )
        if key == "frame":
            raise_at.add(int(value))
        else:
            raise_from = int(value) if raise_from is None else min(raise_from, int(value))
    return FaultPlan(frozenset(raise_at), raise_from, stop_hang)


def from_environ(environ: Mapping[str, str] | None = None) -> FaultPlan:
    """The plan in ``$EXPRESSIOND_FAULTS``: read once, by ``expressiond run`` at start, and
    handed to the Service (and from it to every Runtime); nothing reads the variable later."""
    spec = (os.environ if environ is None else environ).get(ENV, "")
    plan = parse(spec)
    if plan:
        log.warning("%s=%r: TEST-ONLY fault injection is active", ENV, spec)
    return plan
