"""The local store refuses symbolic links placed inside it and leaves nothing behind its objects:
no empty folders once they are deleted, no digest sidecar without its object."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from faceswap.errors import InvalidArgument
from faceswap.storage import LocalStore, validate_prefix


def _empty_dirs(top: Path) -> list[Path]:
    return [p for p in top.rglob("*") if p.is_dir() and not any(p.iterdir())]


def test_links_inside_the_store_are_refused(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "storage", "b")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"secret")
    (store.root / "jobs").mkdir()
    (store.root / "jobs" / "linked").symlink_to(outside)  # a folder link
    (store.root / "uploads").mkdir()
    (store.root / "uploads" / "a.png").symlink_to(outside / "secret.png")  # a file link
    for key in ("jobs/linked/secret.png", "uploads/a.png"):
        for op in (store.open, store.stat, store.get_bytes, store.local_path):
            with pytest.raises(InvalidArgument, match="symbolic link"):
                op(key)
        with pytest.raises(InvalidArgument, match="symbolic link"):
            store.put_bytes(key, b"overwrite")
    with pytest.raises(InvalidArgument, match="symbolic link"):
        list(store.list("jobs/linked"))
    assert list(store.list("uploads")) == [] and list(store.list("jobs")) == []
    assert (outside / "secret.png").read_bytes() == b"secret"


def test_deletes_leave_no_empty_folders_or_sidecars(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "storage", "b")
    keys = [f"jobs/j1/frames/{i:08d}.png" for i in range(3)] + ["jobs/j1/faces_a/faces/0_0.png"]
    for key in keys:
        store.put_bytes(key, b"x")
    store.put_bytes("jobs/j1/model/checkpoint.pt", b"m")
    for key in keys:
        store.delete(key)
    assert sorted(p.name for p in (store.root / "jobs" / "j1").iterdir()) == ["model"]
    assert _empty_dirs(store.root) == []
    assert [p.name for p in (store.meta_root / "jobs" / "j1").iterdir()] == ["model"]
    store.delete("jobs/j1/model/checkpoint.pt")
    assert not (store.root / "jobs").exists() and not (store.meta_root / "jobs").exists()
    assert store.root.is_dir() and store.meta_root.is_dir()


def test_a_failed_write_leaves_no_sidecar_and_prune_removes_leftovers(tmp_path: Path, monkeypatch) -> None:
    store = LocalStore(tmp_path / "storage", "b")
    real_replace = os.replace

    def failing_replace(src, dst):  # the object's own rename fails (storage gone read-only)
        if str(dst).endswith("frame.png"):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        store.put_bytes("jobs/j2/frames/frame.png", b"x")
    monkeypatch.undo()
    assert list(store.meta_root.rglob("*.json")) == [] and list(store.root.rglob("*.part")) == []
    # Leftovers of a crash (a sidecar whose object never landed, an unfinished write) are pruned.
    store.put_bytes("jobs/j3/frames/a.png", b"x")
    (store.root / "jobs/j3/frames/a.png").unlink()
    (store.root / "jobs/j3/frames/.b.png.123.part").write_bytes(b"half")
    store.put_bytes("jobs/j3/model/checkpoint.pt", b"m")
    assert store.prune("jobs/j3") == 2
    assert sorted(
        str(p.relative_to(store.root)) for p in (store.root / "jobs").rglob("*") if p.is_file()
    ) == ["jobs/j3/model/checkpoint.pt"]
    assert [p.relative_to(store.meta_root).as_posix() for p in store.meta_root.rglob("*.json")] == [
        "jobs/j3/model/checkpoint.pt.json"
    ]
    assert _empty_dirs(store.root) == []


def test_absolute_prefix_is_refused_not_stripped() -> None:
    assert validate_prefix("jobs/x/frames/") == "jobs/x/frames"
    with pytest.raises(InvalidArgument, match=r"^output_prefix: '/x/y' must be a relative"):
        validate_prefix("/x/y", field="output_prefix")
