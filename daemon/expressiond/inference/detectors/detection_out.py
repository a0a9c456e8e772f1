"""A DetectionOutput [1, 1, N, 7] of (image_id, label, conf, x_min, y_min, x_max, y_max) in 0..1
of the input: Open Model Zoo face-detection-retail-0004/0005, -adas-0001 and most SSDs.

Thread: see detectors/__init__.py.
"""

from __future__ import annotations

import numpy as np

from expressiond.errors import ModelError
from expressiond.inference import faceapi
from expressiond.inference.outputs import dims, find_output
from expressiond.inference.ovcompat import port_name


class DetectionOut:
    output_kind = "ssd_detection_out"
    pad = "none"

    def __init__(self, model, meta, where: str):
        i = find_output(model, meta.output, where, "detection output")
        shape = dims(model.outputs[i])
        if len(shape) != 4 or shape[-1] != 7:
            name = port_name(model.outputs[i], f"output {i}")
            raise ModelError(
                f"{where}: output_kind ssd_detection_out needs a [1, 1, N, 7] output but "
                f"{name} is {shape or 'of dynamic rank'}; fix output_kind in the metadata"
            )
        self.output_indices = (i,)
        self.class_id = meta.postprocess.get("class_id")

    def decode(
        self,
        outputs: tuple[np.ndarray, ...],
        width: int,
        height: int,
        score_threshold: float,
        nms_iou: float,
        max_results: int,
    ) -> list[tuple[float, tuple, tuple]]:
        return decode_detection_out(
            outputs[0], width, height, score_threshold, nms_iou, max_results, self.class_id
        )


def decode_detection_out(
    out: np.ndarray,
    width: int,
    height: int,
    score_threshold: float,
    nms_iou: float,
    max_results: int,
    class_id=None,
):
    """[1, 1, N, 7] DetectionOutput rows -> faces, best first, after a greedy NMS."""
    rows = np.asarray(out, dtype=np.float32).reshape(-1, 7)
    end = np.nonzero(rows[:, 0] < 0)[0]  # image_id -1 ends the list
    rows = rows[: end[0]] if len(end) else rows
    if class_id is not None:
        rows = rows[rows[:, 1] == class_id]
    box = np.clip(rows[:, 3:7], 0.0, 1.0)
    keep = (box[:, 2] > box[:, 0]) & (box[:, 3] > box[:, 1])
    rows, box = rows[keep], box[keep]
    tlbr = box[:, [1, 0, 3, 2]]
    order = faceapi.nms_faceapi(tlbr, rows[:, 2], max_results, nms_iou, score_threshold)
    faces = []
    for i in order:
        x0, y0, x1, y1 = (float(v) for v in box[i])
        rel = (x0, y0, x1 - x0, y1 - y0)
        faces.append(
            (float(rows[i, 2]), rel, (rel[0] * width, rel[1] * height, rel[2] * width, rel[3] * height))
        )
    return faces
