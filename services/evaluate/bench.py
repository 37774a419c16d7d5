"""Evaluator benchmark: frames scored per second on the bundled clip, against real time.

Baseline: real time at the default sampling, i.e. the clip's fps / stride sampled frames per second;
a ratio of 1 means scoring keeps up with playing the video. Embedding the B set is timed apart (it is
paid once per evaluation). ``cpu_s`` is kept beside wall time: on a shared machine it is the steadier
figure.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

from faceswap.evaluate.core import build_b_set, evaluate
from faceswap.evaluate.faces import FaceAnalyzer

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "samples" / "liveportrait_s18.mp4"
FACES_B = ROOT / "samples" / "liveportrait_d10.mp4"


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(quick: bool, workdir: Path) -> list[dict]:
    end, b_faces = (30, 4) if quick else (None, 20)  # quick: the first second, 10 scored frames
    analyzer = FaceAnalyzer.shared()  # model loading is not part of the throughput
    started = time.perf_counter()
    b_set = build_b_set(analyzer, FACES_B, b_faces)
    b_seconds = time.perf_counter() - started
    rows = []
    # The clip against another video: every frame pays for both faces, as a real swap does; and the
    # clip against itself: identical frames skip the second detection and embedding.
    for label, swapped in (("swapped != source", FACES_B), ("swapped == source", SOURCE)):
        cpu = _cpu_s()
        result = evaluate(SOURCE, swapped, b_set, end=end, analyzer=analyzer)
        s = result.summary
        realtime = s["fps"] / s["sample_every"]
        value = s["frames_sampled"] / max(1e-6, s["seconds"])
        rows.append(
            {
                "stage": "evaluate",
                "metric": f"scored_frames_per_s ({label})",
                "value": value,
                "unit": "frames/s",
                "baseline_name": f"real time at stride {s['sample_every']}",
                "baseline": realtime,
                "ratio": value / realtime,
                "peak_rss_mb": _rss_mb(),
                "frames": s["frames_sampled"],
                "seconds": s["seconds"],
                "cpu_s": round(_cpu_s() - cpu, 2),
                "b_set_faces": len(b_set.sources),
                "b_set_seconds": round(b_seconds, 2),
            }
        )
    return rows
