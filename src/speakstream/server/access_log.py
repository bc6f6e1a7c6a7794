"""One INFO line per context and one per connection; nothing per chunk.

``ConnectionLog`` is fed every server message a connection queues (``observe``) and
its close code; it logs a line when a context ends (``done``: context, voice,
characters, audio seconds, first audio ms; ``cancelled`` before its ``done``: the same but
characters, which were received and not all spoken; ``context unfinished`` for one open
when the connection went, from ``context_over``) and, from ``finish``, one line for
the whole connection (client address, key id, endpoint, request id, voices, contexts,
characters, audio seconds, first audio ms, errors by code, close code). Each line also
carries its fields as ``record.fields`` (a dict) for the JSON log format
(``server.log_format``).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from speakstream.protocol.server_messages import Cancelled, Done, ErrorMessage, ServerMessage

_LOGGER = logging.getLogger("speakstream.access")


@dataclass
class ConnectionLog:
    client: str
    key_id: str | None
    endpoint: str
    request_id: str
    opened_s: float = field(default_factory=time.monotonic)
    contexts: int = 0
    characters: int = 0
    audio_s: float = 0.0
    first_audio_ms: float | None = None
    voices: set[str] = field(default_factory=set)
    errors: Counter[str] = field(default_factory=Counter)
    close_code: int | None = None

    def observe(self, message: ServerMessage, voice: str) -> None:
        if isinstance(message, ErrorMessage):
            self.errors[message.code] += 1
        elif isinstance(message, Done):
            characters = int(message.metrics.get("characters") or 0)
            self.context_over("context done", message.context, voice, message.metrics, characters)
        elif isinstance(message, Cancelled) and message.metrics is not None:
            self.context_over("context cancelled", message.context, voice, message.metrics)

    def context_over(
        self,
        event: str,
        context: str,
        voice: str,
        metrics: dict[str, Any],
        characters: int | None = None,
    ) -> None:
        """A context is over (``event``): its line, and its share of the connection's.
        ``characters``: those it spoke, when it spoke all it got (a context done)."""
        audio_s = float(metrics.get("audio_ms") or 0) / 1000
        ttfa_ms = metrics.get("ttfa_ms")
        self.contexts += 1
        self.audio_s += audio_s
        if voice:
            self.voices.add(voice)
        if ttfa_ms is not None and self.first_audio_ms is None:
            self.first_audio_ms = float(ttfa_ms)
        fields: dict[str, Any] = {"context": context, "voice": voice}
        if characters is not None:
            self.characters += characters
            fields["characters"] = characters
        fields["audio_s"] = round(audio_s, 3)
        fields["first_audio_ms"] = None if ttfa_ms is None else round(float(ttfa_ms), 1)
        self._line(event, **fields)

    def closed(self, code: int | None) -> None:
        if self.close_code is None:
            self.close_code = code

    def finish(self) -> None:
        self._line(
            "connection closed",
            voices=",".join(sorted(self.voices)),
            contexts=self.contexts,
            characters=self.characters,
            audio_s=round(self.audio_s, 3),
            first_audio_ms=None if self.first_audio_ms is None else round(self.first_audio_ms, 1),
            errors=dict(self.errors),
            close_code=self.close_code,
            duration_s=round(time.monotonic() - self.opened_s, 3),
        )

    def _line(self, what: str, **fields: Any) -> None:
        if not _LOGGER.isEnabledFor(logging.INFO):
            return
        fields = {
            "event": what,
            "client": self.client,
            "key_id": self.key_id,
            "endpoint": self.endpoint,
            "request_id": self.request_id,
            **fields,
        }
        text = " ".join(f"{k}={v}" for k, v in fields.items() if k != "event" and v not in ("",))
        _LOGGER.info("%s: %s", what, text, extra={"fields": fields})
