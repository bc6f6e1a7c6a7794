"""The Chatterbox engine's turbo variant (``chatterbox.variant = turbo``) on a
random-weight checkpoint of its real architecture: GPT-2 Medium T3 cut to 2 layers,
S3Gen's meanflow decoder, a byte-level GPT-2 tokenizer, built offline in a subprocess
under the network guard (``random_checkpoint --variant turbo``) and loaded through the
engine's normal path. Random weights speak noise: plumbing only (files, rate, finite
audio, streaming, seeds, cancel, what ``ready`` says), never quality.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import speakstream
from speakstream.audio.pcm import PcmChunk
from speakstream.engines import (
    Engine,
    EngineLoadError,
    EngineSettings,
    SynthesisOptions,
    load_engine,
)
from tests.chatterbox_support import (
    assert_cancel_stops_at_the_next_step,
    build_test_checkpoint,
    engine_options_for,
    needs_chatterbox,
    tuned,
)
from tests.conftest import running_server

pytestmark = [pytest.mark.chatterbox, needs_chatterbox, pytest.mark.timeout(600)]

TEXT = "Hello there, how are you?"
SAMPLES_PER_TOKEN = 960  # 24 kHz, 25 tokens a second
TAIL_TOKENS = 3  # upstream turbo's silence tokens at the end


@pytest.fixture(scope="module")
def turbo_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_test_checkpoint(tmp_path_factory.mktemp("chatterbox-turbo"), variant="turbo")


@pytest.fixture(scope="module")
def turbo_engine(turbo_checkpoint: Path) -> Iterator[Engine]:
    options = engine_options_for(turbo_checkpoint, variant="turbo")
    engine = load_engine("chatterbox", EngineSettings(options=options))
    yield engine
    engine.close()


def speak(engine: Engine, text: str = TEXT, **options: object) -> list[PcmChunk]:
    return list(engine.synthesize(text, "default", SynthesisOptions(**options)))  # type: ignore[arg-type]


def audio_of(chunks: list[PcmChunk]) -> np.ndarray:
    return np.concatenate([c.samples for c in chunks]) if chunks else np.zeros(0, np.float32)


def test_turbo_names_its_own_missing_files(tmp_path: Path) -> None:
    for name in ("ve.safetensors", "t3_cfg.safetensors", "s3gen.safetensors", "tokenizer.json"):
        (tmp_path / name).write_bytes(b"")  # a standard checkpoint is not a turbo one
    options = {"checkpoint_dir": str(tmp_path), "variant": "turbo"}
    with pytest.raises(EngineLoadError) as caught:
        load_engine("chatterbox", EngineSettings(options=options))
    message = str(caught.value)
    for name in ("t3_turbo_v1.safetensors", "s3gen_meanflow.safetensors", "vocab.json"):
        assert name in message
    assert "ve.safetensors" not in message and "ResembleAI/chatterbox-turbo" in message


def test_an_unknown_variant_is_refused(tmp_path: Path) -> None:
    options = {"checkpoint_dir": str(tmp_path), "variant": "fast"}
    with pytest.raises(EngineLoadError, match="variant: 'fast' is not one of standard, turbo"):
        load_engine("chatterbox", EngineSettings(options=options))


def test_capabilities_name_the_variant_and_only_its_options(turbo_engine: Engine) -> None:
    caps = turbo_engine.capabilities
    assert caps.variant == "turbo" and caps.streams_within_sentence
    assert caps.options == ("temperature", "seed")  # no exaggeration, no guidance
    assert caps.voice("default") is not None and caps.voice("default").sample_rate_hz == 24_000  # type: ignore[union-attr]


def test_audio_is_finite_24khz_streamed_and_as_long_as_its_tokens(turbo_engine: Engine) -> None:
    chunks = speak(turbo_engine)
    audio = audio_of(chunks)
    assert len(chunks) > 1  # vocoded in pieces inside the sentence
    assert all(c.sample_rate_hz == 24_000 and c.samples.dtype == np.float32 for c in chunks)
    assert [c.continues for c in chunks] == [True] * (len(chunks) - 1) + [False]
    assert np.all(np.isfinite(audio)) and float(np.max(np.abs(audio))) <= 1.0
    tokens = int(np.ceil(0.5 * len(TEXT)))  # the random T3 never stops: the bound decides
    assert audio.size == (tokens + TAIL_TOKENS) * SAMPLES_PER_TOKEN


def test_streamed_audio_has_the_one_shot_length(turbo_engine: Engine) -> None:
    streamed = audio_of(speak(turbo_engine))
    with tuned(turbo_engine, stream=False):
        whole = speak(turbo_engine)
    assert len(whole) == 1 and streamed.size == whole[0].samples.size


def test_the_same_seed_gives_the_same_audio(turbo_engine: Engine) -> None:
    first, again = audio_of(speak(turbo_engine, seed=7)), audio_of(speak(turbo_engine, seed=7))
    other = audio_of(speak(turbo_engine, seed=8))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_cancel_stops_generation_at_the_next_step(turbo_engine: Engine) -> None:
    assert_cancel_stops_at_the_next_step(turbo_engine, TEXT)


async def test_ready_advertises_the_variant(turbo_engine: Engine) -> None:
    async with running_server(turbo_engine) as srv, speakstream.connect(srv.stream_url) as conn:
        capabilities = conn.ready["capabilities"]
    assert capabilities["engine"] == "chatterbox" and capabilities["variant"] == "turbo"
    assert capabilities["options"] == ["temperature", "seed"]
