"""A storage fault inside a service: read-only or full storage is UNAVAILABLE
(retryable) over real gRPC, and the message never carries the server's file path."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import BinaryIO

import grpc
import pytest

from faceswap.storage import LocalStore, ObjectInfo
from services.common.pb.faceswap.v1 import common_pb2, media_pb2, media_pb2_grpc
from services.common.server import start_server
from services.media.server import build_spec

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "liveportrait_s18.mp4"


class ReadOnlyStore(LocalStore):
    """A real local store whose writes fail the way a read-only mount does."""

    read_only = True

    def put_stream(self, key: str, stream: BinaryIO, size: int = -1) -> ObjectInfo:
        if self.read_only:
            raise OSError(errno.EROFS, "Read-only file system", str(self.root / "secret" / key))
        return super().put_stream(key, stream, size)


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC])
def test_storage_fault_is_unavailable_without_a_path(tmp_path: Path, code: int) -> None:
    store = ReadOnlyStore(tmp_path / "storage", "faceswap")
    store.read_only = False
    store.put_file("uploads/a.mp4", SAMPLE)
    store.read_only = True
    if code == errno.ENOSPC:
        store.put_stream = lambda key, *a, **k: (_ for _ in ()).throw(  # type: ignore[method-assign]
            OSError(errno.ENOSPC, "No space left on device", str(tmp_path / key))
        )
    server = start_server(build_spec(store), port=0, metrics_port=0)
    try:
        stub = media_pb2_grpc.MediaServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.port}"))
        with pytest.raises(grpc.RpcError) as err:
            stub.ExtractFrames(
                media_pb2.ExtractFramesRequest(
                    video=common_pb2.ObjectRef(key="uploads/a.mp4"),
                    output_prefix="jobs/x/frames",
                    range=common_pb2.FrameRange(end=3),
                ),
                timeout=60,
            )
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value.details()
        assert "storage unavailable" in err.value.details()
        assert str(tmp_path) not in err.value.details() and "secret" not in err.value.details()
    finally:
        server.stop(1)
