"""Domain errors that carry a gRPC status code.

Cores raise ``ServiceError`` subclasses; the server interceptor turns them into a gRPC status with
the message, and turns anything unexpected into INTERNAL without leaking a traceback to the client.
"""

from __future__ import annotations

import grpc

ECHO_CHARS = 200  # how much of a client's value an error message repeats
MAX_MESSAGE_CHARS = 2000  # the most of any status message a client gets (the rest is cut)


def echo(value: object, limit: int = ECHO_CHARS) -> str:
    """repr(value) for an error message, cut to about limit characters: a 100 KB name sent by a client
    is not sent back (nor logged, nor stored with the job) whole."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f"{len(value)} chars" if isinstance(value, (str, bytes)) else f"{len(text)} chars"
    return f"{text[:limit]}... ({size})"


def bounded(message: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """A status message cut to limit characters."""
    return message if len(message) <= limit else f"{message[:limit]}... ({len(message)} chars)"


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
