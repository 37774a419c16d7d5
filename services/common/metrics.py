"""Prometheus metrics shared by every service: per-RPC counters and latency histograms.

Stage-specific metrics (frames decoded, training loss, ...) are declared in each service's core
module on the same default registry, so one /metrics endpoint exposes all of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from prometheus_client import Counter, Histogram, start_http_server

RPC_REQUESTS = Counter("faceswap_rpc_requests_total", "gRPC calls handled", ["service", "method", "code"])
RPC_LATENCY = Histogram(
    "faceswap_rpc_latency_seconds",
    "gRPC call latency (streams: until the last message)",
    ["service", "method"],
    buckets=(0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
)
STAGE_SECONDS = Histogram(
    "faceswap_stage_seconds",
    "Seconds spent per pipeline stage call",
    ["stage"],
    buckets=(0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600),
)


def start_metrics_server(port: int, addr: str | None = None) -> int:
    """Serves /metrics; port 0 picks a free one; addr defaults to FACESWAP_BIND_HOST (loopback).
    Returns the bound port."""
    if addr is None:
        from faceswap.config import env

        addr = env("FACESWAP_BIND_HOST") or "127.0.0.1"
    if addr.startswith("[") and addr.endswith("]"):
        addr = addr[1:-1]  # '[::]' -> '::' (IPv6 and, dual stack, IPv4)
    server, _thread = start_http_server(port, addr=addr)
    return int(server.server_port)


def split_method(full_method: str) -> tuple[str, str]:
    # "/faceswap.v1.MediaService/Probe" -> ("faceswap.v1.MediaService", "Probe")
    _, service, method = full_method.split("/", 2)
    return service, method


class StageTimer:
    """Context manager observing the stage histogram."""

    def __init__(self, stage: str) -> None:
        self.stage = stage

    def __enter__(self) -> StageTimer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
        STAGE_SECONDS.labels(self.stage).observe(self.seconds)


def instrument(
    behavior: Callable[..., Any], service: str, method: str, streaming_response: bool
) -> Callable[..., Any]:
    """Wraps one RPC handler so its calls are counted and timed."""

    def record(start: float, context: grpc.ServicerContext) -> None:
        code = context.code() if hasattr(context, "code") and context.code() else grpc.StatusCode.OK
        name = code.name if isinstance(code, grpc.StatusCode) else str(code)
        RPC_REQUESTS.labels(service, method, name).inc()
        RPC_LATENCY.labels(service, method).observe(time.perf_counter() - start)

    if streaming_response:

        def stream_wrapper(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            start = time.perf_counter()
            try:
                yield from behavior(request, context)
            finally:
                record(start, context)

        return stream_wrapper

    def unary_wrapper(request: Any, context: grpc.ServicerContext) -> Any:
        start = time.perf_counter()
        try:
            return behavior(request, context)
        finally:
            record(start, context)

    return unary_wrapper
