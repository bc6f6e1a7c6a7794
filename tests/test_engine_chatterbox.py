"""The Chatterbox engine on a random-weight checkpoint of its real architecture.

Skipped without the ``chatterbox`` extra. The session's checkpoint (``conftest``) is
built offline in a subprocess and loaded through the engine's normal path. Random
weights speak noise: these tests check plumbing (rates, lengths, streaming, seeds,
cancel, options, errors), never quality; ``test_real_checkpoint_speaks`` does that only
where a real checkpoint directory is configured (``SPEAKSTREAM_TEST_CHATTERBOX_REAL_DIR``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from speakstream.audio.pcm import PcmChunk
from speakstream.engines import (
    Engine,
    EngineLoadError,
    EngineSettings,
    SynthesisOptions,
    load_engine,
)
from tests.chatterbox_support import (
    REAL_CHECKPOINT_ENV,
    assert_cancel_stops_at_the_next_step,
    engine_options_for,
    needs_chatterbox,
    tuned,
)

pytestmark = [pytest.mark.chatterbox, needs_chatterbox, pytest.mark.timeout(600)]

TEXT = "Hello there, how are you?"
SAMPLES_PER_TOKEN = 960  # 24 kHz, 25 tokens a second


def audio_of(chunks: list[PcmChunk]) -> np.ndarray:
    return np.concatenate([c.samples for c in chunks]) if chunks else np.zeros(0, np.float32)


def speak(engine: Engine, text: str = TEXT, **options: object) -> list[PcmChunk]:
    voice = engine.capabilities.default_voice
    return list(engine.synthesize(text, voice, SynthesisOptions(**options)))  # type: ignore[arg-type]


def engine_with(checkpoint: Path, **changes: object) -> Engine:
    return load_engine(
        "chatterbox", EngineSettings(options=engine_options_for(checkpoint, **changes))
    )


def test_missing_files_are_named_with_where_to_put_them(tmp_path: Path) -> None:
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(EngineLoadError) as caught:
        load_engine("chatterbox", EngineSettings(options={"checkpoint_dir": str(tmp_path)}))
    message = str(caught.value)
    for name in ("ve.safetensors", "t3_cfg.safetensors", "s3gen.safetensors"):
        assert name in message
    assert "tokenizer.json" not in message
    assert "chatterbox.checkpoint_dir" in message and "docs/chatterbox.md" in message


def test_no_checkpoint_dir_is_a_clear_error() -> None:
    with pytest.raises(EngineLoadError, match="checkpoint directory"):
        load_engine("chatterbox", EngineSettings())


def test_unknown_option_is_refused(chatterbox_checkpoint: Path) -> None:
    with pytest.raises(EngineLoadError, match="unknown chatterbox options: colour"):
        engine_with(chatterbox_checkpoint, colour="blue")


def test_device_names() -> None:
    import torch

    from speakstream.engines.chatterbox.checkpoint import resolve_device

    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in {"cpu", "cuda", "mps"}
    for bad in ("tpu", "cuda:x", "gpu0"):
        with pytest.raises(EngineLoadError, match="not one of auto, cpu, cuda, cuda:N, mps"):
            resolve_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(EngineLoadError, match="CUDA is not available"):
            resolve_device("cuda:1")


def test_capabilities_say_24khz_streaming_and_no_word_timings(chatterbox_engine: Engine) -> None:
    caps = chatterbox_engine.capabilities
    assert caps.engine == "chatterbox"
    assert caps.default_voice == "default"  # the checkpoint's conds.pt
    assert [v.sample_rate_hz for v in caps.voices] == [24_000]
    assert caps.streams_within_sentence and not caps.word_timings


def test_audio_is_finite_24khz_and_as_long_as_its_tokens(chatterbox_engine: Engine) -> None:
    chunks = speak(chatterbox_engine)
    audio = audio_of(chunks)
    assert all(c.sample_rate_hz == 24_000 for c in chunks)
    assert np.all(np.isfinite(audio)) and float(np.max(np.abs(audio))) <= 1.0
    bound = int(np.ceil(0.5 * len(TEXT)))  # tokens_per_char 0.5; special tokens are dropped
    assert 0 < audio.size <= bound * SAMPLES_PER_TOKEN and audio.size % SAMPLES_PER_TOKEN == 0


def test_the_same_seed_gives_the_same_audio(chatterbox_engine: Engine) -> None:
    first, again = (
        audio_of(speak(chatterbox_engine, seed=7)),
        audio_of(speak(chatterbox_engine, seed=7)),
    )
    other = audio_of(speak(chatterbox_engine, seed=8))
    np.testing.assert_array_equal(first, again)
    assert first.size != other.size or not np.array_equal(first, other)


def test_first_audio_leaves_before_the_sentence_is_generated(chatterbox_engine: Engine) -> None:
    stream: Any = chatterbox_engine.synthesize(TEXT, "default", SynthesisOptions())
    first = next(stream)
    steps_at_first = stream.steps
    rest = list(stream)
    assert first.num_samples > 0 and rest
    assert steps_at_first < stream.steps


def test_streamed_audio_has_the_one_shot_length(
    chatterbox_engine: Engine, chatterbox_checkpoint: Path
) -> None:
    """Same seed, same tokens: streaming (several decodes, crossfaded) and one decode at
    the end give audio of exactly the same length."""
    assert not engine_with(chatterbox_checkpoint, stream=False).capabilities.streams_within_sentence
    text = "This sentence is long enough for a few decodes."
    parts = speak(chatterbox_engine, text, seed=3)
    with tuned(chatterbox_engine, stream=False):
        whole = speak(chatterbox_engine, text, seed=3)
    assert len(parts) >= 3 and len(whole) == 1
    assert audio_of(parts).size == audio_of(whole).size


def test_the_vocoder_joins_pieces_to_exactly_the_final_decode_length(
    chatterbox_engine: Engine,
) -> None:
    import torch

    from speakstream.engines.chatterbox.vocoder import ChunkSchedule, StreamingVocoder

    model, voices = chatterbox_engine.load()  # type: ignore[attr-defined]
    ref = voices.conditionals("default").gen
    lock = threading.Lock()
    schedule = ChunkSchedule(first_chunk_tokens=4, cfm_steps=2)
    vocoder = StreamingVocoder(model.s3gen, ref, seed=5, lock=lock, schedule=schedule)
    tokens = torch.randint(0, 6561, (30,), generator=torch.Generator().manual_seed(0)).tolist()
    pieces = [p for t in tokens if (p := vocoder.push(t)) is not None]
    pieces.append(vocoder.finish())
    streamed = np.concatenate(pieces)
    once = vocoder.decode_once()
    assert vocoder.decodes >= 4  # a growing schedule: several decodes, not one per token
    assert streamed.size == once.size == len(tokens) * SAMPLES_PER_TOKEN
    # the last piece is the final decode itself (after its crossfade)
    fade = 288  # 12 ms
    np.testing.assert_allclose(
        streamed[-pieces[-1].size + fade :], once[-pieces[-1].size + fade :], atol=1e-5
    )


def test_cancel_stops_generation_at_the_next_step(chatterbox_engine: Engine) -> None:
    assert_cancel_stops_at_the_next_step(chatterbox_engine, TEXT)


def test_closing_the_iterator_from_its_thread_stops_it(chatterbox_engine: Engine) -> None:
    stream: Any = chatterbox_engine.synthesize(TEXT * 3, "default", SynthesisOptions())
    next(stream)
    steps = stream.steps
    stream.close()
    assert list(stream) == [] and stream.steps == steps


def test_cfg_weight_zero_speaks(chatterbox_engine: Engine) -> None:
    """Upstream's generate(cfg_weight=0.0) crashes; here it runs one sequence."""
    guided = audio_of(speak(chatterbox_engine, seed=11))
    unguided = audio_of(speak(chatterbox_engine, seed=11, cfg_weight=0.0))
    assert unguided.size > 0 and np.all(np.isfinite(unguided))
    assert unguided.size != guided.size or not np.array_equal(unguided, guided)


