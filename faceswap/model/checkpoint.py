"""Checkpoints in object storage: atomic saves, one previous copy kept, strict checks on load.

Layout under a model prefix::

    checkpoint.pt        latest full checkpoint (model, optimiser, step, config, face-set fingerprints)
    checkpoint.json      its metadata (step, config, fingerprints, sha256 of checkpoint.pt)
    checkpoint.prev.pt   the checkpoint before it (+ checkpoint.prev.json), kept so that a broken
                         latest never leaves a run without a good one
    preview.png          preview grid written with each checkpoint

Why this order on save: the new file is written to a temporary file and read back before anything in
the store changes; the current checkpoint is copied to ``.prev`` only when its metadata says it is
intact; then the new one replaces ``checkpoint.pt`` (the store's writes are atomic) and finally the
metadata. A crash at any point leaves a loadable ``checkpoint.pt`` or ``checkpoint.prev.pt``.

A weights-only file (``export_weights``, fp16 by default) holds the model and its metadata without
optimiser state: small enough to keep in the repo as a warm start, and loadable for inference.
"""

from __future__ import annotations

import io
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from faceswap.errors import FailedPrecondition, InvalidArgument, NotFound, ServiceError
from faceswap.model.layout import (  # noqa: F401  (the names callers import from here too)
    CHECKPOINT,
    METADATA,
    PREVIEW,
    PREVIOUS,
    PREVIOUS_METADATA,
    checkpoint_key,
    metadata_key,
    preview_key,
    previous_key,
)
from faceswap.model.network import FaceSwapModel, ModelConfig, build_model_from_config
from faceswap.storage import ObjectStore, join_key

log = logging.getLogger("faceswap.trainer")

FORMAT_FULL = "faceswap-trainer-checkpoint"
FORMAT_WEIGHTS = "faceswap-trainer-weights"
VERSION = 1


@dataclass
class Checkpoint:
    """A loaded checkpoint (full or weights-only)."""

    format: str
    step: int
    config: dict[str, Any]  # preset, size, coverage, model (architecture), train options, ...
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None
    fingerprints: dict[str, Any]
    extra: dict[str, Any]
    source: str = ""  # where it was read from, for messages

    @property
    def model_config(self) -> ModelConfig:
        return ModelConfig.from_dict(self.config.get("model", {}))

    def payload(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "version": VERSION,
            "step": int(self.step),
            "config": self.config,
            "model": self.model,
            "optimizer": self.optimizer,
            "fingerprints": self.fingerprints,
            "extra": self.extra,
        }

    def metadata(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "version": VERSION,
            "step": int(self.step),
            "config": self.config,
            "fingerprints": self.fingerprints,
            "extra": {k: v for k, v in self.extra.items() if isinstance(v, (int, float, str, bool))},
        }


