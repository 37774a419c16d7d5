"""Object storage behind one small interface: a local directory (embedded default) or S3/MinIO.

Contract shared by both backends (tests/common/test_storage.py runs it against each):
- keys are relative, '/'-separated, without '..', '.', empty segments or a leading '/';
- a write is atomic: readers see the whole old object or the whole new one, never a part;
- large objects stream in chunks, nothing holds a whole object in memory;
- every object carries the sha256 of its content, computed by the writer and verified on read.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from faceswap.config import StorageConfig, load_settings
from faceswap.errors import FailedPrecondition, InvalidArgument, NotFound, ServiceError, echo

CHUNK = 1024 * 1024
_KEY_SEGMENT = re.compile(r"^[A-Za-z0-9._@=+,-]+$")
_HIDDEN = ".faceswap-meta"


class ChecksumMismatch(ServiceError):
    """Stored bytes do not match the digest recorded when they were written."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    sha256: str


def validate_key(key: str) -> str:
    """Returns the key if it is a safe relative object key, else raises InvalidArgument."""
    if not key or len(key) > 1024:
        raise InvalidArgument(
            f"object key {echo(key)} is empty or longer than 1024 characters ({len(key)})", field="key"
        )
    if key.startswith("/") or "\\" in key:
        raise InvalidArgument(f"object key {echo(key)} must be relative and use '/'", field="key")
    for part in key.split("/"):
        if part in ("", ".", "..") or not _KEY_SEGMENT.match(part) or part == _HIDDEN:
            raise InvalidArgument(f"object key {echo(key)} has an invalid segment {echo(part)}", field="key")
    return key


def validate_prefix(prefix: str, field: str | None = None) -> str:
    """A folder-like key: relative (a leading '/' is refused, never stripped: '/x/y' is not 'x/y'),
    a trailing '/' is allowed. Raises InvalidArgument naming field (default 'prefix')."""
    if prefix.startswith("/"):
        raise InvalidArgument(
            f"{prefix[:200]!r} must be a relative object prefix (no leading '/')", field=field or "prefix"
        )
    prefix = prefix.rstrip("/")
    if prefix:
        try:
            validate_key(prefix)
        except InvalidArgument as exc:
            if field is None:
                raise
            raise InvalidArgument(exc.message, field=field) from None
    return prefix


