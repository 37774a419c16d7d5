"""Long-running operations: any unary RPC of a service, started in the background and watched.

Every server built by ``services.common.server`` serves ``faceswap.v1.OperationService``. A client
(the orchestrator's runner) calls ``StartOperation(name, method, request)``: the method's own handler
(e.g. ``/faceswap.v1.DetectorService/ExtractFaceSet``) runs in a background thread of the server
with the caller's identity, and the call returns at once. ``WatchOperation`` streams the state (first
the current one, then every change, and a heartbeat every ``HEARTBEAT_SECONDS``) until it is done; a
client whose stream ended (its deadline, a dropped connection) re-opens it with the last sequence it
saw and misses nothing. The result is the method's serialized response, or an ``ErrorStatus`` with
the gRPC code and message the method would have returned.

Names are chosen by the caller (``jobs/<id>/detect_a``), which makes starting idempotent: a start of
a name that is running or done returns that operation (a failed-transiently one is started again, as
is a name re-used with another request once the first is done). Operations live in the server's
memory: a restarted service has none, a watcher then gets NOT_FOUND and starts the name again (the
stages are idempotent).

Work inside an operation reports progress with ``report_progress(done, total, message)`` (a no-op
outside an operation); the servicer's ``context.is_active()`` turns false when the operation is
cancelled, as it would for a cancelled call.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc

from faceswap.errors import NotFound, ResourceExhausted, ServiceError
from faceswap.limits import check_stage_request
from services.common.auth import current_client
from services.common.pb.faceswap.v1 import common_pb2, common_pb2_grpc

log = logging.getLogger("faceswap.operations")

SERVICE_NAME = common_pb2.DESCRIPTOR.services_by_name["OperationService"].full_name
HEARTBEAT_SECONDS = 5.0
REPORT_EVERY_SECONDS = 0.5  # progress-only changes bump the sequence at most this often
KEEP_DONE_SECONDS = 3600.0
MAX_RUNNING = 64
MAX_NAME = 512
RESTARTABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE.value[0],
        grpc.StatusCode.DEADLINE_EXCEEDED.value[0],
        grpc.StatusCode.CANCELLED.value[0],
    }
)


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code, self.details = code, details


@dataclass
class _Op:
    name: str
    method: str
    client: str
    request_hash: str
    started: float = field(default_factory=time.monotonic)
    done: bool = False
    sequence: int = 1
    done_units: int = 0
    total_units: int = 0
    message: str = ""
    error: common_pb2.ErrorStatus | None = None
    response: bytes = b""
    ended: float = 0.0
    reported: float = 0.0
    cancelled: threading.Event = field(default_factory=threading.Event)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def to_proto(self) -> common_pb2.Operation:
        with self.cond:
            end = self.ended or time.monotonic()
            return common_pb2.Operation(
                name=self.name,
                method=self.method,
                done=self.done,
                sequence=self.sequence,
                done_units=self.done_units,
                total_units=self.total_units,
                message=self.message,
                error=self.error,
                response=self.response,
                elapsed_seconds=end - self.started,
            )

    def update(self, **changes: Any) -> None:
        with self.cond:
            for key, value in changes.items():
                setattr(self, key, value)
            self.sequence += 1
            self.cond.notify_all()


_current: contextvars.ContextVar[_Op | None] = contextvars.ContextVar("faceswap_operation", default=None)


def report_progress(done: int, total: int = 0, message: str = "") -> None:
    """Progress of the operation this thread runs (no-op outside one)."""
    op = _current.get()
    if op is None:
        return
    changes: dict[str, Any] = {}
    now = time.monotonic()
    if done != op.done_units:
        if not message and not total and now - op.reported < REPORT_EVERY_SECONDS:
            op.done_units = int(done)  # seen by the next change or heartbeat: no message per frame
            return
        changes["done_units"] = int(done)
        changes["reported"] = now
    if total and total != op.total_units:
        changes["total_units"] = int(total)
    if message and message != op.message:
        changes["message"] = message[:500]
    if changes:
        op.update(**changes)


def in_operation() -> bool:
    return _current.get() is not None


class _Context:
    """The subset of grpc.ServicerContext a servicer uses, for a call run as an operation."""

    def __init__(self, op: _Op, metadata: tuple[tuple[str, str], ...]) -> None:
        self._op, self._metadata = op, metadata
        self._code: grpc.StatusCode | None = None
        self._details = ""
        self._callbacks: list[Callable[[], None]] = []

    def is_active(self) -> bool:
        return not self._op.cancelled.is_set()

    def time_remaining(self) -> float | None:
        return None

    def cancel(self) -> None:
        self._op.cancelled.set()

    def add_callback(self, callback: Callable[[], None]) -> bool:
        self._callbacks.append(callback)
        return True

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def peer(self) -> str:
        return "operation"

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise _Abort(code, details)

    def abort_with_status(self, status: Any) -> None:
        raise _Abort(status.code, status.details)

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def set_details(self, details: str) -> None:
        self._details = details

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def details(self) -> str:
        return self._details

    def send_initial_metadata(self, _metadata: Any) -> None:
        return None

    def set_trailing_metadata(self, _metadata: Any) -> None:
        return None

    def set_compression(self, _compression: Any) -> None:
        return None


class HandlerRecorder:
    """Passed to a service's register(): forwards to the real server and remembers the handlers."""

    def __init__(self, server: grpc.Server) -> None:
        self._server = server
        self.generic: list[Any] = []
        self.registered: dict[str, dict[str, grpc.RpcMethodHandler]] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self.generic.extend(handlers)
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        self.registered[service] = dict(handlers)
        self._server.add_registered_method_handlers(service, handlers)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)

    def lookup(self, method: str) -> grpc.RpcMethodHandler | None:
        _, _, rest = method.partition("/")
        service, _, name = rest.partition("/")
        handler = self.registered.get(service, {}).get(name)
        if handler is not None:
            return handler

        @dataclass
        class _Details:
            method: str
            invocation_metadata: tuple[tuple[str, str], ...] = ()

        for generic in self.generic:
            handler = generic.service(_Details(method))
            if handler is not None:
                return handler
        return None


