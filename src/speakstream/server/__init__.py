"""ASGI app, the asyncio connection driver, and the runtime they share."""

from speakstream.server.app import create_app

__all__ = ["create_app"]
