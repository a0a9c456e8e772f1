"""Where events go: the ``EventSink`` contract. The service knows only this class; stdout.py,
journal.py and mqtt/ implement it, and registry.py lists them.

Every method has a no-op default, so a sink overrides only what it does (a webhook: ``build``
and ``emit``). ``build`` decides from the config and the run options whether the sink exists
at all (``None``: not for this run).

A sink that keeps events durably (the MQTT spool) sets ``stores_events``: the service then
hands it each tracker step's events with ``store`` on the thread that made them, before any
other sink sees them, and never calls its ``emit``; ``recover`` tells the service at start
what the previous run left (open tracks to end, the next free track id).

Thread: store from the runtime's "inference-coordinator" (or the main thread at start and
stop); emit, publish_state, publish_snapshot and set_cameras from the service's "events"
thread (or the main thread on reload); recover, publish_stats, status and health from the
main thread, close once from the main thread at shutdown: a sink that keeps state across
them guards it with a lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from expressiond import __version__

if TYPE_CHECKING:
    from expressiond.config import Config
    from expressiond.events import ExpressionEvent


@dataclass(frozen=True)
class Leftover:
    """What a previous run left in a sink's store: the last start/change event of each track
    it never ended (SIGKILL, crash, power cut), and the first track id not yet used."""

    open_tracks: tuple[ExpressionEvent, ...] = ()
    next_track: int = 1


@dataclass(frozen=True, kw_only=True)
class SinkOptions:
    """What the command line adds to the config: ``run --stdout``, ``--no-mqtt``, and what the
    models and the build know (the classifier's labels, the version) for discovery payloads."""

    stdout: bool = False
    mqtt: bool = True
    labels: tuple[str, ...] = ()
    version: str = __version__


@dataclass(frozen=True)
class SinkHealth:
    """A sink's link as the metrics and readiness endpoint sees it (``EventSink.health``).

    ``connected``: the link to its far end is up. ``spooling``: events made while it is down
    are kept (durably, or in memory for a ``:memory:`` spool) to be sent later; a sink that is
    neither connected nor spooling is losing events, and the daemon is not ready."""

    name: str
    connected: bool
    spooling: bool
    spool_depth: int = 0
    sent: int = 0
    dropped: int = 0  # will never be delivered (spool overflow, refused by the far end)


class EventSink:
    """The whole contract of a sink, each method a no-op until a sink overrides it."""

    stores_events = False  # True: ``store`` (producing thread, durable) replaces ``emit``

    @classmethod
    def build(cls, cfg: Config, options: SinkOptions) -> EventSink | None:
        """The sink for this config and run, or None when it is not wanted."""
        return None

    def emit(self, event: ExpressionEvent) -> None:
        """Take one event. Must not block the pipeline for long (bounded work)."""

    def store(self, events: Sequence[ExpressionEvent]) -> None:
        """Only when ``stores_events``: keep one tracker step's events durably, returning when
        they are (one commit for all). Called on the producing thread: bounded, quick."""

    def recover(self) -> Leftover | None:
        """What the previous run left (called once, at start, before any event); None: this
        sink keeps nothing across runs."""
        return None

    def publish_state(self, camera: str, state: dict[str, Any]) -> None:
        """The current expressions of one camera changed (the retained state payload)."""

    def publish_snapshot(self, camera: str, jpeg: bytes) -> None:
        """A JPEG of the face (or the annotated frame) of a camera's latest start/change,
        when the camera's ``snapshot`` asks for one. Never stored on disk."""

    def publish_stats(self, stats: dict[str, Any]) -> None:
        """The periodic stats payload (every [mqtt] stats_interval seconds)."""

    def set_cameras(self, cameras: Sequence[str], snapshots: Sequence[str] = ()) -> None:
        """A reload changed the camera list (or which cameras send snapshots)."""

    def status(self) -> str | None:
        """A few words for systemd's STATUS= line ("broker connected"), or None."""
        return None

    def health(self) -> SinkHealth | None:
        """The link's state for /metrics and /readyz, or None for a sink without one (stdout,
        the journal). Called from the main thread about once a second while [http] is on."""
        return None

    def close(self) -> None:
        """Flush and release. Called once at shutdown; emit is not called after it."""
