"""Shared fixtures: one Piper engine per test session, servers on ephemeral ports."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.routing import BaseRoute

from speakstream.config import Settings
from speakstream.engines import Engine, EngineSettings, load_engine
from speakstream.server.app import create_app, uvicorn_config
from speakstream.server.runtime import Runtime


@pytest.fixture(scope="session")
def piper_engine() -> Iterator[Engine]:
    engine = load_engine("piper", EngineSettings())
    yield engine
    engine.close()


@dataclass
class RunningServer:
    url: str
    port: int
    runtime: Runtime

    @property
    def stream_url(self) -> str:
        return f"{self.url}/v1/stream"


@contextlib.asynccontextmanager
async def running_server(
    engine: Engine,
    settings: Settings | None = None,
    *,
    extra_routes: Sequence[BaseRoute] = (),
    **changes: Any,
) -> AsyncIterator[RunningServer]:
    """A real uvicorn server in this event loop on 127.0.0.1 and a free port
    (``extra_routes``: endpoints added to the app, for ones not yet in ``create_app``)."""
    settings = (settings or Settings(log_level="warning")).replace(**changes)
    app = create_app(settings, engine=engine)
    app.router.routes.extend(extra_routes)
    server = uvicorn.Server(uvicorn_config(app, settings, port=0))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(20):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield RunningServer(f"ws://127.0.0.1:{port}", port, app.state.runtime)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)


@pytest.fixture
async def piper_server(piper_engine: Engine) -> AsyncIterator[RunningServer]:
    async with running_server(piper_engine) as srv:
        yield srv


@pytest.fixture
def fake_engine_factory() -> Any:
    def make(**options: Any) -> Engine:
        return load_engine("fake", EngineSettings(options=options))

    return make


async def wait_for(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Wait for server-side state (counters) to reach a condition; fails after timeout_s."""
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 - polling counters, there is no event to await
            await asyncio.sleep(0.01)


@pytest.fixture(scope="session")
def chatterbox_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight Chatterbox checkpoint (T3 cut to 2 layers), built offline once."""
    from tests.chatterbox_support import HAVE_CHATTERBOX, build_test_checkpoint

    if not HAVE_CHATTERBOX:
        pytest.skip("the chatterbox extra is not installed")
    return build_test_checkpoint(tmp_path_factory.mktemp("chatterbox-checkpoint"))


@pytest.fixture(scope="session")
def chatterbox_engine(chatterbox_checkpoint: Path) -> Iterator[Engine]:
    from tests.chatterbox_support import engine_options_for

    engine = load_engine(
        "chatterbox", EngineSettings(options=engine_options_for(chatterbox_checkpoint))
    )
    yield engine
    engine.close()
