"""Reads a training loss log (JSON, JSON lines or CSV) into named series of (step, value) points.

The trainer's log format is not fixed yet, so this accepts the common shapes:
- JSON list of records ``[{"step": 1, "loss_a": 0.1, "loss_b": 0.2}, ...]``, or such a list under
  one of the keys ``history``, ``losses``, ``records``, ``log``, ``progress``, ``steps``;
- JSON object of series ``{"loss_a": [0.3, 0.2, ...], "loss_b": [...]}`` (x = position);
- JSON list of numbers (one series ``loss``);
- JSON lines, one record per line;
- CSV/TSV with a header row.
The x axis is the first column named step/iteration/iter/epoch/samples (else the record position);
series are the numeric columns whose name contains "loss" (else every other numeric column).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from faceswap.errors import InvalidArgument, NotFound

X_NAMES = ("step", "steps", "iteration", "iter", "epoch", "samples", "sample")
LIST_KEYS = ("history", "losses", "records", "log", "progress", "steps", "entries")
SKIP_NAMES = {"time", "timestamp", "elapsed", "elapsed_s", "seconds", "wall", "lr", "learning_rate"}

Series = dict[str, list[tuple[float, float]]]


def load_loss_log(path: str | Path) -> Series:
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"loss_log: {path} does not exist")
    text = path.read_text(encoding="utf-8", errors="replace").strip()
    if not text:
        return {}
    try:
        if path.suffix.lower() in (".csv", ".tsv"):
            return _from_records(_csv_records(text))
        if path.suffix.lower() == ".jsonl" or ("\n" in text and text.lstrip().startswith("{")):
            try:
                return _from_json(json.loads(text))
            except json.JSONDecodeError:
                return _from_records([json.loads(line) for line in text.splitlines() if line.strip()])
        if text[0] in "[{":
            return _from_json(json.loads(text))
        return _from_records(_csv_records(text))
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(
            f"{path} is not a JSON, JSON-lines or CSV loss log: {exc}", field="loss_log"
        ) from exc


def _csv_records(text: str) -> list[dict[str, Any]]:
    dialect = csv.excel_tab if "\t" in text.splitlines()[0] else csv.excel
    return list(csv.DictReader(io.StringIO(text), dialect=dialect))


def _from_json(value: Any) -> Series:
    if isinstance(value, list):
        if all(isinstance(v, (int, float)) for v in value):
            return {"loss": [(float(i), float(v)) for i, v in enumerate(value)]}
        return _from_records(value)
    if isinstance(value, dict):
        for key in LIST_KEYS:
            if isinstance(value.get(key), list):
                return _from_json(value[key])
        series = {
            name: [(float(i), float(v)) for i, v in enumerate(values) if _number(v) is not None]
            for name, values in value.items()
            if isinstance(values, list) and values and all(_number(v) is not None for v in values)
        }
        if series:
            return series
        return _from_records([value])
    raise ValueError("expected a list or an object")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"losses": {"a": 1}} -> {"losses.a": 1}: nested figures (the trainer's per-identity losses)."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _from_records(records: list[Any]) -> Series:
    records = [_flatten(r) for r in records if isinstance(r, dict)]
    if not records:
        return {}
    columns: list[str] = []
    for record in records:
        columns += [c for c in record if c not in columns]
    lower = {c: c.lower() for c in columns}
    x_column = next((c for name in X_NAMES for c in columns if lower[c] == name), None)
    numeric = [c for c in columns if c != x_column and any(_number(r.get(c)) is not None for r in records)]
    chosen = [c for c in numeric if "loss" in lower[c]] or [c for c in numeric if lower[c] not in SKIP_NAMES]
    series: Series = {}
    for name in chosen:
        points = []
        for position, record in enumerate(records):
            y = _number(record.get(name))
            x = _number(record.get(x_column)) if x_column else float(position)
            if y is not None:
                points.append((float(position) if x is None else x, y))
        if points:
            series[name] = points
    return series
