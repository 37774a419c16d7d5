"""The storage contract, run against the local directory and a real S3 protocol server."""

from __future__ import annotations

import hashlib
import io
import os
import resource
import threading

import pytest

from faceswap.errors import InvalidArgument, NotFound
from faceswap.storage import ChecksumMismatch, LocalStore, ObjectStore, validate_key


def test_put_get_overwrite_delete(any_store: ObjectStore) -> None:
    info = any_store.put_bytes("a/b/one.bin", b"hello")
    assert info.size == 5
    assert info.sha256 == hashlib.sha256(b"hello").hexdigest()
    assert any_store.get_bytes("a/b/one.bin") == b"hello"
    assert any_store.stat("a/b/one.bin").sha256 == info.sha256
    any_store.put_bytes("a/b/one.bin", b"world!")
    assert any_store.get_bytes("a/b/one.bin") == b"world!"
    assert any_store.stat("a/b/one.bin").size == 6
    any_store.delete("a/b/one.bin")
    assert not any_store.exists("a/b/one.bin")
    with pytest.raises(NotFound):
        any_store.get_bytes("a/b/one.bin")
    any_store.delete("a/b/one.bin")  # deleting a missing object is not an error


def test_list_by_prefix_is_folder_scoped_and_sorted(any_store: ObjectStore) -> None:
    for key in ["p/2.txt", "p/1.txt", "p/sub/3.txt", "pq/4.txt", "other/5.txt"]:
        any_store.put_bytes(key, key.encode())
    assert list(any_store.list("p")) == ["p/1.txt", "p/2.txt", "p/sub/3.txt"]
    assert list(any_store.list("p/")) == ["p/1.txt", "p/2.txt", "p/sub/3.txt"]
    assert list(any_store.list("missing")) == []
    assert any_store.delete_prefix("p") == 3
    assert list(any_store.list("p")) == []
    assert list(any_store.list("pq")) == ["pq/4.txt"]


def test_json_and_file_round_trip(any_store: ObjectStore, tmp_path) -> None:
    any_store.put_json("meta/x.json", {"a": [1, 2]})
    assert any_store.get_json("meta/x.json") == {"a": [1, 2]}
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(300_000))
    any_store.put_file("files/src.bin", src)
    any_store.get_file("files/src.bin", tmp_path / "out" / "dst.bin")
    assert (tmp_path / "out" / "dst.bin").read_bytes() == src.read_bytes()


@pytest.mark.parametrize(
    "key", ["", "/abs", "a/../b", "..", "a//b", "a/./b", "a\\b", "sp ace", "x/.faceswap-meta/y"]
)
def test_rejected_keys(any_store: ObjectStore, key: str) -> None:
    with pytest.raises(InvalidArgument):
        any_store.put_bytes(key, b"x")
    with pytest.raises(InvalidArgument):
        validate_key(key)


class _PatternStream(io.RawIOBase):
    """Generates size bytes on the fly so the test itself holds nothing big in memory."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.digest = hashlib.sha256()
        self.block = bytes(range(256)) * 4096  # 1 MiB

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        out = (self.block * (n // len(self.block) + 1))[:n]
        self.left -= n
        self.digest.update(out)
        return out


def _peak_rss_growth_mb(fn) -> float:
    """Peak RSS growth while fn runs, sampled from /proc (ru_maxrss never goes down)."""
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            with open("/proc/self/statm") as fh:
                peak[0] = max(peak[0], int(fh.read().split()[1]))
            stop.wait(0.02)

    with open("/proc/self/statm") as fh:
        before = int(fh.read().split()[1])
    thread = threading.Thread(target=sample)
    thread.start()
    try:
        fn()
    finally:
        stop.set()
        thread.join()
    return (peak[0] - before) * resource.getpagesize() / 2**20


def test_streams_large_object_without_holding_it(any_store: ObjectStore, tmp_path) -> None:
    size = 80 * 2**20  # > 64 MiB
    src = _PatternStream(size)
    growth = _peak_rss_growth_mb(lambda: any_store.put_stream("big/blob.bin", src, size))
    assert any_store.stat("big/blob.bin").size == size
    assert any_store.stat("big/blob.bin").sha256 == src.digest.hexdigest()
    assert growth < 48, f"put grew RSS by {growth:.0f} MiB"
    growth = _peak_rss_growth_mb(lambda: any_store.get_file("big/blob.bin", tmp_path / "blob.bin"))
    assert (tmp_path / "blob.bin").stat().st_size == size
    assert growth < 48, f"get grew RSS by {growth:.0f} MiB"
    any_store.delete("big/blob.bin")


def test_local_write_is_atomic_and_corruption_detected(local_store: LocalStore) -> None:
    local_store.put_bytes("k/obj", b"v1" * 1000)

    class Exploding(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            raise OSError("disk went away")

    with pytest.raises(OSError):
        local_store.put_stream("k/obj", Exploding())
    # The old object is intact and no temporary file is visible.
    assert local_store.get_bytes("k/obj") == b"v1" * 1000
    assert list(local_store.list("k")) == ["k/obj"]
    path = local_store.local_path("k/obj")
    assert path is not None
    path.write_bytes(b"v2" * 1000)  # same size, different bytes: bit rot
    with pytest.raises(ChecksumMismatch):
        local_store.get_bytes("k/obj")
