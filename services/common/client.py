"""gRPC channels for calling other services: retries on UNAVAILABLE, size limits, deadlines."""

from __future__ import annotations

import json

import grpc

from faceswap.config import load_settings
from services.common.auth import channel_credentials


def _service_config(service_names: list[str]) -> str:
    # Only UNAVAILABLE is retried: it is the one code that means "nothing happened, try again".
    return json.dumps(
        {
            # Headless Services resolve to every pod: spread calls across replicas.
            "loadBalancingConfig": [{"round_robin": {}}],
            "methodConfig": [
                {
                    "name": [{"service": name} for name in service_names] or [{}],
                    "retryPolicy": {
                        "maxAttempts": 5,
                        "initialBackoff": "0.2s",
                        "maxBackoff": "5s",
                        "backoffMultiplier": 2,
                        "retryableStatusCodes": ["UNAVAILABLE"],
                    },
                }
            ],
        }
    )


def make_channel(
    address: str,
    service_names: list[str] | None = None,
    credentials: grpc.ChannelCredentials | None = None,
) -> grpc.Channel:
    settings = load_settings()
    options = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.enable_retries", 1),
        ("grpc.service_config", _service_config(service_names or [])),
    ]
    credentials = credentials or channel_credentials()
    if credentials is not None:
        return grpc.secure_channel(address, credentials, options=options)
    return grpc.insecure_channel(address, options=options)


def default_timeout() -> float:
    return load_settings().rpc_timeout
