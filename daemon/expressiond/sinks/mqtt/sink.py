"""The MQTT publisher as a sink of a run: built when the config has an [mqtt] table and the
command line did not say ``--no-mqtt``; its status and health are the broker link and the
spool (spooling: the spool stores new events, see Spool.storing). Adds what only a daemon
run needs: what the spool kept from the previous run (``recover``) and the cameras'
snapshots (retained, in memory only: never in the spool).

Thread: as publisher.py.
"""

from __future__ import annotations

from expressiond.sinks.base import Leftover, SinkHealth, SinkOptions
from expressiond.sinks.mqtt.publisher import Publisher
from expressiond.sinks.mqtt.tracks import leftover


class MqttSink(Publisher):
    @classmethod
    def build(cls, cfg, options: SinkOptions) -> MqttSink | None:
        if not options.mqtt or cfg.mqtt is None:
            return None
        cameras = [c.name for c in cfg.cameras]
        snapshots = [c.name for c in cfg.cameras if c.snapshot != "off"]
        return cls(
            cfg.mqtt, cfg.device_id, cameras, list(options.labels), options.version, snapshots=snapshots
        )

    def recover(self) -> Leftover:
        """The open tracks and the highest track id the spool kept from earlier runs."""
        return leftover(self._spool)

    def publish_snapshot(self, camera: str, jpeg: bytes) -> None:
        """Retained latest snapshot of a camera; ``b""`` removes the broker's retained copy."""
        self._latest.put(self.topics.snapshot(camera), jpeg)

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
