"""Asynchronous detect -> crop -> classify with AsyncInferQueue, results in frame order.

Threads: the caller's thread submits frames (``submit`` blocks while every detector request is
busy, which is the back-pressure that makes the capture slots drop old frames); OpenVINO's
threads run the callbacks, which only copy the outputs and put them on one queue; one
coordinator thread ("inference-coordinator") does the Python work: NMS, crops, classifier
submission (per classifier member, each its own queue: one request with every face of the frame
when the member's input is batched (engine.compile_net batch=True), else one per face), combining
a face's member scores when all are back (ClassifierSet.combine), collecting the faces of each
frame and releasing FrameResults per camera in submission order.

Thread: ``submit`` in the caller's thread (the runtime's "frames" feeder); OpenVINO's callback
threads only put on ``_done``; "inference-coordinator" does the rest. Pending frames and
in-flight counts are under ``_lock``, the counters in a Counters (read by stats).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from expressiond.counters import Counters, Histogram
from expressiond.events import Face, Frame, FrameResult
from expressiond.inference.classifiers import ClassifierSet
from expressiond.inference.engine import CompiledNet
from expressiond.inference.ovcompat import AsyncInferQueue

log = logging.getLogger(__name__)
ROOM_POLL_S = 0.5  # submit() re-checks for an inference failure this often while it waits


@dataclass(frozen=True)
class DetectorParams:
    input_size: int = 512  # unused: the detector's adapter knows its own input size
    score_threshold: float = 0.5
    nms_iou: float = 0.5
    max_faces: int = 20
    min_face_px: int = 0


@dataclass
class _Pending:
    frame: Frame
    seq: int
    faces: list = field(default_factory=list)  # [(score, box, member crops)] after NMS
    scores: dict = field(default_factory=dict)  # face index -> combined scores
    parts: dict = field(default_factory=dict)  # face index -> {member index: outputs}
    submitted_mono: float = 0.0


class AsyncPipeline:
    def __init__(
        self,
        detector: CompiledNet,
        classifier: ClassifierSet,
        num_requests: int,
        params: DetectorParams,
        on_result: Callable[[FrameResult], None],
        classifier_requests: int | None = None,
    ):
        self._det = detector
        self._cls = classifier
        self._det_adapter = detector.adapter
        self._cls_adapters = tuple(net.adapter for net in classifier.nets)
        self.labels = classifier.labels
        self.params = params
        self._on_result = on_result
        self.num_requests = max(1, int(num_requests))
        cls_requests = max(1, classifier_requests or self.num_requests)
        # Frames between submit() and on_result: two per detector and classifier request (one
        # running, one waiting, so the next frames' detection overlaps classification and the
        # in-order release). More would wait in memory (a whole image each) for a slower
        # classifier or consumer: unbounded, a 1-request classifier grew the daemon ~40 MiB/s.
        # Measured, one process with 4 cameras (fps, 3 rounds): 4 in flight 107/117/101,
        # 8 in flight 119/121/106, unbounded 118/112/106.
        self.max_in_flight = 2 * (self.num_requests + cls_requests)
        self._det_queue = AsyncInferQueue(detector.compiled, self.num_requests)
        self._cls_queues = tuple(AsyncInferQueue(net.compiled, cls_requests) for net in classifier.nets)
        self._det_queue.set_callback(self._det_done)
        for q in self._cls_queues:
            q.set_callback(self._cls_done)
        self._done: queue.SimpleQueue = queue.SimpleQueue()  # bounded by requests in flight
        self._pending: dict[int, _Pending] = {}
        self._next_id = 0
        self._seq: dict[str, int] = {}  # camera -> next submission number
        self._release: dict[str, int] = {}  # camera -> next number to hand out
        self._ready: dict[str, dict[int, FrameResult]] = {}
        self._skipped: dict[str, set[int]] = {}  # camera -> numbers whose inference never started
        self._lock = threading.Lock()
        self._in_flight = 0
        self._idle = threading.Condition(self._lock)
        self.counts = Counters("errors", "frames_done", "faces_done")
        # each request's inference time as OpenVINO measures it (InferRequest.latency), per role
        self.latency = {"detector": Histogram(), "classifier": Histogram()}
        self._det_latency, self._cls_latency = self.latency["detector"], self.latency["classifier"]
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._coordinate, name="inference-coordinator", daemon=True)
        self._thread.start()

    # --- callbacks: OpenVINO threads, GIL held: copy and hand over, nothing else ----------------
    def _det_done(self, request, frame_id) -> None:
        self._done.put(("det", frame_id, self._det_adapter.fetch(request)))
        self._det_latency.observe(request.latency / 1000.0)

    def _cls_done(self, request, key) -> None:  # key: (frame id, face index or None, member)
        self._done.put(("cls", key, self._cls_adapters[key[2]].fetch(request)))
        self._cls_latency.observe(request.latency / 1000.0)

    # --- producer side --------------------------------------------------------------------------
    def submit(self, frame: Frame) -> None:
        """Start detection on a frame. Blocks while max_in_flight frames are in the pipeline
        (the caller's latest-frame slot then drops stale frames) and while all detector
        requests are busy."""
        self._wait_for_room()
        with self._lock:
            frame_id = self._next_id
            self._next_id += 1
            seq = self._seq.get(frame.camera, 0)
            self._seq[frame.camera] = seq + 1
            self._release.setdefault(frame.camera, 0)
            self._ready.setdefault(frame.camera, {})
            self._pending[frame_id] = _Pending(frame, seq, submitted_mono=time.monotonic())
            self._in_flight += 1
        try:
            self._det_queue.start_async({0: self._det_adapter.prepare(frame.image)}, frame_id)
        except BaseException:
            # Never started: forget the frame and tell the coordinator to release the camera's
            # later frames past its number (they would otherwise wait for it for ever).
            with self._idle:
                self._pending.pop(frame_id, None)
                self._in_flight -= 1
                self._idle.notify_all()
            self._done.put(("skip", frame.camera, seq))
            raise

    def _wait_for_room(self) -> None:
        with self._idle:
            while self._failure is None and self._in_flight >= self.max_in_flight:
                self._idle.wait(ROOM_POLL_S)  # woken by _finish; the poll sees a failure
        if self._failure is not None:
            raise RuntimeError(f"inference failed: {self._failure}") from self._failure

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every submitted frame has been handed to on_result."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._in_flight > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self, timeout: float = 10.0) -> bool:
        drained = self.drain(timeout)
        self._done.put(("stop", None, None))
        self._thread.join(timeout)
        if drained:
            # Destroy the queues now, while the interpreter is whole: they hold our bound-method
            # callbacks (a cycle), and an AsyncInferQueue left to interpreter shutdown can abort
            # the process ("terminate called without an active exception", exit 134).
            self._det_queue.wait_all()
            for q in self._cls_queues:
                q.wait_all()
            del self._det_queue, self._cls_queues
        return drained and not self._thread.is_alive()

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    @property
    def errors(self) -> int:
        return self.counts["errors"]

    @property
    def frames_done(self) -> int:
        return self.counts["frames_done"]

    @property
    def faces_done(self) -> int:
        return self.counts["faces_done"]

    # --- coordinator ----------------------------------------------------------------------------
    def _coordinate(self) -> None:
        while True:
            kind, key, outputs = self._done.get()
            if kind == "stop":
                return
            if kind == "skip":
                self._skipped.setdefault(key, set()).add(outputs)
                self._release_ready(key)
                continue
            try:
                if kind == "det":
                    self._on_detection(key, outputs)
                else:
                    self._on_classification(key, outputs)
            except Exception as exc:  # noqa: BLE001 - a failed frame must not hang the pipeline
                self.counts.add("errors")
                self._failure = exc
                log.exception("inference post-processing failed")
                frame_id = key if kind == "det" else key[0]
                pending = self._pending.get(frame_id)
                if pending is not None:
                    self._finish(frame_id, pending)

    def _on_detection(self, frame_id: int, outputs: tuple[np.ndarray, ...]) -> None:
        p = self.params
        pending = self._pending[frame_id]
        image = pending.frame.image
        dets = self._det_adapter.detect(
            outputs, image.shape[1], image.shape[0], p.score_threshold, p.nms_iou, p.max_faces
        )
        for score, _rel, box in dets:
            if min(box[2], box[3]) < p.min_face_px:
                continue
            crops = self._cls.crops(image, box)
            if crops is not None:
                pending.faces.append((score, box, crops))
        if not pending.faces:
            self._finish(frame_id, pending)
            return
        for k, (queue_k, adapter) in enumerate(zip(self._cls_queues, self._cls_adapters, strict=True)):
            if adapter.batched:  # every face of the frame in one request (rows in face order)
                batch = adapter.prepare_batch([crops[k] for _s, _b, crops in pending.faces])
                queue_k.start_async({0: batch}, (frame_id, None, k))
                continue
            for idx, (_s, _b, crops) in enumerate(pending.faces):
                queue_k.start_async({0: adapter.prepare(crops[k])}, (frame_id, idx, k))

    def _on_classification(self, key, outputs: tuple[np.ndarray, ...]) -> None:
        frame_id, idx, k = key
        pending = self._pending.get(frame_id)
        if pending is None:  # a member's late result for a frame already failed and finished
            return
        if idx is None:  # a batched request: one row per face
            rows = range(len(pending.faces))
            done = [self._member_part(pending, i, k, tuple(o[i : i + 1] for o in outputs)) for i in rows]
        else:
            done = [self._member_part(pending, idx, k, outputs)]
        if any(done) and len(pending.scores) == len(pending.faces):
            self._finish(frame_id, pending)

    def _member_part(self, pending: _Pending, idx: int, k: int, outputs) -> bool:
        """Store member k's outputs for face idx; combine when every member's are in."""
        parts = pending.parts.setdefault(idx, {})
        parts[k] = outputs
        if len(parts) < len(self._cls_queues):
            return False
        del pending.parts[idx]
        pending.scores[idx] = self._cls.combine([parts[i] for i in range(len(parts))])
        return True

    def _finish(self, frame_id: int, pending: _Pending) -> None:
        del self._pending[frame_id]
        frame = pending.frame
        faces = tuple(
            Face(box=box, score=score, scores=pending.scores.get(i, {}))
            for i, (score, box, _crop) in enumerate(pending.faces)
        )
        result = FrameResult(
            frame.camera,
            frame.index,
            frame.captured_mono,
            frame.captured_wall,
            frame.width,
            frame.height,
            faces,
            done_mono=time.monotonic(),
            image=frame.image,
        )
        self._ready[frame.camera][pending.seq] = result
        released = self._release_ready(frame.camera)
        with self._idle:
            self._in_flight -= released
            self._idle.notify_all()

    def _release_ready(self, camera: str) -> int:
        """Hand out the camera's results that are next in submission order; skip numbers whose
        inference never started. Returns how many results were handed out."""
        ready, skipped = self._ready[camera], self._skipped.get(camera, ())
        released = 0
        while True:
            nxt = self._release[camera]
            if nxt in skipped:
                skipped.discard(nxt)
                self._release[camera] += 1
                continue
            if nxt not in ready:
                return released
            out = ready.pop(nxt)
            self._release[camera] += 1
            released += 1
            self.counts.add("frames_done")
            self.counts.add("faces_done", len(out.faces))
            try:
                self._on_result(out)
            except Exception:  # noqa: BLE001 - the consumer's bug must not stop inference
                log.exception("result consumer failed")
