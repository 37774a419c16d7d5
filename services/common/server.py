"""gRPC server bootstrap shared by every service.

``serve()`` gives each service the same production basics: health checking (grpc.health.v1),
reflection, Prometheus metrics with per-RPC counters and latency, domain errors mapped to gRPC status
codes, message size limits, structured logging, and a graceful drain on SIGTERM/SIGINT.
A service's server.py only builds its servicer and calls ``serve``.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import threading
import traceback
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from faceswap.config import env, load_settings
from faceswap.errors import ServiceError, bounded
from faceswap.limits import check_stage_request
from services.common.auth import HEALTH_PREFIXES, auth_interceptors, current_client
from services.common.auth import server_credentials as tls_server_credentials
from services.common.errors import to_grpc
from services.common.logging import setup_logging
from services.common.metrics import instrument, split_method, start_metrics_server
from services.common.operations import SERVICE_NAME as OPERATIONS_SERVICE
from services.common.operations import HandlerRecorder, OperationServicer
from services.common.pb.faceswap.v1 import common_pb2_grpc

log = logging.getLogger("faceswap.server")
STORAGE_ERRNOS = frozenset({errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EACCES, errno.EPERM})


def error_status(exc: BaseException, method: str) -> tuple[grpc.StatusCode, str]:
    """The status a client gets for an exception: a domain error's own, else INTERNAL (logged)."""
    if isinstance(exc, ServiceError):
        return to_grpc(exc.code), bounded(exc.message)
    if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:
        # Storage full, read-only or failing: worth retrying later; never the server's own path.
        log.warning("storage error in %s: %s", method, exc)
        return grpc.StatusCode.UNAVAILABLE, f"storage unavailable: {os.strerror(exc.errno)}"
    log.error("unhandled error in %s: %s", method, "".join(traceback.format_exception(exc)))
    # The client gets a short reason, never a traceback.
    return grpc.StatusCode.INTERNAL, bounded(f"internal error in {method}: {type(exc).__name__}: {exc}")


def _abort_for(exc: BaseException, context: grpc.ServicerContext, method: str) -> None:
    context.abort(*error_status(exc, method))


def _client_gone(context: grpc.ServicerContext, method: str) -> bool:
    """True when the call failed because its client cancelled it (or went away): then it is
    CANCELLED, logged in one line, not an INTERNAL error with a traceback."""
    if context.is_active():
        return False
    log.info("%s cancelled by the client", method)
    context.set_code(grpc.StatusCode.CANCELLED)  # what the metrics count
    return True


class StreamLimits:
    """Open server streams per server and per client: each one holds a server thread, so they are
    counted and refused with RESOURCE_EXHAUSTED beyond FACESWAP_MAX_STREAMS(_PER_CLIENT), which
    keeps threads free for unary calls and health checks."""

    def __init__(self, total: int, per_client: int) -> None:
        self.total, self.per_client = max(1, total), max(1, per_client)
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()
        self.draining = threading.Event()

    def acquire(self, client: str) -> str:
        """'' when the stream may open, else the reason it may not."""
        with self._lock:
            if sum(self._open.values()) >= self.total:
                return f"{self.total} streams are open on this server (FACESWAP_MAX_STREAMS); retry later"
            if self._open.get(client, 0) >= self.per_client:
                return f"{self.per_client} streams of this client are open (FACESWAP_MAX_STREAMS_PER_CLIENT)"
            self._open[client] = self._open.get(client, 0) + 1
            return ""

    def release(self, client: str) -> None:
        with self._lock:
            self._open[client] -= 1
            if not self._open[client]:
                del self._open[client]


