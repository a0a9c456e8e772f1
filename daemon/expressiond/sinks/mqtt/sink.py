"""The MQTT publisher as a sink of a run: built when the config has an [mqtt] table and the
command line did not say ``--no-mqtt``; its status and health are the broker link and the
spool (spooling: the spool stores new events, see Spool.storing).

Thread: as publisher.py.
"""

from __future__ import annotations

from expressiond.sinks.base import SinkHealth, SinkOptions
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

    def health(self) -> SinkHealth:
        return SinkHealth(
            name="mqtt",
            connected=self.connected,
            spooling=self._spool.storing,
            spool_depth=self.spool_depth,
            sent=self._out.sent,
            dropped=self.dropped,
        )
