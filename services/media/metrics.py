"""Prometheus metrics of the media service (on the default registry, served by every server): a sink
for the counts the library reports (``faceswap.media.events``), added when this module is imported."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from faceswap.media import events

FRAMES_DECODED = Counter("faceswap_media_frames_decoded_total", "Frames decoded from videos")
FRAMES_ENCODED = Counter("faceswap_media_frames_encoded_total", "Frames encoded into videos")
BYTES = Counter(
    "faceswap_media_bytes_total",
    "Bytes through the media service: decoded (raw frames), images_written, images_read, "
    "encoded_input (raw frames), encoded (output files)",
    ["kind"],
)
STAGE_SECONDS = Histogram(
    "faceswap_media_stage_seconds",
    "Seconds per media operation",
    ["stage"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
FAILURES = Counter("faceswap_media_failures_total", "Media operations that failed", ["stage"])


class PrometheusSink:
    def count(self, name: str, amount: float, kind: str) -> None:
        if name == "frames_decoded":
            FRAMES_DECODED.inc(amount)
        elif name == "frames_encoded":
            FRAMES_ENCODED.inc(amount)
        elif name == "bytes":
            BYTES.labels(kind).inc(amount)

    def stage(self, stage: str, seconds: float, failed: bool) -> None:
        STAGE_SECONDS.labels(stage).observe(seconds)
        if failed:
            FAILURES.labels(stage).inc()


SINK = PrometheusSink()
events.add_sink(SINK)