def _map_errors(
    behavior: Callable[..., Any],
    method: str,
    streaming_response: bool,
    streams: StreamLimits | None = None,
) -> Callable[..., Any]:
    if streaming_response:

        def stream_handler(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            client = current_client()
            if streams is not None:
                refused = streams.acquire(client)
                if refused:
                    context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refused)
            try:
                check_stage_request(request)
                yield from behavior(request, context)
                if streams is not None and streams.draining.is_set():
                    # The stream ended because the server drains: the client must reconnect (to
                    # another replica or the restarted process), not take it as the end.
                    context.abort(grpc.StatusCode.UNAVAILABLE, "the server is draining; reconnect")
            except grpc.RpcError:
                _client_gone(context, method)
                raise
            except Exception as exc:
                if context.code() is not None and context.code() != grpc.StatusCode.OK:
                    raise
                if _client_gone(context, method):
                    return
                _abort_for(exc, context, method)
            finally:
                if streams is not None:
                    streams.release(client)

        return stream_handler

    def unary_handler(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            check_stage_request(request)
            return behavior(request, context)
        except Exception as exc:
            if type(exc).__name__ == "_AbortError" or (
                context.code() is not None and context.code() != grpc.StatusCode.OK
            ):
                raise
            if _client_gone(context, method):
                # The RpcError the request stream raised is one grpc knows: re-raised, it is not
                # logged again; anything else is replaced by an abort (no traceback either).
                if isinstance(exc, grpc.RpcError):
                    raise
                context.abort(grpc.StatusCode.CANCELLED, "cancelled by the client")
            _abort_for(exc, context, method)

    return unary_handler


class ServiceInterceptor(grpc.ServerInterceptor):
    """Metrics + error mapping around every handler (health and reflection included), and the
    stream limits (health and reflection excluded)."""

    def __init__(self, streams: StreamLimits | None = None) -> None:
        self.streams = streams

    def intercept_service(self, continuation: Callable[..., Any], handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        service, method = split_method(handler_call_details.method)
        for kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
            behavior = getattr(handler, kind)
            if behavior is None:
                continue
            streaming_response = kind.endswith("_stream")
            limited = None if handler_call_details.method.startswith(HEALTH_PREFIXES) else self.streams
            wrapped = instrument(
                _map_errors(behavior, f"{service}/{method}", streaming_response, limited),
                service,
                method,
                streaming_response,
            )
            factory = getattr(grpc, f"{kind}_rpc_method_handler")
            return factory(
                wrapped,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


@dataclass
class ServiceSpec:
    """What a service contributes: its name, how to register its servicer(s), extra interceptors."""

    name: str
    register: Callable[[grpc.Server], None]
    service_names: list[str]
    interceptors: list[grpc.ServerInterceptor] = field(default_factory=list)
    on_stop: Callable[[], None] | None = None
    # Public services (the job API) take any client's token; the others (media, detector, trainer,
    # converter) only the orchestrator's and workers' when tokens are on (FACESWAP_INTERNAL_CLIENTS).
    public: bool = False


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    metrics_port: int
    health: health.HealthServicer
    spec: ServiceSpec
    operations: OperationServicer | None = None
    streams: StreamLimits | None = None
    health_server: grpc.Server | None = None
    _stopped: threading.Event = field(default_factory=threading.Event)

    def stop(self, grace: float = 10.0) -> None:
        """Turns health NOT_SERVING, lets calls in flight finish within grace, then stops."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.health.enter_graceful_shutdown()
        if self.streams is not None:
            self.streams.draining.set()
        if self.operations is not None:
            self.operations.stop()  # watchers get UNAVAILABLE and re-open elsewhere
        if self.spec.on_stop:
            self.spec.on_stop()
        self.server.stop(grace).wait(grace + 1)
        if self.health_server is not None:
            self.health_server.stop(0)

    def wait(self) -> None:
        self.server.wait_for_termination()


UNARY_WORKERS = 16  # threads for unary calls, on top of one per allowed open stream


def bind_host() -> str:
    """FACESWAP_BIND_HOST: loopback unless configured ('[::]' = every interface, IPv6 and IPv4)."""
    return env("FACESWAP_BIND_HOST") or "127.0.0.1"


def _metrics_addr(host: str) -> str:
    # prometheus_client takes a bare address; '::' listens on IPv6 and (dual stack) IPv4.
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def start_server(
    spec: ServiceSpec,
    port: int = 0,
    host: str | None = None,
    metrics_port: int | None = None,
    max_workers: int | None = None,
    server_credentials: grpc.ServerCredentials | None = None,
) -> RunningServer:
    """Starts a server in this process (non-blocking). Port 0 picks a free port; host defaults to
    FACESWAP_BIND_HOST (loopback)."""
    settings = load_settings()
    host = host or bind_host()
    streams = StreamLimits(int(env("FACESWAP_MAX_STREAMS")), int(env("FACESWAP_MAX_STREAMS_PER_CLIENT")))
    options: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]
    max_age = float(env("FACESWAP_MAX_CONNECTION_AGE_S"))
    if max_age > 0:
        # Clients reconnect (and re-resolve) after this: round-robin sees pods added since.
        options.append(("grpc.max_connection_age_ms", int(max_age * 1000)))
    server = grpc.server(
        futures.ThreadPoolExecutor(
            max_workers=max_workers or streams.total + UNARY_WORKERS, thread_name_prefix=spec.name
        ),
        # Auth outermost, so an unauthenticated call is rejected before any work is done.
        interceptors=[
            *auth_interceptors(spec.public, spec.name),
            ServiceInterceptor(streams),
            *spec.interceptors,
        ],
        options=options,
    )
    recorder = HandlerRecorder(server)
    spec.register(recorder)
    operations = OperationServicer(recorder, error_status)
    common_pb2_grpc.add_OperationServiceServicer_to_server(operations, server)
    server_credentials = server_credentials or tls_server_credentials()
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [*spec.service_names, OPERATIONS_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME]
    reflection.enable_server_reflection(names, server)
    address = f"{host}:{port}"
    bound = (
        server.add_secure_port(address, server_credentials)
        if server_credentials
        else server.add_insecure_port(address)
    )
    if bound == 0:
        raise OSError(f"cannot bind {address}")
    health_server = None
    health_port = int(env("FACESWAP_HEALTH_PORT"))
    if health_port:
        # Plaintext, grpc.health.v1 only, its own threads: kubelet probes work with TLS on and are
        # answered however busy the main port is.
        health_server = grpc.server(futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="health"))
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, health_server)
        if health_server.add_insecure_port(f"{host}:{health_port}") == 0:
            raise OSError(f"cannot bind the health port {host}:{health_port}")
    server.start()
    if health_server is not None:
        health_server.start()
    for name in ["", *spec.service_names]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    if metrics_port is None:
        configured = int(env("FACESWAP_METRICS_PORT"))
        metrics_port = configured if configured else (bound + 1000 if port else 0)
    bound_metrics = start_metrics_server(metrics_port, addr=_metrics_addr(host))
    log.info(
        "service started",
        extra={"service": spec.name, "address": f"{host}:{bound}", "metrics_port": bound_metrics},
    )
    return RunningServer(
        server, bound, bound_metrics, health_servicer, spec, operations, streams, health_server
    )


def serve(spec: ServiceSpec, port: int, host: str | None = None) -> None:
    """Runs a service until SIGTERM/SIGINT, then drains gracefully (blocking)."""
    setup_logging(spec.name)
    running = start_server(spec, port=port, host=host)
    done = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("draining on signal", extra={"service": spec.name, "signal": signum})
        threading.Thread(target=lambda: (running.stop(grace=30.0), done.set()), daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    done.wait()
