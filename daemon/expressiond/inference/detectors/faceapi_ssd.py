"""face-api's SSD MobileNetV1 ("boxes" [1, N, 4] and "scores" [1, N]), decoded exactly as
face-api does (inference/faceapi.py).

Thread: see detectors/__init__.py.
"""

from __future__ import annotations

import numpy as np

from expressiond.errors import ModelError
from expressiond.inference import faceapi
from expressiond.inference.outputs import dims, find_output


class FaceApiSsd:
    output_kind = "faceapi_ssd"

    def __init__(self, model, meta, where: str):
        idx = [find_output(model, name, where, name) for name in ("boxes", "scores")]
        boxes, scores = (dims(model.outputs[i]) for i in idx)
        if len(boxes) != 3 or boxes[-1] != 4 or len(scores) != 2:
            raise ModelError(
                f"{where}: output_kind faceapi_ssd needs boxes [1, N, 4] and "
                f"scores [1, N]; the model has {boxes} and {scores}"
            )
        self.output_indices = tuple(idx)
        self.input_size = int(meta.postprocess.get("input_size", 512))
        self.pad = "bottom-right" if meta.input.embedded else "none"

    def decode(
        self,
        outputs: tuple[np.ndarray, ...],
        width: int,
        height: int,
        score_threshold: float,
        nms_iou: float,
        max_results: int,
    ) -> list[tuple[float, tuple, tuple]]:
        return faceapi.decode_detections(
            outputs[0][0],
            outputs[1][0],
            width,
            height,
            self.input_size,
            score_threshold,
            nms_iou,
            max_results,
        )
