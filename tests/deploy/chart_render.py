"""Renders the Helm chart offline (helm-python-sdk, no helm binary or cluster) and validates manifests."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "faceswap"
KUBE_VERSION = "1.30.0"
# Also the newest schema kubernetes-validate ships, so no removed or renamed API slips in.
KUBE_VERSIONS = (KUBE_VERSION, kubernetes_validate.latest_version())
RELEASE, NAMESPACE = "demo", "faceswap"
# CRDs kubernetes-validate has no schema for: checked structurally instead.
CRD_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}


def profile(name: str) -> dict[str, Any]:
    """Values of a profile: 'default' or a file under the chart's ci/ folder."""
    if name == "default":
        return {}
    return yaml.safe_load((CHART / "ci" / f"{name}-values.yaml").read_text())


@cache
def _chart() -> Any:
    import helm_python

    return helm_python.Chart.load(str(CHART))


def render(values: dict[str, Any] | None = None) -> dict[str, str]:
    """template path -> rendered text, as `helm install` would render it (schema checked first)."""
    chart = _chart()
    chart.validate_schema(values or {})
    return chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)


def manifests(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every Kubernetes object the chart renders (NOTES.txt left out)."""
    objects = []
    for path, text in sorted(render(values).items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc.setdefault("_template", path)
                objects.append(doc)
    return objects


def validate(obj: dict[str, Any]) -> None:
    """Raises unless the object matches the Kubernetes OpenAPI schemas (strict: no unknown fields)."""
    body = {k: v for k, v in obj.items() if k != "_template"}
    if (body.get("apiVersion"), body.get("kind")) in CRD_KINDS:
        validate_monitor(body)
        return
    for version in KUBE_VERSIONS:
        kubernetes_validate.validate(body, version, strict=True)


def validate_monitor(obj: dict[str, Any]) -> None:
    """The parts of the Prometheus Operator CRDs the chart uses (rule expressions: test_promtool.py)."""
    spec = obj["spec"]
    assert obj["metadata"]["name"] and obj["metadata"]["namespace"]
    if obj["kind"] == "PrometheusRule":
        for group in spec["groups"]:
            assert group["name"] and group["rules"]
            for rule in group["rules"]:
                assert set(rule) <= {"alert", "record", "expr", "for", "labels", "annotations"}, set(rule)
                assert rule["expr"] and ("alert" in rule) != ("record" in rule)
        return
    assert spec["selector"]["matchLabels"], "a monitor must select by labels"
    endpoints = spec.get("endpoints") if obj["kind"] == "ServiceMonitor" else spec.get("podMetricsEndpoints")
    assert endpoints, "no endpoints"
    allowed = {"port", "path", "interval", "scrapeTimeout", "honorLabels", "scheme", "relabelings"}
    for endpoint in endpoints:
        assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
        assert set(endpoint) <= allowed, set(endpoint) - allowed


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}
