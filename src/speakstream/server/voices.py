"""Vendor voice ids to our voices, for the compatibility endpoints.

``voice_map`` (a setting: ``"ID=VOICE,ID2=VOICE2"``) names our voice for a vendor's voice
id; our own voice names are always accepted as they are. Any other id speaks the default
voice when ``accept_unknown_voices`` is on, and is refused (``None``: the adapter answers
with the vendor's own error) when it is off. ``VoiceMap.voices`` is the server's live
voice table (the session configuration's), not a copy: a voice uploaded while the server
runs (``POST /v1/voices``) is listed and accepted at once.
"""

from __future__ import annotations

from collections.abc import Collection

from speakstream.config import ConfigError, Settings


def parse_voice_map(text: str, voices: Collection[str]) -> dict[str, str]:
    """``"ID=VOICE,..."`` as a dict; every VOICE must be one of ``voices``."""
    mapping: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        vendor_id, sep, voice = (part.strip() for part in entry.partition("="))
        if not sep or not vendor_id or not voice:
            raise ConfigError(f"setting 'voice_map': {entry!r} is not ID=VOICE")
        if voice not in voices:
            known = ", ".join(sorted(voices))
            raise ConfigError(f"setting 'voice_map': no voice {voice!r} (there are: {known})")
        mapping[vendor_id] = voice
    return mapping


class VoiceMap:
    def __init__(self, settings: Settings, voices: Collection[str], default_voice: str) -> None:
        self.mapping = parse_voice_map(settings.voice_map, voices)
        self.voices = voices
        self.default_voice = default_voice
        self.accept_unknown = settings.accept_unknown_voices

    def resolve(self, vendor_id: str | None) -> str | None:
        """Our voice for ``vendor_id`` (None or empty: the default), or None if refused."""
        if not vendor_id:
            return self.default_voice
        if vendor_id in self.voices:
            return vendor_id
        if vendor_id in self.mapping:
            return self.mapping[vendor_id]
        return self.default_voice if self.accept_unknown else None
