"""Domain errors that carry a gRPC status code.

Cores raise ``ServiceError`` subclasses; the server interceptor turns them into a gRPC status with
the message, and turns anything unexpected into INTERNAL without leaking a traceback to the client.
"""

from __future__ import annotations

import grpc


class ServiceError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidArgument(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message, field=field)


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(ServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class AlreadyExists(ServiceError):
    code = grpc.StatusCode.ALREADY_EXISTS


class ResourceExhausted(ServiceError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Aborted(ServiceError):
    code = grpc.StatusCode.ABORTED


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE


class PermissionDenied(ServiceError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(ServiceError):
    code = grpc.StatusCode.UNAUTHENTICATED


def from_rpc_error(exc: grpc.RpcError) -> ServiceError:
    """Maps a failed call to another service back onto a ServiceError with the same code."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = exc.details() if hasattr(exc, "details") else str(exc)
    err = ServiceError(details or str(code))
    err.code = code
    return err
