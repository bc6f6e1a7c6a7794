"""Who may use the server: API keys, signed tokens, Origins, per-key limits, drain refusals.

One ASGI middleware (``GateMiddleware``) sits in front of every route and WebSocket of
the app, so endpoints added later (the vendor compatibility endpoints) are covered
without knowing it. For each HTTP request and WebSocket handshake it decides, in this
order, before anything is served:

1. open paths (``OPEN_PATHS``: health, readiness, metrics, the page and its files) pass;
2. while the server drains: ``503`` with ``Retry-After``;
3. a browser socket (one with an ``Origin`` header) whose Origin is neither the page's
   own (the ``Host`` it connects to) nor in ``allowed_origins``: ``403``
   (``forbidden_origin``);
4. when keys are configured, a request without a valid key or unexpired token: ``401``
   (``unauthorized``). A credential is read from ``Authorization: Bearer`` or
   ``Authorization: Token``, the ``xi-api-key`` or ``X-API-Key`` header, or the
   ``api_key``, ``xi-api-key`` or ``token`` query parameter; a key or a token is
   accepted in any of them;
5. a WebSocket beyond ``max_connections_per_key`` for its key: ``429``
   (``too_many_connections``).

A refusal is an HTTP response with the JSON body of an ``error`` message (for a
WebSocket, the ASGI denial response: never an accepted-then-closed socket). What passes
carries ``speakstream.key_id``, ``speakstream.endpoint`` (the route: a bounded metrics
label) and ``speakstream.request_id`` (the client's ``X-Request-Id`` or a new one) in its
ASGI scope.

Keys (``KeyStore``) are kept only as SHA-256 digests; ``reload()`` re-reads
``api_keys_file`` (the server calls it on SIGHUP). Tokens (``TokenSigner``) are
``base64url(payload).base64url(HMAC-SHA256(secret, payload))`` with the key id and the
expiry in the payload: ``POST /v1/tokens`` with a key returns one.

``check_bind(settings)`` refuses to start on a non-loopback address without keys unless
``auth`` is off (``--no-auth``; it then warns).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Match

from speakstream.config import ConfigError, Settings
from speakstream.protocol.errors import ErrorCode, ProtocolError
from speakstream.protocol.server_messages import ErrorMessage
from speakstream.server.drain import RETRY_AFTER_S, Drain
from speakstream.server.limits import KeyCounts, SlidingCounter
from speakstream.server.metrics import Metrics

_LOGGER = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = ("/healthz", "/readyz", "/metrics", "/", "/favicon.ico")
OPEN_PREFIXES = ("/static/",)
KEY_HEADERS = ("xi-api-key", "x-api-key")
KEY_PARAMS = ("api_key", "xi-api-key", "token")
SCOPE_KEY_ID = "speakstream.key_id"
SCOPE_ENDPOINT = "speakstream.endpoint"
SCOPE_REQUEST_ID = "speakstream.request_id"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


# --- keys ------------------------------------------------------------------------------------


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def parse_keys(text: str, separator: str = "\n") -> dict[str, str]:
    """Digest -> key id, from 'KEY' or 'ID:KEY' entries (blank entries and # comments
    skipped). A key without an id is known by the start of its digest."""
    keys: dict[str, str] = {}
    for raw in text.split(separator):
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        key_id, sep, secret = entry.partition(":")
        if not sep:
            secret, key_id = entry, ""
        secret = secret.strip()
        if not secret:
            raise ConfigError("an API key entry has an id but no key")
        digest = _digest(secret)
        keys[digest] = key_id.strip() or "key-" + digest[:8]
    return keys


class KeyStore:
    def __init__(self, inline: str = "", path: str = "") -> None:
        self.inline = inline
        self.path = Path(path) if path else None
        self._keys: dict[str, str] = {}
        self.reload()

    def reload(self) -> None:
        """Read the keys again (the file may have changed: SIGHUP). A file that cannot be
        read at start is a ``ConfigError``; later, the keys already loaded stay."""
        keys = parse_keys(self.inline, ",")
        if self.path is not None:
            try:
                keys |= parse_keys(self.path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError) as exc:
                if self._keys:
                    _LOGGER.error("cannot re-read api_keys_file %s: %s", self.path, exc)
                    return
                raise ConfigError(
                    f"setting 'api_keys_file': cannot read {self.path}: {exc}"
                ) from None
        self._keys = keys
        if self.enabled:
            _LOGGER.info("%d API key(s) loaded", len(keys))

    @property
    def enabled(self) -> bool:
        return bool(self._keys) or self.path is not None

    def lookup(self, secret: str) -> str | None:
        """The key id of ``secret``, or None."""
        return self._keys.get(_digest(secret))


# --- tokens ----------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    def __init__(self, secret: str = "") -> None:
        self._secret = secret.encode("utf-8") if secret else secrets.token_bytes(32)

    def issue(self, key_id: str, ttl_s: float, now_s: float) -> str:
        payload = json.dumps({"kid": key_id, "exp": round(now_s + ttl_s, 3)}).encode()
        signature = hmac.new(self._secret, payload, hashlib.sha256).digest()
        return f"{_b64(payload)}.{_b64(signature)}"

    def verify(self, token: str, now_s: float) -> str | None:
        """The key id of a well-signed, unexpired token; None otherwise."""
        try:
            head, _, tail = token.partition(".")
            payload, signature = _unb64(head), _unb64(tail)
            expected = hmac.new(self._secret, payload, hashlib.sha256).digest()
            if not hmac.compare_digest(signature, expected):
                return None
            claims = json.loads(payload)
            if float(claims["exp"]) <= now_s:
                return None
            return str(claims["kid"])
        except (ValueError, KeyError, TypeError):
            return None


# --- the bind check --------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings, keys: KeyStore) -> None:
    """Refuse to serve a non-loopback address without keys, unless ``auth`` is off."""
    if is_loopback(settings.host) or keys.enabled:
        return
    if settings.auth:
        raise ConfigError(
            f"refusing to listen on {settings.host} without API keys: set api_keys_file "
            "(or api_keys), or pass --no-auth to serve anyone who can reach the port"
        )
    _LOGGER.warning("listening on %s with no authentication (--no-auth)", settings.host)


# --- the gate --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    code: ErrorCode
    message: str
    reason: str  # the metrics label
    headers: tuple[tuple[str, str], ...] = ()

    def body(self) -> bytes:
        return ErrorMessage.of(ProtocolError(self.code, self.message)).to_json().encode()


class Auth:
    """Keys, tokens, Origins and per-key budgets of one server."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = KeyStore(settings.api_keys, settings.api_keys_file)
        self.signer = TokenSigner(settings.token_secret)
        self.origins = frozenset(
            o.strip() for o in settings.allowed_origins.split(",") if o.strip()
        )
        self.key_connections = KeyCounts()
        self._char_budgets: dict[str, SlidingCounter] = {}

    def identify(self, credential: str | None, now_s: float) -> str | None:
        if not credential:
            return None
        return self.keys.lookup(credential) or self.signer.verify(credential, now_s)

    def origin_allowed(self, origin: str, host: str) -> bool:
        if "*" in self.origins or origin in self.origins:
            return True
        own = urlsplit(origin)
        return bool(own.netloc) and own.netloc.lower() == host.lower()

    def char_budget(self, key_id: str | None) -> SlidingCounter | None:
        limit = self.settings.max_chars_per_minute_per_key
        if key_id is None or limit <= 0:
            return None
        budget = self._char_budgets.get(key_id)
        if budget is None:
            budget = self._char_budgets[key_id] = SlidingCounter(limit, 60.0)
        return budget


