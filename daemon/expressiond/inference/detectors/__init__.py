"""Detector kinds: how a face detector's outputs become faces, one module per ``output_kind`` of
the model metadata (faceapi_ssd.py, detection_out.py), listed once in ``DETECTOR_KINDS``. The
metadata check (metadata.py) and the detector adapter (adapters.py) both read this registry,
so a new kind is one module plus one line here.

A kind is a class built with (model, meta, where) that checks the model's outputs against
what it reads (a ModelError naming the fix otherwise) and sets ``output_indices`` (the outputs
the adapter copies after a request) and ``pad`` (how a static input keeps the geometry of an
embedded padding); ``decode(outputs, width, height, score_threshold, nms_iou, max_results)``
returns [(score, relative box, pixel box)], best first.

Thread: built in the main thread at compile; ``decode`` runs in the "inference-coordinator"
thread or the caller's (analyzer).
"""

from __future__ import annotations

from expressiond.inference.detectors.detection_out import DetectionOut
from expressiond.inference.detectors.faceapi_ssd import FaceApiSsd

DETECTOR_KINDS: dict[str, type] = {cls.output_kind: cls for cls in (FaceApiSsd, DetectionOut)}


def detector_kind(output_kind: str) -> type:
    """The class of a detector ``output_kind`` (metadata.py has refused unknown kinds)."""
    return DETECTOR_KINDS[output_kind]
