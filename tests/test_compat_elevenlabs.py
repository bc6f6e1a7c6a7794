"""ElevenLabs stream-input / multi-stream-input against a real server with Piper."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
import websockets
from elevenlabs.client import ElevenLabs

from speakstream.engines import Engine
from speakstream.protocol.server_messages import Alignment
from speakstream.server.compat.elevenlabs import MP3_FORMATS, characters, parse_output_format
from tests.compat_audio import decoded_duration_s, payload_bits_per_s
from tests.compat_server import compat_server
from tests.compat_support import counters_back_to_zero, readme_snippet, run_snippet
from tests.conftest import wait_for

pytestmark = pytest.mark.timeout(120)
VOICE = "en_US-joe-medium"
FIRST = "Hello there, this is the first sentence of a longer text. "
REST = "And here is the second one, which comes later."


async def _collect(ws: Any) -> tuple[list[dict[str, Any]], int | None]:
    replies = []
    try:
        async for raw in ws:
            replies.append(json.loads(raw))
    except websockets.ConnectionClosed:
        pass
    return replies, ws.close_code


def test_output_formats_map_to_ours_or_none() -> None:
    assert parse_output_format("pcm_16000", 22050) == ("pcm_s16le", 16000, None)
    assert parse_output_format("ulaw_8000", 22050) == ("mulaw", 8000, None)
    assert parse_output_format("mp3_44100_128", 22050) == ("mp3", 44100, 128)
    assert parse_output_format("mp3_22050_32", 22050) == ("mp3", 22050, 32)
    assert parse_output_format("pcm_12345", 22050) is None
    assert parse_output_format("opus_48000_64", 22050) is None
    # not among ElevenLabs' MP3 formats
    assert parse_output_format("mp3_44100_999", 22050) is None
    assert parse_output_format("mp3_16000_64", 22050) is None


def test_character_timings_are_the_native_word_timings_from_the_chunk_start() -> None:
    words = [
        {"word": "Hi", "start": 0, "end": 2, "start_ms": 1100.0, "duration_ms": 200.0},
        {"word": "you", "start": 3, "end": 6, "start_ms": 1400.0, "duration_ms": 300.0},
    ]
    native = Alignment("c", 0, words, [])
    out = characters(native.words, 1000.0)
    assert out["chars"] == ["H", "i", " ", "y", "o", "u"]
    assert out["charStartTimesMs"] == [100, 200, 300, 400, 500, 600]
    assert out["charDurationsMs"] == [100, 100, 100, 100, 100, 100]


async def test_sdk_convert_realtime_speaks(piper_engine: Engine) -> None:
    async with compat_server(piper_engine) as srv:
        client = ElevenLabs(api_key="any", base_url=f"http://127.0.0.1:{srv.port}")
        client.text_to_speech._ws_base_url = f"http://127.0.0.1:{srv.port}"  # the SDK forces wss

        def run() -> bytes:
            chunks = iter(["Hello from the ", "ElevenLabs SDK. ", "It streams."])
            audio = client.text_to_speech.convert_realtime(
                VOICE, text=chunks, output_format="pcm_16000"
            )
            return b"".join(audio)

        audio = await asyncio.to_thread(run)
        assert decoded_duration_s(audio, "pcm_s16le", 16000) > 1.0
        await wait_for(lambda: srv.runtime.connections == 0 and srv.runtime.active_streams == 0)


@pytest.mark.parametrize("fmt", ["pcm_24000", "ulaw_8000", "mp3_44100_128"])
async def test_stream_input_audio_before_the_end_with_alignment(
    piper_engine: Engine, fmt: str
) -> None:
    encoding, rate_hz, _ = parse_output_format(fmt, 22050) or ("", 0, None)
    async with compat_server(piper_engine) as srv:
        url = f"{srv.url}/v1/text-to-speech/{VOICE}/stream-input?output_format={fmt}"
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"text": " ", "voice_settings": {"speed": 1.0}}))
            await ws.send(json.dumps({"text": FIRST, "try_trigger_generation": True}))
            first = json.loads(await ws.recv())  # audio before the rest of the text exists
            assert first["audio"]
            await ws.send(json.dumps({"text": REST, "flush": True}))
            await ws.send(json.dumps({"text": ""}))
            replies, code = await _collect(ws)
        replies.insert(0, first)
        assert code == 1000 and replies[-1] == {"isFinal": True}
        audio = b"".join(base64.b64decode(r["audio"]) for r in replies if r.get("audio"))
        duration_s = decoded_duration_s(audio, encoding, rate_hz)
        # character timings: chunk-relative; rebuilt on the chunks' own clock
        chars, ends_ms = [], []
        offset_ms = 0.0
        for r in replies:
            if r.get("audio") and encoding != "mp3":
                if r["alignment"]:
                    a = r["alignment"]
                    chars += a["chars"]
                    ends_ms += [
                        offset_ms + s + d
                        for s, d in zip(a["charStartTimesMs"], a["charDurationsMs"], strict=True)
                    ]
                bps = 2 if encoding == "pcm_s16le" else 1
                offset_ms += 1000 * len(base64.b64decode(r["audio"])) / bps / rate_hz
        if encoding != "mp3":
            assert "".join(chars).replace(" ", "") == (FIRST + REST).replace(" ", "")
            # never back in time, beyond the rounding of chunk edges at a resampled rate
            assert all(b >= a - 2.0 for a, b in itertools.pairwise(ends_ms))
            assert max(ends_ms) <= duration_s * 1000 + 1
            assert max(ends_ms) > duration_s * 1000 * 0.7
        assert duration_s > 2.0


async def test_refused_format_and_voice_answer_the_vendor_error(piper_engine: Engine) -> None:
    async with compat_server(piper_engine, accept_unknown_voices=False) as srv:
        for path in (
            f"/v1/text-to-speech/{VOICE}/stream-input?output_format=opus_48000_64",
            "/v1/text-to-speech/nobody/stream-input",
        ):
            async with websockets.connect(srv.url + path) as ws:
                replies, code = await _collect(ws)
            assert code == 1008 and "message" in replies[0] and "audio" not in replies[0]


async def test_multi_stream_contexts_flush_close_context_and_close_socket(
    piper_engine: Engine,
) -> None:
    async with compat_server(piper_engine) as srv:
        url = f"{srv.url}/v1/text-to-speech/{VOICE}/multi-stream-input?output_format=pcm_16000"
        async with websockets.connect(url) as ws:
            for cid in ("a", "b"):
                await ws.send(json.dumps({"text": " ", "context_id": cid}))
            await ws.send(json.dumps({"text": "", "context_id": "a"}))  # keep-alive
            await ws.send(json.dumps({"text": FIRST + REST, "context_id": "a"}))
            await ws.send(
                json.dumps({"text": "Context b speaks.", "context_id": "b", "flush": True})
            )
            seen: list[dict[str, Any]] = []
            while not any(r.get("contextId") == "a" and r.get("audio") for r in seen):
                seen.append(json.loads(await ws.recv()))
            await ws.send(
                json.dumps({"context_id": "a", "close_context": True})
            )  # unflushed: cancel
            await ws.send(json.dumps({"close_socket": True}))
            replies, code = await _collect(ws)
        seen += replies
        assert code == 1000
        final_a = seen.index({"isFinal": True, "contextId": "a"})
        assert not any(r.get("contextId") == "a" and r.get("audio") for r in seen[final_a:])
        assert {"isFinal": True, "contextId": "b"} in seen
        assert any(r.get("contextId") == "b" and r.get("audio") for r in seen)
        await wait_for(lambda: srv.runtime.connections == 0 and srv.runtime.active_streams == 0)


async def test_bad_json_unknown_fields_and_early_close(piper_engine: Engine) -> None:
    async with compat_server(piper_engine) as srv:
        url = f"{srv.url}/v1/text-to-speech/{VOICE}/stream-input?output_format=pcm_16000"
        async with websockets.connect(url) as ws:
            await ws.send("{not json")
            error = json.loads(await ws.recv())
            assert error["error"] == "invalid_json" and "message" in error
            await ws.send(json.dumps({"text": " ", "xi_api_key": "k", "brand_new_field": 1}))
            await ws.send(json.dumps({"text": FIRST + REST}))
            assert json.loads(await ws.recv())["audio"]
        # the client left mid-utterance: nothing of it stays
        await wait_for(lambda: srv.runtime.connections == 0 and srv.runtime.active_streams == 0)


async def _words_per_reply(url: str, messages: list[dict[str, Any]]) -> list[str]:
    """The words each audio reply's alignment carries (one entry per segment)."""
    async with websockets.connect(url) as ws:
        for message in messages:
            await ws.send(json.dumps(message))
        replies, code = await _collect(ws)
    assert code == 1000 and replies[-1] == {"isFinal": True}
    return ["".join(r["alignment"]["chars"]) for r in replies if r.get("alignment")]


