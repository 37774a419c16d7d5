"""Fixtures of the orchestrator tests: job stores on SQLite and on the PostgreSQL server."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
PG_USERS = ("root", "postgres")
PG_BASE = "postgresql://{user}@127.0.0.1:5432/test"


def _pg_base_url() -> str | None:
    try:
        import psycopg
    except ImportError:
        return None
    for user in PG_USERS:
        url = PG_BASE.format(user=user)
        try:
            with psycopg.connect(url, connect_timeout=3, autocommit=True) as conn:
                conn.execute("SELECT 1")
            return url
        except Exception:
            continue
    return None


@pytest.fixture(scope="session")
def pg_base_url() -> str:
    url = _pg_base_url()
    if url is None:
        pytest.skip("PostgreSQL not reachable at 127.0.0.1:5432/test (users root/postgres, trust auth)")
    return url


@pytest.fixture
def pg_url(pg_base_url: str) -> Iterator[str]:
    """A fresh schema per test, selected through the connection's search_path."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_base_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{pg_base_url}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(pg_base_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.sqlite3'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def job_store(db_url: str):
    from services.orchestrator.store import open_job_store

    store = open_job_store(db_url)
    yield store
    store.close()


def _ffmpeg() -> str:
    from faceswap.media.store import find_ffmpeg

    return find_ffmpeg()


def _cut(src: Path, dst: Path, start: float, seconds: float, scale: str) -> Path:
    subprocess.run(
        [
            *(_ffmpeg(), "-v", "error", "-y", "-ss", str(start), "-i", str(src), "-t", str(seconds)),
            *("-vf", f"scale={scale}", "-c:v", "libx264", "-preset", "veryfast", "-crf", "18"),
            *("-c:a", "aac", "-b:a", "96k", str(dst)),
        ],
        check=True,
    )
    return dst


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """1.2 s of A at 640x360 (with audio) and 1.5 s of B at 256x256, cut from the bundled clips."""
    d = tmp_path_factory.mktemp("clips")
    return {
        "a": _cut(SAMPLES / "liveportrait_s18.mp4", d / "a.mp4", 1.0, 1.2, "640:360"),
        "b": _cut(SAMPLES / "liveportrait_d10.mp4", d / "b.mp4", 2.0, 1.5, "256:256"),
    }
