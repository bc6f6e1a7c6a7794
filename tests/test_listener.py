"""The listener model and the cuts it decides, on a virtual clock.

A scripted engine with a set speed (synthesis ms = overhead + per character; audio ms per
character) and a listener that plays each context's audio in real time from its first
byte drive the sans-I/O session in simulated time: no sockets, no sleeps, exact times.
"""

from __future__ import annotations

import heapq
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from speakstream.protocol.listener import EngineSpeed, Listener, OnTheWay
from speakstream.protocol.outputs import Audio, Output, Send, SessionConfig, Synthesize
from speakstream.protocol.session import Session
from speakstream.segmenter import SegmenterPolicy

SENTENCES = (
    "Thanks for waiting, I looked at your order this morning. "
    "The package left our warehouse on Tuesday, and it should arrive by Friday. "
    "Would you like the tracking number by text message? "
)


def test_engine_speed_learns_a_line() -> None:
    speed = EngineSpeed(prior_overhead_ms=50.0, prior_ms_per_char=5.0)
    for _ in range(60):
        for chars in (8, 30, 90):
            speed.observe(chars, 12.0 + 1.2 * chars, 70.0 * chars)
    assert speed.ms_per_char == pytest.approx(1.2, rel=0.02)
    assert speed.overhead_ms == pytest.approx(12.0, rel=0.05)
    assert speed.audio_ms_per_char == pytest.approx(70.0, rel=0.02)
    assert speed.chars_within_ms(36.5) in (19, 20)  # (36.5 - 12) / 1.2, rounded down
    assert speed.chars_within_ms(5.0) == 0


def test_listener_cut_by() -> None:
    speed = EngineSpeed(prior_overhead_ms=10.0, prior_ms_per_char=1.0, prior_audio_ms_per_char=60.0)
    assert Listener().cut_by_s(10, speed, OnTheWay(), 250) is None  # no audio: no listener
    listener = Listener(first_audio_s=100.0, released_ms=2000.0)
    # dry at 102.0; 20 chars take 30 ms; margin 250 ms
    assert listener.cut_by_s(20, speed, OnTheWay(), 250.0) == pytest.approx(102.0 - 0.28)
    # 600 ms more audio on its way, which needs 20 ms of engine time first
    on_the_way = OnTheWay(audio_ms=600.0, synthesis_ms=20.0)
    assert listener.cut_by_s(20, speed, on_the_way, 250.0) == pytest.approx(102.6 - 0.30)


@dataclass
class Run:
    segments: list[str] = field(default_factory=list)
    dispatched: list[tuple[float, str]] = field(default_factory=list)  # (at, segment text)
    first_audio_s: float | None = None
    underruns: list[tuple[float, float]] = field(default_factory=list)  # (at, ms silent)
    played_until_s: float = 0.0


