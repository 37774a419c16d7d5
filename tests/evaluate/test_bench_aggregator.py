"""`python -m services.bench` (make bench): stages in child processes, table, JSON, skip/error/timeout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROW_KEYS = {"stage", "metric", "value", "unit", "baseline_name", "baseline", "ratio", "peak_rss_mb"}

FAKE_MODULES = {
    "fakebench.broken": "def run(quick, workdir):\n    raise RuntimeError('boom: no GPU today')\n",
    "fakebench.hanging": "import time\n\ndef run(quick, workdir):\n    time.sleep(120)\n",
    "fakebench.big": (
        "def run(quick, workdir):\n"
        "    block = bytearray(300 * 1024 * 1024)\n"
        "    block[::4096] = b'x' * len(block[::4096])\n"
        "    return [{'metric': 'mem', 'value': 2.0, 'unit': 'x', 'baseline_name': 'one', 'baseline': 1.0}]\n"
    ),
    "fakebench.small": (
        "def run(quick, workdir):\n"
        "    assert quick and workdir.is_dir()\n"
        "    return [{'stage': 'small', 'metric': 'speed', 'value': 3.0, 'unit': 'op/s', "
        "'baseline_name': 'naive', 'baseline': 1.5, 'ratio': 2.0, 'peak_rss_mb': 0}]\n"
    ),
}


def _bench(tmp_path: Path, *args: str, timeout: float = 150) -> tuple[subprocess.CompletedProcess, dict]:
    package = tmp_path / "fakebench"  # stage names with a dot are module paths
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text("")
    for name, code in FAKE_MODULES.items():
        (package / f"{name.split('.')[1]}.py").write_text(code)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])}
    out = tmp_path / "results" / "bench.json"
    cmd = [
        sys.executable,
        "-m",
        "services.bench",
        "--quick",
        "--json",
        str(out),
        "--workdir",
        str(tmp_path / "work"),
    ]
    proc = subprocess.run([*cmd, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.is_file(), proc.stderr
    return proc, json.loads(out.read_text())


def test_quick_bench_runs_stages_and_reports_skips_errors_and_memory(tmp_path: Path) -> None:
    stages = "evaluate,no_such_stage,fakebench.broken,fakebench.big,fakebench.small"
    proc, data = _bench(tmp_path, "--stages", stages)
    assert proc.returncode == 1  # one stage failed; the others still ran
    by_stage = {s["stage"]: s for s in data["stages"]}
    assert [s["stage"] for s in data["stages"]] == stages.split(",")
    assert by_stage["no_such_stage"]["status"] == "skipped"
    assert by_stage["fakebench.broken"]["status"] == "error"
    assert "boom: no GPU today" in by_stage["fakebench.broken"]["error"]
    evaluate = by_stage["evaluate"]
    assert evaluate["status"] == "ok" and len(evaluate["rows"]) == 2
    for row in data["rows"]:
        assert set(row) >= ROW_KEYS
        assert row["value"] > 0 and row["ratio"] > 0 and row["peak_rss_mb"] > 0
    # Peak memory is per stage: the 300 MB stage shows it, the next one does not inherit it.
    big, small = by_stage["fakebench.big"], by_stage["fakebench.small"]
    assert big["peak_rss_mb"] > 300 > small["peak_rss_mb"]
    assert big["rows"][0]["ratio"] == 2.0 and big["rows"][0]["stage"] == "fakebench.big"
    assert small["rows"][0]["peak_rss_mb"] == small["peak_rss_mb"]  # 0 = not measured: filled in
    # The table names every stage and its figures.
    table = proc.stdout
    for word in ("stage", "peak RSS MB", "scored_frames_per_s", "SKIPPED", "ERROR", "boom", "2x"):
        assert word in table, word
    assert data["quick"] is True and data["host"]["cpus"] >= 1


def test_a_hanging_stage_times_out_and_the_run_goes_on(tmp_path: Path) -> None:
    proc, data = _bench(tmp_path, "--stages", "fakebench.hanging,fakebench.small", "--timeout", "3")
    hang, small = data["stages"]
    assert hang["status"] == "error" and "timed out" in hang["error"] and hang["seconds"] < 10
    assert small["status"] == "ok"
    assert proc.returncode == 1


@pytest.mark.slow
def test_make_bench_quick_all_stages(tmp_path: Path) -> None:
    proc, data = _bench(tmp_path, timeout=900)
    assert {s["stage"] for s in data["stages"]} >= {"media", "detector", "trainer", "converter", "evaluate"}
    assert all(s["status"] in ("ok", "skipped") for s in data["stages"]), proc.stdout
