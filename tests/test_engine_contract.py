"""The contract every registered engine keeps, one suite over ``ENGINE_NAMES``.

An engine added to the registry is checked here with no new test: each is loaded once per
session with default settings (``load_engine(name, EngineSettings())``), except Chatterbox,
which loads the session's random-weight test checkpoint (``conftest``; skipped without
the ``chatterbox`` extra). One that cannot load (an optional dependency or model missing)
is skipped with the loader's message, except the engines every install has, which must
load. What is checked is what the server
relies on: consistent capabilities; 1-D float32 chunks at the voice's rate, finite and in
[-1, 1]; no audio and no error for text with nothing to say; speed; abandoning the
iterator; two threads at once; word timings inside their chunk and their text; a long
unbroken input that ends (audio or an exception, never a hang); ``close``. Texts are short:
the fake engine answers at once, Piper in well under a second per text (the
long input aside).
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from speakstream.audio.pcm import PcmChunk
from speakstream.engines import (
    ENGINE_NAMES,
    Engine,
    EngineLoadError,
    EngineSettings,
    SynthesisOptions,
    load_engine,
)

ALWAYS_AVAILABLE = frozenset({"piper", "fake"})  # installed with speakstream itself
LONG_INPUT_TIMEOUT_S = 120.0  # Piper answers in about 30 s on 2 busy cores

pytestmark = pytest.mark.timeout(240)


def _load(name: str, request: pytest.FixtureRequest) -> Engine:
    settings = EngineSettings()
    if name == "chatterbox":  # no default checkpoint: the session's test one
        from tests.chatterbox_support import engine_options_for

        checkpoint = request.getfixturevalue("chatterbox_checkpoint")
        settings = EngineSettings(options=engine_options_for(checkpoint))
    try:
        return load_engine(name, settings)
    except EngineLoadError as exc:
        if name in ALWAYS_AVAILABLE:
            raise
        pytest.skip(f"engine {name!r} cannot load here: {exc}")


@pytest.fixture(
    scope="session",
    params=[  # Chatterbox's run in its own venv (scripts/test.sh: pytest -m chatterbox)
        pytest.param(name, marks=pytest.mark.chatterbox) if name == "chatterbox" else name
        for name in ENGINE_NAMES
    ],
)
def engine_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="session")
def engine(engine_name: str, request: pytest.FixtureRequest) -> Iterator[Engine]:
    loaded = _load(engine_name, request)
    yield loaded
    loaded.close()


def speak(
    engine: Engine, text: str, voice: str | None = None, speed: float = 1.0
) -> list[PcmChunk]:
    voice = voice or engine.capabilities.default_voice
    return list(engine.synthesize(text, voice, SynthesisOptions(speed=speed)))


def voice_rate_hz(engine: Engine, voice: str | None = None) -> int:
    info = engine.capabilities.voice(voice or engine.capabilities.default_voice)
    assert info is not None
    return info.sample_rate_hz


def seconds(chunks: list[PcmChunk]) -> float:
    return sum(chunk.duration_ms for chunk in chunks) / 1000.0


def assert_valid_audio(chunks: list[PcmChunk], rate_hz: int) -> None:
    """Real speech: 1-D float32 chunks at the voice's rate, finite, in [-1, 1], not silent."""
    assert chunks, "no audio for real text"
    for chunk in chunks:
        assert isinstance(chunk, PcmChunk)
        assert chunk.samples.ndim == 1 and chunk.samples.dtype == np.float32
        assert chunk.sample_rate_hz == rate_hz
        assert np.all(np.isfinite(chunk.samples))
        assert float(np.max(np.abs(chunk.samples), initial=0.0)) <= 1.0
    audio = np.concatenate([chunk.samples for chunk in chunks])
    assert audio.size > 0 and float(np.max(np.abs(audio))) > 0.01


def test_capabilities_are_consistent(engine_name: str, engine: Engine) -> None:
    caps = engine.capabilities
    names = [voice.name for voice in caps.voices]
    assert caps.engine == engine_name
    assert names and len(set(names)) == len(names)
    assert caps.default_voice in names
    assert caps.voice(caps.default_voice) is not None
    assert all(isinstance(v.sample_rate_hz, int) and v.sample_rate_hz > 0 for v in caps.voices)


def test_every_voice_speaks_real_text(engine: Engine) -> None:
    for voice in engine.capabilities.voices:
        chunks = speak(engine, "Hello there, how are you?", voice.name)
        assert_valid_audio(chunks, voice.sample_rate_hz)
        assert seconds(chunks) > 0.3


