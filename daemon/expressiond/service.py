"""Wires the parts together and owns the lifecycle: start, READY, watchdog, stats, reload on
SIGHUP, drain and flush on SIGTERM. Each part owns its own thread(s) and shutdown."""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable

from . import __version__
from .config import check_camera_sources, check_model_files, load_config
from .config_types import Config
from .errors import EXIT_RUNTIME, ExpressiondError
from .events import ExpressionEvent
from .runtime import Runtime
from .systemd import Notifier

log = logging.getLogger(__name__)

EVENT_QUEUE_SIZE = 10000


class Service:
    def __init__(
        self,
        cfg: Config,
        sinks: list,
        notifier: Notifier | None = None,
        config_loader: Callable[[str], Config] | None = None,
    ):
        self.cfg = cfg
        self.sinks = list(sinks)
        self.notifier = notifier or Notifier()
        self._load = config_loader or _load_and_check
        self.stop_event = threading.Event()
        self.reload_event = threading.Event()
        self.events_dropped = 0
        self.events_emitted = 0
        self._events: queue.Queue = queue.Queue(EVENT_QUEUE_SIZE)
        self._event_thread = threading.Thread(target=self._emit_loop, name="events", daemon=True)
        self.runtime: Runtime | None = None
        self.started_mono = time.monotonic()

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Compile, warm up, start the cameras; READY=1 only after all of that worked."""
        self._event_thread.start()
        t0 = time.monotonic()
        self.runtime = self._new_runtime(self.cfg)
        prepared_s = time.monotonic() - t0
        self.runtime.start()
        self.notifier.ready(self.status_line())
        log.info(
            "expressiond %s ready: device_id=%s cameras=%s; models compiled and warmed up in %.2f s",
            __version__,
            self.cfg.device_id,
            ",".join(c.name for c in self.cfg.cameras),
            prepared_s,
        )

    def _new_runtime(self, cfg: Config) -> Runtime:
        rt = Runtime(cfg, self._queue_events)
        inf = cfg.inference
        log.info(
            "inference: asked device=%s precision=%s num_requests=%s hint=%s; OpenVINO reports "
            "detector %s, classifier %s; using %d requests; warm-up %.2f s",
            inf.device,
            inf.precision,
            inf.num_requests,
            inf.performance_hint,
            rt.detector.info,
            rt.classifier.info,
            rt.num_requests,
            rt.warmup_s,
            extra={"device": ",".join(rt.execution_devices())},
        )
        return rt

    def run(
        self, max_seconds: float | None = None, stats_interval: float = 30.0, stop_at_end: bool = True
    ) -> int:
        """Main loop (the caller's thread): watchdog, stats, reloads, end of input."""
        deadline = time.monotonic() + max_seconds if max_seconds else None
        wd = self.notifier.watchdog_interval()
        ping_every = wd / 2 if wd else None
        next_stats = time.monotonic() + stats_interval
        last_ping = 0.0
        stalled_since: float | None = None
        while not self.stop_event.wait(0.1 if ping_every is None else min(0.1, ping_every)):
            now = time.monotonic()
            rt = self.runtime
            if self.reload_event.is_set():
                self.reload_event.clear()
                self.reload()
                continue
            if rt.failure is not None:
                log.error(
                    "inference cannot go on (%s); exiting with status 1 so that systemd restarts the daemon",
                    rt.failure,
                )
                return EXIT_RUNTIME
            if ping_every is not None and now - last_ping >= ping_every:
                if self.healthy(now, wd):
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
                        self.stall_report(now),
                    )
            if now >= next_stats:
                next_stats = now + stats_interval
                self.publish_stats()
            if stop_at_end and rt.ended:
                log.info("all camera sources ended")
                break
            if deadline is not None and now >= deadline:
                break
        return 0

    def healthy(self, now: float, window: float) -> bool:
        """Whether to ping the watchdog: inference completed within the window, or nothing is
        waiting and every silent camera is visibly reconnecting (a camera that is down is not
        a stuck daemon). A read that blocks forever, or a device that never completes a
        request, stops the pings and systemd restarts us."""
        rt = self.runtime
        if now - rt.last_result_mono < window:
            return True
        if rt.pipeline.in_flight:
            return False
        return all(c.finished or not c.connected for c in rt.captures)

    def stall_report(self, now: float) -> str:
        """Why healthy() said no, for the log line before systemd's watchdog kill."""
        rt = self.runtime
        cams = []
        for cap in rt.captures:
            s = cap.stats()
            age = s.get("last_frame_age_s")
            cams.append(
                f"{cap.name} {'connected' if s['connected'] else 'not connected'}"
                + ("" if age is None else f", last frame {age:.1f} s ago")
            )
        return (
            f"no inference result for {now - rt.last_result_mono:.1f} s, "
            f"{rt.pipeline.in_flight} frame(s) in flight; cameras: {'; '.join(cams)}"
        )

    def reload(self) -> bool:
        """SIGHUP: a bad new config keeps the old one running and says why. Cameras, models,
        inference and tracking change here; device_id, [mqtt] and [logging] belong to the
        MQTT connection and log setup made at start, so they keep their values until a restart
        (said in the log) rather than half-apply (events with a new device_id on old topics)."""
        self.notifier.reloading("reloading configuration")
        try:
            new = self._load(self.cfg.source)
            fixed = [
                name
                for name in ("device_id", "mqtt", "logging")
                if getattr(new, name) != getattr(self.cfg, name)
            ]
            if fixed:
                log.warning(
                    "reload: %s changed; that takes `systemctl restart expressiond`, "
                    "until then the previous values stay",
                    ", ".join(fixed),
                )
                new = dataclasses.replace(
                    new, device_id=self.cfg.device_id, mqtt=self.cfg.mqtt, logging=self.cfg.logging
                )
            rt = self._new_runtime(new)
        except ExpressiondError as exc:
            log.error("reload failed, still running the previous config: %s", exc)
            self.notifier.ready(self.status_line())
            return False
        old, self.runtime = self.runtime, rt
        old.stop()
        cameras_before = {c.name for c in self.cfg.cameras}
        self.cfg = new
        rt.start()
        log.info("configuration reloaded from %s", new.source)
        cameras = [c.name for c in new.cameras]
        if set(cameras) != cameras_before:
            for sink in self.sinks:
                if hasattr(sink, "set_cameras"):  # the MQTT sink re-sends HA discovery
                    try:
                        sink.set_cameras(cameras)
                    except Exception:  # noqa: BLE001
                        log.exception("updating the camera list of %s failed", type(sink).__name__)
        self.notifier.ready(self.status_line())
        return True

    def stop(self, timeout: float = 10.0) -> None:
        self.notifier.stopping("stopping: draining inference and flushing events")
        if self.runtime is not None:
            self.runtime.stop(timeout)
        self._events.put(None)
        self._event_thread.join(timeout)
        for sink in self.sinks:
            try:
                sink.close()
            except Exception:  # noqa: BLE001 - close every sink even if one fails
                log.exception("closing %s failed", type(sink).__name__)

    def release(self) -> None:
        """Drop every OpenVINO object now, in this thread. Left to the garbage collector they
        may be destroyed on an OpenVINO worker thread or during interpreter shutdown, which
        aborts the process (exit 134) after an otherwise clean stop."""
        import gc

        from .inference import engine

        self.runtime = None
        engine.release_core()
        gc.collect()

    # --- events ---------------------------------------------------------------------------------
    def _queue_events(self, events: list[ExpressionEvent], camera: str, state: dict) -> None:
        for ev in events:
            log.info(
                "%s %s: track %d %s %.2f",
                ev.camera,
                ev.type,
                ev.track,
                ev.expression,
                ev.confidence,
                extra={
                    "journal": {
                        "CAMERA": ev.camera,
                        "EXPRESSION": ev.expression,
                        "TRACK": ev.track,
                        "EVENT_ID": ev.id,
                        "EVENT_TYPE": ev.type,
                    }
                },
            )
            try:
                self._events.put_nowait(("event", ev))
            except queue.Full:
                self.events_dropped += 1
        try:
            self._events.put_nowait(("state", (camera, state)))
        except queue.Full:
            pass

    def _emit_loop(self) -> None:
        while True:
            item = self._events.get()
            if item is None:
                return
            kind, payload = item
            for sink in self.sinks:
                try:
                    if kind == "event":
                        sink.emit(payload)
                    elif hasattr(sink, "publish_state"):
                        sink.publish_state(*payload)
                except Exception:  # noqa: BLE001 - one sink failing must not stop the others
                    log.exception("sink %s failed", type(sink).__name__)
            if kind == "event":
                self.events_emitted += 1

    # --- status -----------------------------------------------------------------------------------
    def stats(self) -> dict:
        out = {
            "device_id": self.cfg.device_id,
            "version": __version__,
            "uptime_s": round(time.monotonic() - self.started_mono, 1),
            "events": {"emitted": self.events_emitted, "dropped": self.events_dropped},
        }
        if self.runtime is not None:
            out.update(self.runtime.stats())
            out["inference"]["execution_devices"] = self.runtime.execution_devices()
        return out

    def publish_stats(self) -> None:
        stats = self.stats()
        for sink in self.sinks:
            if hasattr(sink, "publish_stats"):
                try:
                    sink.publish_stats(stats)
                except Exception:  # noqa: BLE001
                    log.exception("publishing stats failed")
        self.notifier.status(self.status_line(stats))

    def status_line(self, stats: dict | None = None) -> str:
        rt = self.runtime
        if rt is None:
            return "starting"
        stats = stats or self.stats()
        fps = ", ".join(f"{name} {c.get('fps', 0):.1f} fps" for name, c in stats.get("cameras", {}).items())
        broker = ""
        for sink in self.sinks:
            if hasattr(sink, "connected"):
                broker = "; broker " + ("connected" if sink.connected else "disconnected")
        return f"{','.join(rt.execution_devices())} {self.cfg.inference.precision}; {fps}{broker}"


def _load_and_check(path: str) -> Config:
    cfg = load_config(path)
    check_model_files(cfg)
    check_camera_sources(cfg)
    return cfg
