"""What a camera source is: the ``Source`` protocol every kind implements, the ``Read`` it
returns, and ``redact`` for anything that shows a source to a person.

A kind is one class in its own module (device.py, stream.py, video_file.py, folder.py) listed
once in registry.py. ``BaseSource`` gives a new kind the class-level facts the registry and
the config need (kind, live, URL schemes, which specs it claims, static problems), and the
camera's options (``SourceOptions``: the keys of its [[cameras]] table a source may apply).

Thread: a source object is used by one thread only, its camera's "capture-<name>" thread.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable


class SourceUnavailable(Exception):
    """A source cannot be opened now; the message is for the operator."""


@dataclass
class Read:
    """One read: status ok (image set), skip (a frame the source's own fps cap dropped before
    converting it: proof of life, no image), bad (this frame is unusable: detail says why), end
    (a file or folder is through) or fail (a live source broke, detail says how: reconnect)."""

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


@dataclass(frozen=True)
class SourceOptions:
    """What a source may apply of its camera's table (config.CameraConfig): the name for log
    lines, the fps cap, the size, and the per-kind keys (fourcc: V4L2; decode and
    rtsp_transport: streams). The defaults are the config's."""

    name: str = "camera"
    fps: float = 10.0
    width: int | None = None
    height: int | None = None
    fourcc: str | None = None
    decode: str = "auto"
    rtsp_transport: str = "tcp"

    @classmethod
    def of(cls, camera: Any) -> SourceOptions:
        """From a CameraConfig (or anything with some of its attributes)."""
        names = cls.__dataclass_fields__
        return cls(**{k: getattr(camera, k) for k in names if getattr(camera, k, None) is not None})


class BaseSource:
    """Class-level facts of a kind, with the defaults of a local, non-live source."""

    kind: ClassVar[str] = ""
    live: ClassVar[bool] = False
    schemes: ClassVar[tuple[str, ...]] = ()  # URL schemes this kind opens ("rtsp", ...)
    # The source applies the fps cap and the size itself (and says "skip" for the frames its
    # cap drops, unconverted); the capture then does neither, so nothing is capped twice.
    caps_frames: ClassVar[bool] = False

    def __init__(self, spec: str, options: SourceOptions | None = None):
        self.spec = spec
        self.options = options or SourceOptions()
        self.width, self.height = self.options.width, self.options.height

    def describe(self) -> dict[str, Any]:
        """What the open source applied (a V4L2 format, a decoder), for the log and stats."""
        return {}

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


# scheme://userinfo@ (the userinfo up to the last "@" before the path): in a URL or in any text
_USERINFO_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)([^\s/?#]*)@")


def _hide(match: re.Match) -> str:
    user, colon, _password = match.group(2).partition(":")
    shown = f"{user}:***" if colon and user else "***"
    return f"{match.group(1)}{shown}@"


def redact(spec: str) -> str:
    """Hide the credentials of a URL before it reaches a log line, JSON or a stats payload:
    rtsp://user:secret@host/x -> rtsp://user:***@host/x; a user part without a password may be
    a token, so rtsp://token@host/x -> rtsp://***@host/x. Works on any text (an FFmpeg message
    that quotes the URL); text without such a URL is returned as is."""
    return _USERINFO_RE.sub(_hide, spec) if "://" in spec else spec
