"""Shared fixtures: real test data from ../shared/data, storage backends, a local S3 server."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from netutil import free_port, wait_port

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FACESWAP_SHARED_DATA", ROOT.parent / "shared" / "data"))
SAMPLES = ROOT / "samples"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow") or os.environ.get("FACESWAP_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow test: opt in with --runslow or FACESWAP_SLOW=1 (make test-all)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own FACESWAP_DATA_DIR so nothing leaks between tests or into ~."""
    monkeypatch.setenv("FACESWAP_DATA_DIR", str(tmp_path_factory.mktemp("faceswap-data")))
    monkeypatch.setenv("FACESWAP_LOG_FORMAT", "text")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[dict[str, str]]:
    """A real S3 protocol server: $S3_ENDPOINT (e.g. MinIO) if set, else moto in server mode."""
    if os.environ.get("S3_ENDPOINT"):
        yield {
            "S3_ENDPOINT": os.environ["S3_ENDPOINT"],
            "S3_ACCESS_KEY": os.environ.get("S3_ACCESS_KEY", ""),
            "S3_SECRET_KEY": os.environ.get("S3_SECRET_KEY", ""),
        }
        return
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        yield {
            "S3_ENDPOINT": f"http://127.0.0.1:{port}",
            "S3_ACCESS_KEY": "testing",
            "S3_SECRET_KEY": "testing",
        }
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def s3_env(s3_endpoint: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Points the process's configuration at the S3 server, with a fresh bucket per test."""
    values = {**s3_endpoint, "FACESWAP_STORAGE": "s3", "FACESWAP_BUCKET": f"t-{uuid.uuid4().hex[:12]}"}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


@pytest.fixture
def tls_dir(tmp_path: Path) -> Path:
    """A throwaway CA with server and client certificates for localhost (openssl), for TLS tests."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tmp_path)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=test-ca")  # fmt: skip
    for name in ("server", "client"):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={name}")  # fmt: skip
        (tmp_path / f"{name}.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext")  # fmt: skip
    return tmp_path


@pytest.fixture
def local_store(tmp_path: Path):
    from faceswap.storage import LocalStore

    return LocalStore(tmp_path / "store", "test")


@pytest.fixture
def s3_store(s3_env: dict[str, str]):
    from faceswap.storage import open_store

    return open_store()


@pytest.fixture(params=["local", "s3"])
def any_store(request: pytest.FixtureRequest):
    """The storage contract runs against both backends."""
    return request.getfixturevalue(f"{request.param}_store")
