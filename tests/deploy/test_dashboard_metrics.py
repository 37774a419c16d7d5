"""Every metric the Grafana dashboard queries is one the services really export on /metrics.

Each service's server runs in this process (start_server(build_spec(), port=0)) and its metrics port
is scraped over HTTP; the dashboard's faceswap_* series must all appear there. promtool (Debian's
prometheus package, `make install`) lints those pages (`promtool check metrics`) and parses every
dashboard query and the chart's alerts as rules (`promtool check rules`).
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "helm" / "faceswap" / "dashboards" / "faceswap.json"
SERVICES = ["media", "detector", "trainer", "converter", "orchestrator", "live"]
# Exported by NVIDIA's dcgm-exporter, not by faceswap (documented on the panels).
EXTERNAL_PREFIXES = ("DCGM_",)
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created", ""),
    "gauge": ("",),
    "info": ("_info",),
}


def dashboard_metrics() -> set[str]:
    """Series names in the dashboard's PromQL (metric names, not functions or labels)."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if v.get("definition")]
    names: set[str] = set()
    for expr in exprs:
        names |= set(re.findall(r"\b(faceswap_[a-z0-9_]+|DCGM_[A-Z0-9_]+)\b", expr))
    return names


def exposed_series(text: str) -> set[str]:
    """Every series name a /metrics page can produce, from its # TYPE lines (samples or not)."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            base = name.removesuffix("_total") if kind == "counter" else name
            names |= {base + suffix for suffix in _SUFFIXES.get(kind, ("",))}
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """service -> its /metrics text, for every service whose server module exists."""
    from services.common.server import start_server

    running, pages = [], {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACESWAP_DATA_DIR", str(tmp_path_factory.mktemp("deploy-metrics")))
        mp.setenv("FACESWAP_STORAGE", "local")
        mp.setenv("FACESWAP_THREADS", "1")
        try:
            for svc in SERVICES:
                try:
                    module = importlib.import_module(f"services.{svc}.server")
                except ModuleNotFoundError as exc:
                    if exc.name in (f"services.{svc}", f"services.{svc}.server"):
                        continue  # service not written yet
                    raise
                server = start_server(module.build_spec(), port=0)
                running.append(server)
                url = f"http://127.0.0.1:{server.metrics_port}/metrics"
                with urllib.request.urlopen(url, timeout=10) as resp:
                    pages[svc] = resp.read().decode()
            yield pages
        finally:
            for server in running:
                server.stop(grace=1.0)


def test_dashboard_queries_only_exported_metrics(scraped: dict[str, str]) -> None:
    assert scraped, "no service server could be started"
    exported = set().union(*(exposed_series(text) for text in scraped.values()))
    # The shared per-RPC and per-stage metrics are always there.
    assert {"faceswap_rpc_requests_total", "faceswap_rpc_latency_seconds_bucket"} <= exported
    assert "faceswap_stage_seconds_bucket" in exported
    missing = sorted(
        name
        for name in dashboard_metrics()
        if not name.startswith(EXTERNAL_PREFIXES) and name not in exported
    )
    # A service without a server module yet cannot be scraped: its own metrics stay unverified.
    absent = [svc for svc in SERVICES if svc not in scraped]
    unverified = [m for m in missing if any(m.startswith(f"faceswap_{svc}_") for svc in absent)]
    missing = [m for m in missing if m not in unverified]
    assert not missing, (
        f"dashboard queries metrics no service exports: {missing} (services: {sorted(scraped)})"
    )
    if unverified:
        pytest.skip(f"no server module for {absent} yet: {unverified} unverified")


def test_dashboard_covers_the_required_views() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    titles = " | ".join(p["title"].lower() for p in dashboard["panels"])
    for view in (
        "jobs",
        "jobs queued",
        "frames/s",
        "loss",
        "steps/s",
        "rpc latency",
        "rpc errors",
        "gpu memory",
    ):
        assert view in titles, view
    names = dashboard_metrics()
    assert "faceswap_rpc_requests_total" in names and "faceswap_rpc_latency_seconds_bucket" in names
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_dashboard_has_a_live_row() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    start = next(i for i, p in enumerate(panels) if p["type"] == "row" and p["title"] == "Live")
    end = next((i for i in range(start + 1, len(panels)) if panels[i]["type"] == "row"), len(panels))
    live = {p["title"]: [t["expr"] for t in p["targets"]] for p in panels[start + 1 : end]}
    exprs = " ".join(e for group in live.values() for e in group)
    for series in (
        "faceswap_live_frames_in_total",
        "faceswap_live_frames_out_total",
        "faceswap_live_frames_dropped_total",
        "faceswap_live_latency_seconds_bucket",
        "faceswap_live_stage_seconds_sum",
        "faceswap_live_stage_seconds_count",
        "faceswap_live_frame_errors_total",
    ):
        assert series in exprs, series
    latency = live["Live latency"]
    assert [e.split(",")[0] for e in latency] == ["histogram_quantile(0.5", "histogram_quantile(0.95"]
    assert all("sum by (le) (rate(faceswap_live_latency_seconds_bucket" in e for e in latency)
    assert "sum by (stage)" in live["Live seconds per frame and stage"][0]
    assert "sum by (code)" in live["Live frame errors by code"][0]


def test_dashboard_file_is_generated() -> None:
    import sys

    sys.path.insert(0, str(ROOT / "deploy" / "grafana"))
    try:
        import build_dashboard
    finally:
        sys.path.pop(0)
    assert DASHBOARD.read_text() == build_dashboard.render(), "run deploy/grafana/build_dashboard.py"

    # *_per_second gauges only hold a pod's last value: rates come from counters.
    assert not [n for n in dashboard_metrics() if n.endswith("_per_second")]
    gpu_memory = next(
        p for p in json.loads(DASHBOARD.read_text())["panels"] if p["title"] == "GPU memory used"
    )
    assert gpu_memory["fieldConfig"]["defaults"]["unit"] == "mbytes"  # DCGM_FI_DEV_FB_USED is MiB


# ---- promtool ----


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if not path:
        pytest.skip("promtool not installed: `make install` installs it as root (apt-get install prometheus)")
    return path


def _promtool(promtool: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([promtool, *args], input=stdin, capture_output=True, text=True, timeout=60)


# Lint rules we do not follow, each for a reason.
_ACCEPTED_LINT = (
    # Info-style gauges carry their value in labels by design (prometheus_client's Info does the same).
    "_info",
)


def test_metrics_pages_pass_promtool_lint(scraped: dict[str, str], promtool: str) -> None:
    for svc, text in scraped.items():
        result = _promtool(promtool, "check", "metrics", stdin=text)
        problems = [
            line
            for line in (result.stdout + result.stderr).splitlines()
            if line.strip() and not any(ok in line for ok in _ACCEPTED_LINT)
        ]
        assert not problems, f"{svc}: promtool check metrics: {problems}"


def _as_rules_file(path: Path, name: str, exprs: list[str]) -> Path:
    import yaml

    rules = [{"record": f"faceswap:check:{i}", "expr": e} for i, e in enumerate(exprs)]
    path.write_text(yaml.safe_dump({"groups": [{"name": name, "rules": rules}]}))
    return path


def test_every_dashboard_query_parses_as_a_recording_rule(promtool: str, tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) > 10
    # Grafana's variables as a Prometheus server would see them after Grafana substituted them.
    exprs = [e.replace("$__rate_interval", "2m").replace("$namespace", ".*") for e in exprs]
    result = _promtool(
        promtool, "check", "rules", str(_as_rules_file(tmp_path / "d.yaml", "dashboard", exprs))
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


def test_chart_alerts_pass_promtool(promtool: str, tmp_path: Path) -> None:
    import yaml
    from chart_render import by_kind, manifests, profile

    rule = by_kind(manifests(profile("gpu")), "PrometheusRule")["demo-faceswap"]
    path = tmp_path / "alerts.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    result = _promtool(promtool, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    # The alerts query only series the services export (or the queue gauge the orchestrator adds).
    names = set()
    for group in rule["spec"]["groups"]:
        for r in group["rules"]:
            names |= set(re.findall(r"\b(faceswap_[a-z0-9_]+)\b", r["expr"]))
    assert names == {
        "faceswap_orchestrator_jobs_finished_total",
        "faceswap_stage_seconds_bucket",
        "faceswap_orchestrator_jobs_queued",
        "faceswap_rpc_requests_total",
    }


def test_alert_series_are_exported(scraped: dict[str, str]) -> None:
    exported = set().union(*(exposed_series(text) for text in scraped.values()))
    assert "faceswap_orchestrator_jobs_queued" in exported
    assert "faceswap_orchestrator_jobs_finished_total" in exported
