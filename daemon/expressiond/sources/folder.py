"""A folder of images (.jpg, .jpeg, .png, .bmp) read in name order; the listing is refreshed
at every pass. Not live. A truncated or undecodable file is one bad frame, never a crash.

Thread: the camera's "capture-<name>" thread.
"""

from __future__ import annotations

import os

from expressiond.sources.base import BaseSource, Read, SourceOptions, SourceUnavailable, looks_like_folder

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def jpeg_complete(data) -> bool:
    """True when the last scan (SOS) of a JPEG (a u8 array) is followed by an EOI marker.

    Entropy-coded data byte-stuffs 0xFF, so FFDA/FFD9 only occur as real markers; a truncated
    file has no EOI after its last scan (libjpeg would silently pad it with grey).
    """
    raw = data.tobytes()
    sos = raw.rfind(b"\xff\xda")
    return sos >= 0 and raw.find(b"\xff\xd9", sos) >= 0


class FolderSource(BaseSource):
    kind = "folder"
    live = False

    def __init__(self, spec: str, options: SourceOptions | None = None):
        super().__init__(spec, options)
        self.path = spec
        self._files: list[str] = []
        self._pos = 0

    @classmethod
    def claims(cls, spec: str, *, look: bool = True) -> bool:
        return "://" not in spec and looks_like_folder(spec, look)

    def open(self) -> None:
        if not os.path.isdir(self.path):
            raise SourceUnavailable(f"image folder {self.path} does not exist")
        names = sorted(n for n in os.listdir(self.path) if n.lower().endswith(IMAGE_SUFFIXES))
        if not names:
            raise SourceUnavailable(f"image folder {self.path} has no .jpg/.jpeg/.png/.bmp files")
        self._files, self._pos = names, 0

    def read(self) -> Read:
        import cv2
        import numpy as np

        if self._pos >= len(self._files):
            return Read("end")
        name = self._files[self._pos]
        self._pos += 1
        try:
            data = np.fromfile(os.path.join(self.path, name), dtype=np.uint8)
        except OSError as exc:
            return Read("bad", detail=f"{name}: {exc.strerror or exc}")
        if data.size == 0:
            return Read("bad", detail=f"{name}: empty file")
        if name.lower().endswith((".jpg", ".jpeg")) and not jpeg_complete(data):
            return Read("bad", detail=f"{name}: truncated JPEG")
        try:
            image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        except cv2.error as exc:  # e.g. a header claiming more pixels than OpenCV will decode
            why = str(exc).rsplit("error: ", 1)[-1].strip().splitlines()[0][:100]
            return Read("bad", detail=f"{name}: not a decodable image ({why})")
        if image is None:
            return Read("bad", detail=f"{name}: not a decodable image")
        return Read("ok", image, detail=name)

    def close(self) -> None:
        self._files, self._pos = [], 0
