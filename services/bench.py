"""``make bench``: every stage's benchmark in one run, a table of throughput against baselines, and JSON.

    python -m services.bench [--quick] [--json OUT] [--stages media,trainer] [--workdir DIR]

Each ``services/<stage>/bench.py`` exposes ``run(quick: bool, workdir: Path) -> list[dict]`` (rows
with stage, metric, value, unit, baseline_name, baseline, ratio, peak_rss_mb). Every stage runs in its
own child process, so one stage's memory cannot inflate another's peak, a crash or a hang stays
contained (the run goes on and reports it), and the child's peak RSS comes from ``wait4``'s rusage:
the largest of the stage process and of any process it started and waited for (ffmpeg, servers).
A stage whose bench module does not exist is reported as skipped.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import importlib.util
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

STAGES = ("media", "detector", "trainer", "converter", "orchestrator", "evaluate", "live")
ROW_KEYS = ("stage", "metric", "value", "unit", "baseline_name", "baseline", "ratio", "peak_rss_mb")
ROOT = Path(__file__).resolve().parents[1]


def module_name(stage: str) -> str:
    """``media`` -> ``services.media.bench``; a dotted name is taken as a module path as is. The
    orchestrator's bench runs whole jobs against every stage in process, so it lives at the top
    (``services/bench_jobs.py``) with the other entry points that wire all services."""
    if "." in stage:
        return stage
    return "services.bench_jobs" if stage == "orchestrator" else f"services.{stage}.bench"


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # the parent package is missing too
        return False
    except Exception:  # the package exists but fails to import: the child reports the error
        return True


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def normalise_row(row: dict[str, Any], stage: str, stage_rss_mb: float | None) -> dict[str, Any]:
    """Fills what a bench left out: stage name, ratio from value/baseline, the stage's peak RSS."""
    out = {key: row.get(key) for key in ROW_KEYS}
    out.update({k: v for k, v in row.items() if k not in ROW_KEYS})  # extra fields are kept
    out["stage"] = out["stage"] or stage
    for key in ("value", "baseline", "ratio", "peak_rss_mb"):
        out[key] = _finite(out[key])
    if out["ratio"] is None and out["value"] is not None and out["baseline"]:
        out["ratio"] = out["value"] / out["baseline"]
    if not out["peak_rss_mb"]:
        out["peak_rss_mb"] = stage_rss_mb
    out["unit"] = out["unit"] or ""
    out["baseline_name"] = out["baseline_name"] or ""
    out["metric"] = str(out["metric"] or "")
    return out


# --- child side: runs one stage's bench in this process ---------------------------------------------


