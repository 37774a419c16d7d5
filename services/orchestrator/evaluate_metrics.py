"""Prometheus metrics of the job's quality-report stage (registered once on the default registry): a
sink for the counts the library's evaluation reports (``faceswap.evaluate.events``), added when this
module is imported."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from faceswap.evaluate import events

EVAL_RUNS = Counter("faceswap_evaluate_runs_total", "Swap evaluations run", ["outcome"])
EVAL_FRAMES = Counter("faceswap_evaluate_frames_total", "Frames scored by the evaluator")
EVAL_SECONDS = Histogram(
    "faceswap_evaluate_seconds",
    "Wall time of one swap evaluation",
    buckets=(1, 5, 10, 30, 60, 120, 300, 900),
)
EVAL_READ_AS_B = Gauge(
    "faceswap_evaluate_identity_match_ratio", "Share of sampled faces that read as person B, last evaluation"
)


class PrometheusSink:
    def frame(self) -> None:
        EVAL_FRAMES.inc()

    def run(self, outcome: str, seconds: float | None, read_as_b_share: float | None) -> None:
        EVAL_RUNS.labels(outcome).inc()
        if seconds is not None:
            EVAL_SECONDS.observe(seconds)
        if read_as_b_share is not None:
            EVAL_READ_AS_B.set(read_as_b_share)


events.add_sink(PrometheusSink())
