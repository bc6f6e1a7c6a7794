"""Calibration at start: the speed models learn the engine's speed before any client."""

from __future__ import annotations

import pytest

from speakstream.engines.base import EngineSettings
from speakstream.engines.fake import FakeEngine
from speakstream.protocol.listener import EngineSpeed
from speakstream.server.calibration import SLOW_ENGINE_MS, TEXTS, calibrate


def _speed() -> EngineSpeed:
    return EngineSpeed(loaded=EngineSpeed(prior_ms_per_char=3.0))


def test_a_slow_engine_teaches_both_models_its_speed() -> None:
    # 4 ms of (sleeping) work per speakable character: far slower than the priors
    engine = FakeEngine(EngineSettings(options={"synthesis_s_per_char": 0.004}))
    speed = _speed()
    assert calibrate(engine, "fake-a", speed, workers=2)
    speakable = sum(ch.isalnum() for ch in TEXTS[1]) / len(TEXTS[1])
    # learned over the prior's two pseudo-segments: most of the way to 4 ms per
    # speakable character (the sleeps only ever run long)
    assert speed.ms_per_char > 0.6 * 4.0 * speakable > 1.5
    loaded = speed.for_load(True)
    assert loaded is not speed and loaded.ms_per_char > 0.6 * 4.0 * speakable
    assert speed.audio_ms_per_char == pytest.approx(60.0 * speakable, rel=0.1)


def test_one_worker_leaves_the_loaded_model_alone() -> None:
    engine = FakeEngine(EngineSettings(options={"synthesis_s_per_char": 0.002}))
    speed = _speed()
    assert calibrate(engine, "fake-a", speed, workers=1)
    assert speed.for_load(True).ms_per_char == pytest.approx(3.0)


def test_an_engine_too_slow_for_it_is_left_to_learn_as_it_goes() -> None:
    per_char_s = 1.5 * SLOW_ENGINE_MS / 1000.0 / sum(ch.isalnum() for ch in TEXTS[0])
    engine = FakeEngine(EngineSettings(options={"synthesis_s_per_char": per_char_s}))
    speed = _speed()
    assert not calibrate(engine, "fake-a", speed, workers=2)
    assert speed.ms_per_char == pytest.approx(1.5)  # the prior, untouched


def test_a_failing_engine_does_not_stop_the_start() -> None:
    engine = FakeEngine(EngineSettings(options={"fail_on": "Thanks"}))
    speed = _speed()
    assert not calibrate(engine, "fake-a", speed, workers=2)
    assert speed.ms_per_char == pytest.approx(1.5)
