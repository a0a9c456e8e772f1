"""Where the MQTT password comes from: a systemd credential or a private file, never the TOML.

Order: ``$CREDENTIALS_DIRECTORY/mqtt-password`` (systemd ``LoadCredential=mqtt-password:...``
or ``SetCredentialEncrypted=``) wins over ``[mqtt] password_file``. A password file that other
users can read, or that group/others can write, is refused: whoever can read it can publish as
this device, whoever can write it can lock it out. No message here ever contains the password
or any byte of it (decode errors are re-raised without their text).

Thread: the main thread, when a client is built.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from expressiond.errors import ConfigError

CREDENTIAL_NAME = "mqtt-password"


@dataclass(frozen=True)
class PasswordSource:
    path: Path
    kind: str  # "systemd credential" | "password_file"

    def describe(self) -> str:
        if self.kind == "systemd credential":
            return f"systemd credential {CREDENTIAL_NAME} ({self.path})"
        return f"[mqtt] password_file {self.path}"


def password_source(mqtt_cfg: Any) -> PasswordSource | None:
    """The file the password will be read from, or None when no password is configured."""
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if cred_dir:
        cred = Path(cred_dir) / CREDENTIAL_NAME
        if cred.is_file():
            return PasswordSource(cred, "systemd credential")
    password_file = getattr(mqtt_cfg, "password_file", None)
    if password_file:
        return PasswordSource(Path(password_file), "password_file")
    return None


def check_private(path: Path) -> None:
    """Raise ConfigError unless ``path`` is a regular file only its owner (and group) can read
    and only its owner can write."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ConfigError(
            f"mqtt password file {path} does not exist: create it (chmod 600) or fix [mqtt] password_file"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot stat mqtt password file {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"mqtt password file {path} is not a regular file")
    if st.st_mode & stat.S_IROTH:
        raise ConfigError(f"mqtt password file {path} is readable by every user: run chmod 600 {path}")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(f"mqtt password file {path} is writable by group or others: run chmod 600 {path}")


def read_password(mqtt_cfg: Any) -> str | None:
    """The broker password, or None if none is configured. Raises ConfigError (one line)."""
    source = password_source(mqtt_cfg)
    if source is None:
        return None
    if not getattr(mqtt_cfg, "username", None):
        raise ConfigError(
            f"a MQTT password is configured ({source.describe()}) but no user name: set [mqtt] username"
        )
    if source.kind == "password_file":
        # systemd credentials live on a private ramfs owned by the service; no mode check.
        check_private(source.path)
    try:
        data = source.path.read_bytes()
    except PermissionError:
        raise ConfigError(
            f"cannot read mqtt password file {source.path}: permission denied; make it owned "
            f"by the expressiond user and run chmod 600 {source.path}"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read mqtt password file {source.path}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"mqtt password file {source.path} is not UTF-8 text") from None
    password = text.rstrip("\r\n")
    if not password:
        raise ConfigError(f"mqtt password file {source.path} is empty")
    if "\n" in password:
        raise ConfigError(f"mqtt password file {source.path} has more than one line: keep only the password")
    return password
