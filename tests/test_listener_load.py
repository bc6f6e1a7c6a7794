"""Many listeners on a virtual clock (``tests/load_sim.py``): the listener model, the
engine backlog and the pool's rules together keep LLM-paced listeners fed.

The scripted engine runs at this machine's measured single-thread Piper speed (the load
benchmark's engine limit: about 18 s of audio per second on 2 workers). Times are
simulated, so the assertions are exact, not timing claims about the machine.
"""

from __future__ import annotations

import pytest

from speakstream.bench.load import PARAGRAPH
from speakstream.protocol.carry import CarryPolicy
from speakstream.protocol.stream import ContextStream
from tests.load_sim import Listened, simulate_load, tokens

TOKENS_PER_S = 30.0


def llm_listeners(count: int, window_s: float, **kwargs: object) -> list[Listened]:
    """``count`` LLM-paced streams of the load benchmark's paragraph, starting evenly
    over ``window_s``."""
    streams = [
        tokens(PARAGRAPH, 1 / TOKENS_PER_S, start_s=i * window_s / count) for i in range(count)
    ]
    return simulate_load(streams, **kwargs)  # type: ignore[arg-type]


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    rank = 0.95 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def stalled(heard: list[Listened]) -> int:
    return sum(1 for h in heard if h.underruns)


def ttfa_p95_ms(heard: list[Listened]) -> float:
    return p95([h.ttfa_ms for h in heard if h.ttfa_ms is not None])


def test_twelve_listeners_arriving_over_two_seconds_play_without_a_stall() -> None:
    heard = llm_listeners(12, 2.0)
    assert stalled(heard) == 0, [h.underruns for h in heard]
    assert ttfa_p95_ms(heard) <= 300.0


def test_eight_listeners_starting_at_once_play_without_a_stall() -> None:
    heard = llm_listeners(8, 0.0)
    assert stalled(heard) == 0, [h.underruns for h in heard]
    assert ttfa_p95_ms(heard) <= 300.0


def test_four_listeners_starting_at_once_play_without_a_stall() -> None:
    # Regression: each stream's second sentence was buffered under a limit computed before
    # the others' sentences reached the pool, and went out whole: two listeners ran dry.
    heard = llm_listeners(4, 0.0)
    assert stalled(heard) == 0, [h.underruns for h in heard]


def test_a_lone_listener_gets_whole_sentences() -> None:
    [heard] = llm_listeners(1, 0.0)
    assert heard.underruns == []
    assert heard.segments <= 9  # first words, the rest of the first sentence, one per sentence


def test_without_the_segment_limit_listeners_stall(monkeypatch: pytest.MonkeyPatch) -> None:
    # The mutation check: segments as long as a sentence, whatever the load.
    monkeypatch.setattr(ContextStream, "limit_chars", lambda *args: None)
    assert stalled(llm_listeners(12, 2.0)) > 0


def test_carrying_context_under_load_makes_listeners_stall() -> None:
    assert stalled(llm_listeners(12, 2.0, carry=CarryPolicy(max_load=1.0))) > 0


def test_without_a_worker_kept_free_first_audio_waits_for_long_segments() -> None:
    kept = ttfa_p95_ms(llm_listeners(12, 2.0))
    assert ttfa_p95_ms(llm_listeners(12, 2.0, horizon_s=float("inf"))) > kept + 50.0


def served(heard: list[Listened]) -> list[Listened]:
    return [h for h in heard if not h.refused]


def test_admission_refuses_the_listeners_the_engine_cannot_feed() -> None:
    # two a second for 12 s: more than the engine can keep playing at once
    without = llm_listeners(24, 12.0)
    assert stalled(without) == 24
    heard = llm_listeners(24, 12.0, admission_fraction=0.9)
    assert 0 < sum(h.refused for h in heard) < 24
    assert stalled(served(heard)) == 0


def test_admission_follows_an_engine_that_slows_down() -> None:
    # the engine takes 1.4 times as long from 5 s on: the learned speed follows it, and
    # later arrivals are refused instead of stalling everyone
    steady = llm_listeners(30, 15.0, admission_fraction=0.9)
    heard = llm_listeners(30, 15.0, admission_fraction=0.9, slower_from_s=5.0, slower_by=1.4)
    assert sum(h.refused for h in heard) > sum(h.refused for h in steady)
    assert stalled(served(heard)) == 0
    assert stalled(served(llm_listeners(30, 15.0, slower_from_s=5.0, slower_by=1.4))) > 0