def join_key(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


class _HashingReader(io.RawIOBase):
    """Wraps a stream, hashing and counting what passes through (one pass, no buffering)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.digest = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        self.digest.update(data)
        self.size += len(data)
        return data

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


class ObjectStore(ABC):
    """Minimal blob store. Subclasses implement the raw operations; helpers live here once."""

    bucket: str

    @abstractmethod
    def put_stream(self, key: str, stream: BinaryIO, size: int = -1) -> ObjectInfo:
        """Writes the stream's content atomically under key."""

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """A readable stream of the object (caller closes it). Raises NotFound."""

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo:
        """Size and sha256 of an object. Raises NotFound."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys under prefix (as a folder: 'a/b' lists 'a/b/...'), sorted."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Removes an object; a missing one is not an error."""

    # Helpers built on the raw operations.
    def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        return self.put_stream(key, io.BytesIO(data), len(data))

    def put_file(self, key: str, path: str | Path) -> ObjectInfo:
        with open(path, "rb") as fh:
            return self.put_stream(key, fh, os.fstat(fh.fileno()).st_size)

    def put_json(self, key: str, value: object) -> ObjectInfo:
        return self.put_bytes(key, json.dumps(value, indent=1, sort_keys=True).encode())

    def get_bytes(self, key: str, verify: bool = True) -> bytes:
        with self.open(key) as fh:
            data = fh.read()
        if verify:
            expected = self.stat(key).sha256
            if expected and hashlib.sha256(data).hexdigest() != expected:
                raise ChecksumMismatch(f"object {key!r} is corrupt: sha256 mismatch")
        return data

    def get_json(self, key: str) -> object:
        return json.loads(self.get_bytes(key))

    def get_file(self, key: str, path: str | Path, verify: bool = True) -> ObjectInfo:
        """Streams an object to a local file atomically, verifying its checksum."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        info = self.stat(key)
        digest = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, self.open(key) as src:
                for block in iter(lambda: src.read(CHUNK), b""):
                    digest.update(block)
                    out.write(block)
            if verify and info.sha256 and digest.hexdigest() != info.sha256:
                raise ChecksumMismatch(f"object {key!r} is corrupt: sha256 mismatch")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return info

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
            return True
        except NotFound:
            return False

    def delete_prefix(self, prefix: str) -> int:
        keys = list(self.list(prefix))
        for key in keys:
            self.delete(key)
        return len(keys)

    def local_path(self, key: str) -> Path | None:
        """A filesystem path of the object when the backend has one (fast path), else None."""
        return None

    def prune(self, prefix: str) -> int:
        """Removes what is left under prefix besides objects (the local store's empty folders, digest
        sidecars without their object and unfinished ``.part`` files); returns how many. Only for a
        prefix nobody writes to any more (an ended job's). Object stores have nothing to prune."""
        return 0


class LocalStore(ObjectStore):
    """Objects as files under root/bucket; sha256 kept in a sidecar tree the listing hides."""

    def __init__(self, root: str | Path, bucket: str = "faceswap") -> None:
        # bucket "" uses root itself, so a CLI can treat any folder as a store.
        self.bucket = bucket
        self.root = Path(root) / bucket if bucket else Path(root)
        self.meta_root = self.root / _HIDDEN
        self.meta_root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = self.root / validate_key(key)
        self._refuse_links(path)
        return path

    def _meta(self, key: str) -> Path:
        path = self.meta_root / (validate_key(key) + ".json")
        self._refuse_links(path)
        return path

    def _refuse_links(self, path: Path) -> None:
        """A symlink placed inside the store (the object or any folder above it) could point anywhere
        on the server: such a key is refused, never followed."""
        part = path
        while part != self.root and self.root in part.parents:
            if part.is_symlink():
                key = str(path.relative_to(self.root))
                raise InvalidArgument(f"object key {key[:200]!r} names a symbolic link", field="key")
            part = part.parent

    def local_path(self, key: str) -> Path | None:
        path = self._path(key)
        return path if path.is_file() else None

    def put_stream(self, key: str, stream: BinaryIO, size: int = -1) -> ObjectInfo:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = self._meta(key)
        meta.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        written = 0
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                for block in iter(lambda: stream.read(CHUNK), b""):
                    digest.update(block)
                    out.write(block)
                    written += len(block)
            info = ObjectInfo(key, written, digest.hexdigest())
            # Sidecar first: a reader that sees the new object also sees its digest.
            _atomic_write_text(meta, json.dumps({"size": info.size, "sha256": info.sha256}))
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                Path(tmp).unlink(missing_ok=True)
            if not path.exists():  # no object: no sidecar (an orphan would outlive every delete)
                with contextlib.suppress(OSError):
                    meta.unlink(missing_ok=True)
                _remove_empty_parents(path.parent, self.root)
                _remove_empty_parents(meta.parent, self.meta_root)
            raise
        return info

    def open(self, key: str) -> BinaryIO:
        path = self._path(key)
        try:
            # O_NOFOLLOW: a link swapped in after the check above is refused too (ELOOP).
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound(f"object {key[:200]!r} not found") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise InvalidArgument(
                    f"object key {key[:200]!r} names a symbolic link", field="key"
                ) from None
            raise
        return os.fdopen(fd, "rb")

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        if not path.is_file():
            raise NotFound(f"object {key[:200]!r} not found")
        size = path.stat().st_size
        try:
            meta = json.loads(self._meta(key).read_text())
            sha = meta["sha256"] if meta.get("size") == size else ""
        except (OSError, ValueError, KeyError):
            sha = ""  # written by hand (e.g. a user's folder): no recorded digest
        return ObjectInfo(key, size, sha)

    def list(self, prefix: str = "") -> Iterator[str]:
        prefix = validate_prefix(prefix)
        base = self.root / prefix if prefix else self.root
        if not base.is_dir():
            return iter(())
        keys = []
        if base.is_symlink() or any(p.is_symlink() for p in base.parents if self.root in p.parents):
            raise InvalidArgument(f"prefix {prefix[:200]!r} names a symbolic link", field="prefix")
        for dirpath, dirnames, filenames in os.walk(base):  # os.walk never descends into links
            dirnames[:] = sorted(d for d in dirnames if d != _HIDDEN)
            rel = Path(dirpath).relative_to(self.root)
            for name in filenames:
                if name.startswith(".") and name.endswith(".part"):
                    continue
                if os.path.islink(os.path.join(dirpath, name)):
                    continue  # a link placed in the store is no object of ours
                keys.append(str(rel / name) if str(rel) != "." else name)
        return iter(sorted(keys))

    def delete(self, key: str) -> None:
        path, meta = self._path(key), self._meta(key)
        path.unlink(missing_ok=True)
        meta.unlink(missing_ok=True)
        # No empty folders left behind (a job's frames/, faces_a/, ... once their objects are gone).
        _remove_empty_parents(path.parent, self.root)
        _remove_empty_parents(meta.parent, self.meta_root)

    def prune(self, prefix: str) -> int:
        prefix = validate_prefix(prefix)
        if not prefix:
            return 0
        removed = 0
        base, meta_base = self.root / prefix, self.meta_root / prefix
        for top, is_meta in ((base, False), (meta_base, True)):
            if not top.is_dir() or top.is_symlink():
                continue
            for dirpath, dirnames, filenames in os.walk(top, topdown=False):
                here = Path(dirpath)
                for name in filenames:
                    path = here / name
                    orphan = (
                        is_meta
                        and name.endswith(".json")
                        and not (self.root / path.relative_to(self.meta_root).with_suffix("")).is_file()
                    )
                    if orphan or (name.startswith(".") and name.endswith(".part")):
                        path.unlink(missing_ok=True)
                        removed += 1
                for name in dirnames:
                    with contextlib.suppress(OSError):  # not empty: kept
                        (here / name).rmdir()
            with contextlib.suppress(OSError):
                top.rmdir()
            _remove_empty_parents(top.parent, self.meta_root if is_meta else self.root)
        return removed

    def delete_prefix(self, prefix: str) -> int:
        count = super().delete_prefix(prefix)
        prefix = validate_prefix(prefix)
        if prefix:
            shutil.rmtree(self.root / prefix, ignore_errors=True)
            shutil.rmtree(self.meta_root / prefix, ignore_errors=True)
        return count


def _remove_empty_parents(folder: Path, root: Path) -> None:
    """Removes folder and its parents while they are empty, never root or anything above it."""
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:  # not empty (or already gone, or read-only): stop there
            return
        folder = folder.parent


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class S3Store(ObjectStore):
    """S3/MinIO through the minio client. S3 PUTs are atomic; multipart streams large objects."""

    # Small parts, one at a time: memory per upload stays ~2 parts whatever the object's size
    # (5 MiB x 10,000 parts still allows 48 GiB objects).
    PART_SIZE = 5 * 1024 * 1024

    def __init__(self, cfg: StorageConfig) -> None:
        from minio import Minio  # imported here so the local backend needs no S3 client

        endpoint, secure = cfg.endpoint, cfg.secure
        if "://" in endpoint:
            scheme, endpoint = endpoint.split("://", 1)
            secure = scheme == "https"
        self.bucket = cfg.bucket
        self.client = Minio(
            endpoint.rstrip("/"),
            access_key=cfg.access_key or None,
            secret_key=cfg.secret_key or None,
            secure=secure,
            region=cfg.region,
        )
        if not self.client.bucket_exists(self.bucket):
            try:
                self.client.make_bucket(self.bucket)
            except Exception as exc:  # another replica may have created it meanwhile
                if not self.client.bucket_exists(self.bucket):
                    raise FailedPrecondition(f"cannot create bucket {self.bucket!r}: {exc}") from exc

    def put_stream(self, key: str, stream: BinaryIO, size: int = -1) -> ObjectInfo:
        validate_key(key)
        # The digest must be known before the PUT completes to be stored as metadata, so
        # unknown-length or large streams are spooled to a temporary file (disk, not memory).
        with tempfile.TemporaryFile() as spool:
            reader = _HashingReader(stream)
            shutil.copyfileobj(reader, spool, CHUNK)
            spool.seek(0)
            sha = reader.digest.hexdigest()
            self.client.put_object(
                self.bucket,
                key,
                spool,
                reader.size,
                part_size=self.PART_SIZE,
                num_parallel_uploads=1,
                metadata={"sha256": sha},
            )
        return ObjectInfo(key, reader.size, sha)

    def open(self, key: str) -> BinaryIO:
        from minio.error import S3Error

        validate_key(key)
        try:
            resp = self.client.get_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                raise NotFound(f"object {key!r} not found") from None
            raise
        return _ResponseStream(resp)  # type: ignore[return-value]

    def stat(self, key: str) -> ObjectInfo:
        from minio.error import S3Error

        validate_key(key)
        try:
            st = self.client.stat_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                raise NotFound(f"object {key!r} not found") from None
            raise
        meta = {k.lower(): v for k, v in (st.metadata or {}).items()}
        sha = meta.get("x-amz-meta-sha256", "")
        return ObjectInfo(key, int(st.size or 0), sha)

    def list(self, prefix: str = "") -> Iterator[str]:
        prefix = validate_prefix(prefix)
        objects = self.client.list_objects(self.bucket, prefix=prefix + "/" if prefix else "", recursive=True)
        return iter(sorted(o.object_name for o in objects if not o.is_dir))

    def delete(self, key: str) -> None:
        validate_key(key)
        self.client.remove_object(self.bucket, key)

    def delete_prefix(self, prefix: str) -> int:
        from minio.deleteobjects import DeleteObject

        keys = list(self.list(prefix))
        for start in range(0, len(keys), 1000):
            errors = self.client.remove_objects(
                self.bucket, (DeleteObject(k) for k in keys[start : start + 1000])
            )
            for err in errors:
                raise ServiceError(f"delete failed for {err.name}: {err.message}")
        return len(keys)


class _ResponseStream(io.RawIOBase):
    """File-like view of a urllib3 response that releases the connection on close."""

    def __init__(self, resp: object) -> None:
        self._resp = resp

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self._resp.read() if n is None or n < 0 else self._resp.read(n)  # type: ignore[attr-defined]

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._resp.close()  # type: ignore[attr-defined]
            self._resp.release_conn()  # type: ignore[attr-defined]
        super().close()


def open_store(cfg: StorageConfig | None = None) -> ObjectStore:
    """The store the configuration names (FACESWAP_STORAGE / S3_ENDPOINT)."""
    cfg = cfg or load_settings().storage
    if cfg.backend == "s3":
        return S3Store(cfg)
    if cfg.backend == "local":
        return LocalStore(cfg.root, cfg.bucket)
    raise InvalidArgument(f"unknown storage backend {cfg.backend!r} (use 'local' or 's3')")


def upload_tree(store: ObjectStore, src: Path, prefix: str, patterns: Iterable[str] = ("*",)) -> list[str]:
    """Copies the files of a local folder (not recursive) under prefix; returns their keys."""
    keys = []
    seen: set[Path] = set()
    for pattern in patterns:
        for path in sorted(src.glob(pattern)):
            if path.is_file() and path not in seen and not path.name.startswith("."):
                seen.add(path)
                key = join_key(prefix, path.name)
                store.put_file(key, path)
                keys.append(key)
    return keys


def download_tree(store: ObjectStore, prefix: str, dest: Path) -> list[Path]:
    """Copies every object under prefix into dest, keeping relative paths."""
    prefix = validate_prefix(prefix)
    paths = []
    for key in store.list(prefix):
        rel = key[len(prefix) + 1 :] if prefix else key
        path = dest / rel
        store.get_file(key, path)
        paths.append(path)
    return paths
