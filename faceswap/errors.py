"""Domain errors, each with a status code.

Cores raise ``ServiceError`` subclasses. ``Code`` has the names and numbers of the gRPC status codes
without importing gRPC; the server bootstrap (``services/common/server.py``) turns an error into a
gRPC status with the message, and anything unexpected into INTERNAL without a traceback.
"""

from __future__ import annotations

import enum


class Code(enum.Enum):
    """The canonical status codes (google.rpc.Code), value ``(number, text)`` like ``grpc.StatusCode``.

    A member compares equal to the ``grpc.StatusCode`` of the same name (and hashes the same), so code
    on the gRPC side can compare or look up either kind; ``services.common.errors.to_grpc`` converts.
    """

    OK = (0, "ok")
    CANCELLED = (1, "cancelled")
    UNKNOWN = (2, "unknown")
    INVALID_ARGUMENT = (3, "invalid argument")
    DEADLINE_EXCEEDED = (4, "deadline exceeded")
    NOT_FOUND = (5, "not found")
    ALREADY_EXISTS = (6, "already exists")
    PERMISSION_DENIED = (7, "permission denied")
    RESOURCE_EXHAUSTED = (8, "resource exhausted")
    FAILED_PRECONDITION = (9, "failed precondition")
    ABORTED = (10, "aborted")
    OUT_OF_RANGE = (11, "out of range")
    UNIMPLEMENTED = (12, "unimplemented")
    INTERNAL = (13, "internal")
    UNAVAILABLE = (14, "unavailable")
    DATA_LOSS = (15, "data loss")
    UNAUTHENTICATED = (16, "unauthenticated")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, enum.Enum):
            return other.name == self.name and other.value == self.value
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._name_)  # the same as any Enum member's hash, so grpc.StatusCode keys match


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
    code: Code = Code.INTERNAL

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidArgument(ServiceError):
    code = Code.INVALID_ARGUMENT

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message, field=field)


class NotFound(ServiceError):
    code = Code.NOT_FOUND


class FailedPrecondition(ServiceError):
    code = Code.FAILED_PRECONDITION


class AlreadyExists(ServiceError):
    code = Code.ALREADY_EXISTS


class ResourceExhausted(ServiceError):
    code = Code.RESOURCE_EXHAUSTED


class Aborted(ServiceError):
    code = Code.ABORTED


class Unavailable(ServiceError):
    code = Code.UNAVAILABLE


class PermissionDenied(ServiceError):
    code = Code.PERMISSION_DENIED


class Unauthenticated(ServiceError):
    code = Code.UNAUTHENTICATED
