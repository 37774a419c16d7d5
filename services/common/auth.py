"""Authentication: bearer tokens checked by an interceptor, TLS / mutual TLS credentials.

Tokens: FACESWAP_TOKENS_FILE names a file with one ``client-id token`` pair per line (a mounted
Kubernetes Secret works as is), or FACESWAP_TOKENS holds ``client:token,client:token``. When neither
is set, authentication is off and every caller is the client ``local`` (the embedded default).
The interceptor puts the caller's id in a context variable; ``current_client()`` reads it, so the
job API can show and control only a client's own jobs.
"""

from __future__ import annotations

import contextvars
import hmac
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc

from faceswap.errors import InvalidArgument

ANONYMOUS = "local"
HEALTH_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")
_client: contextvars.ContextVar[str] = contextvars.ContextVar("faceswap_client", default=ANONYMOUS)


def current_client() -> str:
    return _client.get()


def load_tokens() -> dict[str, str]:
    """token -> client id, from FACESWAP_TOKENS_FILE or FACESWAP_TOKENS."""
    tokens: dict[str, str] = {}
    path = os.environ.get("FACESWAP_TOKENS_FILE", "")
    if path:
        for line in Path(path).read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            client, _, token = line.partition(" ")
            if not token.strip():
                raise InvalidArgument(f"{path}: line {line!r} is not 'client-id token'")
            tokens[token.strip()] = client
    for pair in filter(None, os.environ.get("FACESWAP_TOKENS", "").split(",")):
        client, _, token = pair.partition(":")
        if not token:
            raise InvalidArgument("FACESWAP_TOKENS entries must be client:token")
        tokens[token] = client
    return tokens


class TokenAuthInterceptor(grpc.ServerInterceptor):
    """Rejects calls without a known bearer token (health checks and reflection stay open).

    ``allowed`` (internal services): only these client ids may call; any other known client is
    PERMISSION_DENIED. None = every known client (the job API).
    """

    def __init__(
        self, tokens: dict[str, str], allowed: frozenset[str] | None = None, service: str = ""
    ) -> None:
        self._tokens = tokens
        self._allowed = allowed
        self._service = service

    def _client_for(self, metadata: tuple[tuple[str, str], ...]) -> str | None:
        for key, value in metadata or ():
            if key == "authorization" and value.lower().startswith("bearer "):
                presented = value[7:].strip()
                for token, client in self._tokens.items():
                    if hmac.compare_digest(token, presented):  # constant time
                        return client
        return None

    def intercept_service(self, continuation: Callable[..., Any], details: Any) -> Any:
        handler = continuation(details)
        if handler is None or details.method.startswith(HEALTH_PREFIXES):
            return handler
        client = self._client_for(details.invocation_metadata)
        denied = ""
        if client is not None and self._allowed is not None and client not in self._allowed:
            denied = (
                f"client {client[:64]!r} may not call the {self._service or 'internal'} service: only "
                f"the orchestrator and workers may (FACESWAP_INTERNAL_CLIENTS)"
            )
        for kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
            behavior = getattr(handler, kind)
            if behavior is None:
                continue
            wrapped = _with_client(behavior, client, kind.endswith("_stream"), denied)
            factory = getattr(grpc, f"{kind}_rpc_method_handler")
            return factory(
                wrapped,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


def _with_client(
    behavior: Callable[..., Any], client: str | None, streaming: bool, denied: str = ""
) -> Callable[..., Any]:
    def deny(context: grpc.ServicerContext) -> None:
        if denied:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, denied)
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or unknown bearer token")

    if streaming:

        def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            if client is None or denied:
                deny(context)
            token = _client.set(client or ANONYMOUS)
            try:
                yield from behavior(request, context)
            finally:
                _client.reset(token)

        return stream

    def unary(request: Any, context: grpc.ServicerContext) -> Any:
        if client is None or denied:
            deny(context)
        token = _client.set(client or ANONYMOUS)
        try:
            return behavior(request, context)
        finally:
            _client.reset(token)

    return unary


def internal_clients(tokens: dict[str, str]) -> frozenset[str]:
    """Who may call an internal (stage) service: FACESWAP_INTERNAL_CLIENTS plus the id of this
    process's own FACESWAP_TOKEN (``faceswap serve`` gives every service the orchestrator's)."""
    from faceswap.config import env

    allowed = {c.strip() for c in env("FACESWAP_INTERNAL_CLIENTS").split(",") if c.strip()}
    own = tokens.get(os.environ.get("FACESWAP_TOKEN", ""))
    if own:
        allowed.add(own)
    return frozenset(allowed)


def auth_interceptors(public: bool = True, service: str = "") -> list[grpc.ServerInterceptor]:
    """Token auth when tokens are configured; an internal service (public=False) admits only
    ``internal_clients()``."""
    tokens = load_tokens()
    if not tokens:
        return []
    return [TokenAuthInterceptor(tokens, None if public else internal_clients(tokens), service)]


def call_metadata() -> list[tuple[str, str]]:
    """Metadata a client sends: its bearer token from FACESWAP_TOKEN, if set."""
    token = os.environ.get("FACESWAP_TOKEN", "")
    return [("authorization", f"Bearer {token}")] if token else []


def server_credentials() -> grpc.ServerCredentials | None:
    """TLS from FACESWAP_TLS_CERT/KEY; with FACESWAP_TLS_CA, clients must present a cert (mTLS)."""
    cert, key = os.environ.get("FACESWAP_TLS_CERT", ""), os.environ.get("FACESWAP_TLS_KEY", "")
    if not cert or not key:
        return None
    ca = os.environ.get("FACESWAP_TLS_CA", "")
    return grpc.ssl_server_credentials(
        [(Path(key).read_bytes(), Path(cert).read_bytes())],
        root_certificates=Path(ca).read_bytes() if ca else None,
        require_client_auth=bool(ca),
    )


def channel_credentials() -> grpc.ChannelCredentials | None:
    """Client TLS: trust FACESWAP_TLS_CA; present FACESWAP_TLS_CERT/KEY for mutual TLS."""
    ca = os.environ.get("FACESWAP_TLS_CA", "")
    if not ca:
        return None
    cert, key = os.environ.get("FACESWAP_TLS_CERT", ""), os.environ.get("FACESWAP_TLS_KEY", "")
    return grpc.ssl_channel_credentials(
        root_certificates=Path(ca).read_bytes(),
        private_key=Path(key).read_bytes() if key else None,
        certificate_chain=Path(cert).read_bytes() if cert else None,
    )
