"""What the media code counts, without a metrics library: frames decoded and encoded, bytes by kind,
seconds and failures per stage. A service adds a sink (``services/media/metrics.py`` turns these into
Prometheus metrics); with no sink the counts go nowhere."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Protocol


class Sink(Protocol):
    def count(self, name: str, amount: float, kind: str) -> None: ...

    def stage(self, stage: str, seconds: float, failed: bool) -> None: ...


_SINKS: list[Sink] = []


def add_sink(sink: Sink) -> None:
    if sink not in _SINKS:
        _SINKS.append(sink)


def count(name: str, amount: float = 1, kind: str = "") -> None:
    """name: 'frames_decoded', 'frames_encoded' or 'bytes' (with a kind)."""
    for sink in _SINKS:
        sink.count(name, amount, kind)


class stage_timer:  # noqa: N801 - used like a function: `with stage_timer("extract"):`
    """Times a stage and reports its seconds (and whether it failed) to the sinks."""

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
        for sink in _SINKS:
            sink.stage(self.stage, self.seconds, exc_type is not None)