def simulate(
    pieces: list[tuple[float, str]],
    *,
    end_s: float | None = None,
    overhead_ms: float = 15.0,
    ms_per_char: float = 1.5,
    audio_ms_per_char: float = 65.0,
    cuts: str = "natural",
    phrase_words: int = 2,
    **config: Any,
) -> Run:
    """Feed ``pieces`` (arrival time, text) to one context, end it at ``end_s`` (after
    the last piece by default), run jobs one at a time on the scripted engine, and play
    the released audio in real time. Returns the segments and every underrun."""
    policy = SegmenterPolicy(natural_cuts=cuts == "natural", phrase_words=phrase_words)
    speed = EngineSpeed(
        prior_overhead_ms=overhead_ms,
        prior_ms_per_char=ms_per_char,
        prior_audio_ms_per_char=audio_ms_per_char,
    )
    cfg = SessionConfig(
        voices={"v": 16000},
        default_voice="v",
        encodings=frozenset({"pcm_s16le"}),
        policy=policy,
        speed=speed,
        max_jobs_in_flight=64,
        max_text_chars=100_000,
        **config,
    )
    session = Session(cfg)
    run = Run()
    order = itertools.count()
    events: list[tuple[float, int, str, Any]] = []
    for at_s, text in pieces:
        heapq.heappush(events, (at_s, next(order), "text", text))
    last_s = end_s if end_s is not None else pieces[-1][0]
    heapq.heappush(events, (last_s, next(order), "end", None))
    queue: list[Any] = []  # jobs waiting for the (single) engine worker
    busy_until_s = 0.0
    poll_at: float | None = None

    def handle(outputs: list[Output], now_s: float) -> None:
        nonlocal busy_until_s
        for out in outputs:
            if isinstance(out, Synthesize):
                queue.append(out.job)
                run.dispatched.append((now_s, out.job.segment.text))
            elif isinstance(out, Send) and out.message.type == "segment":
                run.segments.append(out.message.to_dict()["text"])
            elif isinstance(out, Audio):
                duration_s = out.pcm / 1000.0
                if run.first_audio_s is None:
                    run.first_audio_s = run.played_until_s = now_s
                elif now_s > run.played_until_s + 1e-9:
                    run.underruns.append((now_s, 1000 * (now_s - run.played_until_s)))
                    run.played_until_s = now_s
                run.played_until_s += duration_s
        while queue and busy_until_s <= now_s:
            job = queue.pop(0)
            chars = len(job.segment.text)
            done_s = now_s + (overhead_ms + ms_per_char * chars) / 1000.0
            busy_until_s = done_s
            heapq.heappush(events, (done_s, next(order), "done", job))

    handle(session.start(), 0.0)
    while events:
        now_s, _, kind, payload = heapq.heappop(events)
        if kind == "text":
            out = session.receive_text_frame(json.dumps({"type": "text", "text": payload}), now_s)
        elif kind == "end":
            out = session.receive_text_frame('{"type":"end"}', now_s)
        elif kind == "done":
            spoken = sum(ch.isalnum() for ch in payload.segment.text)
            audio_ms = audio_ms_per_char * spoken
            out = session.job_audio(payload.job_id, audio_ms, audio_ms, now_s) if spoken else []
            synthesis_s = (overhead_ms + ms_per_char * len(payload.segment.text)) / 1000.0
            out += session.job_finished(payload.job_id, synthesis_s, 0.0, now_s)
        else:  # poll
            poll_at = None
            out = session.poll(now_s)
        handle(out, now_s)
        if queue and busy_until_s > now_s:
            heapq.heappush(events, (busy_until_s, next(order), "poll", None))
        deadline = session.next_deadline_s()
        if deadline is not None and deadline != poll_at:
            poll_at = max(deadline, now_s)
            heapq.heappush(events, (poll_at, next(order), "poll", None))
    assert session.active_contexts == 0
    return run


def tokens(text: str, gap_s: float, start_s: float = 0.0) -> list[tuple[float, str]]:
    words = text.split(" ")
    return [(start_s + i * gap_s, w if i == 0 else " " + w) for i, w in enumerate(words)]


def typed(text: str, gap_s: float) -> list[tuple[float, str]]:
    return [(i * gap_s, ch) for i, ch in enumerate(text)]


def in_sentence_cuts(segments: list[str]) -> int:
    return sum(1 for s in segments[:-1] if not s.rstrip().endswith((".", "?", "!")))


def test_whole_text_is_cut_at_sentence_ends_only_after_the_first_clause() -> None:
    run = simulate([(0.0, SENTENCES)], first_segment_budget_ms=50.0)
    assert run.segments[0] == "Thanks for waiting, "  # the first clause: within budget
    assert run.segments[1:] == [
        "I looked at your order this morning. ",
        "The package left our warehouse on Tuesday, and it should arrive by Friday. ",
        "Would you like the tracking number by text message? ",
    ]
    assert run.underruns == []


def test_without_budget_the_first_segment_is_the_first_word() -> None:
    run = simulate([(0.0, SENTENCES)], first_segment_budget_ms=0.0)
    assert run.segments[0] == "Thanks "
    assert in_sentence_cuts(run.segments) == 1


def test_a_slow_llm_is_not_cut_while_the_listener_has_audio() -> None:
    # 150 ms per token is faster than speech (~2.7 words/s here): after the first words
    # the listener's buffer grows, and every later cut is at a sentence end.
    run = simulate(tokens(SENTENCES.strip(), 0.150))
    assert run.segments[0] == "Thanks "
    assert run.underruns == []
    # cuts inside sentences only while the audio ahead is short (the first sentence, and
    # one clause of the second, which would otherwise arrive after the listener ran dry)
    assert in_sentence_cuts(run.segments) <= 6, run.segments
    assert run.segments[-2:] == [
        "and it should arrive by Friday. ",
        "Would you like the tracking number by text message?",
    ]
    # with eager cuts, every token gap (> 100 ms) spoke the words alone
    eager = simulate(tokens(SENTENCES.strip(), 0.150), cuts="eager")
    assert in_sentence_cuts(eager.segments) >= 3 * in_sentence_cuts(run.segments)


