"""Fault injection for the fault-suite tests (tests/faults). TEST-ONLY: never set in production.

Enabled only by the environment variable ``EXPRESSIOND_FAULTS``, read once per process (the
first time ``active()`` is called, when the first Runtime is built); unset, every hook is a
no-op that costs one attribute check. The value is a ``;``-separated list of faults:

``infer-raise:frame=N``
    the N-th frame handed to inference (counted from 1 over all cameras, again from 1 after
    a SIGHUP reload) fails to start its inference request, as OpenVINO's ``start_async``
    does when a device refuses a request. Several ``frame=`` faults may be given.
``infer-raise:from=N``
    every frame from the N-th on fails: a device that died and stays dead.

A malformed value is a ConfigError (exit 78), so a typo in a test cannot silently test
nothing.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import ConfigError

log = logging.getLogger(__name__)

ENV = "EXPRESSIOND_FAULTS"


class InjectedFault(RuntimeError):
    """Raised by a hook where a real device or runtime error would be raised."""


@dataclass(frozen=True)
class FaultPlan:
    raise_at: frozenset[int] = frozenset()  # submission numbers (1-based) that fail
    raise_from: int | None = None  # every submission from this one on fails

    def __bool__(self) -> bool:
        return bool(self.raise_at) or self.raise_from is not None

    def before_submit(self, number: int) -> None:
        """Called with the 1-based number of a frame about to be submitted to inference."""
        if number in self.raise_at or (self.raise_from is not None and number >= self.raise_from):
            raise InjectedFault(f"injected inference failure on frame submission {number} ({ENV})")


def parse(spec: str) -> FaultPlan:
    raise_at: set[int] = set()
    raise_from: int | None = None
    for item in filter(None, (part.strip() for part in spec.split(";"))):
        name, _, args = item.partition(":")
        key, _, value = args.partition("=")
        if name != "infer-raise" or key not in ("frame", "from") or not value.isdigit() or int(value) < 1:
            raise ConfigError(
                f"{ENV}={spec!r}: cannot use {item!r}; this test-only variable takes "
                '"infer-raise:frame=N" or "infer-raise:from=N" (N >= 1); unset it in production'
            )
        if key == "frame":
            raise_at.add(int(value))
        else:
            raise_from = int(value) if raise_from is None else min(raise_from, int(value))
    return FaultPlan(frozenset(raise_at), raise_from)


_lock = threading.Lock()
_plan: FaultPlan | None = None


def active(environ: Mapping[str, str] | None = None) -> FaultPlan:
    """The process's fault plan, read from the environment on the first call only."""
    global _plan
    with _lock:
        if _plan is None:
            spec = (os.environ if environ is None else environ).get(ENV, "")
            _plan = parse(spec)
            if _plan:
                log.warning("%s=%r: TEST-ONLY fault injection is active", ENV, spec)
        return _plan
