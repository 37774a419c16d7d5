"""What the face extraction counts, without a metrics library: each frame's outcome, each run's
throughput, each recovered face. A service adds a sink (``services/detector/metrics.py`` turns these
into Prometheus metrics); with no sink the counts go nowhere."""

from __future__ import annotations

from typing import Any, Protocol


class Sink(Protocol):
    def frame(self, result: Any, detector: str) -> None: ...

    def run(self, frames_per_second: float) -> None: ...

    def recovered(self, source: str) -> None: ...


_SINKS: list[Sink] = []


def add_sink(sink: Sink) -> None:
    if sink not in _SINKS:
        _SINKS.append(sink)


def frame(result: Any, detector: str) -> None:
    """A frame's FrameResult (record with status, faces and rejected faces; detect time)."""
    for sink in _SINKS:
        sink.frame(result, detector)


def run(frames_per_second: float) -> None:
    for sink in _SINKS:
        sink.run(frames_per_second)


def recovered(source: str) -> None:
    for sink in _SINKS:
        sink.recovered(source)
