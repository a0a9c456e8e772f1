"""A real mosquitto for tests: generated config on a free loopback port, stop/restart on the
same port, optional password file, ACL, TLS (certificates generated with the openssl CLI) and
persistence; plus ``Collector``, a plain paho subscriber that records what the broker delivers.

Used by tests/integration and benchmarks/mqtt_throughput.py. Nothing here is faked: the broker
is /usr/sbin/mosquitto, the subscriber is paho talking TCP on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from expressiond.events import ExpressionEvent

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
HOST = "127.0.0.1"
LABELS = ["neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"]


def mosquitto_available() -> bool:
    return os.access(MOSQUITTO, os.X_OK)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Certs:
    """Files made by ``make_certs``: one CA that signed the server and client certificates, a
    second unrelated CA (the "wrong CA"), and a server certificate for another host name."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path
    wrong_name_cert: Path
    wrong_name_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _make_ca(d: Path, name: str) -> tuple[Path, Path]:
    key, crt = d / f"{name}.key", d / f"{name}.crt"
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(crt),
        "-days",
        "3",
        "-subj",
        f"/CN=expressiond test {name}",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )
    return crt, key


def _make_leaf(d: Path, name: str, ca: tuple[Path, Path], san: str, usage: str) -> tuple[Path, Path]:
    key, csr, crt, ext = (d / f"{name}.{s}" for s in ("key", "csr", "crt", "ext"))
    ext.write_text(
        f"subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\n"
        f"keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage={usage}\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
    )
    _openssl(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(csr),
        "-subj",
        f"/CN={name}",
        cwd=d,
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca[0]),
        "-CAkey",
        str(ca[1]),
        "-CAcreateserial",
        "-out",
        str(crt),
        "-days",
        "3",
        "-extfile",
        str(ext),
        cwd=d,
    )
    return crt, key


def make_certs(d: Path) -> Certs:
    d.mkdir(parents=True, exist_ok=True)
    ca = _make_ca(d, "ca")
    other = _make_ca(d, "other-ca")
    server = _make_leaf(d, "server", ca, "DNS:localhost,IP:127.0.0.1", "serverAuth")
    wrong = _make_leaf(d, "wrong-name", ca, "DNS:not-this-host.invalid", "serverAuth")
    client = _make_leaf(d, "client", ca, "DNS:expressiond-client", "clientAuth")
    for p in d.iterdir():
        if p.suffix == ".key":
            p.chmod(0o600)
    return Certs(ca[0], server[0], server[1], client[0], client[1], other[0], wrong[0], wrong[1])


class Broker:
    """One mosquitto process. ``stop()`` then ``start()`` reuses the same port (and the same
    persistence file, so persistent sessions and retained messages survive, as on a real box).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        users: dict[str, str] | None = None,
        acl: str | None = None,
        certs: Certs | None = None,
        server_cert: tuple[Path, Path] | None = None,
        require_client_cert: bool = False,
        persistence: bool = True,
        extra_conf: Iterable[str] = (),
    ):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = HOST
        self.port = port or free_port()
        self.users = dict(users or {})
        self.acl = acl
        self.certs = certs
        self.server_cert = server_cert
        self.require_client_cert = require_client_cert
        self.persistence = persistence
        self.extra_conf = list(extra_conf)
        self.proc: subprocess.Popen[bytes] | None = None
        self.conf_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        self.starts = 0

    def _write_conf(self) -> None:
        lines = [
            "per_listener_settings false",
            "user root",
            f"listener {self.port} {self.host}",
            f"log_dest file {self.log_path}",
            "log_type all",
            "connection_messages true",
            "max_queued_messages 1000000",
            "max_inflight_messages 20",
        ]
        if self.persistence:
            lines += ["persistence true", f"persistence_location {self.workdir}/", "autosave_interval 1"]
        if self.users:
            pw = self.workdir / "passwd"
            pw.unlink(missing_ok=True)
            for user, password in self.users.items():
                flags = ["-b"] + (["-c"] if not pw.exists() else [])
                subprocess.run(
                    [MOSQUITTO_PASSWD, *flags, str(pw), user, password],
                    check=True,
                    capture_output=True,
                    timeout=30,
                )
            pw.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {pw}"]
        else:
            lines.append("allow_anonymous true")
        if self.acl is not None:
            acl_path = self.workdir / "acl"
            acl_path.write_text(self.acl)
            acl_path.chmod(0o600)
            lines.append(f"acl_file {acl_path}")
        if self.certs is not None:
            crt, key = self.server_cert or (self.certs.server_cert, self.certs.server_key)
            lines += [f"cafile {self.certs.ca}", f"certfile {crt}", f"keyfile {key}"]
            if self.require_client_cert:
                lines.append("require_certificate true")
        lines += self.extra_conf
        self.conf_path.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 15.0) -> Broker:
        assert self.proc is None, "broker already running"
        self._write_conf()
        with open(self.workdir / "stderr.log", "ab") as err:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf_path)], stdout=err, stderr=err)
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited {self.proc.returncode}: {self.log_text()}")
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=1):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout} s")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM: mosquitto saves its persistence file and closes every connection."""
        self._end(signal.SIGTERM, timeout)

    def kill(self) -> None:
        self._end(signal.SIGKILL, 10.0)

    def _end(self, sig: int, timeout: float) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    t: float


