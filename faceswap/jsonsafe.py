"""The one JSON-safe conversion: what a report, a job's recorded outputs, a worker's summary line or
a Kubernetes Job's options hold is written with ``json.dumps(json_safe(value))`` and read back by any
JSON reader."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np


def json_safe(value: Any) -> Any:
    """Dataclasses become dicts, tuples lists, dict keys strings, numpy scalars and arrays Python
    numbers and lists; NaN and infinities (not JSON) become null; anything else its ``str``."""
    if isinstance(value, (str, bool, int)) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return json_safe(value.item())
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return json_safe(dataclasses.asdict(value))
    return str(value)
