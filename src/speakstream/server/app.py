"""ASGI app factory: the native endpoint, health, and the shared runtime."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from speakstream.config import Settings
from speakstream.engines.base import Engine
from speakstream.protocol.errors import CloseCode, ProtocolError
from speakstream.protocol.server_messages import ErrorMessage
from speakstream.server.admission import admitted, refusal
from speakstream.server.compat import routes as compat_routes
from speakstream.server.connection import Connection
from speakstream.server.http_guard import guarded_http_protocol
from speakstream.server.log_limits import install_client_fault_filter, install_event_rate_limits
from speakstream.server.runtime import Runtime
from speakstream.server.ws_protocol import DeadlineWebSocketProtocol

_LOGGER = logging.getLogger(__name__)


async def _refuse(websocket: WebSocket, error: ProtocolError, code: CloseCode) -> None:
    with contextlib.suppress(Exception):
        await websocket.send_text(ErrorMessage.of(error).to_json())
        await websocket.close(code=code, reason=error.message[:120])


async def stream_endpoint(websocket: WebSocket) -> None:
    runtime: Runtime = websocket.app.state.runtime
    await websocket.accept()
    refused = refusal(runtime)
    if refused is not None:
        await _refuse(websocket, *refused)
        return
    with admitted(runtime):
        await Connection(websocket, runtime).serve()


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
        }
    )


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
    )
    install_client_fault_filter()  # after uvicorn's own logging set-up
    install_event_rate_limits()
    return config


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> Starlette:
    """Build the app. Loads the engine now (so a missing model fails at start)."""
    runtime = Runtime.build(settings or Settings(), engine)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            runtime.shutting_down = True
            runtime.close()

    app = Starlette(
        routes=[
            WebSocketRoute("/v1/stream", stream_endpoint),
            Route("/healthz", health),
            Route("/", index),
            Mount("/static", app=StaticFiles(directory=WEB_DIR), name="static"),
            *compat_routes(),  # vendor protocols (server.compat)
        ],
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    return app
