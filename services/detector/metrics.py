"""Prometheus metrics of the detector (registered once on the default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
