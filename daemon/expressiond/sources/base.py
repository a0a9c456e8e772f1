"""What a camera source is: the ``Source`` protocol every kind implements, the ``Read`` it
returns, and ``redact`` for anything that shows a source to a person.

A kind is one class in its own module (device.py, stream.py, video_file.py, folder.py) listed
once in registry.py. ``BaseSource`` gives a new kind the class-level facts the registry and
the config need (kind, live, URL schemes, which specs it claims, static problems).

Thread: a source object is used by one thread only, its camera's "capture-<name>" thread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable


class SourceUnavailable(Exception):
    """A source cannot be opened now; the message is for the operator."""


@dataclass
class Read:
    """One read: status ok (image set), bad (this frame is unusable: detail says why), end (a
    file or folder is through) or fail (a live source broke: reconnect)."""

    status: str
    image: Any = None
    detail: str = ""


@runtime_checkable
class Source(Protocol):
    """A frame source. ``open`` raises SourceUnavailable (the capture retries with backoff),
    ``read`` never raises for a bad frame, ``close`` is idempotent. ``live`` sources (cameras,
    streams) set their own pace; the others are paced or read losslessly by the capture."""

    kind: ClassVar[str]
    live: ClassVar[bool]

    def open(self) -> None: ...

    def read(self) -> Read: ...

    def close(self) -> None: ...


class BaseSource:
    """Class-level facts of a kind, with the defaults of a local, non-live source."""

    kind: ClassVar[str] = ""
    live: ClassVar[bool] = False
    schemes: ClassVar[tuple[str, ...]] = ()  # URL schemes this kind opens ("rtsp", ...)

    def __init__(self, spec: str, width: int | None = None, height: int | None = None):
        self.spec, self.width, self.height = spec, width, height

    @classmethod
    def claims(cls, spec: str, *, look: bool = True) -> bool:
        """Whether ``spec`` is a source of this kind. ``look=False``: decide from the text
        alone (config parsing never touches the disk)."""
        return bool(cls.schemes) and url_scheme(spec) in cls.schemes

    @classmethod
    def problem(cls, spec: str) -> str | None:
        """What is wrong with ``spec`` as written (for the config), without opening it."""
        return None


def url_scheme(spec: str) -> str:
    """The lower-case scheme of "scheme://...", else ""."""
    text = spec.strip()
    return text.split("://", 1)[0].lower() if "://" in text else ""


def looks_like_folder(spec: str, look: bool) -> bool:
    return spec.endswith(("/", os.sep)) or (look and os.path.isdir(spec.strip()))


def redact(spec: str) -> str:
    """Hide the credentials of a URL before it reaches a log line, JSON or a stats payload:
    rtsp://user:secret@host/x -> rtsp://user:***@host/x; a user part without a password may be
    a token, so rtsp://token@host/x -> rtsp://***@host/x. Anything else is returned as is."""
    if "://" not in spec:
        return spec
    scheme, rest = spec.split("://", 1)
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    netloc, tail = rest[:end], rest[end:]
    if "@" not in netloc:
        return spec
    userinfo, host = netloc.rsplit("@", 1)
    user, colon, _password = userinfo.partition(":")
    shown = f"{user}:***" if colon and user else "***"
    return f"{scheme}://{shown}@{host}{tail}"
