"""Vendor protocols over the shared connection core: one module per vendor.

``routes()`` is every vendor endpoint, for ``create_app`` to add.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from speakstream.server.compat import ws_routes


def routes() -> list[BaseRoute]:
    return [*ws_routes.routes()]