def test_temperature_reaches_the_sampler(chatterbox_engine: Engine) -> None:
    base = audio_of(speak(chatterbox_engine, seed=5))
    changed = audio_of(speak(chatterbox_engine, seed=5, temperature=0.3))
    assert changed.size != base.size or not np.array_equal(changed, base)


def test_exaggeration_reaches_t3s_conditioning(chatterbox_engine: Engine) -> None:
    """Random T3 weights dilute one conditioning position too much for the sampled
    tokens to show it, so this checks the conditioning that a call uses, and T3's
    embedding of it."""
    engine: Any = chatterbox_engine
    model, _ = engine.load()
    _, configured = engine.conditioning("default", SynthesisOptions())
    _, asked = engine.conditioning("default", SynthesisOptions(exaggeration=1.5))
    assert float(configured.emotion_adv.flatten()[0]) == 0.5  # chatterbox.exaggeration
    assert float(asked.emotion_adv.flatten()[0]) == 1.5
    import torch

    with torch.inference_mode():
        a, b = model.t3.prepare_conditioning(configured), model.t3.prepare_conditioning(asked)
    differs = (a != b).any(dim=-1).flatten().tolist()
    assert differs == [False] * (len(differs) - 1) + [True]  # the emotion position only


def test_max_new_tokens_bounds_the_audio(chatterbox_engine: Engine) -> None:
    with tuned(chatterbox_engine, tokens_per_char=20.0, max_new_tokens=12) as engine:
        audio = audio_of(speak(engine))
    assert 0 < audio.size <= 12 * SAMPLES_PER_TOKEN


