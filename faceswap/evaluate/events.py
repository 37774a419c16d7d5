"""What an evaluation counts, without a metrics library: each scored frame and each run's outcome.
A service adds a sink (``services/orchestrator/evaluate_metrics.py`` turns these into Prometheus
metrics); with no sink the counts go nowhere."""

from __future__ import annotations

from typing import Protocol


class Sink(Protocol):
    def frame(self) -> None: ...

    def run(self, outcome: str, seconds: float | None, read_as_b_share: float | None) -> None: ...


_SINKS: list[Sink] = []


def add_sink(sink: Sink) -> None:
    if sink not in _SINKS:
        _SINKS.append(sink)


def frame() -> None:
    """One sampled frame scored."""
    for sink in _SINKS:
        sink.frame()


def run(outcome: str, seconds: float | None = None, read_as_b_share: float | None = None) -> None:
    """An evaluation ended: outcome passed / failed / error; its wall time and the share of sampled
    faces that read as B (None when there is none: an error, or no face to score)."""
    for sink in _SINKS:
        sink.run(outcome, seconds, read_as_b_share)
