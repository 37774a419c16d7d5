"""Trainer benchmark: training samples/s (A + B samples) per preset, on CPU and, when present, CUDA.

Each measurement runs the real training step (batch building with the random warp on the device,
forward, loss, backward, Adam) on face-sized inputs; content does not change the cost, so the faces
are synthetic and the benchmark needs no data. On CUDA it also reports the share of each step spent
building batches (the time the GPU would wait for data).

Baselines (the reference measured for the chosen recipe, this 2-core CPU): the seed's model at width/4 ("lite"), batch 16+16, about
140 samples/s; the original-size model about 7 samples/s. ratio = measured / baseline.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

import numpy as np
import torch

from faceswap.model.network import build_model, get_preset
from services.trainer.augment import AugmentConfig, FaceBank, sample_batch, step_generator
from services.trainer.data import FaceSet, region_masks
from services.trainer.loop import TrainOptions, _recipe, _train_step, configure_threads

BASELINES = {"lite": 140.0, "original": 7.0, "demo": 140.0}


def synthetic_faces(n: int = 32, size: int = 64, seed: int = 0) -> FaceSet:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    hull, regions = region_masks(None, size)
    return FaceSet(
        prefix="synthetic",
        images=images,
        masks=np.repeat(hull[None], n, 0),
        regions=np.repeat(regions[None], n, 0),
        keys=[f"faces/{i:08d}_0.png" for i in range(n)],
        size=size,
        coverage=0.75,
    )


def measure_preset(
    preset: str, steps: int, batch_size: int, device: str, warmup: int = 1
) -> dict[str, float]:
    """samples/s and the share of step time spent building batches, for `steps` timed steps."""
    dev = torch.device(device)
    recipe = _recipe(get_preset(preset), TrainOptions(preset=preset, batch_size=batch_size))
    model = build_model(preset).to(dev)
    if recipe.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.learning_rate, betas=recipe.betas)
    amp = torch.bfloat16 if dev.type == "cuda" else None
    banks = [FaceBank(synthetic_faces(seed=i), dev) for i in range(2)]
    cfg = AugmentConfig()
    data_s = total_s = 0.0
    for step in range(warmup + steps):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        batch_a, batch_b = (
            sample_batch(b, batch_size, step_generator(0, step, i), cfg) for i, b in enumerate(banks)
        )
        if dev.type == "cuda":
            torch.cuda.synchronize()  # the batch is ready: what the step would have waited for
        t1 = time.perf_counter()
        _train_step(model, optimizer, None, batch_a, batch_b, recipe, dev, amp)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if step >= warmup:
            data_s += t1 - t0
            total_s += time.perf_counter() - t0
    return {"samples_per_second": steps * batch_size * 2 / total_s, "data_share": data_s / total_s}


def _row(stage: str, metric: str, value: float, unit: str, baseline_name: str, baseline: float) -> dict:
    return {
        "stage": stage,
        "metric": metric,
        "value": round(value, 3),
        "unit": unit,
        "baseline_name": baseline_name,
        "baseline": baseline,
        "ratio": round(value / baseline, 3) if baseline else 0.0,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def run(quick: bool, workdir: Path) -> list[dict]:
    threads = configure_threads()
    rows = []
    # (timed steps, warm-up steps); quick mode must stay under 60 s on a busy 2-core CPU.
    plan = (
        {"lite": (4, 1), "original": (1, 0)}
        if quick
        else {"lite": (30, 2), "demo": (30, 2), "original": (5, 1)}
    )
    for preset, (steps, warmup) in plan.items():
        result = measure_preset(preset, steps, 16, "cpu", warmup=warmup)
        rows.append(
            _row(
                f"train_{preset}_cpu",
                "samples_per_second",
                result["samples_per_second"],
                f"samples/s ({threads} threads, batch 16+16)",
                f"reference measurement, {preset} on 2 cores",
                BASELINES[preset],
            )
        )
    if torch.cuda.is_available():
        for preset in ("lite", "demo", "original"):
            result = measure_preset(preset, 20 if quick else 200, 64, "cuda", warmup=3)
            rows.append(
                _row(
                    f"train_{preset}_cuda",
                    "samples_per_second",
                    result["samples_per_second"],
                    "samples/s (batch 64+64, bf16)",
                    f"{preset} on this CPU",
                    BASELINES[preset],
                )
            )
            rows.append(
                _row(
                    f"train_{preset}_cuda", "data_wait_share", result["data_share"], "share of step", "", 0.0
                )
            )
    return rows


if __name__ == "__main__":
    import json
    import sys

    for row in run("--full" not in sys.argv, Path(".")):
        print(json.dumps(row))