async def test_auto_mode_speaks_each_message_as_it_comes(piper_engine: Engine) -> None:
    first, rest = "The first half of one long sentence", " goes on here and ends."
    async with compat_server(piper_engine) as srv:
        base = f"{srv.url}/v1/text-to-speech/{VOICE}/stream-input?output_format=pcm_16000"
        messages = [{"text": " "}, {"text": first}, {"text": rest}, {"text": ""}]
        groups = await _words_per_reply(base + "&auto_mode=true", messages)
        # the first message was synthesized alone, though its sentence goes on
        assert any(group.endswith("sentence") for group in groups)
        assert "".join(groups).replace(" ", "") == (first + rest).replace(" ", "")
        await counters_back_to_zero(srv.runtime)


async def test_inactivity_timeout_closes_1008_with_elevenlabs_reason(
    piper_engine: Engine,
) -> None:
    async with compat_server(piper_engine) as srv:
        for path in ("stream-input", "multi-stream-input"):
            url = f"{srv.url}/v1/text-to-speech/{VOICE}/{path}?inactivity_timeout=1"
            async with websockets.connect(url) as ws:
                await ws.send(json.dumps({"text": " "}))
                for _ in range(3):  # a keep-alive resets the timer
                    await asyncio.sleep(0.5)
                    await ws.send(json.dumps({"text": " "}))
                assert ws.close_code is None
                replies, code = await _collect(ws)  # then silence
            assert code == 1008 and replies == []
            assert ws.close_reason is not None
            assert ws.close_reason.startswith(
                "Have not received a new text input within the timeout of 1 seconds."
            )
        await counters_back_to_zero(srv.runtime)


