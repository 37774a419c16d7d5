"""Helpers for the reliability suite: a token-protected job API over loopback gRPC, test inputs."""

from __future__ import annotations

import struct
import subprocess
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from faceswap.storage import LocalStore, ObjectStore
from services.common.server import RunningServer, start_server
from services.orchestrator.store import JobStore, open_job_store

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
TOKENS = {"alice": "tok-alice-0123456789", "bob": "tok-bob-0123456789", "svc": "tok-svc-0123456789"}


@dataclass
class Platform:
    jobs_address: str
    objects: ObjectStore
    jobs: JobStore
    data_dir: Path


def platform_env(tmp: Path) -> dict[str, str]:
    return {
        "FACESWAP_DATA_DIR": str(tmp / "data"),
        "FACESWAP_DB_URL": "",
        "FACESWAP_STORAGE": "local",
        "FACESWAP_TOKENS": ",".join(f"{c}:{t}" for c, t in TOKENS.items()),
        "FACESWAP_TOKEN": TOKENS["svc"],  # what the orchestrator sends to the other services
        "FACESWAP_MAX_MESSAGE_MB": "1",
        "FACESWAP_MAX_UPLOAD_MB": "3",
        "FACESWAP_STAGE_RETRY_SECONDS": "2",
        "FACESWAP_POLL_SECONDS": "0.2",
        "FACESWAP_THREADS": "1",
        "FACESWAP_DETECTOR_ADDR": "127.0.0.1:9",  # nothing listens: jobs that pass media fail at detect_a
    }


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """Media + orchestrator in this process, both behind bearer-token auth (no detector)."""
    from services.media.server import build_spec as media_spec
    from services.orchestrator.server import build_spec as jobs_spec

    tmp = tmp_path_factory.mktemp("reliability")
    servers: list[RunningServer] = []
    with pytest.MonkeyPatch.context() as mp:
        for key, value in platform_env(tmp).items():
            mp.setenv(key, value)
        objects = LocalStore(tmp / "data" / "storage", "faceswap")
        jobs = open_job_store(f"sqlite:///{tmp / 'jobs.db'}")
        media = start_server(media_spec(objects), port=0, metrics_port=0)
        servers.append(media)
        mp.setenv("FACESWAP_MEDIA_ADDR", f"127.0.0.1:{media.port}")
        api = start_server(jobs_spec(objects, jobs), port=0, metrics_port=0)
        servers.append(api)
        try:
            yield Platform(f"127.0.0.1:{api.port}", objects, jobs, tmp / "data")
        finally:
            for server in reversed(servers):
                server.stop(1)
            jobs.close()


def cut_clip(src: Path, dst: Path, seconds: float, scale: str = "320:180") -> Path:
    from faceswap.media.store import find_ffmpeg

    subprocess.run(
        [
            *(find_ffmpeg(), "-v", "error", "-y", "-ss", "1", "-i", str(src), "-t", str(seconds)),
            *("-vf", f"scale={scale}", "-c:v", "libx264", "-preset", "veryfast", "-crf", "20"),
            *("-c:a", "aac", "-b:a", "64k", str(dst)),
        ],
        check=True,
    )
    return dst


@pytest.fixture(scope="session")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 1 s of person A at 320x180, with audio."""
    return cut_clip(SAMPLES / "liveportrait_s18.mp4", tmp_path_factory.mktemp("clip") / "a.mp4", 1.0)


def huge_png(path: Path, side: int = 20000) -> Path:
    """A real, valid side x side grayscale PNG (400 MB of pixels, ~400 KB compressed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    comp = zlib.compressobj(9)
    row = bytes(side + 1)  # filter byte + black pixels
    body = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path
