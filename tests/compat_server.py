"""A real server with the WebSocket compatibility routes, for the vendor adapter tests.

Until ``create_app`` adds ``compat.ws_routes.routes()`` itself, they are added here.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from speakstream.engines import Engine
from speakstream.server.compat import ws_routes
from tests.conftest import RunningServer, running_server


@contextlib.asynccontextmanager
async def compat_server(engine: Engine, **changes: Any) -> AsyncIterator[RunningServer]:
    async with running_server(engine, extra_routes=ws_routes.routes(), **changes) as server:
        yield server