def credential_of(headers: dict[str, str], query: str) -> str | None:
    authorization = headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() in ("bearer", "token") and value.strip():
        return value.strip()
    for name in KEY_HEADERS:
        if headers.get(name):
            return headers[name]
    params = parse_qs(query)
    for name in KEY_PARAMS:
        if params.get(name):
            return params[name][0]
    return None


def _is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def endpoint_label(app: Any, scope: Scope) -> str:
    """The route a scope goes to (a bounded label), or ``other``."""
    for route in getattr(app, "routes", ()):
        try:
            match, _ = route.matches(scope)
        except Exception:
            continue
        if match is Match.FULL:
            return str(getattr(route, "path", "other")) or "other"
    return "other"


class GateMiddleware:
    """The ASGI gate in front of the whole app (see the module docstring)."""

    def __init__(
        self, app: ASGIApp, auth: Auth, drain: Drain, metrics: Metrics, routes_of: Any
    ) -> None:
        self.app = app
        self.auth = auth
        self.drain = drain
        self.metrics = metrics
        self.routes_of = routes_of  # the Starlette app whose routes name the endpoints

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = headers.get("x-request-id", "")
        scope[SCOPE_REQUEST_ID] = request_id if _REQUEST_ID.match(request_id) else uuid.uuid4().hex
        path = scope.get("path", "")
        if _is_open(path):
            await self.app(scope, receive, send)
            return
        endpoint = scope[SCOPE_ENDPOINT] = endpoint_label(self.routes_of, scope)
        refusal, key_id = self._judge(scope, headers)
        if refusal is not None:
            self.metrics.refused(endpoint, refusal.reason)
            await _refuse(scope, send, refusal)
            return
        scope[SCOPE_KEY_ID] = key_id
        if scope["type"] != "websocket" or key_id is None:
            await self.app(scope, receive, send)
            return
        limit = self.auth.settings.max_connections_per_key
        if not self.auth.key_connections.acquire(key_id, limit):
            refusal = Refusal(
                429,
                ErrorCode.TOO_MANY_CONNECTIONS,
                f"this key already holds {limit} connections",
                "too_many_connections_per_key",
            )
            self.metrics.refused(endpoint, refusal.reason)
            await _refuse(scope, send, refusal)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.auth.key_connections.release(key_id)

    def _judge(self, scope: Scope, headers: dict[str, str]) -> tuple[Refusal | None, str | None]:
        if self.drain.draining:
            return Refusal(
                503,
                ErrorCode.SERVER_SHUTTING_DOWN,
                "the server is shutting down; try again later",
                "draining",
                (("retry-after", str(RETRY_AFTER_S)),),
            ), None
        origin = headers.get("origin")
        if (
            scope["type"] == "websocket"
            and origin is not None
            and not self.auth.origin_allowed(origin, headers.get("host", ""))
        ):
            return Refusal(
                403,
                ErrorCode.FORBIDDEN_ORIGIN,
                f"sockets from {origin[:100]} are not allowed (allowed_origins)",
                "forbidden_origin",
            ), None
        if not self.auth.keys.enabled:
            return None, None
        credential = credential_of(headers, scope.get("query_string", b"").decode("latin-1"))
        key_id = self.auth.identify(credential, time.time())
        if key_id is None:
            message = (
                "the key or token is not valid (or has expired)"
                if credential
                else "an API key or token is required"
            )
            return Refusal(401, ErrorCode.UNAUTHORIZED, message, "unauthorized"), None
        return None, key_id


