"""Teach the engine speed models this machine's speed before the first client comes.

The listener model forecasts synthesis time from ``EngineSpeed``, which learns from every
segment made but starts from a prior (15 ms + 1.5 ms per character alone, twice that per
character beside another run). A server's first clients are planned with the prior, and
on a slow machine the prior is far off: a burst of LLM-paced listeners right after start
stalled where the same burst a minute later did not (8 listeners at once: 8 streams
with underruns, 7 s in all, against none once the models had learned; bench load,
2-core machine). So at start the runtime times a few sentences, alone and two at once,
and feeds them to the models as segments would. Bounded: an engine whose first short
sentence takes longer than ``SLOW_ENGINE_MS`` (a large model on a CPU) is left to learn
as it goes, and no new run starts after ``MAX_S``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from speakstream.engines.base import Engine, SynthesisOptions
from speakstream.protocol.listener import EngineSpeed

_LOGGER = logging.getLogger(__name__)

# a short segment and a whole sentence (the sizes segments have: the first words, a
# sentence), so both the overhead and the cost per character are measured
TEXTS = (
    "Thanks for waiting.",
    "The package left our warehouse on Tuesday morning, and it should arrive by Friday.",
)
ROUNDS = 2
SLOW_ENGINE_MS = 500.0
MAX_S = 3.0  # start-up time calibration may take, at most about
LEAD_S = 0.005  # how far the run already going is ahead of the one timed beside it


@dataclass(frozen=True, slots=True)
class Timed:
    chars: int
    synthesis_ms: float
    audio_ms: float


def timed_run(engine: Engine, voice: str, text: str) -> Timed:
    """One engine run of ``text``: its wall time and the audio it made."""
    started_s = time.perf_counter()
    audio_ms = 0.0
    for chunk in engine.synthesize(text, voice, SynthesisOptions()):
        audio_ms += chunk.duration_ms
    return Timed(len(text), 1000.0 * (time.perf_counter() - started_s), audio_ms)


def calibrate(engine: Engine, voice: str, speed: EngineSpeed, workers: int) -> bool:
    """Time ``TEXTS`` alone (``speed``) and, with ``workers`` >= 2, each started while
    the same text already runs (``speed.loaded``), ``ROUNDS`` times; False if the engine
    was too slow to go on or failed (it is then left to learn as it goes)."""
    try:
        return _calibrate(engine, voice, speed, workers)
    except Exception:  # a start-up aid only: the first real segment reports the failure
        _LOGGER.warning(
            "engine speed: calibration failed; learned as segments are made", exc_info=True
        )
        return False


def _texts_until(give_up_s: float) -> Iterator[str]:
    """``TEXTS``, ``ROUNDS`` times over, while ``time.perf_counter()`` is before
    ``give_up_s``."""
    for _ in range(ROUNDS):
        for text in TEXTS:
            if time.perf_counter() > give_up_s:
                return
            yield text


def _calibrate(engine: Engine, voice: str, speed: EngineSpeed, workers: int) -> bool:
    first = timed_run(engine, voice, TEXTS[0])
    if first.synthesis_ms > SLOW_ENGINE_MS:
        _LOGGER.info(
            "engine speed: learned as segments are made (%.0f ms for a short sentence)",
            first.synthesis_ms,
        )
        return False
    give_up_s = time.perf_counter() + MAX_S
    for text in _texts_until(give_up_s):
        run = timed_run(engine, voice, text)
        speed.observe(run.chars, run.synthesis_ms, run.audio_ms)
    if workers >= 2 and speed.loaded is not None:
        with ThreadPoolExecutor(2, thread_name_prefix="calibrate") as pool:
            for text in _texts_until(give_up_s):
                # as the server sees it: a run that starts while another runs (the one
                # already running, which started alone, is not what the model learns)
                ahead = pool.submit(timed_run, engine, voice, text)
                time.sleep(LEAD_S)
                run = pool.submit(timed_run, engine, voice, text).result()
                ahead.result()
                speed.observe(run.chars, run.synthesis_ms, run.audio_ms, shared=True)
    loaded = speed.for_load(True)
    _LOGGER.info(
        "engine speed: %.1f ms + %.2f ms per character alone, %.1f ms + %.2f ms per character "
        "beside another run",
        speed.overhead_ms,
        speed.ms_per_char,
        loaded.overhead_ms,
        loaded.ms_per_char,
    )
    return True
