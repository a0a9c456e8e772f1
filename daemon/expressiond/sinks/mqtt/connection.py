"""Building a paho client from [mqtt] config, and saying what went wrong in operator words.

MQTT 5 is used because its PUBACK carries a reason code: a broker that refuses an event
(ACL) says so, where MQTT 3.1.1 acknowledges and silently drops it. Every session starts
clean (``clean_start=True``, expiry 0): the spool, not the broker session, is what keeps
unacknowledged events, and a stale broker session could only replay old in-flight state.

Thread: the caller's: "mqtt-publisher" for the daemon's client, the main thread for
``run --ha-remove``; the message helpers are pure.
"""

from __future__ import annotations

import logging
import random
import socket
import ssl
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from expressiond.errors import ConfigError
from expressiond.sinks.mqtt.credentials import password_source

log = logging.getLogger(__name__)
paho_log = logging.getLogger("expressiond.mqtt.paho")  # never includes the password


def default_client_id(device_id: str) -> str:
    return f"expressiond-{device_id}"


def make_client(mqtt_cfg: Any, client_id: str, password: str | None, will_topic: str | None) -> mqtt.Client:
    """A configured, not yet connected client. Raises ConfigError for unusable TLS files."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.on_log = _paho_log
    client.max_inflight_messages_set(0)  # the publisher keeps its own window
    client.connect_timeout = 10.0
    username = getattr(mqtt_cfg, "username", None)
    if username:
        client.username_pw_set(username, password)
    tls = getattr(mqtt_cfg, "tls", None)
    if username and password and tls is None:
        log.warning(
            "MQTT: the password of user %r goes to %s:%s in plain text (no [mqtt.tls]): anyone "
            "who can see that traffic can read it; add [mqtt.tls] (the broker's TLS port, "
            "usually 8883)",
            username,
            getattr(mqtt_cfg, "host", "?"),
            getattr(mqtt_cfg, "port", "?"),
        )
    if tls is not None:
        client.tls_set_context(tls_context(tls))
        if getattr(tls, "insecure", False):
            client.tls_insecure_set(True)
    if will_topic:
        client.will_set(will_topic, "offline", qos=1, retain=True)
    return client


def _paho_log(client: mqtt.Client, userdata: Any, level: int, buf: str) -> None:
    """paho's own messages go to DEBUG: it would log a socket error at ERROR on every retry;
    the publisher says what matters once, in operator words (see ``last_paho_error``)."""
    if level == mqtt.MQTT_LOG_ERR:
        client.last_paho_error = buf  # type: ignore[attr-defined]
    paho_log.debug("%s", buf)


def last_paho_error(client: mqtt.Client) -> str | None:
    """The last error paho reported (e.g. a TLS alert), consumed by the call."""
    err = getattr(client, "last_paho_error", None)
    client.last_paho_error = None  # type: ignore[attr-defined]
    return err


def tls_context(tls: Any) -> ssl.SSLContext:
    """Verify the broker against ``ca_file`` (or the system CAs) and its host name, unless
    ``insecure``; present ``cert_file``/``key_file`` when given."""
    ca_file = getattr(tls, "ca_file", None)
    cert_file = getattr(tls, "cert_file", None)
    key_file = getattr(tls, "key_file", None)
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load [mqtt.tls] ca_file {ca_file}: {_why(exc)}") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file:
        try:
            ctx.load_cert_chain(cert_file, key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"cannot load [mqtt.tls] cert_file {cert_file} / key_file {key_file}: {_why(exc)}"
            ) from None
    elif key_file:
        raise ConfigError("[mqtt.tls] key_file is set without cert_file: set both or neither")
    if getattr(tls, "insecure", False):
        log.warning(
            "[mqtt.tls] insecure = true: the broker certificate's host name is NOT checked; "
            "anyone holding a certificate from that CA can pose as the broker"
        )
    return ctx


def connect_properties() -> Properties:
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    return props


def _why(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return exc.verify_message or exc.reason or str(exc)
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def connect_problem(exc: BaseException, host: str, port: int) -> str:
    """One line for a failed TCP/TLS connect. Also a dedupe key: same cause, same text."""
    where = f"{host}:{port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"TLS: the MQTT broker at {where} presented a certificate that was rejected "
            f"({_why(exc)}): check that [mqtt.tls] ca_file is the CA that signed the broker "
            "certificate and that [mqtt] host is a name in it"
        )
    if isinstance(exc, ssl.SSLError):
        return (
            f"TLS handshake with the MQTT broker at {where} failed ({_why(exc)}): check that "
            "the port is a TLS listener and that the broker accepts [mqtt.tls] cert_file"
        )
    if isinstance(exc, ConnectionRefusedError):
        return f"cannot connect to the MQTT broker at {where}: connection refused (is it running?)"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the MQTT broker host {host!r}: {_why(exc)}"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"cannot connect to the MQTT broker at {where}: timed out"
    return f"cannot connect to the MQTT broker at {where}: {_why(exc)}"


# CONNACK reason codes (MQTT 5) and their MQTT 3.1.1 equivalents that paho maps onto them.
_NOT_AUTHORIZED = 0x87
_BAD_CREDENTIALS = 0x86
_BAD_CLIENT_ID = 0x85


def connack_problem(reason: ReasonCode, mqtt_cfg: Any, client_id: str) -> str:
    """One line telling the operator what a refused CONNACK means for this config."""
    code = int(reason.value)
    user = getattr(mqtt_cfg, "username", None)
    src = password_source(mqtt_cfg)
    pw_from = src.describe() if src else "no password configured"
    who = f"user {user!r}" if user else "anonymous (no [mqtt] username)"
    if code == _BAD_CREDENTIALS:
        return (
            f"MQTT broker rejected the user name or password ({who}, password from {pw_from}): "
            "fix [mqtt] username or the password"
        )
    if code == _NOT_AUTHORIZED:
        return (
            f"MQTT broker refused the connection: not authorised ({who}, password from "
            f"{pw_from}, client id {client_id!r}): check the user name and password, then "
            "the broker's ACL and client id rules"
        )
    if code == _BAD_CLIENT_ID:
        return (
            f"MQTT broker rejected client id {client_id!r}: set [mqtt] client_id to an id "
            "the broker accepts (unique per device)"
        )
    if code == 0x84:
        return "MQTT broker does not accept MQTT 5: use mosquitto >= 1.6 or another MQTT 5 broker"
    if code == 0x8A:
        return f"MQTT broker has banned this client ({who}, client id {client_id!r})"
    if code in (0x88, 0x89, 0x97, 0x9F):
        return f"MQTT broker is unavailable or busy ({reason}); will retry"
    return f"MQTT broker refused the connection: {reason} (reason code {code:#04x})"


def disconnect_problem(reason: ReasonCode | None, client_id: str) -> str:
    if reason is not None and int(reason.value) == 0x8E:
        return (
            f"MQTT broker closed the connection: another client connected with client id "
            f"{client_id!r}; give every device its own [mqtt] client_id / device_id"
        )
    if reason is not None and reason.is_failure:
        return f"MQTT broker closed the connection: {reason} (reason code {int(reason.value):#04x})"
    return "connection to the MQTT broker lost"


def closed_early_problem(mqtt_cfg: Any, paho_error: str | None) -> str:
    why = f" ({paho_error})" if paho_error else ""
    hint = (
        "; does it require a client certificate ([mqtt.tls] cert_file, key_file)?"
        if getattr(mqtt_cfg, "tls", None) is not None
        else ""
    )
    return (
        f"MQTT broker at {mqtt_cfg.host}:{mqtt_cfg.port} closed the connection before "
        f"accepting it{why}{hint}; retrying"
    )


def puback_problem(reason: ReasonCode, topic: str, is_event: bool, client_id: str, base: str) -> str:
    code = int(reason.value)
    if is_event:
        return (
            f"MQTT broker refused events on {topic}: {reason} (reason code {code:#04x}); "
            f"they are dropped: allow {client_id!r} to publish to {base}/# in the broker ACL"
        )
    return (
        f"MQTT broker refused a message on {topic}: {reason} (reason code {code:#04x}); check the broker ACL"
    )


class Backoff:
    """Capped exponential backoff with jitter: attempt n waits uniform(d/2, d) seconds with
    d = min(cap, base * 2**n). Half of d is kept so retries never collapse to zero; the random
    half spreads a fleet of devices that lost the same broker at the same moment."""

    def __init__(self, cap: float, base: float = 0.5, rng: random.Random | None = None):
        self.cap = max(float(cap), 0.05)
        self.base = min(base, self.cap)
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        d = min(self.cap, self.base * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return self._rng.uniform(d / 2, d)

    def reset(self) -> None:
        self.attempt = 0
