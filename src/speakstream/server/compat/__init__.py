"""The vendors' protocols over the native core: one module per vendor, each a translator.

Each module exposes ``routes() -> list[BaseRoute]``; ``routes()`` here collects them for
the app (``create_app`` adds them with one line). HTTP streaming endpoints run through
``http_bridge`` (one request as one connection); WebSocket and TCP ones through
``Connection`` with the vendor's ``Dialect``. None owns a pipeline, a queue or a task.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from speakstream.server.compat import (
    cartesia_http,
    deepgram_http,
    elevenlabs_http,
    openai,
    ws_routes,
)


def routes() -> list[BaseRoute]:
    collected: list[BaseRoute] = []
    # HTTP streaming endpoints (OpenAI, ElevenLabs HTTP, Deepgram REST, Cartesia bytes)
    collected += openai.routes()
    collected += elevenlabs_http.routes()
    collected += deepgram_http.routes()
    collected += cartesia_http.routes()
    # WebSocket endpoints (ElevenLabs stream-input, Deepgram /v1/speak, Cartesia)
    collected += ws_routes.routes()
    return collected
