"""Configuration from environment variables, with documented defaults.

Every variable is listed in ``ENV_DOCS`` so the README and ``faceswap config`` show the same table.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

ENV_DOCS: dict[str, tuple[str, str]] = {
    "FACESWAP_STORAGE": ("local", "object store backend: 'local' (a directory) or 's3' (S3/MinIO)"),
    "FACESWAP_DATA_DIR": ("~/.faceswap", "root of local storage, the job database and logs"),
    "FACESWAP_BUCKET": ("faceswap", "bucket (S3) or top folder (local) for all objects"),
    "S3_ENDPOINT": ("", "S3/MinIO endpoint, host:port or URL; setting it implies FACESWAP_STORAGE=s3"),
    "S3_ACCESS_KEY": ("", "S3 access key"),
    "S3_SECRET_KEY": ("", "S3 secret key"),
    "S3_REGION": ("us-east-1", "S3 region"),
    "S3_SECURE": ("false", "use https for S3_ENDPOINT without a scheme"),
    "FACESWAP_DB_URL": ("", "job database: empty = SQLite in FACESWAP_DATA_DIR, or postgresql://..."),
    "FACESWAP_MEDIA_ADDR": ("127.0.0.1:50051", "media service address"),
    "FACESWAP_DETECTOR_ADDR": ("127.0.0.1:50052", "detector service address"),
    "FACESWAP_TRAINER_ADDR": ("127.0.0.1:50053", "trainer service address"),
    "FACESWAP_CONVERTER_ADDR": ("127.0.0.1:50054", "converter service address"),
    "FACESWAP_JOBS_ADDR": ("127.0.0.1:50050", "job API (orchestrator) address"),
    "FACESWAP_METRICS_PORT": ("0", "Prometheus /metrics port of a service (0 = gRPC port + 1000)"),
    "FACESWAP_MAX_MESSAGE_MB": ("16", "largest gRPC message a server or client accepts, MiB"),
    "FACESWAP_LOG_LEVEL": ("INFO", "log level"),
    "FACESWAP_LOG_FORMAT": ("json", "'json' (one object per line) or 'text'"),
    "FACESWAP_RPC_TIMEOUT": ("600", "default deadline for internal RPCs, seconds"),
    "FACESWAP_THREADS": ("0", "torch/OpenCV threads (0 = all cores)"),
    "FACESWAP_TOKENS_FILE": ("", "file of 'client-id token' lines; enables bearer-token auth"),
    "FACESWAP_TOKENS": ("", "client:token,client:token (alternative to FACESWAP_TOKENS_FILE)"),
    "FACESWAP_TOKEN": ("", "bearer token a client (CLI, orchestrator) sends"),
    "FACESWAP_TLS_CERT": ("", "PEM certificate: server TLS, or the client cert for mutual TLS"),
    "FACESWAP_TLS_KEY": ("", "PEM private key for FACESWAP_TLS_CERT"),
    "FACESWAP_TLS_CA": ("", "PEM CA: clients trust it; servers given it require client certs (mTLS)"),
    "FACESWAP_BIND_HOST": (
        "127.0.0.1",
        "interface servers (gRPC and metrics) listen on: loopback by default; '[::]' = all (IPv6 and IPv4)",
    ),
    "FACESWAP_HEALTH_PORT": (
        "0",
        "extra plaintext port serving only grpc.health.v1, for probes with TLS (0 = off)",
    ),
    "FACESWAP_MAX_CONNECTION_AGE_S": (
        "0",
        "servers close connections older than this (grpc.max_connection_age_ms) so clients see new pods (0 = never)",
    ),
    "FACESWAP_MAX_STREAMS": (
        "256",
        "open server streams (watch, download) per server; beyond: RESOURCE_EXHAUSTED",
    ),
    "FACESWAP_MAX_STREAMS_PER_CLIENT": ("128", "open server streams per client identity and server"),
    "FACESWAP_STAGE_DEADLINE_S": ("0", "longest a whole job stage may run, seconds (0 = no limit)"),
    "FACESWAP_INTERNAL_CLIENTS": (
        "orchestrator,worker",
        "with tokens on, the client ids stage services (media, detector, trainer, converter) accept; "
        "the id of the service's own FACESWAP_TOKEN is accepted too",
    ),
}


def env(name: str, docs: dict[str, tuple[str, str]] = ENV_DOCS) -> str:
    """The variable's value, or its documented default in ``docs`` (a module's own table)."""
    return os.environ.get(name, docs[name][0])


@dataclass(frozen=True)
class StorageConfig:
    backend: str
    root: Path
    bucket: str
    endpoint: str = ""
    access_key: str = ""
    secret_key: str = ""
    region: str = "us-east-1"
    secure: bool = False


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    storage: StorageConfig
    db_url: str
    addresses: dict[str, str] = field(default_factory=dict)
    max_message_bytes: int = 16 * 1024 * 1024
    rpc_timeout: float = 600.0
    threads: int = 0


def data_dir() -> Path:
    return Path(os.path.expanduser(env("FACESWAP_DATA_DIR")))


def load_settings() -> Settings:
    """Reads the environment now (never at import time, so tests can set variables)."""
    root = data_dir()
    endpoint = env("S3_ENDPOINT")
    backend = env("FACESWAP_STORAGE")
    if endpoint and "FACESWAP_STORAGE" not in os.environ:
        backend = "s3"
    storage = StorageConfig(
        backend=backend,
        root=root / "storage",
        bucket=env("FACESWAP_BUCKET"),
        endpoint=endpoint,
        access_key=env("S3_ACCESS_KEY"),
        secret_key=env("S3_SECRET_KEY"),
        region=env("S3_REGION"),
        secure=env("S3_SECURE").lower() in ("1", "true", "yes"),
    )
    addresses = {
        name: env(f"FACESWAP_{name.upper()}_ADDR")
        for name in ("media", "detector", "trainer", "converter", "jobs")
    }
    return Settings(
        data_dir=root,
        storage=storage,
        db_url=env("FACESWAP_DB_URL"),
        addresses=addresses,
        max_message_bytes=int(env("FACESWAP_MAX_MESSAGE_MB")) * 1024 * 1024,
        rpc_timeout=float(env("FACESWAP_RPC_TIMEOUT")),
        threads=int(env("FACESWAP_THREADS")),
    )