def _parse(raw: Any, source: str) -> Checkpoint:
    if not isinstance(raw, dict) or raw.get("format") not in (FORMAT_FULL, FORMAT_WEIGHTS):
        raise FailedPrecondition(f"{source} is not a faceswap trainer checkpoint")
    if raw.get("version") != VERSION:
        raise FailedPrecondition(
            f"{source} has checkpoint version {raw.get('version')!r}, expected {VERSION}"
        )
    try:
        return Checkpoint(
            format=raw["format"],
            step=int(raw["step"]),
            config=dict(raw["config"]),
            model=dict(raw["model"]),
            optimizer=raw.get("optimizer"),
            fingerprints=dict(raw.get("fingerprints") or {}),
            extra=dict(raw.get("extra") or {}),
            source=source,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise FailedPrecondition(f"{source} is malformed: {exc}") from exc


def read_checkpoint_file(path: str | Path, source: str | None = None) -> Checkpoint:
    """Loads a checkpoint file (FailedPrecondition when corrupt or not a checkpoint)."""
    source = source or str(path)
    try:
        # weights_only: a checkpoint is data, never code to run.
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        # torch's own messages run to many lines of advice; the exception type says enough.
        raise FailedPrecondition(f"{source} is corrupt or unreadable ({type(exc).__name__})") from exc
    return _parse(raw, source)


def read_checkpoint(store: ObjectStore, key: str) -> Checkpoint:
    """Reads a checkpoint object, verifying the store's checksum. NotFound / FailedPrecondition."""
    if not store.exists(key):
        raise NotFound(f"checkpoint {key!r} not found")
    with tempfile.TemporaryDirectory(prefix="faceswap-ckpt-") as tmp:
        path = Path(tmp) / CHECKPOINT
        try:
            store.get_file(key, path)
        except NotFound:
            raise
        except ServiceError as exc:
            raise FailedPrecondition(f"checkpoint {key!r} is corrupt: {exc.message}") from exc
        return read_checkpoint_file(path, source=f"checkpoint {key!r}")


def _current_is_intact(store: ObjectStore, model_prefix: str) -> bool:
    """True when checkpoint.pt matches the digest its metadata recorded (cheap: no load)."""
    try:
        meta = store.get_json(metadata_key(model_prefix))
        info = store.stat(checkpoint_key(model_prefix))
    except (ServiceError, ValueError):
        return False
    return isinstance(meta, dict) and bool(info.sha256) and meta.get("sha256") == info.sha256


def _copy(store: ObjectStore, src: str, dst: str) -> None:
    with store.open(src) as fh:
        store.put_stream(dst, fh, store.stat(src).size)


def save_checkpoint(store: ObjectStore, model_prefix: str, ckpt: Checkpoint) -> dict[str, Any]:
    """Saves atomically, keeping the previous intact checkpoint. Returns the metadata written."""
    with tempfile.TemporaryDirectory(prefix="faceswap-ckpt-") as tmp:
        path = Path(tmp) / CHECKPOINT
        torch.save(ckpt.payload(), path)
        # Read it back before touching the store: a broken save never replaces a good checkpoint.
        read_checkpoint_file(path, source="new checkpoint")
        if store.exists(checkpoint_key(model_prefix)) and _current_is_intact(store, model_prefix):
            _copy(store, checkpoint_key(model_prefix), previous_key(model_prefix))
            _copy(store, metadata_key(model_prefix), join_key(model_prefix, PREVIOUS_METADATA))
        info = store.put_file(checkpoint_key(model_prefix), path)
    meta = {**ckpt.metadata(), "sha256": info.sha256, "size_bytes": info.size, "saved_at": time.time()}
    store.put_json(metadata_key(model_prefix), meta)
    return meta


def has_checkpoint(store: ObjectStore, model_prefix: str) -> bool:
    return store.exists(checkpoint_key(model_prefix))


def load_latest(store: ObjectStore, model_prefix: str) -> Checkpoint:
    """The latest checkpoint under a model prefix; a corrupt one is rejected (FailedPrecondition)."""
    key = checkpoint_key(model_prefix)
    try:
        return read_checkpoint(store, key)
    except FailedPrecondition as exc:
        hint = ""
        if store.exists(previous_key(model_prefix)):
            hint = (
                f"; the previous checkpoint {previous_key(model_prefix)!r} is kept: move it to {key!r} "
                "to resume from it"
            )
        raise FailedPrecondition(f"{exc.message}{hint}") from exc


BUILTIN_DIR = Path(__file__).resolve().parent / "warmstart"
BUILTIN_SCHEME = "builtin:"


def builtin_path(name: str, field: str = "warm_start") -> Path:
    """A warm start bundled with the code: ``builtin:demo`` = faceswap/model/warmstart/demo.pt."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise InvalidArgument(f"bad builtin checkpoint name {name!r}", field=field)
    return BUILTIN_DIR / f"{name}.pt"


def resolve_checkpoint_ref(store: ObjectStore, ref: str, field: str = "warm_start") -> Checkpoint:
    """A checkpoint named by an object key, a model prefix holding checkpoint.pt, or builtin:NAME
    (``field``: the request field a bad reference is reported against)."""
    if not ref:
        raise InvalidArgument("checkpoint reference is empty", field=field)
    if ref.startswith(BUILTIN_SCHEME):
        path = builtin_path(ref[len(BUILTIN_SCHEME) :], field)
        if not path.is_file():
            raise NotFound(f"no bundled checkpoint {ref!r} (expected {path})")
        return read_checkpoint_file(path, source=f"checkpoint {ref!r}")
    try:
        candidates = [ref] if ref.endswith(".pt") else [checkpoint_key(ref), ref]
        for key in candidates:
            if store.exists(key):
                return read_checkpoint(store, key)
    except InvalidArgument as exc:
        raise InvalidArgument(exc.message, field=field) from exc
    raise NotFound(f"checkpoint {ref!r} not found (neither a checkpoint object nor a model prefix)")


def model_from_checkpoint(ckpt: Checkpoint, device: str | torch.device = "cpu") -> FaceSwapModel:
    """Builds the checkpoint's architecture and loads its weights (FailedPrecondition on mismatch)."""
    model = build_model_from_config(ckpt.config.get("model", {}))
    load_weights(model, ckpt)
    return model.to(device)


def load_weights(model: nn.Module, ckpt: Checkpoint) -> None:
    """Copies the checkpoint's weights into model; another architecture is a FailedPrecondition."""
    state = {k: v.float() if v.is_floating_point() else v for k, v in ckpt.model.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0][:300]
        raise FailedPrecondition(
            f"{ckpt.source} was made for another architecture "
            f"(preset {ckpt.config.get('preset')!r}, size {ckpt.config.get('size')}): {first}"
        ) from exc


def load_for_inference(
    store: ObjectStore, model_prefix: str, device: str | torch.device = "cpu"
) -> tuple[FaceSwapModel, dict[str, Any]]:
    """The trained model in eval mode and its config (preset, size, coverage, mask, step, ...).

    model_prefix may also be the key of a checkpoint or exported weights file.
    NotFound when there is none, FailedPrecondition when it is corrupt or incompatible.
    """
    key = checkpoint_key(model_prefix) if not model_prefix.endswith(".pt") else model_prefix
    if not store.exists(key):
        raise NotFound(f"no trained model at {model_prefix!r} (missing {key!r})")
    ckpt = (
        read_checkpoint(store, key)
        if key != checkpoint_key(model_prefix)
        else load_latest(store, model_prefix)
    )
    model = model_from_checkpoint(ckpt, device)
    model.eval()
    config = {**ckpt.config, "step": ckpt.step, "fingerprints": ckpt.fingerprints}
    return model, config


def export_weights(ckpt: Checkpoint, fp16: bool = True) -> bytes:
    """A weights-only checkpoint (no optimiser state), fp16 by default: a small warm start."""
    dtype = torch.float16 if fp16 else torch.float32
    weights = Checkpoint(
        format=FORMAT_WEIGHTS,
        step=ckpt.step,
        config=ckpt.config,
        model={k: v.to(dtype) if v.is_floating_point() else v for k, v in ckpt.model.items()},
        optimizer=None,
        fingerprints=ckpt.fingerprints,
        extra={**ckpt.extra, "exported_fp16": fp16},
    )
    buf = io.BytesIO()
    torch.save(weights.payload(), buf)
    return buf.getvalue()
