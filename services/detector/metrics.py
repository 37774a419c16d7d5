"""Prometheus metrics of the detector (registered once on the default registry): a sink for the
counts the library reports (``faceswap.face.events``), added when this module is imported."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from faceswap.face import events

FRAMES = Counter("faceswap_detector_frames_total", "Frames processed by the detector", ["status"])
FACES = Counter("faceswap_detector_faces_total", "Faces kept (detected, aligned, not filtered)")
FACES_REJECTED = Counter("faceswap_detector_faces_rejected_total", "Faces dropped by a filter", ["filter"])
FRAMES_WITHOUT_FACE = Counter(
    "faceswap_detector_frames_without_face_total", "Frames where no face was kept (no_face or filtered)"
)
FRAMES_PER_SECOND = Gauge("faceswap_detector_frames_per_second", "Throughput of the last detection run")
DETECT_LATENCY = Histogram(
    "faceswap_detector_detect_seconds",
    "Face detector latency per detected frame (tracked frames skip the detector)",
    ["detector"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
FACES_RECOVERED = Counter(
    "faceswap_detector_faces_recovered_total",
    "Faces of video frames the detector missed, filled from the neighbouring frames",
    ["source"],
)


class PrometheusSink:
    def frame(self, result: Any, detector: str) -> None:
        record = result.record
        FRAMES.labels(record.status).inc()
        FACES.inc(len(record.faces))
        if record.status in ("no_face", "filtered"):
            FRAMES_WITHOUT_FACE.inc()
        for face in record.rejected:
            FACES_REJECTED.labels(face.reason.split(" ")[0].rstrip(":")).inc()
        if result.detected:
            DETECT_LATENCY.labels(detector).observe(result.detect_seconds)

    def run(self, frames_per_second: float) -> None:
        FRAMES_PER_SECOND.set(frames_per_second)

    def recovered(self, source: str) -> None:
        FACES_RECOVERED.labels(source).inc()


SINK = PrometheusSink()
events.add_sink(SINK)
