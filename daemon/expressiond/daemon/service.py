"""Wires the parts together and owns the lifecycle: start, READY, watchdog, stats, reload on
SIGHUP, drain and flush on SIGTERM. Each part owns its own thread(s) and shutdown.

The service talks to a Runtime only through ``health()``, ``stats()``, ``labels`` and
``release()``, and to sinks only through the EventSink contract (sinks/base.py).

Events are durable before anything can lose them: ``_deliver`` runs on the thread the tracker
made them on (the runtime's "inference-coordinator"; the main thread at start and stop) and
hands them to the sinks that store events (the MQTT spool: one fsynced transaction per
tracker step) before it returns, so the tracker takes the next frame only once they are on
disk. Only then do they go, through a bounded queue, to the "events" thread that writes
journald and stdout lines, retained states and snapshot JPEGs: a full queue or a crash costs
log lines, never an event. A stop that is stuck waits for a commit in progress
(``hold_delivery``) before the process exits.

At start the service ends the tracks a previous run left open (``end`` events, reason
"restart"), continues the track ids where that run stopped, and publishes every camera's
state with count 0 (the retained state of a dead process would otherwise stay).

Thread: ``run`` is the main thread's loop (and signals only set events for it); the "events"
thread hands queued events, states and snapshots to the sinks; ``_deliver`` as above, under
``_deliver_lock``. The event counters are a Counters (several threads write them).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable

from expressiond import __version__
from expressiond.config import Config, keep_restart_values, load_checked, restart_changes
from expressiond.counters import Counters, Tally
from expressiond.daemon.faults import FaultPlan
from expressiond.daemon.records import Observation, ServiceStats
from expressiond.daemon.runtime import Runtime
from expressiond.daemon.snapshots import SnapshotJob, encode
from expressiond.daemon.trace import EventTrace
from expressiond.errors import EXIT_RUNTIME, ExpressiondError
from expressiond.events import ExpressionEvent
from expressiond.sinks import EventSink
from expressiond.systemd import Notifier
from expressiond.tracking import TrackIds, idle_state, restart_end

log = logging.getLogger(__name__)

EVENT_QUEUE_SIZE = 10000
LINK_STATS_GAP_S = 1.0
OBSERVE_EVERY_S = 1.0  # how often the observer (the [http] endpoint) gets a new Observation

Observer = Callable[[Observation], None]


class Service:
    def __init__(
        self,
        cfg: Config,
        sinks: list[EventSink],
        notifier: Notifier | None = None,
        config_loader: Callable[[str], Config] | None = None,
        *,
        faults: FaultPlan | None = None,
        trace: EventTrace | None = None,
        observer: Observer | None = None,
    ):
        """``faults``: the test-only fault plan each Runtime gets (daemon/faults.py);
        ``trace``: the test-only record of produced events (daemon/trace.py).
        ``observer``: called from the main thread with an Observation about once a second
        (the [http] endpoint's ``update``); it must return at once."""
        self.cfg = cfg
        self.sinks = list(sinks)
        self._stores = [s for s in self.sinks if s.stores_events]
        self._trace = trace
        self._deliver_lock = threading.Lock()
        self.track_ids = TrackIds()
        self.notifier = notifier or Notifier()
        self._load = config_loader or load_checked
        self._faults = faults or FaultPlan()
        self.stop_event = threading.Event()
        self.reload_event = threading.Event()
        self.events = Counters("emitted", "dropped", "restart_ended", "snapshots", "snapshot_errors")
        self.event_counts = Tally()  # (camera, type) -> emitted
        self._observer = observer
        self._events: queue.Queue = queue.Queue(EVENT_QUEUE_SIZE)
        self._event_thread = threading.Thread(target=self._emit_loop, name="events", daemon=True)
        self.runtime: Runtime | None = None
        self.started_mono = time.monotonic()

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Compile, warm up, start the cameras; READY=1 only after all of that worked."""
        self._event_thread.start()
        self.observe("starting")
        self._recover()
        t0 = time.monotonic()
        self.runtime = Runtime(self.cfg, self._deliver, faults=self._faults, track_ids=self.track_ids)
        prepared_s = time.monotonic() - t0
        self.runtime.start()
        self.observe("running")
        self.notifier.ready(self.status_line())
        log.info(
            "expressiond %s ready: device_id=%s cameras=%s; models compiled and warmed up in %.2f s",
            __version__,
            self.cfg.device_id,
            ",".join(c.name for c in self.cfg.cameras),
            prepared_s,
        )

    def run(
        self, max_seconds: float | None = None, stats_interval: float = 30.0, stop_at_end: bool = True
    ) -> int:
        """Main loop (the caller's thread): watchdog, stats, reloads, end of input."""
        deadline = time.monotonic() + max_seconds if max_seconds else None
        wd = self.notifier.watchdog_interval()
        ping_every = wd / 2 if wd else None
        next_stats = time.monotonic() + stats_interval
        last_stats = 0.0
        links_sent: tuple[bool, ...] | None = None  # the cameras' "connected" the last stats said
        next_observe = time.monotonic() + OBSERVE_EVERY_S
        last_ping = 0.0
        stalled_since: float | None = None
        while not self.stop_event.wait(0.1 if ping_every is None else min(0.1, ping_every)):
            now = time.monotonic()
            if self.reload_event.is_set():
                self.reload_event.clear()
                self.reload()
                continue
            health = self.runtime.health(now)
            if health.failure is not None:
                log.error(
                    "inference cannot go on (%s); exiting with status 1 so that systemd restarts the daemon",
                    health.failure,
                )
                return EXIT_RUNTIME
            if ping_every is not None and now - last_ping >= ping_every:
                if health.healthy(wd):
                    self.notifier.watchdog()
                    last_ping = now
                    if stalled_since is not None:
                        log.info("watchdog: frames flow again after %.1f s", now - stalled_since)
                        stalled_since = None
                elif stalled_since is None:
                    stalled_since = now
                    log.warning(
                        "watchdog: pipeline stalled (%s): no more pings; systemd "
                        "restarts the service if it lasts",
                        health.stall_report(),
                    )
            # a camera that goes down or comes back is told at once (Home Assistant's
            # connectivity sensor), not at the next interval; at most once a second
            links = tuple(c.connected for c in health.cameras)
            links_sent = links if links_sent is None else links_sent
            if now >= next_stats or (links != links_sent and now - last_stats >= LINK_STATS_GAP_S):
                next_stats, last_stats, links_sent = now + stats_interval, now, links
                self.publish_stats()
            if self._observer is not None and now >= next_observe:
                next_observe = now + OBSERVE_EVERY_S
                self.observe("running", health)
            if stop_at_end and health.ended:
                log.info("all camera sources ended")
                break
            if deadline is not None and now >= deadline:
                break
        return 0

    def reload(self) -> bool:
        """SIGHUP: a bad new config keeps the old one running and says why. Keys declared
        ``reload=RESTART`` (config/model.py: device_id, [mqtt], [http], [logging]: the MQTT
        connection, the endpoint's socket and the log setup made at start) keep their values
        until a restart, said in the log, rather than half-apply (events with a new device_id
        on old topics); the rest applies now."""
        self.notifier.reloading("reloading configuration")
        try:
            new = self._load(self.cfg.source)
            fixed = restart_changes(self.cfg, new)
            if fixed:
                log.warning(
                    "reload: %s changed; that takes `systemctl restart expressiond`, "
                    "until then the previous values stay",
                    ", ".join(fixed),
                )
                new = keep_restart_values(self.cfg, new)
            rt = Runtime(new, self._deliver, faults=self._faults, track_ids=self.track_ids)
        except ExpressiondError as exc:
            log.error("reload failed, still running the previous config: %s", exc)
            self.notifier.ready(self.status_line())
            return False
        old, self.runtime = self.runtime, rt
        old.stop()
        old.release()  # here, not in whichever thread the garbage collector happens to run
        before = self.cfg.cameras
        self.cfg = new
        self._publish_idle([c for c in new.cameras if c.name not in {b.name for b in before}])
        was_on = {c.name for c in before if c.snapshot != "off"}
        for cam in new.cameras:  # snapshot turned off: delete the picture the broker retains
            if cam.snapshot == "off" and cam.name in was_on:
                self._put(("jpeg", (cam.name, b"")))
        rt.start()
        log.info("configuration reloaded from %s", new.source)
        cameras, snapshots = _camera_sets(new.cameras)
        if (cameras, snapshots) != _camera_sets(before):
            for sink in self.sinks:  # the MQTT sink re-sends Home Assistant discovery
                try:
                    sink.set_cameras(cameras, snapshots)
                except Exception:  # noqa: BLE001
                    log.exception("updating the camera list of %s failed", type(sink).__name__)
        self.notifier.ready(self.status_line())
        return True

    def stop(self, timeout: float = 10.0) -> None:
        self.notifier.stopping("stopping: draining inference and flushing events")
        self.observe("stopping")
        if self.runtime is not None:
            self.runtime.stop(timeout)
        self._events.put(None)
        self._event_thread.join(timeout)
        if self._trace is not None:
            self._trace.close()
        for sink in self.sinks:
            try:
                sink.close()
            except Exception:  # noqa: BLE001 - close every sink even if one fails
                log.exception("closing %s failed", type(sink).__name__)

    def release(self) -> None:
        """Drop every OpenVINO object now, in this thread (Runtime.release)."""
        rt, self.runtime = self.runtime, None
        if rt is not None:
            rt.release()

    # --- events ---------------------------------------------------------------------------------
    def _recover(self) -> None:
        """Before the first frame: end the tracks the previous run left open, go on with its
        track ids, say every camera has no face (count 0) and clear snapshots that are off."""
        now = time.time()
        for sink in self._stores:
            try:
                left = sink.recover()
            except Exception:  # noqa: BLE001 - a sink's store trouble must not stop the start
                log.exception("reading what the previous run left in %s failed", type(sink).__name__)
                continue
            if left is None:
                continue
            self.track_ids = TrackIds(max(self.track_ids.next, left.next_track))
            ends = [restart_end(ev, now) for ev in left.open_tracks]
            if ends:
                log.warning(
                    "the previous run ended without closing %d tracks (killed, crashed or power "
                    "lost): sending their end events (reason restart)",
                    len(ends),
                )
            for camera in dict.fromkeys(ev.camera for ev in ends):
                mine = [ev for ev in ends if ev.camera == camera]
                self._deliver(mine, camera, idle_state(self.cfg.device_id, camera, now), None)
                self.events.add("restart_ended", len(mine))
        self._publish_idle(self.cfg.cameras)

    def _publish_idle(self, cameras: Iterable) -> None:
        """Count 0 for each camera (a camera without faces is not "unknown" in Home Assistant,
        and a killed run's faces do not stay); an empty retained snapshot where it is off."""
        now = time.time()
        for cam in cameras:
            self._put(("state", (cam.name, idle_state(self.cfg.device_id, cam.name, now))))
            if cam.snapshot == "off":
                self._put(("jpeg", (cam.name, b"")))

    def _deliver(
        self, events: list[ExpressionEvent], camera: str, state: dict, snapshot: SnapshotJob | None = None
    ) -> None:
        """The runtime's callback, on the thread the tracker made ``events`` on: store them
        durably, then queue them, the state and the snapshot for the "events" thread."""
        with self._deliver_lock:
            for sink in self._stores:
                try:
                    sink.store(events)
                except Exception:  # noqa: BLE001 - one sink failing must not stop the frame path
                    log.exception("sink %s could not store %d events", type(sink).__name__, len(events))
            if self._trace is not None:
                self._trace.write(events)
        if events and not self._put(("events", events)):
            self.events.add("dropped", len(events))
        self._put(("state", (camera, state)))
        if snapshot is not None:
            self._put(("snapshot", snapshot))

    def hold_delivery(self, timeout: float) -> bool:
        """For the stuck-stop guard: wait until no delivery is storing events, then keep any
        other from starting (the process is about to exit). False if it did not get there."""
        return self._deliver_lock.acquire(timeout=timeout)

    def _put(self, item: tuple) -> bool:
        try:
            self._events.put_nowait(item)
            return True
        except queue.Full:
            return False

    def _emit_loop(self) -> None:
        while True:
            item = self._events.get()
            if item is None:
                return
            kind, payload = item
            if kind == "events":
                for ev in payload:
                    self._to_sinks("emit", ev)
                    self.events.add("emitted")
                    self.event_counts.add((ev.camera, ev.type))
            elif kind == "state":
                self._to_sinks("publish_state", *payload)
            elif kind == "snapshot":
                try:
                    jpeg = encode(payload)
                except Exception:  # noqa: BLE001 - a bad frame must not stop the events thread
                    self.events.add("snapshot_errors")
                    log.exception("camera %s: making the snapshot failed", payload.camera)
                    continue
                self.events.add("snapshots")
                self._to_sinks("publish_snapshot", payload.camera, jpeg)
            else:  # "jpeg": ready bytes (b"" clears the retained snapshot)
                self._to_sinks("publish_snapshot", *payload)

    def _to_sinks(self, method: str, *args) -> None:
        for sink in self.sinks:
            if method == "emit" and sink.stores_events:
                continue  # it has the event already (store)
            try:
                getattr(sink, method)(*args)
            except Exception:  # noqa: BLE001 - one sink failing must not stop the others
                log.exception("sink %s failed", type(sink).__name__)

    # --- status -----------------------------------------------------------------------------------
    def stats(self) -> ServiceStats:
        counts = self.events.snapshot()
        return ServiceStats(
            device_id=self.cfg.device_id,
            version=__version__,
            uptime_s=round(time.monotonic() - self.started_mono, 1),
            events_emitted=counts["emitted"],
            events_dropped=counts["dropped"],
            runtime=self.runtime.stats() if self.runtime is not None else None,
            events_by=self.event_counts.snapshot(),
        )

    def observe(self, phase: str, health=None) -> None:
        """Hand the observer what the endpoint serves (no-op without one). Never raises: the
        endpoint going wrong must not take the daemon with it."""
        if self._observer is None:
            return
        try:
            rt = self.runtime
            running = rt is not None and phase != "starting"
            sinks = tuple(h for h in (sink.health() for sink in self.sinks) if h is not None)
            self._observer(
                Observation(
                    at_mono=time.monotonic(),
                    phase=phase,
                    device_id=self.cfg.device_id,
                    version=__version__,
                    stats=self.stats() if running else None,
                    health=(health or rt.health()) if running else None,
                    sinks=sinks,
                    camera_budget_s={c.name: c.reconnect_max_s for c in self.cfg.cameras},
                )
            )
        except Exception:  # noqa: BLE001
            log.exception("updating the metrics endpoint failed")

    def publish_stats(self) -> None:
        stats = self.stats()
        payload = stats.to_dict()
        for sink in self.sinks:
            try:
                sink.publish_stats(payload)
            except Exception:  # noqa: BLE001
                log.exception("publishing stats failed")
        self.notifier.status(self.status_line(stats))

    def status_line(self, stats: ServiceStats | None = None) -> str:
        """systemd's STATUS=: devices and precision, inference fps per camera (and "(down)" for a
        camera that is reconnecting), sink status."""
        if self.runtime is None:
            return "starting"
        stats = stats or self.stats()
        rt = stats.runtime
        fps = ", ".join(
            f"{c.capture.camera} {c.fps:.1f} fps"
            + ("" if c.capture.connected or c.capture.finished else " (down)")
            for c in (rt.cameras if rt else ())
        )
        devices = ",".join(rt.inference.execution_devices) if rt else ""
        notes = "".join(f"; {text}" for text in (sink.status() for sink in self.sinks) if text)
        return f"{devices} {self.cfg.inference.precision}; {fps}{notes}"


def _camera_sets(cameras) -> tuple[list[str], list[str]]:
    """The camera names, and those whose snapshot is on (what discovery depends on)."""
    return [c.name for c in cameras], [c.name for c in cameras if c.snapshot != "off"]