async def _refuse(scope: Scope, send: Send, refusal: Refusal) -> None:
    body = refusal.body()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.encode(), v.encode()) for k, v in refusal.headers),
    ]
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    elif "websocket.http.response" in scope.get("extensions", {}):
        start = {"type": "websocket.http.response.start", "status": refusal.status}
        await send(start | {"headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:  # a server without denial responses: a plain 403
        await send({"type": "websocket.close", "code": 1008})


async def issue_token(request: Request) -> JSONResponse:
    """``POST /v1/tokens`` (with a key): ``{"token", "expires_in_s", "key_id"}``.

    Body (optional): ``{"ttl_s": N}``, at most ``token_ttl_s``."""
    auth: Auth = request.app.state.runtime.auth
    key_id = request.scope.get(SCOPE_KEY_ID)
    credential = credential_of(
        {k.lower(): v for k, v in request.headers.items()}, request.url.query
    )
    if not auth.keys.enabled or key_id is None or auth.keys.lookup(credential or "") is None:
        error = ProtocolError(ErrorCode.UNAUTHORIZED, "a token is issued for an API key only")
        return JSONResponse(ErrorMessage.of(error).to_dict(), status_code=401)
    ttl_s = auth.settings.token_ttl_s
    raw = await request.body()
    if raw:
        try:
            asked = json.loads(raw).get("ttl_s", ttl_s)
            if isinstance(asked, bool) or not isinstance(asked, int | float) or asked <= 0:
                raise ValueError
        except (ValueError, AttributeError):
            error = ProtocolError(ErrorCode.INVALID_MESSAGE, 'body: {"ttl_s": positive number}')
            return JSONResponse(ErrorMessage.of(error).to_dict(), status_code=400)
        ttl_s = min(ttl_s, float(asked))
    token = auth.signer.issue(key_id, ttl_s, time.time())
    return JSONResponse({"token": token, "expires_in_s": ttl_s, "key_id": key_id})
