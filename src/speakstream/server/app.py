"""ASGI app factory: the native endpoint, health, readiness, metrics, tokens, the gate
(auth, Origins, drain refusals: ``server.auth``) in front of every route, and the
uvicorn configuration and server (``server.drain``) that run it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket
from uvicorn.config import LOGGING_CONFIG

from speakstream.config import Settings
from speakstream.engines.base import Engine
from speakstream.server import compat, voice_upload
from speakstream.server.admission import serve_websocket
from speakstream.server.auth import GateMiddleware, issue_token
from speakstream.server.compat import wyoming
from speakstream.server.drain import DrainingServer
from speakstream.server.http_guard import guarded_http_protocol
from speakstream.server.log_limits import install_client_fault_filter, install_event_rate_limits
from speakstream.server.metrics import CONTENT_TYPE
from speakstream.server.runtime import Runtime
from speakstream.server.ws_protocol import DeadlineWebSocketProtocol

_LOGGER = logging.getLogger(__name__)


async def stream_endpoint(websocket: WebSocket) -> None:
    await serve_websocket(websocket)


WEB_DIR = Path(__file__).resolve().parent.parent / "web"


async def index(request: Request) -> FileResponse:
    """The type-and-hear page (plain ES modules, no build step)."""
    return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def health(request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    return JSONResponse(
        {
            "status": "draining" if runtime.shutting_down else "ok",
            "engine": runtime.engine.capabilities.engine,
            "connections": runtime.connections,
            "active_streams": runtime.active_streams,
            "running_jobs": runtime.pool.running_jobs,
            "waiting_jobs": runtime.pool.waiting_jobs,
            "auth_required": runtime.auth.keys.enabled,
        }
    )


async def ready(request: Request) -> JSONResponse:
    """200 while new work is welcome; 503 with the reason (draining, at capacity)."""
    runtime: Runtime = request.app.state.runtime
    is_ready, reason = runtime.ready
    body = {"status": "ready" if is_ready else "not ready", "reason": reason}
    return JSONResponse(body, status_code=200 if is_ready else 503)


async def metrics(request: Request) -> Response:
    """Prometheus text format (``server.metrics``)."""
    runtime: Runtime = request.app.state.runtime
    return Response(runtime.metrics.render(), media_type=CONTENT_TYPE)


def uvicorn_config(
    app: Starlette, settings: Settings, *, port: int | None = None
) -> uvicorn.Config:
    """The uvicorn configuration the server runs with (also used by tests and the benchmark)."""
    config = uvicorn.Config(
        app,
        http=guarded_http_protocol(settings.header_timeout_s, max_pending=settings.max_connections),
        host=settings.host,
        port=settings.port if port is None else port,
        ws=DeadlineWebSocketProtocol,
        ws_max_size=settings.max_message_bytes,
        ws_per_message_deflate=False,  # compressing PCM costs CPU and latency for little gain
        log_level=settings.log_level,
        lifespan="on",
        ws_ping_interval=settings.ws_ping_interval_s or None,
        ws_ping_timeout=settings.ws_ping_timeout_s,
        ssl_certfile=settings.ssl_certfile or None,
        ssl_keyfile=settings.ssl_keyfile or None,
        # JSON lines: uvicorn's loggers go to the root handler (server.log_format)
        log_config=None if settings.log_format == "json" else LOGGING_CONFIG,
    )
    install_client_fault_filter()  # after uvicorn's own logging set-up
    install_event_rate_limits()
    return config


def server_for(app: Starlette, settings: Settings) -> DrainingServer:
    """The uvicorn server of ``app``: SIGTERM drains it first (``server.drain``)."""
    runtime: Runtime = app.state.runtime
    return DrainingServer(uvicorn_config(app, settings), runtime.drain, settings.drain_timeout_s)


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> Starlette:
    """Build the app. Loads the engine now (so a missing model fails at start)."""
    runtime = Runtime.build(settings or Settings(), engine)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        reloads = _on_sighup(runtime.auth.keys.reload)
        try:
            async with wyoming.listening(runtime):
                yield
        finally:
            if reloads:
                _on_sighup(None)
            runtime.shutting_down = True
            runtime.close()

    app = Starlette(
        routes=[
            WebSocketRoute("/v1/stream", stream_endpoint),
            *compat.routes(),  # vendor protocols (server.compat)
            Route("/healthz", health),
            Route("/readyz", ready),
            Route("/metrics", metrics),
            Route("/v1/tokens", issue_token, methods=["POST"]),
            *voice_upload.routes(runtime),  # POST /v1/voices (chatterbox voice cloning)
            Route("/", index),
            Mount("/static", app=StaticFiles(directory=WEB_DIR), name="static"),
        ],
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.add_middleware(
        GateMiddleware,
        auth=runtime.auth,
        drain=runtime.drain,
        metrics=runtime.metrics,
        routes_of=app,
    )
    return app


def _on_sighup(callback: Callable[[], None] | None) -> bool:
    """Call ``callback`` on SIGHUP (None: stop); False where signals cannot be handled
    (not the main thread, no SIGHUP)."""
    loop = asyncio.get_running_loop()
    try:
        if callback is None:
            loop.remove_signal_handler(signal.SIGHUP)
        else:
            loop.add_signal_handler(signal.SIGHUP, callback)
    except (AttributeError, NotImplementedError, RuntimeError, ValueError):
        return False
    return True
