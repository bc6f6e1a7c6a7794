"""The random-weight Chatterbox checkpoint the tests load, built once per test session.

``build_test_checkpoint`` runs ``speakstream.engines.chatterbox.random_checkpoint`` in a
subprocess with ``--forbid-network`` (any connection attempt fails) and the Hugging Face
libraries told to stay offline; the tests then load it through the engine's normal path.
``TEST_OPTIONS`` and a 1-second voice prompt keep CPU time small: 2 flow-matching steps, 0.5 speech tokens per
character (the random T3 never says stop, so the bound sets every length), a fixed seed,
and the model loaded on first use.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HAVE_CHATTERBOX = importlib.util.find_spec("chatterbox") is not None
needs_chatterbox = pytest.mark.skipif(
    not HAVE_CHATTERBOX, reason="the chatterbox extra is not installed"
)
REAL_CHECKPOINT_ENV = "SPEAKSTREAM_TEST_CHATTERBOX_REAL_DIR"

TEST_OPTIONS: dict[str, Any] = {
    "device": "cpu",
    "preload": False,  # engines made only to check an error or a setting load nothing
    "seed": 1234,
    "cfm_steps": 2,
    "tokens_per_char": 0.5,
    "first_chunk_tokens": 4,
}


def build_test_checkpoint(out_dir: Path, variant: str = "standard") -> Path:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    command = [
        sys.executable,
        "-m",
        "speakstream.engines.chatterbox.random_checkpoint",
        str(out_dir),
        "--t3-layers",
        "2",
        "--prompt-s",
        "1",
        "--variant",
        variant,
        "--forbid-network",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out_dir


def engine_options_for(checkpoint_dir: Path, **changes: Any) -> dict[str, Any]:
    return {**TEST_OPTIONS, "checkpoint_dir": str(checkpoint_dir), **changes}


@contextlib.contextmanager
def tuned(engine: Any, *, stream: bool = True, **options: Any) -> Iterator[Any]:
    """``engine`` (the session's, already loaded: another would load the model again,
    3 GB) with some options changed, and one decode at the end if not ``stream``."""
    from speakstream.engines.chatterbox.engine import NOT_STREAMED

    saved = engine.options, engine.schedule
    engine.options = dataclasses.replace(engine.options, **options)
    if not stream:
        engine.schedule = dataclasses.replace(engine.schedule, first_chunk_tokens=NOT_STREAMED)
    try:
        yield engine
    finally:
        engine.options, engine.schedule = saved


def assert_cancel_stops_at_the_next_step(engine: Any, text: str) -> None:
    """A cancel from another thread stops token generation at its next step, and no
    audio comes after it (a generation long enough to be cancelled in the middle)."""
    from speakstream.engines import SynthesisOptions

    bound = 20 * len(text)
    chunks: list[Any] = []
    with tuned(engine, stream=False, tokens_per_char=20.0) as slow:
        stream = slow.synthesize(text, "default", SynthesisOptions())
        worker = threading.Thread(target=lambda: chunks.extend(stream), daemon=True)
        worker.start()
        while stream.steps < 3:
            worker.join(0.01)
            assert worker.is_alive()
        stream.cancel()
        steps_at_cancel = stream.steps
        worker.join(120)
    assert not worker.is_alive()
    assert stream.steps <= steps_at_cancel + 1 < bound
    assert chunks == []  # one decode at the end, and no end after a cancel
