"""The source kinds, and the one place that tells a camera ``source`` string's kind.

``SOURCE_KINDS`` lists one class per kind; the first whose ``claims`` accepts a spec opens it
(the last, a video file, takes whatever is left). The config (kind, live or not, URL schemes,
what is wrong with a spec), the capture (which class to open) and every log line or payload
that shows a source (``redact``) use these functions, so a new kind is one module plus one
line here.

Thread: none of its own; pure functions over immutable class facts.
"""

from __future__ import annotations

from expressiond.sources.base import BaseSource, SourceOptions, SourceUnavailable, redact, url_scheme
from expressiond.sources.device import DeviceSource
from expressiond.sources.folder import FolderSource
from expressiond.sources.stream import StreamSource
from expressiond.sources.video_file import VideoFileSource

SOURCE_KINDS: tuple[type[BaseSource], ...] = (DeviceSource, StreamSource, FolderSource, VideoFileSource)

__all__ = ["SOURCE_KINDS", "is_live", "kind_of", "make_source", "probe", "redact", "source_class"]


def source_class(spec: str, *, look: bool = True) -> type[BaseSource]:
    """The kind that opens ``spec``; ``look=False`` decides from the text alone (a folder is
    then told from a file only by a trailing slash: both are local and not live)."""
    for cls in SOURCE_KINDS:
        if cls.claims(spec, look=look):
            return cls
    return SOURCE_KINDS[-1]


def kind_of(spec: str, *, look: bool = True) -> str:
    """v4l2, stream, folder or file (the ``kind`` in logs and the stats payload)."""
    return source_class(spec, look=look).kind


def is_live(spec: str) -> bool:
    """A camera or a stream, which sets its own pace (decided without touching the disk)."""
    return source_class(spec, look=False).live


def url_schemes() -> tuple[str, ...]:
    return tuple(s for cls in SOURCE_KINDS for s in cls.schemes)


def spec_problem(spec: str) -> str | None:
    """What is wrong with ``spec`` as written (an unknown URL scheme, a URL without host),
    for the config; nothing is opened."""
    scheme = url_scheme(spec)
    if "://" in spec and scheme not in url_schemes():
        schemes = ", ".join(f"{s}://" for s in url_schemes())
        return f'URL scheme "{scheme}://" is not supported; use {schemes}'
    return source_class(spec, look=False).problem(spec)


def make_source(spec: str, options: SourceOptions | None = None) -> BaseSource:
    """The source object for ``spec``; ``options`` from its camera (SourceOptions.of)."""
    return source_class(spec)(spec, options)


def probe(spec: str) -> str | None:
    """Why a file or folder source cannot be opened now, else None. Live sources are not
    probed: a camera or a stream may well be absent at check time."""
    source = make_source(spec)
    if source.live:
        return None
    try:
        source.open()
    except SourceUnavailable as exc:
        return str(exc)
    source.close()
    return None
