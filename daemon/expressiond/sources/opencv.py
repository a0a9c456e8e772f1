"""What the kinds that cv2.VideoCapture opens share: read one frame, release on close.

A subclass says only how to open its capture (``_capture``: the opened VideoCapture and a hint
for the operator when it does not open). cv2 is imported when a source opens, so that the
config, which asks the registry about kinds, does not load OpenCV.

Thread: the camera's "capture-<name>" thread.
"""

from __future__ import annotations

from typing import Any

from expressiond.sources.base import BaseSource, Read, SourceOptions, SourceUnavailable, redact


class OpenCvSource(BaseSource):
    def __init__(self, spec: str, options: SourceOptions | None = None):
        super().__init__(spec, options)
        self._cap: Any = None

    def _capture(self, spec: str) -> tuple[Any, str]:
        """An opened (or not) cv2.VideoCapture and what to check if it did not open."""
        raise NotImplementedError

    def open(self) -> None:
        spec = self.spec.strip()
        cap, hint = self._capture(spec)
        if not cap.isOpened():
            cap.release()
            raise SourceUnavailable(f"cannot open {self.kind} source {redact(spec)} ({hint})")
        self._cap = cap

    def read(self) -> Read:
        if self._cap is None:
            return Read("fail")
        ok, image = self._cap.read()
        if not ok:
            return Read("fail" if self.live else "end")
        return Read("ok", image)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
