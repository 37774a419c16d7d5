"""Writes the chart's Grafana dashboard (deploy/helm/faceswap/dashboards/faceswap.json).

    .venv/bin/python deploy/grafana/build_dashboard.py

Every faceswap_* metric queried here must be exported by a service: tests/deploy checks each one
against the services' real /metrics output. DCGM_* series come from NVIDIA's dcgm-exporter
(GPU Operator), not from us; their panels stay empty without it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "helm" / "faceswap" / "dashboards" / "faceswap.json"
NS = 'namespace=~"$namespace"'
RATE = "$__rate_interval"


def _target(expr: str, legend: str, ref: str) -> dict[str, Any]:
    return {
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "expr": expr,
        "legendFormat": legend,
        "refId": ref,
    }


def panel(
    title: str,
    targets: list[tuple[str, str]],
    unit: str = "short",
    kind: str = "timeseries",
    description: str = "",
    width: int = 12,
) -> dict[str, Any]:
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {
            "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]}
        }
        if kind == "timeseries"
        else {"reduceOptions": {"calcs": ["lastNotNull"]}},
        "targets": [_target(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(targets)],
        "gridPos": {"w": width, "h": 8},
    }


def row(title: str) -> dict[str, Any]:
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "gridPos": {"w": 24, "h": 1}}


def quantiles(metric: str, by: str = "", selector: str = NS) -> list[tuple[str, str]]:
    """p50 and p95 of a histogram, per value of label ``by`` (none: over every series)."""
    group = f"le, {by}" if by else "le"
    return [
        (
            f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{{{selector}}}[{RATE}])))",
            f"p{int(q * 100)} {{{{{by}}}}}" if by else f"p{int(q * 100)}",
        )
        for q in (0.5, 0.95)
    ]


def build() -> dict[str, Any]:
    panels = [
        row("Jobs"),
        panel(
            "Jobs running",
            [(f"sum(faceswap_orchestrator_jobs_running{{{NS}}})", "running")],
            kind="stat",
            width=4,
            description="Jobs the orchestrator replicas are running now (the rest wait QUEUED).",
        ),
        panel(
            "Jobs queued",
            [(f"max(faceswap_orchestrator_jobs_queued{{{NS}}})", "queued")],
            kind="stat",
            width=4,
            description="QUEUED jobs in the database, waiting for a slot (every replica reports it: max).",
        ),
        panel(
            "Jobs finished by state (per hour)",
            [
                (
                    f"sum by (state) (increase(faceswap_orchestrator_jobs_finished_total{{{NS}}}[1h]))",
                    "{{state}}",
                )
            ],
            width=8,
        ),
        panel(
            "Stage retries (transient failures)",
            [
                (
                    f"sum by (stage) (rate(faceswap_orchestrator_stage_retries_total{{{NS}}}[{RATE}]))",
                    "{{stage}}",
                )
            ],
            unit="ops",
            width=8,
        ),
        row("Throughput"),
        panel(
            "Frames/s per stage",
            [
                (f"sum(rate(faceswap_media_frames_decoded_total{{{NS}}}[{RATE}]))", "decode (media)"),
                (f"sum(rate(faceswap_detector_frames_total{{{NS}}}[{RATE}]))", "detect (detector)"),
                (f"sum(rate(faceswap_converter_frames_total{{{NS}}}[{RATE}]))", "convert (converter)"),
                (f"sum(rate(faceswap_media_frames_encoded_total{{{NS}}}[{RATE}]))", "encode (media)"),
            ],
            unit="fps",
        ),
        panel(
            "Stage call duration",
            quantiles("faceswap_stage_seconds", "stage"),
            unit="s",
            description="faceswap_stage_seconds: seconds per pipeline stage call.",
        ),
        row("Training"),
        panel(
            "Training loss",
            [(f"faceswap_trainer_loss{{{NS}}}", "{{identity}} {{pod}}")],
            description="Latest loss per identity (A, B) of each trainer or training Job.",
        ),
        panel(
            "Training steps/s",
            [
                (f"sum by (pod) (rate(faceswap_trainer_steps_total{{{NS}}}[{RATE}]))", "{{pod}}"),
                (f"sum(rate(faceswap_trainer_steps_total{{{NS}}}[{RATE}]))", "all"),
            ],
            description="From the steps counter (rates of counters survive restarts and scrape gaps; the "
            "*_per_second gauges only show the last value a pod set).",
        ),
        row("Live"),
        panel(
            "Live streams open",
            [(f"sum(faceswap_live_streams_active{{{NS}}})", "open")],
            kind="stat",
            width=4,
            description="LiveService.Swap streams open now, all live pods (FACESWAP_LIVE_MAX_STREAMS per pod).",
        ),
        panel(
            "Live frames/s in, out, dropped",
            [
                (f"sum(rate(faceswap_live_frames_in_total{{{NS}}}[{RATE}]))", "in"),
                (f"sum(rate(faceswap_live_frames_out_total{{{NS}}}[{RATE}]))", "out"),
                (f"sum(rate(faceswap_live_frames_dropped_total{{{NS}}}[{RATE}]))", "dropped"),
            ],
            unit="fps",
            width=10,
            description="Dropped: frames the bounded queue skipped under load (newest wins). in = out + "
            "dropped + frame errors, but for frames queued when a stream was cut off.",
        ),
        panel(
            "Live latency",
            quantiles("faceswap_live_latency_seconds"),
            unit="s",
            width=10,
            description="faceswap_live_latency_seconds: server side, frame received to reply written "
            "(the client also sees the network and JPEG round trip).",
        ),
        panel(
            "Live seconds per frame and stage",
            [
                (
                    f"sum by (stage) (rate(faceswap_live_stage_seconds_sum{{{NS}}}[{RATE}]))"
                    f" / sum by (stage) (rate(faceswap_live_stage_seconds_count{{{NS}}}[{RATE}]))",
                    "{{stage}}",
                )
            ],
            unit="s",
            description="Mean of faceswap_live_stage_seconds per stage: queue, decode, track, detect, "
            "landmarks, choose, compose, blend, encode.",
        ),
        panel(
            "Live frame errors by code",
            [
                (
                    f"sum by (code) (rate(faceswap_live_frame_errors_total{{{NS}}}[{RATE}]))",
                    "{{code}}",
                )
            ],
            unit="ops",
            width=6,
            description="Frames answered with an error (corrupt JPEG, another size, ...); the stream goes on.",
        ),
        panel(
            "Live streams ended by reason",
            [
                (
                    f"sum by (reason) (increase(faceswap_live_streams_total{{{NS}}}[1h]))",
                    "{{reason}}",
                )
            ],
            width=6,
            description="Per hour: completed, cancelled (client went away), stalled (stopped reading), error.",
        ),
        row("RPC"),
        panel(
            "RPC rate per service",
            [(f"sum by (service) (rate(faceswap_rpc_requests_total{{{NS}}}[{RATE}]))", "{{service}}")],
            unit="reqps",
            width=8,
        ),
        panel(
            "RPC errors per service and code",
            [
                (
                    f'sum by (service, code) (rate(faceswap_rpc_requests_total{{{NS}, code!="OK"}}[{RATE}]))',
                    "{{service}} {{code}}",
                )
            ],
            unit="reqps",
            width=8,
        ),
        panel(
            "RPC latency per service",
            quantiles("faceswap_rpc_latency_seconds", "service"),
            unit="s",
            width=8,
            description="Streams count until their last message.",
        ),
        row("GPU (NVIDIA dcgm-exporter)"),
        panel(
            "GPU memory used",
            [("sum by (Hostname, gpu) (DCGM_FI_DEV_FB_USED)", "{{Hostname}} GPU {{gpu}}")],
            unit="mbytes",  # DCGM_FI_DEV_FB_USED is in MiB
            description="Needs dcgm-exporter (NVIDIA GPU Operator); empty without it.",
        ),
        panel(
            "GPU utilisation",
            [("avg by (Hostname, gpu) (DCGM_FI_DEV_GPU_UTIL)", "{{Hostname}} GPU {{gpu}}")],
            unit="percent",
            description="Needs dcgm-exporter (NVIDIA GPU Operator); empty without it.",
        ),
    ]
    # Lay panels out left to right, wrapping at 24 columns.
    x = y = height = 0
    for i, p in enumerate(panels, start=1):
        p["id"] = i
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if p["type"] == "row" or x + w > 24:
            x, y = 0, y + height
            height = 0
        p["gridPos"].update({"x": x, "y": y})
        x, height = x + w, max(height, h)
        if p["type"] == "row":
            x, y, height = 0, y + h, 0
    return {
        "uid": "faceswap-overview",
        "title": "Faceswap",
        "tags": ["faceswap"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                },
                {
                    "name": "namespace",
                    "label": "Namespace",
                    "type": "query",
                    "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    "query": {"query": "label_values(faceswap_rpc_requests_total, namespace)", "refId": "ns"},
                    "definition": "label_values(faceswap_rpc_requests_total, namespace)",
                    "includeAll": True,
                    "multi": True,
                    "allValue": ".*",
                    "current": {},
                    "refresh": 2,
                    "hide": 0,
                },
            ]
        },
        "annotations": {"list": []},
        "panels": panels,
    }


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}")
