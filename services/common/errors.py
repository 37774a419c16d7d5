"""The gRPC side of the domain errors in ``faceswap.errors``: status code conversion both ways."""

from __future__ import annotations

import grpc

from faceswap.errors import Code, ServiceError


def to_grpc(code: Code | grpc.StatusCode) -> grpc.StatusCode:
    """The ``grpc.StatusCode`` of a domain code (a gRPC code passes through)."""
    return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode[code.name]


def from_rpc_error(exc: grpc.RpcError) -> ServiceError:
    """Maps a failed call to another service back onto a ServiceError with the same code."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = exc.details() if hasattr(exc, "details") else str(exc)
    err = ServiceError(details or str(code))
    err.code = Code[code.name]
    return err