def test_a_text_over_max_text_chars_is_refused_not_cut(chatterbox_engine: Engine) -> None:
    with pytest.raises(ValueError, match="max_text_chars"):
        speak(chatterbox_engine, "word " * 200)


def test_an_unknown_voice_is_an_error(chatterbox_engine: Engine) -> None:
    for voice in ("nobody", "upload:0123456789abcdef", "upload:../../etc/passwd"):
        with pytest.raises(EngineLoadError, match="voice"):
            list(chatterbox_engine.synthesize(TEXT, voice, SynthesisOptions()))


def test_a_reference_wav_is_a_second_voice(
    chatterbox_engine: Engine, chatterbox_checkpoint: Path
) -> None:
    from speakstream.engines.chatterbox.voices import VoiceBook

    recording = chatterbox_checkpoint / "synthetic_voice.wav"
    engine = engine_with(chatterbox_checkpoint, reference_wav=str(recording))
    assert [v.name for v in engine.capabilities.voices] == ["default", "reference"]
    model, _ = chatterbox_engine.load()  # type: ignore[attr-defined]
    reference = VoiceBook(model, recording, None).conditionals("reference")
    # the whole recording, where the checkpoint's conds.pt keeps a 1-second prompt
    assert reference.gen["prompt_feat"].shape[1] > model.builtin_conds.gen["prompt_feat"].shape[1]
    with pytest.raises(EngineLoadError, match="does not exist"):
        VoiceBook(model, chatterbox_checkpoint / "nothing.wav", None)


def test_the_network_guard_refuses_connections() -> None:
    code = (
        "import socket\n"
        "from speakstream.engines.chatterbox.random_checkpoint import forbid_network\n"
        "forbid_network()\n"
        "try:\n"
        "    socket.create_connection(('127.0.0.1', 9))\n"
        "except OSError as exc:\n"
        "    print('refused:', exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "refused: network access is forbidden" in done.stdout, done.stderr


@pytest.mark.skipif(not os.environ.get(REAL_CHECKPOINT_ENV), reason=f"{REAL_CHECKPOINT_ENV} unset")
def test_real_checkpoint_speaks() -> None:
    """With the real weights: a short sentence gives about its natural length of speech."""
    engine = load_engine(
        "chatterbox",
        EngineSettings(options={"checkpoint_dir": os.environ[REAL_CHECKPOINT_ENV], "seed": 1}),
    )
    chunks = speak(engine, "Hello, this is a test of the real Chatterbox weights.")
    seconds = audio_of(chunks).size / 24_000
    assert 1.5 < seconds < 8.0
    engine.close()


async def test_a_sentence_streamed_in_pieces_reaches_a_client_without_gaps(
    chatterbox_engine: Engine,
) -> None:
    """Through a real server: the pieces of one sentence are joined as they are (no
    pause or fade between them), so the client gets about the engine's own length, not
    a sentence pause per piece."""
    import speakstream
    from tests.conftest import running_server

    text = "This sentence is long enough for a few decodes."
    pieces = speak(chatterbox_engine, text)
    assert len(pieces) >= 3
    engine_ms = sum(p.duration_ms for p in pieces)
    async with (
        running_server(chatterbox_engine) as srv,
        speakstream.connect(srv.stream_url) as conn,
    ):
        ctx = await conn.open_context("one", encoding="pcm_s16le", min_text_length=1000)
        await ctx.send(text)
        await ctx.end()
        result = await ctx.collect()
    assert not result.errors, result.errors
    segments = [e for e in result.events if e.type == "segment"]
    assert [s.data["text"] for s in segments] == [text]
    client_ms = 1000 * len(result.audio) / 2 / 24_000
    # edges may be trimmed a little; each missing join would add a 250 ms pause
    assert engine_ms - 100 < client_ms < engine_ms + 100
