"""Prometheus metrics of the media service (on the default registry, served by every server)."""

from __future__ import annotations

import time
from types import TracebackType

from prometheus_client import Counter, Histogram

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


class stage_timer:  # noqa: N801 - used like a function: `with stage_timer("extract"):`
    """Times a stage into STAGE_SECONDS and counts failures."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.seconds = 0.0

    def __enter__(self) -> stage_timer:
        self._start = time.perf_counter()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.seconds = time.perf_counter() - self._start
        STAGE_SECONDS.labels(self.stage).observe(self.seconds)
        if exc_type is not None:
            FAILURES.labels(self.stage).inc()