async def test_inactivity_timeout_stops_once_the_text_has_ended(
    fake_engine_factory: Any,
) -> None:
    # a scripted engine that takes 3 s over a text, three times the timeout
    text = "A text that takes the engine three seconds, well past the timeout of one second."
    engine = fake_engine_factory(synthesis_s_per_char=3.0 / len(text), ms_per_char=60.0)
    async with compat_server(engine) as srv:
        url = (
            f"{srv.url}/v1/text-to-speech/{VOICE}/stream-input"
            "?output_format=pcm_16000&inactivity_timeout=1"
        )
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"text": " "}))
            await ws.send(json.dumps({"text": text}))
            await ws.send(json.dumps({"text": ""}))
            replies, code = await _collect(ws)
        assert code == 1000 and replies[-1] == {"isFinal": True}
        audio = b"".join(base64.b64decode(r["audio"]) for r in replies if r.get("audio"))
        # the whole text was spoken, though it took longer than the timeout after the end
        assert decoded_duration_s(audio, "pcm_s16le", 16000) >= 0.9 * len(text) * 0.060
        await counters_back_to_zero(srv.runtime)


@pytest.mark.parametrize(
    "query",
    ["inactivity_timeout=0", "inactivity_timeout=181", "inactivity_timeout=x", "auto_mode=maybe"],
)
async def test_bad_auto_mode_or_inactivity_timeout_is_refused(
    piper_engine: Engine, query: str
) -> None:
    async with compat_server(piper_engine) as srv:
        url = f"{srv.url}/v1/text-to-speech/{VOICE}/stream-input?{query}"
        async with websockets.connect(url) as ws:
            replies, code = await _collect(ws)
        assert code == 1008 and query.split("=")[0] in replies[0]["message"]


async def test_mp3_formats_decode_at_the_rate_and_bit_rate_asked(piper_engine: Engine) -> None:
    async with compat_server(piper_engine) as srv:
        for rate_hz, kbps in sorted(MP3_FORMATS):
            fmt = f"mp3_{rate_hz}_{kbps}"
            url = f"{srv.url}/v1/text-to-speech/{VOICE}/stream-input?output_format={fmt}"
            async with websockets.connect(url) as ws:
                await ws.send(json.dumps({"text": " "}))
                await ws.send(json.dumps({"text": FIRST + REST}))
                await ws.send(json.dumps({"text": ""}))
                replies, code = await _collect(ws)
            assert code == 1000
            audio = b"".join(base64.b64decode(r["audio"]) for r in replies if r.get("audio"))
            assert decoded_duration_s(audio, "mp3", rate_hz) > 2.0, fmt
            assert payload_bits_per_s(audio) == pytest.approx(kbps * 1000, rel=0.01), fmt


async def test_the_readme_websocket_snippet_runs(piper_engine: Engine, tmp_path: Path) -> None:
    async with compat_server(piper_engine) as srv:
        code = readme_snippet("elevenlabs-ws")
        await asyncio.to_thread(run_snippet, code, f"http://127.0.0.1:{srv.port}", tmp_path)
        audio = (tmp_path / "elevenlabs.pcm").read_bytes()
        assert decoded_duration_s(audio, "pcm_s16le", 16000) > 1.0
        await counters_back_to_zero(srv.runtime)