def _child(module: str, quick: bool, workdir: Path, rows_out: Path) -> int:
    import resource

    try:
        bench = importlib.import_module(module)
        rows = bench.run(quick, workdir)
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise TypeError(f"{module}.run() must return a list of dicts, got {type(rows).__name__}")
        payload: dict[str, Any] = {"status": "ok", "rows": rows}
        code = 0
    except BaseException as exc:  # report anything, including SystemExit from a bench, as an error
        payload = {
            "status": "error",
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(limit=8),
            "rows": [],
        }
        code = 1
    payload["self_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows_out.write_text(json.dumps(payload, default=str))
    return code


# --- parent side ------------------------------------------------------------------------------------


def run_stage(stage: str, quick: bool, workdir: Path, timeout: float) -> dict[str, Any]:
    module = module_name(stage)
    result: dict[str, Any] = {"stage": stage, "module": module, "status": "skipped", "error": "",
                              "seconds": 0.0, "peak_rss_mb": None, "rows": []}  # fmt: skip
    if not _module_exists(module):
        result["error"] = f"no module {module}"
        return result
    stage_dir = workdir / stage.replace(".", "_")
    stage_dir.mkdir(parents=True, exist_ok=True)
    rows_out = stage_dir / "bench-rows.json"
    rows_out.unlink(missing_ok=True)
    env = {**os.environ, "FACESWAP_DATA_DIR": str(stage_dir / "data"), "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    cmd = [sys.executable, "-m", "services.bench", "--child", module, "--workdir", str(stage_dir),
           "--rows-out", str(rows_out)] + (["--quick"] if quick else [])  # fmt: skip
    started = time.monotonic()
    log_path = stage_dir / "bench.log"
    with open(log_path, "wb") as log:
        # A new session: on timeout the whole group (servers, ffmpeg) is stopped, not just the child.
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
        status, rusage, timed_out = _wait(proc, timeout)
    result["seconds"] = round(time.monotonic() - started, 2)
    result["peak_rss_mb"] = round(rusage.ru_maxrss / 1024, 1)  # KiB on Linux
    payload: dict[str, Any] = {}
    if rows_out.is_file():
        try:
            payload = json.loads(rows_out.read_text())
        except ValueError:
            payload = {}
    if timed_out:
        result.update(status="error", error=f"timed out after {timeout:.0f} s")
    elif payload.get("status") == "ok":
        result["status"] = "ok"
    else:
        code = os.waitstatus_to_exitcode(status)
        tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
        result.update(status="error", error=payload.get("error") or f"exit {code}: {' | '.join(tail)}")
        if payload.get("traceback"):
            result["traceback"] = payload["traceback"]
    result["rows"] = [normalise_row(r, stage, result["peak_rss_mb"]) for r in payload.get("rows", [])]
    return result


def _wait(proc: subprocess.Popen, timeout: float) -> tuple[int, Any, bool]:
    """Waits for the child with wait4 (to get its rusage), killing its process group on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return status, rusage, False
        if time.monotonic() > deadline:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _, status, rusage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            return status, rusage, True
        time.sleep(0.05)


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e6 else f"{value:.3e}"
    return str(value)


def format_table(stages: list[dict[str, Any]]) -> str:
    header = ("stage", "metric", "value", "unit", "baseline", "ratio", "peak RSS MB", "note")
    lines: list[tuple[str, ...]] = []
    for stage in stages:
        rss = _fmt(stage["peak_rss_mb"])
        if stage["status"] != "ok":
            lines.append((stage["stage"], stage["status"].upper(), "", "", "", "", rss, stage["error"][:100]))
            continue
        if not stage["rows"]:
            lines.append((stage["stage"], "(no rows)", "", "", "", "", rss, ""))
        for row in stage["rows"]:
            baseline = _fmt(row["baseline"])
            if row["baseline_name"]:
                baseline += f" ({row['baseline_name']})"
            ratio = f"{row['ratio']:.3g}x" if row["ratio"] is not None else "-"
            cells = (row["stage"], row["metric"], _fmt(row["value"]), row["unit"], baseline, ratio,
                     _fmt(row["peak_rss_mb"]), "")  # fmt: skip
            lines.append(cells)
    widths = [max([len(h)] + [len(line[i]) for line in lines]) for i, h in enumerate(header)]
    right = {2, 5, 6}  # numbers line up on the right

    def fmt_line(cells: tuple[str, ...]) -> str:
        padded = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    return "\n".join([fmt_line(header), fmt_line(tuple("-" * w for w in widths)), *map(fmt_line, lines)])


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def run_all(stages: list[str], quick: bool, workdir: Path, timeout: float) -> dict[str, Any]:
    results = []
    for stage in stages:
        print(f"bench: {stage} ...", file=sys.stderr, flush=True)
        result = run_stage(stage, quick, workdir, timeout)
        print(f"bench: {stage} {result['status']} in {result['seconds']} s", file=sys.stderr, flush=True)
        results.append(result)
    return {
        "version": 1,
        "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "quick": quick,
        "git_commit": _git_commit(),
        "host": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "stages": results,
        "rows": [row for result in results for row in result["rows"]],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs (the test suite's mode)")
    parser.add_argument("--json", default="bench-results.json", metavar="OUT", help="results file")
    parser.add_argument("--stages", default=",".join(STAGES),
                        help=f"comma-separated stages or bench module paths (default {','.join(STAGES)})")  # fmt: skip
    parser.add_argument("--workdir", type=Path, help="keep each stage's files here (default: a temp dir)")
    parser.add_argument("--timeout", type=float, help="seconds per stage (default 120 quick, 1800 full)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--rows-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.child, args.quick, args.workdir, args.rows_out)

    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    timeout = args.timeout or (120.0 if args.quick else 1800.0)
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        report = run_all(stages, args.quick, args.workdir.resolve(), timeout)
    else:
        with tempfile.TemporaryDirectory(prefix="faceswap-bench-") as tmp:
            report = run_all(stages, args.quick, Path(tmp), timeout)
    print(format_table(report["stages"]))
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, allow_nan=False) + "\n")
    print(f"results: {out}")
    return 1 if any(s["status"] == "error" for s in report["stages"]) else 0


if __name__ == "__main__":
    sys.exit(main())
