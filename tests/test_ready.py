"""The ``ready`` greeting (``protocol.ready``): its voice list follows the session's
voices, so a voice added while the server runs (an upload) is listed to the next client."""

from __future__ import annotations

from speakstream.protocol.outputs import SessionConfig
from speakstream.protocol.ready import ready_message

ENGINE_VOICES = [{"name": "default", "sample_rate_hz": 24_000, "language": "en"}]


def config_with(voices: dict[str, int]) -> SessionConfig:
    return SessionConfig(
        voices=voices,
        default_voice="default",
        encodings=frozenset({"pcm_s16le"}),
        ready_info={"server": "x", "capabilities": {"engine": "e", "voices": ENGINE_VOICES}},
    )


def listed(config: SessionConfig) -> list[dict[str, object]]:
    voices: list[dict[str, object]] = ready_message(config).to_dict()["capabilities"]["voices"]
    return voices


def test_the_engine_voices_are_listed_as_given() -> None:
    assert listed(config_with({"default": 24_000})) == ENGINE_VOICES


def test_a_voice_added_later_is_listed_with_its_rate_and_the_engine_language() -> None:
    voices = {"default": 24_000}
    config = config_with(voices)
    voices["upload:0123456789abcdef"] = 24_000  # what POST /v1/voices does
    assert listed(config) == [
        *ENGINE_VOICES,
        {"name": "upload:0123456789abcdef", "sample_rate_hz": 24_000, "language": "en"},
    ]


def test_the_rest_of_ready_info_is_kept() -> None:
    message = ready_message(config_with({"default": 24_000})).to_dict()
    assert message["server"] == "x" and message["capabilities"]["engine"] == "e"
