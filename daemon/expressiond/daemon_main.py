"""``expressiond run``: load and check the config, set up logging, signals and sinks, run the
service until SIGTERM/SIGINT (or the end of file inputs), then drain and flush."""

from __future__ import annotations

import logging
import signal
import threading

from .config import check_camera_sources, check_model_files, load_config
from .inference.metadata import load_meta, resolve_model
from .service import Service
from .sinks import StdoutSink
from .systemd import Notifier, setup_logging

log = logging.getLogger(__name__)


def quiet_opencv() -> None:
    """OpenCV prints its own [ WARN ] lines on every failed open; capture.py reports those
    outages itself, once, with the camera name."""
    import cv2

    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except AttributeError:  # builds without the logging module
        pass


def classifier_labels(cfg) -> tuple[str, ...]:
    model = cfg.classifier
    files = resolve_model(model.model, cfg.models_path(), cfg.model_precision(model))
    return load_meta(files, "classifier").labels


def _make_sinks(cfg, stdout: bool, mqtt: bool, labels: list[str]) -> list:
    sinks: list = []
    if stdout:
        sinks.append(StdoutSink())
    if mqtt and cfg.mqtt is not None:
        from . import __version__
        from .mqtt import MqttPublisher

        sinks.append(MqttPublisher(cfg.mqtt, cfg.device_id, [c.name for c in cfg.cameras],
                                   labels, __version__))
    return sinks


def run_daemon(config_path: str, *, stdout: bool = False, mqtt: bool = True,
               max_seconds: float | None = None, ha_remove: bool = False) -> int:
    cfg = load_config(config_path)
    root = logging.getLogger()
    for handler in list(root.handlers):  # the CLI's bootstrap handler; setup_logging replaces it
        root.removeHandler(handler)
    setup_logging(cfg.logging.level, cfg.logging.journal)
    check_model_files(cfg)
    check_camera_sources(cfg)
    quiet_opencv()
    notifier = Notifier()
    if ha_remove:
        from .mqtt import remove_discovery

        return remove_discovery(cfg.mqtt, cfg.device_id, [c.name for c in cfg.cameras])
    sinks = _make_sinks(cfg, stdout, mqtt, list(classifier_labels(cfg)))
    service = Service(cfg, sinks, notifier)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: service.stop_event.set())
        signal.signal(signal.SIGINT, lambda *_: service.stop_event.set())
        signal.signal(signal.SIGHUP, lambda *_: service.reload_event.set())
    try:
        service.start()
        stats_interval = cfg.mqtt.stats_interval if cfg.mqtt else 30.0
        return service.run(max_seconds=max_seconds, stats_interval=stats_interval)
    finally:
        service.stop()
        service.release()
        log.info("stopped")
