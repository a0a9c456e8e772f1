"""The MQTT publisher as a sink of a run: built when the config has an [mqtt] table and the
command line did not say ``--no-mqtt``; its status is the broker link.

Thread: as publisher.py.
"""

from __future__ import annotations

from expressiond.sinks.base import SinkOptions
from expressiond.sinks.mqtt.publisher import Publisher


class MqttSink(Publisher):
    @classmethod
    def build(cls, cfg, options: SinkOptions) -> MqttSink | None:
        if not options.mqtt or cfg.mqtt is None:
            return None
        cameras = [c.name for c in cfg.cameras]
        return cls(cfg.mqtt, cfg.device_id, cameras, list(options.labels), options.version)

    def status(self) -> str | None:
        return "broker " + ("connected" if self.connected else "disconnected")