def test_no_cut_while_the_forecast_buffer_stays_above_the_margin() -> None:
    # A long first sentence (seconds of audio), then a sentence whose words stop coming
    # for 1.5 s: the listener still has plenty, so that sentence stays whole.
    first = "This first sentence gives the listener several seconds of audio to play. "
    pieces = [(0.0, first), *tokens("Then a second sentence", 0.03, 0.2)]
    pieces += tokens(" arrives after a long pause.", 0.03, 1.7)
    run = simulate(pieces, first_segment_budget_ms=0.0)
    assert run.segments[-1] == "Then a second sentence arrives after a long pause."
    assert run.underruns == []


def test_a_cut_when_waiting_would_run_the_listener_dry() -> None:
    # The same, but the pause outlasts the audio: the words before it are cut in time.
    first = "A short one. "
    pieces = [(0.0, first), *tokens("Then a second sentence", 0.03, 0.05)]
    pieces += tokens(" arrives after a long pause.", 0.03, 3.0)
    run = simulate(pieces, first_segment_budget_ms=0.0)
    assert "Then a second " in run.segments or "Then a second sentence " in run.segments
    dry_at = [at for at, _ in run.underruns]
    assert all(at > 3.0 for at in dry_at), run.underruns  # only when the input itself ran out


def test_idle_input_does_not_cut_while_the_listener_is_busy() -> None:
    # A pause of 300 ms in the input (3x the idle threshold) while ~3 s of audio play:
    # eager cuts speak the words before the pause alone, natural cuts wait for the end.
    first = "This first sentence gives the listener a few seconds of audio to play. "
    pieces = [(0.0, first), *tokens("And then some words come", 0.02, 0.5)]
    pieces += tokens(" in after a short pause.", 0.02, 1.0)
    natural = simulate(pieces, first_segment_budget_ms=0.0)
    assert natural.segments[-1] == "And then some words come in after a short pause."
    eager = simulate(pieces, first_segment_budget_ms=0.0, cuts="eager")
    assert "And then some words " in eager.segments  # "come" is whole only at the pause's end


def test_a_typist_slower_than_speech_is_cut_when_the_listener_would_run_dry() -> None:
    run = simulate(typed(SENTENCES.strip(), 0.080), phrase_words=1)
    # the typist (12.5 chars/s) is slower than the speech (15 chars/s): cuts must come,
    # each at the last clause or word boundary before the listener runs dry
    assert in_sentence_cuts(run.segments) >= 3
    assert "".join(run.segments) == SENTENCES.strip()
    # and each cut gave the engine time: the listener never waited after the start
    # longer than a typed word takes to arrive
    assert all(ms < 700 for _, ms in run.underruns), run.underruns
    # words in pairs (the default): the same silence in all (the typist sets the pace),
    # in fewer, longer gaps: at most a word's typing longer
    pairs = simulate(typed(SENTENCES.strip(), 0.080))
    assert len(pairs.segments) < 0.7 * len(run.segments)
    silence_ms = sum(ms for _, ms in run.underruns)
    assert sum(ms for _, ms in pairs.underruns) < 1.1 * silence_ms
    assert all(ms < 1000 for _, ms in pairs.underruns), pairs.underruns


def test_the_text_is_spoken_exactly_once_in_every_mode() -> None:
    for pieces in ([(0.0, SENTENCES)], tokens(SENTENCES, 0.033), typed(SENTENCES, 0.08)):
        for cuts in ("natural", "eager"):
            run = simulate(pieces, cuts=cuts)
            assert "".join(run.segments) == "".join(text for _, text in pieces)


