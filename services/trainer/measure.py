"""Recipe measurements: steps (and seconds) to reach a reconstruction loss, per recipe variant.

    python -m services.trainer.measure --faces-a A --faces-b B --steps 3000 [--variants lite,demo]

Every variant trains on the same seeded batches; the comparison metric is the plain, unweighted L1
of the reconstructions (``l1_a``/``l1_b``: the same whatever loss the recipe optimises), smoothed
over 50 steps. Steps-to-loss does not depend on how busy the machine is, so it can be measured on a
GPU and combined with the CPU's seconds per step (``--cpu-steps``) to rank recipes per CPU minute.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from faceswap.model.network import PRESETS, ModelConfig, Preset
from services.trainer.cli import FolderStore
from services.trainer.loop import TrainOptions, TrainProgress, train

THRESHOLDS = (0.1, 0.08, 0.07, 0.06, 0.05, 0.045, 0.04, 0.035, 0.03)

# name -> (base preset, model overrides, recipe overrides)
VARIANTS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "lite": ("lite", {}, {}),
    "lite_lr5e-5": ("lite", {}, {"learning_rate": 5e-5}),
    "lite_lr3e-4": ("lite", {}, {"learning_rate": 3e-4}),
    "demo": ("demo", {}, {}),
    "demo_no_norm": ("demo", {"norm": "none"}, {}),
    "demo_group_norm": ("demo", {"norm": "group"}, {}),
    "demo_no_res": ("demo", {"residual_blocks": 0}, {}),
    "demo_l1_only": ("demo", {}, {"loss": "l1"}),
    "demo_no_weights": ("demo", {}, {"face_weight": 0.0, "eye_mouth_weight": 0.0}),
    "demo_constant_lr": ("demo", {}, {"schedule": "constant"}),
    "demo_lr1e-4": ("demo", {}, {"learning_rate": 1e-4}),
    "demo_lr6e-4": ("demo", {}, {"learning_rate": 6e-4}),
    "demo_no_mask": ("demo", {"mask": False}, {}),
}


def register_variant(name: str) -> str:
    """Adds a variant to PRESETS (under its own name) and returns that name."""
    base, model_over, recipe_over = VARIANTS[name]
    if name in PRESETS:
        return name
    preset = PRESETS[base]
    model = ModelConfig.from_dict({**preset.model.to_dict(), **model_over, "preset": name})
    PRESETS[name] = replace(Preset(**{**preset.__dict__, "model": model}), **recipe_over)
    return name


def measure(
    store: FolderStore,
    variant: str,
    steps: int,
    batch_size: int,
    device: str,
    workdir: str,
    tag: str = "",
    max_seconds: float = 0.0,
) -> dict:
    name = register_variant(variant)
    curve: list[tuple[int, float, float]] = []
    ema: float | None = None
    reached: dict[str, int] = {}
    start = time.perf_counter()

    def on_progress(p: TrainProgress) -> None:
        nonlocal ema
        if not p.losses:
            return
        value = (p.losses["l1_a"] + p.losses["l1_b"]) / 2
        ema = value if ema is None else 0.98 * ema + 0.02 * value
        if p.step % 50 == 0:
            curve.append((p.step, round(ema, 5), round(time.perf_counter() - start, 2)))
        for t in THRESHOLDS:
            if p.step >= 100 and ema <= t and str(t) not in reached:
                reached[str(t)] = p.step

    options = TrainOptions(
        preset=name,
        steps=steps,
        batch_size=batch_size,
        save_every=0,
        report_every=0.0,
        device=device,
        seed=1,
        max_seconds=max_seconds,
    )
    final = train(store, "A", "B", f"M/{variant}{tag}", options, on_progress)
    seconds = final.elapsed_seconds  # training only: face-set loading is not counted
    return {
        "variant": variant,
        "steps": final.step,
        "seconds": round(seconds, 1),
        "steps_per_second": round(final.step / seconds, 2),
        "final_l1_ema": round(ema or 0.0, 5),
        "samples_per_second": round(final.step * 2 * batch_size / max(seconds, 1e-9), 1),
        "data_share": round(final.data_wait_share, 4),
        "final_loss": [round(final.loss_a, 5), round(final.loss_b, 5)],
        "steps_to_l1": reached,
        "curve": curve,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--faces-a", type=Path, required=True)
    parser.add_argument("--faces-b", type=Path, required=True)
    parser.add_argument("--variants", default="lite,demo")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="")
    parser.add_argument(
        "--cpu-steps", type=int, default=0, help="also time this many steps per variant on CPU"
    )
    parser.add_argument("--max-seconds", type=float, default=0.0, help="time budget per variant")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        store = FolderStore({"A": args.faces_a, "B": args.faces_b, "M": Path(tmp)})
        for variant in args.variants.split(","):
            result = measure(
                store, variant, args.steps, args.batch_size, args.device, tmp, max_seconds=args.max_seconds
            )
            if args.cpu_steps:
                cpu = measure(store, variant, args.cpu_steps, args.batch_size, "cpu", tmp, "cpu")
                result["cpu_seconds_per_step"] = round(cpu["seconds"] / max(1, cpu["steps"]), 4)
                result["cpu_threads"] = torch.get_num_threads()
            print(json.dumps({k: v for k, v in result.items() if k != "curve"}), flush=True)
            results.append(result)
    if args.output:
        args.output.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