class Collector:
    """A paho subscriber (MQTT 3.1.1) recording every delivery in arrival order.

    ``persistent=True`` uses a fixed client id with clean_session=False, so a broker with
    persistence queues QoS 1 messages for it while it is disconnected (broker restarts)."""

    def __init__(
        self,
        broker: Broker,
        topics: Iterable[str],
        *,
        client_id: str | None = None,
        persistent: bool = False,
        username: str | None = None,
        password: str | None = None,
    ):
        self.topics = list(topics)
        self.messages: list[Received] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        cid = client_id or f"collector-{os.getpid()}-{id(self):x}"
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=cid, clean_session=not persistent, protocol=mqtt.MQTTv311
        )
        if username:
            self.client.username_pw_set(username, password)
        if broker.certs is not None:
            c = broker.certs
            mine = broker.require_client_cert
            self.client.tls_set(
                ca_certs=str(c.ca),
                cert_reqs=ssl.CERT_REQUIRED,
                certfile=str(c.client_cert) if mine else None,
                keyfile=str(c.client_key) if mine else None,
            )
            if broker.server_cert is not None:  # e.g. the wrong-name certificate
                self.client.tls_insecure_set(True)
        self.client.reconnect_delay_set(1, 2)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.broker = broker

    def _on_connect(self, client, userdata, flags, rc, props) -> None:
        if not rc.is_failure:
            client.subscribe([(t, 1) for t in self.topics])

    def _on_message(self, client, userdata, msg) -> None:
        with self._cond:
            self.messages.append(Received(msg.topic, bytes(msg.payload), bool(msg.retain), time.monotonic()))
            self._cond.notify_all()

    def start(self, timeout: float = 10.0) -> Collector:
        self.client.connect(self.broker.host, self.broker.port, keepalive=10)
        self.client.loop_start()
        if not self._subscribed.wait(timeout):
            raise RuntimeError("collector did not get SUBACK")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def snapshot(self, topic_filter: Callable[[str], bool] | None = None) -> list[Received]:
        with self._cond:
            msgs = list(self.messages)
        return [m for m in msgs if topic_filter is None or topic_filter(m.topic)]

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float) -> bool:
        """Wait until predicate(all messages so far) is true; bounded by timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.5))
            return True


# -- helpers shared by the tests and the benchmark ------------------------------------------
def mqtt_config(broker: Broker, spool_path: Path | str, **overrides) -> SimpleNamespace:
    """An object with the MqttConfig attributes of interfaces.md (the publisher duck-types)."""
    cfg = dict(
        host=broker.host,
        port=broker.port,
        prefix="expressiond",
        client_id=None,
        username=None,
        password_file=None,
        keepalive=10,
        qos=1,
        spool_path=str(spool_path),
        spool_max_events=100000,
        stats_interval=30.0,
        ha_discovery=True,
        ha_prefix="homeassistant",
        reconnect_max_s=1.0,
        tls=None,
    )
    cfg.update(overrides)
    return SimpleNamespace(**cfg)


def make_event(i: int, camera: str = "door", device_id: str = "dev1") -> ExpressionEvent:
    label = LABELS[i % len(LABELS)]
    scores = {lab: (0.7 if lab == label else 0.05) for lab in LABELS}
    return ExpressionEvent(
        device_id=device_id,
        camera=camera,
        frame=i,
        track=1 + i % 3,
        type="start" if i % 5 == 0 else "change",
        expression=label,
        confidence=0.7,
        scores=scores,
        previous=None if i % 5 == 0 else LABELS[(i - 1) % len(LABELS)],
        box=(0.1, 0.2, 0.3, 0.4),
        timestamp=time.time(),
    )


def event_payloads(collector: Collector) -> list[dict]:
    return [json.loads(m.payload) for m in collector.snapshot(lambda t: t.endswith("/event"))]


def wait_until(predicate, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


def proc_env() -> dict[str, str]:
    """Environment for publisher_proc.py: expressiond importable as in this test process."""
    import expressiond

    pkg_parent = str(Path(expressiond.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_parent, env.get("PYTHONPATH")) if p)
    return env