def test_segments_started_beside_others_teach_the_loaded_model_only() -> None:
    loaded = EngineSpeed(prior_overhead_ms=10.0, prior_ms_per_char=3.0)
    speed = EngineSpeed(prior_overhead_ms=10.0, prior_ms_per_char=1.5, loaded=loaded)
    assert speed.for_load(False) is speed and speed.for_load(True) is loaded
    for _ in range(80):
        for chars in (10, 40, 90):
            speed.observe(chars, 10.0 + 6.0 * chars, 60.0 * chars, shared=True)
    assert loaded.ms_per_char == pytest.approx(6.0, rel=0.05)
    assert speed.ms_per_char == pytest.approx(1.5)  # the lone model learned nothing
    assert speed.audio_ms_per_char == pytest.approx(60.0, rel=0.05)  # audio: from every run
    assert EngineSpeed().for_load(True).ms_per_char == EngineSpeed().ms_per_char  # no model


def words_of(segment: str) -> int:
    return len(segment.split())


def test_a_dry_listener_hears_a_slow_typist_in_pairs_of_words() -> None:
    # The typist is slower than speech: the listener runs dry before every cut. Natural
    # cuts wait for two whole words (or a clause end) rather than speaking each word
    # alone; ``phrase_words`` 1 brings back one word at a time.
    text = "we walked along the quiet road and talked about the long winter ahead of us"
    pairs = simulate(typed(text, 0.080), first_segment_budget_ms=0.0)
    assert "".join(pairs.segments) == text
    later = pairs.segments[1:-1]  # the first segment and the flushed rest aside
    assert later and all(words_of(s) >= 2 for s in later), pairs.segments
    single = simulate(typed(text, 0.080), first_segment_budget_ms=0.0, phrase_words=1)
    assert "".join(single.segments) == text
    assert sum(words_of(s) == 1 for s in single.segments[1:-1]) >= 5, single.segments
    assert len(pairs.segments) < len(single.segments)


def test_a_pause_in_the_input_speaks_the_single_word_waiting() -> None:
    # "Hello there " then silence: the listener has run dry and the one word buffered
    # goes once the input has been silent for the idle threshold, not at the end.
    pieces = [(0.0, "Hello "), (0.3, "there "), (3.0, "and goodbye.")]
    run = simulate(pieces, first_segment_budget_ms=0.0)
    assert run.segments[:2] == ["Hello ", "there "]
    # cut once the input had been silent for 100 ms, long before the rest arrived
    assert run.dispatched[1] == (pytest.approx(0.4), "there ")


def test_a_clause_end_is_a_phrase_even_when_it_is_one_word() -> None:
    text = "so, after all, we stayed home and read"
    run = simulate(typed(text, 0.080), first_segment_budget_ms=0.0)
    # "all," ends a clause: it is a phrase of its own, not held for the next word
    assert run.segments[:2] == ["so, after ", "all, "], run.segments


def test_a_listener_that_ran_dry_plays_the_next_audio_when_it_comes() -> None:
    listener = Listener()
    listener.hear(10.0, 500.0)  # its first byte: plays 10.0 to 10.5
    listener.hear(10.2, 300.0)  # queued behind: plays on to 10.8
    assert listener.runs_dry_s() == pytest.approx(10.8)
    listener.hear(11.3, 200.0)  # 0.5 s after it ran dry: it plays from now, as players do
    assert listener.waited_ms == pytest.approx(500.0)
    assert listener.runs_dry_s() == pytest.approx(11.5)
    assert listener.runs_dry_s(on_the_way_ms=1000.0) == pytest.approx(12.5)
    assert listener.stall_ms(11.6, cut_s=11.4) == pytest.approx(100.0)  # from 11.5, not 11.0


def test_a_listener_stalls_only_waiting_for_audio_whose_text_had_come() -> None:
    listener = Listener(first_audio_s=10.0, released_ms=500.0)  # runs dry at 10.5
    assert listener.stall_ms(10.8, cut_s=10.2) == pytest.approx(300.0)
    assert listener.stall_ms(10.8, cut_s=10.6) == 0.0  # the text came after it ran dry
    assert listener.stall_ms(10.51, cut_s=10.2) == 0.0  # 10 ms: shorter than a stall
    assert listener.stall_ms(10.4, cut_s=10.2) == 0.0  # it still has audio
    assert Listener().stall_ms(10.8, cut_s=0.0) == 0.0  # no audio yet: no listener
