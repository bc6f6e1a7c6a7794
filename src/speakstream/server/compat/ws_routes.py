"""The WebSocket (and TCP) compatibility endpoints: ElevenLabs, Deepgram, Cartesia.

``routes()`` collects them for ``create_app`` (Wyoming is a TCP listener, started by the
app's lifespan: ``server.compat.wyoming.listening``).
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from speakstream.server.compat import cartesia, deepgram, elevenlabs


def routes() -> list[BaseRoute]:
    return [*elevenlabs.routes(), *deepgram.routes(), *cartesia.routes()]