@pytest.mark.parametrize("text", ["", " ", "\n\t ", "...", " , ", "—", "?!", "( )", "- -", "''"])
def test_text_with_nothing_to_say_gives_no_audio_and_no_error(engine: Engine, text: str) -> None:
    assert sum(chunk.num_samples for chunk in speak(engine, text)) == 0


def test_double_speed_is_clearly_shorter(engine: Engine) -> None:
    text = "This sentence has a fixed length."
    normal, fast = speak(engine, text), speak(engine, text, speed=2.0)
    assert_valid_audio(fast, voice_rate_hz(engine))
    assert seconds(fast) < 0.75 * seconds(normal)


def test_an_abandoned_iterator_leaves_the_engine_working(engine: Engine) -> None:
    text = "One sentence comes first. Another one follows it. A third ends it."
    for _ in range(3):  # more than once: nothing may leak from one abandon to the next
        chunks = engine.synthesize(text, engine.capabilities.default_voice, SynthesisOptions())
        first = next(chunks)
        assert first.num_samples > 0
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
        del chunks
    assert_valid_audio(speak(engine, "Still speaking."), voice_rate_hz(engine))


def test_two_threads_at_once_each_get_their_own_audio(engine: Engine) -> None:
    texts = ("Yes, it is.", "This second sentence is much longer than the first one ever was.")
    alone = [seconds(speak(engine, text)) for text in texts]
    assert alone[1] > 2 * alone[0]  # different enough that a mix-up shows
    rate_hz = voice_rate_hz(engine)
    start = threading.Barrier(2)

    def run(text: str) -> list[PcmChunk]:
        start.wait(timeout=30)
        return speak(engine, text)

    with ThreadPoolExecutor(2) as pool:
        for _ in range(3):
            results = list(pool.map(run, texts))
            for text, chunks, solo_s in zip(texts, results, alone, strict=True):
                assert_valid_audio(chunks, rate_hz)
                # VITS varies its durations a little from run to run; a mix-up is 3x off
                assert 0.7 * solo_s < seconds(chunks) < 1.4 * solo_s, text
                for chunk in chunks:
                    assert all(word.end_char <= len(text) for word in chunk.words), text


def test_word_timings_lie_in_their_chunk_and_cover_the_text(engine: Engine) -> None:
    if not engine.capabilities.word_timings:
        pytest.skip(f"{engine.capabilities.engine} does not report word timings")
    text = "Hello there, my friend. It costs $29.95 today! Is that fine?"
    chunks = speak(engine, text)
    assert_valid_audio(chunks, voice_rate_hz(engine))
    words = []
    for chunk in chunks:
        tolerance_ms = 1000.0 / chunk.sample_rate_hz  # one sample of rounding
        for word in chunk.words:
            assert 0.0 <= word.start_ms <= word.end_ms <= chunk.duration_ms + tolerance_ms
            assert 0 <= word.start_char < word.end_char <= len(text)
        starts_ms = [word.start_ms for word in chunk.words]
        assert starts_ms == sorted(starts_ms)
        words += chunk.words
    for before, after in itertools.pairwise(words):
        assert before.end_char <= after.start_char, "words in text order, never overlapping"
    covered = {i for word in words for i in range(word.start_char, word.end_char)}
    for match in re.finditer(r"\w+", text):
        assert set(range(match.start(), match.end())) <= covered, match.group()


def test_a_long_unbroken_input_ends_with_audio_or_an_exception(engine: Engine) -> None:
    """2,000 characters without punctuation: no sentence end for the engine to cut at.

    Piper makes one chunk of it, and its cost grows faster than the length (about 30 s on
    2 busy cores, nearly all in one ONNX Runtime run): the slowest test of the suite.
    """
    text = ("the quick brown fox jumps over the lazy dog " * 50)[:2000].rstrip()
    assert len(text) >= 1990 and not re.search(r"[^\w ]", text)
    outcome: list[list[PcmChunk] | BaseException] = []

    def run() -> None:
        try:
            outcome.append(speak(engine, text))
        except Exception as exc:  # failing is allowed; hanging is not
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(LONG_INPUT_TIMEOUT_S)
    assert not worker.is_alive(), f"no answer after {LONG_INPUT_TIMEOUT_S} s"
    [result] = outcome
    if isinstance(result, list):
        assert_valid_audio(result, voice_rate_hz(engine))
        # about 400 words: well over a minute of speech, not a truncated stub
        assert seconds(result) > 60


def test_close_releases_an_engine_that_has_spoken(
    engine_name: str, engine: Engine, request: pytest.FixtureRequest
) -> None:
    fresh = _load(engine_name, request)  # not the shared one: the other tests still need it
    assert_valid_audio(speak(fresh, "Goodbye."), voice_rate_hz(fresh))
    fresh.close()
