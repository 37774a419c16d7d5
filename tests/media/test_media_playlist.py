"""Uploads that make ffmpeg read other files: an HLS playlist or a concat list
named .mp4 whose entry is a file outside the store. Probe refuses any format that is not a real
container, and every ffmpeg/ffprobe call opens its input with the file protocol only and the probed
demuxer named explicitly (checked on the real binaries through a logging wrapper)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from faceswap.media.store import find_ffmpeg, probe
from faceswap.storage import LocalStore
from services.common.pb.faceswap.v1 import common_pb2, media_pb2, media_pb2_grpc
from services.common.server import RunningServer, start_server
from services.media.server import build_spec

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "liveportrait_s18.mp4"


@pytest.fixture(scope="module")
def secret(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real video outside the store (think: another client's output on the same host)."""
    path = tmp_path_factory.mktemp("outside") / "secret.mp4"
    subprocess.run(
        [
            find_ffmpeg(),
            "-v",
            "error",
            "-y",
            "-i",
            str(SAMPLE),
            "-t",
            "0.5",
            "-an",
            "-vf",
            "scale=64:64",
            str(path),
        ],
        check=True,
    )
    return path


def _playlists(secret: Path) -> dict[str, bytes]:
    return {
        "hls": (
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n"
            f"#EXTINF:0.5,\nfile://{secret}\n#EXT-X-ENDLIST\n"
        ).encode(),
        "concat": f"ffconcat version 1.0\nfile '{secret}'\n".encode(),
    }


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, LocalStore]]:
    root = tmp_path_factory.mktemp("playlist_store")
    store = LocalStore(root, "faceswap")
    server = start_server(build_spec(store), port=0, metrics_port=0)
    try:
        yield server, store
    finally:
        server.stop(1)


@pytest.mark.parametrize("kind", ["hls", "concat"])
def test_playlist_named_mp4_is_refused(media, secret: Path, kind: str) -> None:
    server, store = media
    key = f"uploads/{kind}.mp4"
    store.put_bytes(key, _playlists(secret)[kind])
    stub = media_pb2_grpc.MediaServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.port}"))
    ref = common_pb2.ObjectRef(key=key)
    with pytest.raises(grpc.RpcError) as err:
        stub.Probe(media_pb2.ProbeRequest(video=ref), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "accepted container" in err.value.details(), err.value.details()
    assert str(secret.parent) not in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        stub.ExtractFrames(
            media_pb2.ExtractFramesRequest(video=ref, output_prefix=f"jobs/{kind}/frames"), timeout=30
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert not list(store.list(f"jobs/{kind}/"))  # not one frame of the outside file


def test_every_ffmpeg_input_names_protocol_and_demuxer(media, tmp_path: Path, monkeypatch) -> None:
    server, store = media
    log = tmp_path / "calls.log"
    wrappers = {}
    for tool in ("ffmpeg", "ffprobe"):
        real = shutil.which(tool)
        if real is None:
            pytest.skip(f"{tool} not on PATH")
        wrapper = tmp_path / tool
        wrapper.write_text(
            f'#!/bin/sh\nprintf "%s\\n" "{tool} $*" >> {shlex.quote(str(log))}\nexec {real} "$@"\n'
        )
        wrapper.chmod(0o755)
        wrappers[tool] = wrapper
    monkeypatch.setenv("FACESWAP_FFMPEG", str(wrappers["ffmpeg"]))
    monkeypatch.setenv("FACESWAP_FFPROBE", str(wrappers["ffprobe"]))
    from faceswap.media.frames import passthrough_args

    passthrough_args.cache_clear()  # cached per binary path; the wrapper is a new path anyway
    store.put_file("uploads/a.mp4", SAMPLE)
    stub = media_pb2_grpc.MediaServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.port}"))
    stub.ExtractFrames(
        media_pb2.ExtractFramesRequest(
            video=common_pb2.ObjectRef(key="uploads/a.mp4"),
            output_prefix="jobs/w/frames",
            range=common_pb2.FrameRange(start=40, end=48),  # a late start: the seek probe runs too
        ),
        timeout=120,
    )
    stub.EncodeVideo(
        media_pb2.EncodeVideoRequest(
            frames_prefix="jobs/w/frames",
            output=common_pb2.ObjectRef(key="jobs/w/out.mp4"),
            audio_from=common_pb2.ObjectRef(key="uploads/a.mp4"),
        ),
        timeout=120,
    )
    calls = [line.split() for line in log.read_text().splitlines()]
    inputs = [c for c in calls if "-i" in c]
    assert len(inputs) >= 4, calls  # probes, decode, encode (with the audio source)
    for call in inputs:
        for at in [i for i, arg in enumerate(call) if arg == "-i"]:
            before = call[:at]
            assert "-protocol_whitelist" in before, call
            allowed = before[len(before) - 1 - before[::-1].index("-protocol_whitelist") + 1]
            assert allowed in ("file", "pipe"), call
            if allowed == "file":
                assert "-f" in before or "-format_whitelist" in before, call
                assert call[at + 1].startswith("file:"), call
    assert probe(Path(os.fspath(store.local_path("jobs/w/out.mp4")))).frame_count == 8