class OperationServicer(common_pb2_grpc.OperationServiceServicer):
    def __init__(
        self,
        recorder: HandlerRecorder,
        error_status: Callable[[BaseException, str], tuple[grpc.StatusCode, str]],
    ) -> None:
        self._recorder = recorder
        self._error_status = error_status
        self._ops: dict[str, _Op] = {}
        self._lock = threading.Lock()
        self.stopping = threading.Event()

    # ---- bookkeeping ---------------------------------------------------------------------------
    def _find(self, name: str) -> _Op:
        with self._lock:
            op = self._ops.get(name)
        if op is None or op.client != current_client():  # another client's operation: not revealed
            raise NotFound(f"no operation {name[:MAX_NAME]!r}")
        return op

    def _expire(self) -> None:
        now = time.monotonic()
        for name, op in list(self._ops.items()):
            if op.done and now - op.ended > KEEP_DONE_SECONDS:
                del self._ops[name]

    def _run(self, op: _Op, handler: grpc.RpcMethodHandler, request: Any, metadata: Any) -> None:
        token = _current.set(op)
        context = _Context(op, metadata)
        try:
            response = handler.unary_unary(request, context)
            if context.code() not in (None, grpc.StatusCode.OK):
                raise _Abort(context.code(), context.details() or context.code().name)
            op.update(done=True, ended=time.monotonic(), response=handler.response_serializer(response))
        except BaseException as exc:  # noqa: BLE001 - every failure becomes the operation's status
            if isinstance(exc, _Abort):
                code, message = exc.code, exc.details
            elif op.cancelled.is_set() and not isinstance(exc, ServiceError):
                code, message = grpc.StatusCode.CANCELLED, "operation cancelled"
            else:
                code, message = self._error_status(exc, op.method)
            op.update(
                done=True,
                ended=time.monotonic(),
                error=common_pb2.ErrorStatus(code=code.value[0], message=message, where=op.method),
            )
        finally:
            _current.reset(token)

    # ---- RPCs ------------------------------------------------------------------------------------
    def StartOperation(
        self, request: common_pb2.StartOperationRequest, context: grpc.ServicerContext
    ) -> common_pb2.StartOperationResponse:
        from faceswap.errors import InvalidArgument, Unavailable

        if not request.name or len(request.name) > MAX_NAME:
            raise InvalidArgument(f"a name of 1..{MAX_NAME} characters is required", field="name")
        if self.stopping.is_set():
            raise Unavailable("the service is draining; start the operation on another replica")
        handler = self._recorder.lookup(request.method)
        if handler is None or handler.unary_unary is None or request.method.startswith(f"/{SERVICE_NAME}/"):
            raise InvalidArgument(
                f"{request.method[:200]!r} is not a unary method of this service", field="method"
            )
        digest = hashlib.sha256(request.method.encode() + b"\0" + request.request).hexdigest()
        client = current_client()
        with self._lock:
            self._expire()
            op = self._ops.get(request.name)
            if op is not None and op.client != client:
                raise NotFound(f"no operation {request.name!r}")  # never run over another client's
            if op is not None and not op.done:
                if op.request_hash != digest:
                    from faceswap.errors import Aborted

                    raise Aborted(f"operation {request.name!r} is running with another request")
                return common_pb2.StartOperationResponse(operation=op.to_proto())
            if (
                op is not None
                and op.request_hash == digest
                and (op.error is None or op.error.code not in RESTARTABLE)
            ):
                return common_pb2.StartOperationResponse(operation=op.to_proto())
            running = sum(1 for o in self._ops.values() if not o.done)
            if running >= MAX_RUNNING:
                raise ResourceExhausted(f"{running} operations are running here (at most {MAX_RUNNING})")
            try:
                message = handler.request_deserializer(request.request)
            except Exception:
                raise InvalidArgument(
                    f"request is not a valid message for {request.method}", field="request"
                ) from None
            check_stage_request(message)  # the limits the method's own call would enforce
            op = _Op(name=request.name, method=request.method, client=client, request_hash=digest)
            self._ops[request.name] = op
        metadata = tuple(context.invocation_metadata() or ())
        run = contextvars.copy_context().run  # the caller's identity goes with the work
        threading.Thread(
            target=run,
            args=(self._run, op, handler, message, metadata),
            name=f"op-{request.name[-24:]}",
            daemon=True,
        ).start()
        return common_pb2.StartOperationResponse(operation=op.to_proto())

    def GetOperation(
        self, request: common_pb2.GetOperationRequest, context: grpc.ServicerContext
    ) -> common_pb2.GetOperationResponse:
        return common_pb2.GetOperationResponse(operation=self._find(request.name).to_proto())

    def WatchOperation(
        self, request: common_pb2.WatchOperationRequest, context: grpc.ServicerContext
    ) -> Iterator[common_pb2.WatchOperationResponse]:
        op = self._find(request.name)
        while True:
            snapshot = op.to_proto()  # a change, or the same state again as a heartbeat
            yield common_pb2.WatchOperationResponse(operation=snapshot)
            if snapshot.done:
                return
            if self.stopping.is_set():
                context.abort(grpc.StatusCode.UNAVAILABLE, "the service is draining; watch again")
            sent = snapshot.sequence
            with op.cond:
                op.cond.wait_for(
                    lambda sent=sent: (
                        op.sequence != sent or op.done or not context.is_active() or self.stopping.is_set()
                    ),
                    timeout=HEARTBEAT_SECONDS,
                )
            if not context.is_active():
                return

    def CancelOperation(
        self, request: common_pb2.CancelOperationRequest, context: grpc.ServicerContext
    ) -> common_pb2.CancelOperationResponse:
        op = self._find(request.name)
        op.cancelled.set()
        with op.cond:
            op.cond.notify_all()
        return common_pb2.CancelOperationResponse(operation=op.to_proto())

    def stop(self) -> None:
        """Drain: new starts are refused, watchers are told UNAVAILABLE (they re-open elsewhere)."""
        self.stopping.set()
        with self._lock:
            ops = list(self._ops.values())
        for op in ops:
            with op.cond:
                op.cond.notify_all()
