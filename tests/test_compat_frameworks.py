"""Voice-agent frameworks' TTS services pointed at this server, one utterance each, with
no room and no audio device: Pipecat's ``OpenAITTSService`` and its ElevenLabs, Cartesia
and Deepgram WebSocket services (as the README sets them up) in a two-stage pipeline;
LiveKit Agents' ``openai.TTS`` (which asks for SSE with MP3) and its ElevenLabs,
Cartesia and Deepgram plugins' ``stream()`` (the README's snippet)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.compat_support import (
    SHORT_TEXT,
    assert_duration,
    counters_back_to_zero,
    http_url,
    native_seconds,
    readme_snippet,
    run_snippet,
)
from tests.conftest import RunningServer

pytestmark = pytest.mark.timeout(180)


async def _speak_in_a_pipeline(tts: Any, text: str) -> tuple[bytes, set[int], list[str]]:
    """One utterance through ``tts`` in a two-stage Pipecat pipeline (no transport):
    the audio, the sample rates of its frames, and the errors pushed."""
    from pipecat.frames.frames import EndFrame, ErrorFrame, Frame, TTSAudioRawFrame, TTSSpeakFrame
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.runner import PipelineRunner
    from pipecat.pipeline.task import PipelineParams, PipelineTask
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

    class Collect(FrameProcessor):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.audio = bytearray()
            self.rates: set[int] = set()
            self.errors: list[str] = []

        async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
            await super().process_frame(frame, direction)
            if isinstance(frame, TTSAudioRawFrame):
                self.audio += frame.audio
                self.rates.add(frame.sample_rate)
            elif isinstance(frame, ErrorFrame):
                self.errors.append(frame.error)
            await self.push_frame(frame, direction)

    collect = Collect()
    task = PipelineTask(
        Pipeline([tts, collect]), params=PipelineParams(audio_out_sample_rate=24000)
    )
    await task.queue_frames([TTSSpeakFrame(text), EndFrame()])
    runner = PipelineRunner(handle_sigint=False)
    await runner.add_workers(task)
    await runner.run()
    return bytes(collect.audio), collect.rates, collect.errors


async def test_pipecat_openai_tts_speaks_one_utterance(piper_server: RunningServer) -> None:
    pytest.importorskip("pipecat")
    from pipecat.services.openai.tts import OpenAITTSService

    native_s = await native_seconds(piper_server, SHORT_TEXT)
    tts = OpenAITTSService(
        api_key="unused",
        base_url=f"{http_url(piper_server)}/v1",
        settings=OpenAITTSService.Settings(voice="alloy", model="gpt-4o-mini-tts"),
    )
    audio, rates, errors = await _speak_in_a_pipeline(tts, SHORT_TEXT)
    assert not errors
    assert rates == {24000}
    assert_duration(len(audio) / 2 / 24000, native_s)
    await counters_back_to_zero(piper_server.runtime)


@pytest.mark.parametrize("name", ["elevenlabs", "cartesia", "deepgram"])
async def test_pipecat_websocket_tts_from_the_readme_speaks_one_utterance(
    piper_server: RunningServer, tmp_path: Path, name: str
) -> None:
    pytest.importorskip("pipecat")
    native_s = await native_seconds(piper_server, SHORT_TEXT)
    services = run_snippet(readme_snippet("pipecat"), http_url(piper_server), tmp_path)
    audio, rates, errors = await _speak_in_a_pipeline(services[name], SHORT_TEXT)
    assert not errors
    assert rates == {24000}
    assert_duration(len(audio) / 2 / 24000, native_s)
    await counters_back_to_zero(piper_server.runtime)


async def test_livekit_agents_openai_tts_speaks_one_utterance(
    piper_server: RunningServer,
) -> None:
    pytest.importorskip("livekit.agents")
    from livekit.plugins import openai as livekit_openai

    native_s = await native_seconds(piper_server, SHORT_TEXT)
    tts: Any = livekit_openai.TTS(base_url=f"{http_url(piper_server)}/v1", api_key="unused")
    samples = 0
    rates: set[int] = set()
    try:
        async with tts.synthesize(SHORT_TEXT) as stream:
            async for event in stream:
                samples += event.frame.samples_per_channel
                rates.add(event.frame.sample_rate)
    finally:
        await tts.aclose()
    assert rates == {24000}
    assert_duration(samples / 24000, native_s)
    await counters_back_to_zero(piper_server.runtime)


async def test_the_readme_livekit_snippet_runs(
    piper_server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("livekit.plugins.openai")  # plugins register on the main thread
    code = readme_snippet("livekit")
    await asyncio.to_thread(run_snippet, code, http_url(piper_server), tmp_path)
    assert "samples" in capsys.readouterr().out


async def test_the_readme_livekit_websocket_plugins_speak_one_utterance_each(
    piper_server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for plugin in ("elevenlabs", "cartesia", "deepgram"):  # they register on the main thread
        pytest.importorskip(f"livekit.plugins.{plugin}")
    native_s = await native_seconds(piper_server, SHORT_TEXT)
    code = readme_snippet("livekit-ws")
    replace = {"Hello from speakstream.": SHORT_TEXT}
    await asyncio.to_thread(run_snippet, code, http_url(piper_server), tmp_path, replace)
    providers = []
    for line in capsys.readouterr().out.splitlines():
        provider, samples, *_, rate_hz, _ = line.split()
        providers.append(provider)
        assert_duration(int(samples) / int(rate_hz), native_s)
    assert providers == ["ElevenLabs", "Cartesia", "Deepgram"]
    await counters_back_to_zero(piper_server.runtime)
