"""The MQTT topic names of the contract (DESIGN.md, "MQTT contract"), in one place.

Thread: none; immutable names.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    prefix: str
    device_id: str
    ha_prefix: str = "homeassistant"

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.device_id}"

    @property
    def status(self) -> str:
        """Retained ``online`` / ``offline`` (``offline`` is also the last will)."""
        return f"{self.base}/status"

    @property
    def stats(self) -> str:
        return f"{self.base}/stats"

    def event(self, camera: str) -> str:
        return f"{self.base}/{camera}/event"

    def state(self, camera: str) -> str:
        return f"{self.base}/{camera}/state"

    def snapshot(self, camera: str) -> str:
        """Retained JPEG of the latest start/change (only when the camera's snapshot is on)."""
        return f"{self.base}/{camera}/snapshot"

    @property
    def ha_status(self) -> str:
        """Home Assistant's birth/last-will topic: ``online`` means "send discovery again"."""
        return f"{self.ha_prefix}/status"

    @property
    def ha_config(self) -> str:
        """Device-based discovery: one config message for the whole device."""
        return f"{self.ha_prefix}/device/{self.device_id}/config"
