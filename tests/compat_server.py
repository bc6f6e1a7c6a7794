"""A real server for the vendor adapter tests (``create_app`` serves every vendor route)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from speakstream.engines import Engine
from tests.conftest import RunningServer, running_server


@contextlib.asynccontextmanager
async def compat_server(engine: Engine, **changes: Any) -> AsyncIterator[RunningServer]:
    async with running_server(engine, **changes) as server:
        yield server
