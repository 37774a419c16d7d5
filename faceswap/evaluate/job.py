"""The quality report of a job: ``evaluate`` on objects of a store, the report written back there."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faceswap.errors import InvalidArgument, NotFound
from faceswap.evaluate.core import EvalResult, evaluate, sheet_key_for
from faceswap.evaluate.inputs import evenly_spaced
from faceswap.evaluate.report import render_html, render_json
from faceswap.evaluate.sheet import encode_png
from faceswap.media.kinds import is_image, is_video
from faceswap.storage import ObjectStore, validate_key, validate_prefix


def evaluate_job(
    store: ObjectStore,
    source_key: str,
    output_key: str,
    faces_b: str | Sequence[str],
    report_key: str,
    json_key: str,
    loss_log_key: str | None = None,
    *,
    sheet_key: str | None = None,
    **options: Any,
) -> EvalResult:
    """``evaluate`` on objects of a store: downloads the inputs to a temporary folder, writes the HTML
    report to ``report_key``, the JSON to ``json_key`` and the contact sheet PNG to ``sheet_key``
    (default: next to the report, ``report.html`` -> ``report_sheet.png``). ``faces_b`` is a list of
    keys, one key, or a prefix (every image/video under it). ``options`` go to ``evaluate``
    (sample_every, max_frames...)."""
    validate_key(report_key)
    validate_key(json_key)
    sheet_key = validate_key(sheet_key or sheet_key_for(report_key))
    b_keys = _face_set_keys(store, faces_b)
    # Only download the B items that can be used: photos beyond ~2x the B-set size are never read.
    images = [k for k in b_keys if is_image(k)]
    videos = [k for k in b_keys if is_video(k)]
    limit = 2 * int(options.get("b_max_faces", 20))
    b_keys = [images[i] for i in evenly_spaced(len(images), limit)] + videos
    with tempfile.TemporaryDirectory(prefix="faceswap-eval-") as tmp:
        folder = Path(tmp)

        def fetch(key: str, name: str) -> Path:
            path = folder / name / Path(key).name
            store.get_file(validate_key(key), path)
            return path

        source = fetch(source_key, "source")
        output = fetch(output_key, "output")
        b_paths = [fetch(key, f"b/{i:05d}") for i, key in enumerate(b_keys)]
        loss_path = fetch(loss_log_key, "loss") if loss_log_key else None
        result = evaluate(source, output, b_paths, loss_log=loss_path, **options)
    result.source_video, result.swapped_video = source_key, output_key
    sheet = result.contact_sheet()
    store.put_bytes(sheet_key, encode_png(sheet))
    store.put_bytes(report_key, render_html(result, sheet=sheet).encode())
    store.put_bytes(json_key, render_json(result).encode())
    return result


def _face_set_keys(store: ObjectStore, faces_b: str | Sequence[str]) -> list[str]:
    """A list of keys, a single key, or a prefix whose images/videos are taken."""
    if not isinstance(faces_b, str):
        keys = [validate_key(k) for k in faces_b]
        if not keys:
            raise InvalidArgument("no B faces given", field="faces_b")
        return keys
    prefix = validate_prefix(faces_b)
    try:
        store.stat(prefix)
        return [prefix]
    except NotFound:
        pass
    keys = [k for k in store.list(prefix) if is_image(k) or is_video(k)]
    if not keys:
        raise NotFound(f"faces_b: no images or videos under {prefix!r}")
    return keys
