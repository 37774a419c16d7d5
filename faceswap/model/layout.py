"""The file names of a model prefix (what ``faceswap.model.checkpoint`` writes there), without torch:
the job API and the Kubernetes runner name these objects too.

    checkpoint.pt        latest full checkpoint
    checkpoint.json      its metadata
    checkpoint.prev.pt   the checkpoint before it (+ checkpoint.prev.json)
    preview.png          preview grid written with each checkpoint
"""

from __future__ import annotations

from faceswap.storage import join_key

CHECKPOINT = "checkpoint.pt"
METADATA = "checkpoint.json"
PREVIOUS = "checkpoint.prev.pt"
PREVIOUS_METADATA = "checkpoint.prev.json"
PREVIEW = "preview.png"


def checkpoint_key(model_prefix: str) -> str:
    return join_key(model_prefix, CHECKPOINT)


def metadata_key(model_prefix: str) -> str:
    return join_key(model_prefix, METADATA)


def previous_key(model_prefix: str) -> str:
    return join_key(model_prefix, PREVIOUS)


def preview_key(model_prefix: str) -> str:
    return join_key(model_prefix, PREVIEW)
