"""B's live face bank is kept on disk: a restarted server (or the next ``faceswap live``) reads it
instead of detecting B's faces again; an unreadable cache file is rebuilt, never fatal."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
from live_helpers import CLIP_B

from faceswap.media.frames import read_frames
from services.live import bank as live_bank


def test_bank_is_cached_on_disk_and_rebuilt_when_unreadable(tmp_path: Path, caplog) -> None:
    photos = tmp_path / "b"
    photos.mkdir()
    for number, image in itertools.islice(read_frames(CLIP_B, step=40), 3):
        cv2.imwrite(str(photos / f"{number:03d}.jpg"), np.array(image))
    built, cached = live_bank.bank_from_path(str(photos), 3, [tmp_path])
    assert not cached and len(built) == 3
    (path,) = (Path(live_bank.data_dir()) / "cache" / "live-banks").iterdir()

    live_bank._cache.clear()  # as a new process: only the disk has it
    again, cached = live_bank.bank_from_path(str(photos), 3, [tmp_path])
    assert cached and np.array_equal(again.index.landmarks, built.index.landmarks)

    live_bank._cache.clear()
    path.write_bytes(b"not a bank")
    rebuilt, cached = live_bank.bank_from_path(str(photos), 3, [tmp_path])
    assert not cached and len(rebuilt) == 3 and "unreadable" in caplog.text
    assert live_bank.FaceBank.loads(path.read_bytes()).index.keys == built.index.keys  # rewritten
