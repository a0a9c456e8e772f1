"""[http]: the metrics and health endpoints' listen address and the rule that keeps them on
loopback unless asked (config/schema.py enforces allow_remote).

Thread: none of its own; instances are immutable and read from any thread.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from expressiond.config.keys import RESTART, boolean, text

LISTEN_RULE = 'HOST:PORT with an IP address or "localhost", e.g. "127.0.0.1:9108" or "[::1]:9108"'


def split_listen(value: str) -> tuple[str, int] | None:
    """ "127.0.0.1:9108" -> ("127.0.0.1", 9108), "[::1]:9108" -> ("::1", 9108); None if malformed."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if ":" not in host:
            return None
    elif ":" in host:
        return None  # an IPv6 address needs its [brackets]
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return None
    return host, int(port)


def is_loopback(host: str) -> bool:
    return host == "localhost" or ipaddress.ip_address(host).is_loopback


@dataclass(frozen=True, kw_only=True)
class HttpConfig:
    """The metrics and health endpoints (/metrics, /healthz, /readyz). They have no
    authentication: a non-loopback ``listen`` needs ``allow_remote = true`` (schema.py)."""

    listen: str = text("127.0.0.1:9108", LISTEN_RULE, ok=split_listen, reload=RESTART)
    allow_remote: bool = boolean(False, reload=RESTART)

    @property
    def address(self) -> tuple[str, int]:
        return split_listen(self.listen)  # type: ignore[return-value]  # checked when read
