"""Prometheus metrics of the live service (default registry, served on the service's /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

FRAMES_IN = Counter("faceswap_live_frames_in_total", "Frames received on live streams")
FRAMES_OUT = Counter("faceswap_live_frames_out_total", "Swapped frames sent back on live streams")
FRAMES_DROPPED = Counter(
    "faceswap_live_frames_dropped_total", "Frames skipped under load (bounded queue, newest wins)"
)
FRAME_ERRORS = Counter("faceswap_live_frame_errors_total", "Frames answered with an error", ["code"])
STREAMS = Gauge("faceswap_live_streams_active", "Live streams open now")
STREAMS_ENDED = Counter("faceswap_live_streams_total", "Live streams ended, by how", ["reason"])
LATENCY = Histogram(
    "faceswap_live_latency_seconds",
    "Server-side latency of a live frame: received to reply",
    buckets=(0.01, 0.02, 0.033, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2, 5),
)
STAGE_SECONDS = Histogram(
    "faceswap_live_stage_seconds",
    "Seconds per live frame and stage (queue, decode, track, detect, landmarks, choose, model, compose, blend, handoff, encode)",
    ["stage"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.033, 0.05, 0.1, 0.2, 0.5, 1),
)
BANK_SECONDS = Histogram(
    "faceswap_live_bank_seconds",
    "Seconds to build B's face bank at a stream's start (cache misses only)",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120),
)
COMPOSE_WORKERS = Gauge("faceswap_live_compose_workers", "Processes composing live frames (one per core)")
COMPOSE_RESTARTS = Counter(
    "faceswap_live_compose_restarts_total", "Compose worker processes replaced after dying or hanging"
)
