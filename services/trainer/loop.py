"""The training loop: resume / warm start, augmented batches, AMP on CUDA, checkpoints, progress.

``train(store, faces_a_prefix, faces_b_prefix, model_prefix, options, on_progress, stop)`` trains
until ``options.steps`` (a total, so a resumed run continues to the same end), ``max_seconds`` or the
``stop`` event, saving a checkpoint + preview every ``save_every`` steps and when it ends.

Where the weights start from, in order: the checkpoint under model_prefix (resume: same step, same
weights, same optimiser state); else ``warm_start`` (weights only, step 0, refused when it was
trained on other face sets unless ``allow_foreign_warm_start``); else a seeded random init.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from prometheus_client import Counter, Gauge, Histogram

from faceswap.errors import FailedPrecondition, InvalidArgument
from faceswap.model import checkpoint as ckpt_io
from faceswap.model.network import (
    FaceSwapModel,
    Preset,
    build_model,
    build_model_from_config,
    count_parameters,
    get_preset,
)
from faceswap.options.train import TrainOptions
from faceswap.storage import ObjectStore, validate_prefix
from services.trainer.augment import AugmentConfig, FaceBank, sample_batch, step_generator
from services.trainer.data import load_face_set, same_face_set
from services.trainer.losses import LOSSES, reconstruction_loss, weight_map
from services.trainer.preview import encode_png, preview_grid

log = logging.getLogger("faceswap.trainer")

LOSS = Gauge("faceswap_trainer_loss", "Latest training loss per identity", ["identity"])
STEPS = Counter("faceswap_trainer_steps_total", "Training steps done")
STEP_SECONDS = Histogram(
    "faceswap_trainer_step_seconds",
    "Seconds per training step (data wait included)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DATA_WAIT = Histogram(
    "faceswap_trainer_data_wait_seconds",
    "Seconds a training step waited for its batch",
    buckets=(0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5),
)
SAMPLES_PER_SECOND = Gauge("faceswap_trainer_samples_per_second", "Training throughput (A + B samples)")
CHECKPOINTS = Counter("faceswap_trainer_checkpoints_total", "Checkpoints saved")

STATES = ("running", "stopping", "succeeded", "stopped", "failed")


@dataclass
class TrainProgress:
    model_prefix: str
    state: str = "running"
    preset: str = ""
    step: int = 0
    total_steps: int = 0
    start_step: int = 0
    loss_a: float = 0.0
    loss_b: float = 0.0
    losses: dict[str, float] = field(default_factory=dict)
    samples_per_second: float = 0.0
    steps_per_second: float = 0.0
    eta_seconds: float = 0.0
    elapsed_seconds: float = 0.0
    checkpoint_key: str = ""
    preview_key: str = ""
    warm_start: str = ""  # what the run started from, when it was a warm start
    message: str = ""
    data_wait_share: float = 0.0  # share of step time spent building batches (host side)
    device: str = ""


def configure_threads(threads: int = 0) -> int:
    """torch intra-op threads: the option, else FACESWAP_THREADS, else every core we may use."""
    n = threads or int(os.environ.get("FACESWAP_THREADS", "0") or 0)
    if n <= 0:
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(n)
    return n


def _device(options: TrainOptions) -> torch.device:
    if options.device:
        if options.device.startswith("cuda") and not torch.cuda.is_available():
            raise InvalidArgument("CUDA is not available on this machine", field="device")
        return torch.device(options.device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _amp_dtype(options: TrainOptions, device: torch.device) -> torch.dtype | None:
    if device.type != "cuda" or options.amp == "off":
        return None
    if options.amp == "fp16":
        return torch.float16
    if options.amp in ("auto", "bf16"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    raise InvalidArgument(f"amp must be auto, bf16, fp16 or off, not {options.amp!r}", field="amp")


def _validate(options: TrainOptions) -> None:
    if options.steps <= 0:
        raise InvalidArgument(f"must be positive, got {options.steps}", field="steps")
    if options.batch_size < 0 or options.batch_size > 4096:
        raise InvalidArgument(f"must be 1..4096 (0 = preset's), got {options.batch_size}", field="batch_size")
    if options.learning_rate < 0 or not math.isfinite(options.learning_rate):
        raise InvalidArgument(f"must be >= 0, got {options.learning_rate}", field="learning_rate")
    if options.loss and options.loss not in LOSSES:
        raise InvalidArgument(f"must be one of {', '.join(LOSSES)}, got {options.loss!r}", field="loss")
    if options.save_every < 0:
        raise InvalidArgument(f"must be >= 0, got {options.save_every}", field="save_every")
    if options.max_seconds < 0:
        raise InvalidArgument(f"must be >= 0, got {options.max_seconds}", field="max_seconds")


@dataclass
class _Recipe:
    """The resolved training settings (stored in the checkpoint's config)."""

    batch_size: int
    learning_rate: float
    betas: tuple[float, float]
    loss: str
    schedule: str
    warmup_steps: int
    face_weight: float
    eye_mouth_weight: float
    channels_last: bool
    seed: int


def _recipe(preset: Preset, options: TrainOptions) -> _Recipe:
    return _Recipe(
        batch_size=options.batch_size or preset.batch_size,
        learning_rate=options.learning_rate or preset.learning_rate,
        betas=preset.betas,
        loss=options.loss or preset.loss,
        schedule=preset.schedule,
        warmup_steps=preset.warmup_steps,
        face_weight=preset.face_weight,
        eye_mouth_weight=preset.eye_mouth_weight,
        channels_last=preset.channels_last,
        seed=options.seed,
    )


def learning_rate_at(recipe: _Recipe, step: int, total: int) -> float:
    """Constant, or linear warm-up then cosine decay to 10% over the run's steps."""
    if recipe.schedule != "warmup_cosine":
        return recipe.learning_rate
    if step < recipe.warmup_steps:
        return recipe.learning_rate * (step + 1) / recipe.warmup_steps
    span = max(1, total - recipe.warmup_steps)
    t = min(1.0, (step - recipe.warmup_steps) / span)
    return recipe.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def _check_fingerprints(recorded: dict[str, Any], current: dict[str, Any]) -> tuple[bool, str]:
    reasons = []
    for side in ("a", "b"):
        ok, why = same_face_set(recorded.get(side, {}), current[side])
        if not ok:
            return False, f"face set {side.upper()}: {why}"
        reasons.append(f"{side.upper()}: {why}")
    return True, "; ".join(reasons)


def _start_state(
    store: ObjectStore,
    model_prefix: str,
    options: TrainOptions,
    size: int,
    fingerprints: dict[str, Any],
) -> tuple[ckpt_io.Checkpoint | None, ckpt_io.Checkpoint | None, str]:
    """(checkpoint to resume, warm start to load, message) — at most one of them."""
    if ckpt_io.has_checkpoint(store, model_prefix):
        if options.from_scratch:
            raise FailedPrecondition(
                f"{model_prefix!r} already holds a checkpoint; use a new model prefix to train from scratch"
            )
        resume = ckpt_io.load_latest(store, model_prefix)
        if resume.format != ckpt_io.FORMAT_FULL:
            raise FailedPrecondition(f"{resume.source} is a weights-only export; it cannot be resumed")
        cfg = resume.config
        if options.preset and cfg.get("preset") != options.preset:
            raise FailedPrecondition(
                f"{model_prefix!r} holds a {cfg.get('preset')!r} model, not {options.preset!r}: "
                "use another model prefix or the same preset"
            )
        if cfg.get("size") != size:
            raise FailedPrecondition(
                f"{model_prefix!r} holds a {cfg.get('size')}px model; the faces are {size}px"
            )
        ok, why = _check_fingerprints(resume.fingerprints, fingerprints)
        if not ok:
            raise FailedPrecondition(
                f"{model_prefix!r} was trained on other face sets ({why}); use another model prefix "
                "(optionally warm-starting from this one)"
            )
        return resume, None, f"resuming from step {resume.step}"
    if options.warm_start and not options.from_scratch:
        warm = ckpt_io.resolve_checkpoint_ref(store, options.warm_start)
        cfg = warm.config
        if (options.preset and cfg.get("preset") != options.preset) or cfg.get("size") != size:
            raise FailedPrecondition(
                f"warm start {options.warm_start!r} is a {cfg.get('preset')!r} {cfg.get('size')}px model; "
                f"this run is {options.preset!r} at {size}px"
            )
        ok, why = _check_fingerprints(warm.fingerprints, fingerprints)
        if not ok and not options.allow_foreign_warm_start:
            raise FailedPrecondition(
                f"warm start {options.warm_start!r} was trained on other face sets ({why}); "
                "set allow_foreign_warm_start to use it anyway, or train from scratch"
            )
        note = why if ok else f"FOREIGN face sets allowed ({why})"
        return None, warm, f"warm start from {options.warm_start} (trained {warm.step} steps; {note})"
    return None, None, "training from scratch"


def train(
    store: ObjectStore,
    faces_a_prefix: str,
    faces_b_prefix: str,
    model_prefix: str,
    options: TrainOptions | None = None,
    on_progress: Callable[[TrainProgress], None] | None = None,
    stop: threading.Event | None = None,
) -> TrainProgress:
    """Trains (or resumes) the model under model_prefix; returns the final progress."""
    options = options or TrainOptions()
    stop = stop or threading.Event()
    _validate(options)
    try:
        model_prefix = validate_prefix(model_prefix)
    except InvalidArgument as exc:
        raise InvalidArgument(exc.message, field="model_prefix") from exc
    if not model_prefix:
        raise InvalidArgument("model prefix is empty", field="model_prefix")

    threads = configure_threads(options.threads)
    device = _device(options)
    amp = _amp_dtype(options, device)
    face_a = load_face_set(store, faces_a_prefix, options.size or None, field="faces_a_prefix")
    face_b = load_face_set(store, faces_b_prefix, options.size or None, field="faces_b_prefix")
    if face_a.size != face_b.size:
        raise InvalidArgument(
            f"face set A is {face_a.size}px and B {face_b.size}px: extract both at the same size",
            field="faces_b_prefix",
        )
    if face_a.coverage and face_b.coverage and abs(face_a.coverage - face_b.coverage) > 1e-6:
        raise InvalidArgument(
            f"face set A has coverage {face_a.coverage} and B {face_b.coverage}", field="faces_b_prefix"
        )
    size = face_a.size
    fingerprints = {"a": face_a.fingerprint, "b": face_b.fingerprint}
    resume, warm, origin = _start_state(store, model_prefix, options, size, fingerprints)
    preset_name = options.preset or (
        resume.config["preset"] if resume else warm.config["preset"] if warm else "lite"
    )
    preset = get_preset(preset_name)
    recipe = _recipe(preset, options)
    if resume is not None:
        # A resumed run keeps its recipe (batch, lr, loss) unless the caller overrides it.
        saved = resume.config.get("train", {})
        recipe.batch_size = options.batch_size or int(saved.get("batch_size", recipe.batch_size))
        recipe.learning_rate = options.learning_rate or float(
            saved.get("learning_rate", recipe.learning_rate)
        )
        recipe.loss = options.loss or str(saved.get("loss", recipe.loss))
        recipe.warmup_steps = int(saved.get("warmup_steps", recipe.warmup_steps))
        recipe.seed = int(saved.get("seed", recipe.seed)) if not options.seed else options.seed

    if warm is not None and not options.learning_rate:
        recipe.learning_rate *= preset.fine_tune_lr_scale
        recipe.warmup_steps = 0 if preset.fine_tune_lr_scale < 1 else recipe.warmup_steps

    torch.manual_seed(recipe.seed)
    source = resume or warm
    # A checkpoint's own architecture record wins over today's preset table, so checkpoints
    # stay usable when a preset is retuned.
    model = build_model_from_config(source.config["model"]) if source else build_model(preset_name, size)
    if model.size != size:
        raise FailedPrecondition(
            f"{source.source if source else 'model'} is {model.size}px; the faces are {size}px"
        )
    start_step = 0
    if resume is not None:
        ckpt_io.load_weights(model, resume)
        start_step = resume.step
    elif warm is not None:
        ckpt_io.load_weights(model, warm)
    log.info(
        "%s: %s (%s, %d px, %.1fM parameters, %s, %d threads, amp %s)",
        model_prefix,
        origin,
        preset_name,
        size,
        count_parameters(model) / 1e6,
        device,
        threads,
        amp,
    )
    model.to(device)
    if recipe.channels_last:
        model.to(memory_format=torch.channels_last)
    # Adam's default multi-tensor (foreach) form on CUDA; `fused` was not measured here.
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.learning_rate, betas=recipe.betas)
    if resume is not None and resume.optimizer:
        try:
            optimizer.load_state_dict(resume.optimizer)
        except (ValueError, KeyError, RuntimeError) as exc:
            raise FailedPrecondition(
                f"{resume.source}: optimiser state does not fit the model: {exc}"
            ) from exc
    scaler = torch.amp.GradScaler("cuda") if amp == torch.float16 else None

    config = {
        "preset": preset_name,
        "size": size,
        "coverage": face_a.coverage or 0.75,
        "mask": model.config.mask,
        "model": model.config.to_dict(),
        "train": {**asdict(recipe), "betas": list(recipe.betas)},
        "faces": {"a": face_a.prefix, "b": face_b.prefix},
        "warm_start": (resume.config.get("warm_start", "") if resume else options.warm_start if warm else ""),
    }
    total = max(options.steps, start_step)
    progress = TrainProgress(
        model_prefix=model_prefix,
        preset=preset_name,
        step=start_step,
        total_steps=total,
        start_step=start_step,
        warm_start=config["warm_start"] if warm is not None else "",
        message=origin,
        device=str(device),
    )
    rng = np.random.default_rng(recipe.seed)
    n_prev = min(options.preview_faces, len(face_a), len(face_b))
    preview_a = face_a.images[np.sort(rng.choice(len(face_a), n_prev, replace=False))]
    preview_b = face_b.images[np.sort(rng.choice(len(face_b), n_prev, replace=False))]

    def save(step: int) -> None:
        ckpt = ckpt_io.Checkpoint(
            format=ckpt_io.FORMAT_FULL,
            step=step,
            config=config,
            model={k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
            optimizer=optimizer.state_dict(),
            fingerprints=fingerprints,
            extra={"loss_a": progress.loss_a, "loss_b": progress.loss_b, "torch": str(torch.__version__)},
        )
        ckpt_io.save_checkpoint(store, model_prefix, ckpt)
        grid = preview_grid(model, preview_a, preview_b, device)
        store.put_bytes(ckpt_io.preview_key(model_prefix), encode_png(grid))
        progress.checkpoint_key = ckpt_io.checkpoint_key(model_prefix)
        progress.preview_key = ckpt_io.preview_key(model_prefix)
        CHECKPOINTS.inc()
        log.info("%s: checkpoint at step %d", model_prefix, step)

    def report() -> None:
        if stop.is_set() and progress.state == "running":
            progress.state = "stopping"
        if on_progress is not None:
            on_progress(progress)

    banks = (FaceBank(face_a, device), FaceBank(face_b, device))
    augment_cfg = AugmentConfig()

    def batches(at: int) -> tuple[Any, Any]:
        return tuple(
            sample_batch(bank, recipe.batch_size, step_generator(recipe.seed, at, i), augment_cfg)
            for i, bank in enumerate(banks)
        )  # type: ignore[return-value]

    def horizon(at: int) -> int:
        """The step the schedule decays towards: the end, or where the time budget will end."""
        done, spent = at - start_step, time.monotonic() - started
        if not options.max_seconds or done < 20 or spent <= 0:
            return total
        return min(total, at + int(done / spent * max(0.0, options.max_seconds - spent)))

    model.train()
    started = time.monotonic()
    last_report = 0.0
    last_saved = start_step
    step = start_step
    window: list[tuple[float, float]] = []  # (step seconds, wait seconds), recent steps
    report()
    try:
        while step < total:
            if stop.is_set():
                break
            if options.max_seconds and time.monotonic() - started >= options.max_seconds:
                progress.message = f"time budget of {options.max_seconds:.0f}s spent ({origin})"
                break
            t0 = time.perf_counter()
            batch_a, batch_b = batches(step)
            t_data = time.perf_counter() - t0
            lr = learning_rate_at(recipe, step, horizon(step))
            for group in optimizer.param_groups:
                group["lr"] = lr
            losses = _train_step(model, optimizer, scaler, batch_a, batch_b, recipe, device, amp)
            step += 1
            if device.type == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            STEP_SECONDS.observe(dt)
            DATA_WAIT.observe(t_data)
            STEPS.inc()
            window = [*window[-49:], (dt, t_data)]
            if not all(math.isfinite(v) for v in losses.values()):
                raise FailedPrecondition(
                    f"loss became {losses} at step {step}: lower the learning rate "
                    "(the last checkpoint is kept)"
                )
            progress.step = step
            progress.loss_a, progress.loss_b = losses["a"], losses["b"]
            progress.losses = losses
            LOSS.labels("a").set(losses["a"])
            LOSS.labels("b").set(losses["b"])
            span = sum(w[0] for w in window)
            rate = len(window) / span if span > 0 else 0.0
            progress.steps_per_second = rate
            progress.samples_per_second = rate * recipe.batch_size * 2
            progress.data_wait_share = sum(w[1] for w in window) / span if span > 0 else 0.0
            SAMPLES_PER_SECOND.set(progress.samples_per_second)
            progress.elapsed_seconds = time.monotonic() - started
            progress.eta_seconds = (total - step) / rate if rate > 0 else 0.0
            if options.max_seconds:
                progress.eta_seconds = min(
                    progress.eta_seconds, options.max_seconds - progress.elapsed_seconds
                )
            if options.save_every and step - last_saved >= options.save_every and step < total:
                save(step)
                last_saved = step
            now = time.monotonic()
            if now - last_report >= options.report_every:
                last_report = now
                report()
    except BaseException:
        progress.state = "failed"
        raise
    if progress.state != "failed":
        progress.state = "stopping"
        report()
        if step > last_saved or not ckpt_io.has_checkpoint(store, model_prefix):
            save(step)
        progress.state = "succeeded" if step >= total else "stopped"
        progress.eta_seconds = 0.0
        progress.elapsed_seconds = time.monotonic() - started
        if stop.is_set():
            progress.message = f"stopped at step {step} ({origin})"
        elif step >= total:
            progress.message = f"finished {total} steps ({origin})"
        report()
    return progress


def _train_step(
    model: FaceSwapModel,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    batch_a: Any,
    batch_b: Any,
    recipe: _Recipe,
    device: torch.device,
    amp: torch.dtype | None,
) -> dict[str, float]:
    fmt = torch.channels_last if recipe.channels_last else torch.contiguous_format
    n = batch_a.warped.shape[0]
    # One encoder pass over A and B together: the encoder is shared, so this halves its launches.
    warped = torch.cat([batch_a.warped, batch_b.warped]).to(device, non_blocking=True, memory_format=fmt)
    losses: dict[str, float] = {}
    total = torch.zeros((), device=device)
    with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
        code = model.encoder(warped)
        outputs = {"a": model.decoders["a"](code[:n]), "b": model.decoders["b"](code[n:])}
    for name, batch in (("a", batch_a), ("b", batch_b)):
        out = outputs[name].float()
        target = batch.target.to(device, non_blocking=True)
        mask = batch.mask.to(device, non_blocking=True)
        region = batch.region.to(device, non_blocking=True)
        weights = None
        if recipe.face_weight or recipe.eye_mouth_weight:
            weights = weight_map(mask, region, recipe.face_weight, recipe.eye_mouth_weight)
        image = out[:, :3]
        loss = reconstruction_loss(image, target, weights, recipe.loss)
        if out.shape[1] == 4:
            loss = loss + (out[:, 3:] - mask).abs().mean()
        total = total + loss
        losses[name] = float(loss.detach())
        losses[f"l1_{name}"] = float((image.detach() - target).abs().mean())
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(total).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        total.backward()
        optimizer.step()
    return losses
