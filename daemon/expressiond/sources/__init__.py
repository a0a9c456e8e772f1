"""Camera sources: what a source is (base.py: the ``Source`` protocol), one module per kind
(device.py, stream.py, video_file.py, folder.py), the stream decoders (decode/), the registry
that maps a ``source`` string to its kind (registry.py), and the camera thread (capture.py:
``CameraCapture``, its reads watched for stalls) with its latest-frame slot (slot.py).

This package's top level imports neither OpenCV nor numpy: the config asks the registry about
kinds without loading them. Import capture.py for the camera thread.

Thread: see each module; sources run in their camera's "capture-<name>" thread.
"""

from expressiond.sources.base import BaseSource, Read, Source, SourceOptions, SourceUnavailable, redact
from expressiond.sources.registry import (
    SOURCE_KINDS,
    is_live,
    kind_of,
    make_source,
    probe,
    source_class,
    spec_problem,
)

__all__ = [
    "SOURCE_KINDS",
    "BaseSource",
    "Read",
    "Source",
    "SourceOptions",
    "SourceUnavailable",
    "is_live",
    "kind_of",
    "make_source",
    "probe",
    "redact",
    "source_class",
    "spec_problem",
]
