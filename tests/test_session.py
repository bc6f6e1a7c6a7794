"""The sans-I/O session: feed messages and engine results, check what it decides."""

from __future__ import annotations

import json
from typing import Any

import pytest

from speakstream.audio.bit_rates import session_check_bit_rate
from speakstream.protocol.errors import CloseCode, ErrorCode, ProtocolError
from speakstream.protocol.outputs import (
    Audio,
    CancelJobs,
    Close,
    CloseStream,
    DropStream,
    OpenStream,
    Output,
    Send,
    SessionConfig,
    Synthesize,
)
from speakstream.protocol.session import JobTiming, Session
from speakstream.segmenter import SegmenterPolicy


def make_session(**changes: Any) -> Session:
    config = SessionConfig(
        voices={"v1": 22050, "v2": 16000},
        default_voice="v1",
        **({"encodings": frozenset({"pcm_s16le", "pcm_f32le"})} | changes),
    )
    return Session(config)


def feed(session: Session, now_s: float = 0.0, **message: Any) -> list[Output]:
    return session.receive_text_frame(json.dumps(message), now_s)


def sends(outputs: list[Output]) -> list[dict[str, Any]]:
    return [o.message.to_dict() for o in outputs if isinstance(o, Send)]


def types(outputs: list[Output]) -> list[str]:
    return [o.message.type for o in outputs if isinstance(o, Send)]


def jobs(outputs: list[Output]) -> list[Synthesize]:
    return [o for o in outputs if isinstance(o, Synthesize)]


def error_codes(outputs: list[Output]) -> list[str]:
    return [m["code"] for m in sends(outputs) if m["type"] == "error"]


def test_ready_describes_settings_and_limits() -> None:
    [ready] = sends(make_session(ready_info={"server": "x"}).start())
    assert ready["type"] == "ready" and ready["protocol"] == 1
    assert ready["settings"]["voice"] == "v1"
    assert ready["settings"]["sample_rate_hz"] == 22050
    assert ready["limits"]["max_contexts"] == 8
    assert ready["server"] == "x"


def test_simplest_client_text_then_end() -> None:
    s = make_session()
    out = feed(s, 0.0, type="text", text="Hello world.")
    opened = [o for o in out if isinstance(o, OpenStream)]
    assert opened and opened[0].context == "default" and opened[0].encoding == "pcm_s16le"
    [job] = jobs(out)
    assert job.job.segment.text == "Hello "
    assert job.job.first
    out = feed(s, 0.01, type="end")
    [job2] = jobs(out)
    assert job2.job.segment.text == "world."
    out = s.job_audio(job.job.job_id, "pcm-a", 500.0, 0.05)
    assert types(out) == ["segment"]
    assert [o.pcm for o in out if isinstance(o, Audio)] == ["pcm-a"]
    s.job_finished(job.job.job_id, 0.02, 0.0, 0.06)
    s.job_audio(job2.job.job_id, "pcm-b", 700.0, 0.07)
    out = s.job_finished(job2.job.job_id, 0.03, 0.001, 0.08)
    assert any(isinstance(o, CloseStream) for o in out)
    done = sends(out)[-1]
    assert done["type"] == "done"
    metrics = done["metrics"]
    assert metrics["ttfa_ms"] == pytest.approx(50.0)
    assert metrics["audio_ms"] == pytest.approx(1200.0)
    assert metrics["synthesis_ms"] == pytest.approx(50.0)
    assert metrics["characters"] == 12 and metrics["segments"] == 2
    assert s.active_contexts == 0 and s.jobs_in_flight == 0


def test_audio_is_released_in_text_order_even_when_later_segments_finish_first() -> None:
    s = make_session()
    out = feed(s, type="text", text="Hello there. How are you? ")
    first, second = jobs(out)
    out = s.job_audio(second.job.job_id, "b", 100, 0.1)
    out += s.job_finished(second.job.job_id, 0.01, 0, 0.1)
    assert not any(isinstance(o, Audio) for o in out)
    out = s.job_audio(first.job.job_id, "a", 100, 0.2)
    out += s.job_finished(first.job.job_id, 0.01, 0, 0.2)
    audio = [(o.segment, o.pcm) for o in out if isinstance(o, Audio)]
    assert audio == [(0, "a"), (1, "b")]
    segs = [m["seq"] for m in sends(out) if m["type"] == "segment"]
    assert segs == [0, 1]


def test_jobs_in_flight_per_connection_are_bounded() -> None:
    s = make_session(max_jobs_in_flight=2)
    out = feed(s, type="text", text="One. Two. Three. Four. Five. ")
    dispatched = jobs(out)
    assert len(dispatched) == 2
    # finishing the second does not free a slot: its audio still waits for the first
    s.job_audio(dispatched[1].job.job_id, "b", 10, 0)
    assert jobs(s.job_finished(dispatched[1].job.job_id, 0, 0, 0)) == []
    s.job_audio(dispatched[0].job.job_id, "a", 10, 0)
    more = jobs(s.job_finished(dispatched[0].job.job_id, 0, 0, 0))
    assert [j.job.segment.index for j in more] == [2, 3]


def test_first_segments_are_dispatched_before_later_ones() -> None:
    s = make_session(max_jobs_in_flight=1)
    [a0] = jobs(feed(s, context="a", type="text", text="Alpha one. Alpha two. "))
    assert jobs(feed(s, context="b", type="text", text="Bravo one. ")) == []
    s.job_audio(a0.job.job_id, "x", 10, 0)
    [nxt] = jobs(s.job_finished(a0.job.job_id, 0, 0, 0))
    assert nxt.job.context == "b" and nxt.job.first


def test_without_immediate_send_audio_waits_for_the_whole_segment() -> None:
    s = make_session(immediate_send=False)
    [job] = jobs(feed(s, type="text", text="Hello there "))
    assert s.job_audio(job.job.job_id, "p1", 10, 0) == []
    assert s.job_audio(job.job.job_id, "p2", 10, 0) == []
    out = s.job_finished(job.job.job_id, 0, 0, 0)
    assert [o.pcm for o in out if isinstance(o, Audio)] == ["p1", "p2"]


def test_flush_is_answered_after_the_audio_it_forced_out() -> None:
    s = make_session()
    feed(s, type="start", context="c")
    assert jobs(feed(s, context="c", type="text", text="Hi")) == []
    out = feed(s, context="c", type="flush")
    [job] = jobs(out)
    assert job.job.segment.text == "Hi"
    assert "flushed" not in types(out)
    s.job_audio(job.job.job_id, "a", 10, 0)
    out = s.job_finished(job.job.job_id, 0, 0, 0)
    assert types(out) == ["flushed"]
    assert sends(out)[0]["context"] == "c"


def test_flush_with_nothing_pending_is_answered_at_once() -> None:
    s = make_session()
    feed(s, type="start")
    assert types(feed(s, type="flush")) == ["flushed"]


def test_cancel_drops_everything_of_the_context_at_once() -> None:
    s = make_session()
    out = feed(s, context="a", type="text", text="Hello there. How are you? Fine. ")
    a0, a1 = jobs(out)
    s.job_audio(a1.job.job_id, "late", 10, 0)
    s.job_finished(a1.job.job_id, 0, 0, 0)
    out = feed(s, context="a", type="cancel")
    assert any(isinstance(o, DropStream) for o in out)
    [cancel] = [o for o in out if isinstance(o, CancelJobs)]
    assert set(cancel.job_ids) == {a0.job.job_id}  # a1 already finished its synthesis
    [cancelled] = [o for o in out if isinstance(o, Send)]
    assert cancelled.urgent
    body = cancelled.message.to_dict()
    assert (body["type"], body["context"]) == ("cancelled", "a")
    assert body["metrics"]["audio_ms"] == 10.0  # what it had made until the cancel
    assert s.job_audio(a0.job.job_id, "after", 10, 0) == []
    assert s.job_finished(a0.job.job_id, 0, 0, 0) == []
    assert s.active_contexts == 0 and s.jobs_in_flight == 0
    # the id may be used again: a fresh context with a new stream number
    out = feed(s, context="a", type="text", text="Again now ")
    [opened] = [o for o in out if isinstance(o, OpenStream)]
    assert opened.stream != a0.job.stream


def test_cancel_after_done_is_acknowledged_and_drops_queued_audio() -> None:
    s = make_session()
    feed(s, type="text", text="Hi")
    [job] = jobs(feed(s, type="end"))
    s.job_audio(job.job.job_id, "a", 10, 0)
    s.job_finished(job.job.job_id, 0, 0, 0)
    out = feed(s, type="cancel")
    assert [o.stream for o in out if isinstance(o, DropStream)] == [job.job.stream]
    assert types(out) == ["cancelled"]


def test_synthesis_failure_reports_the_segment_and_the_context_goes_on() -> None:
    s = make_session()
    a0, a1 = jobs(feed(s, type="text", text="Hello there. Second one. "))
    error = ProtocolError(ErrorCode.SYNTHESIS_TIMEOUT, "too slow", "default")
    out = s.job_failed(a0.job.job_id, error, 0)
    assert [m for m in sends(out) if m["type"] == "error"] == [
        {
            "type": "error",
            "code": "synthesis_timeout",
            "message": "too slow",
            "retryable": True,
            "context": "default",
            "segment": 0,
        }
    ]
    out = s.job_audio(a1.job.job_id, "b", 10, 0)
    out += s.job_finished(a1.job.job_id, 0, 0, 0)
    assert [o.pcm for o in out if isinstance(o, Audio)] == ["b"]


def test_idle_poll_flushes_buffered_words() -> None:
    s = make_session(policy=SegmenterPolicy(min_text_length=40))
    assert jobs(feed(s, 1.0, type="text", text="one two ")) == []
    assert s.next_deadline_s() == pytest.approx(1.1)
    assert jobs(s.poll(1.05)) == []
    [job] = jobs(s.poll(1.1))
    assert job.job.segment.text == "one two "


def test_ping_is_answered_with_its_id() -> None:
    s = make_session()
    out = feed(s, type="ping", id=7)
    assert sends(out) == [{"type": "pong", "id": 7}]
    assert isinstance(out[0], Send) and out[0].urgent


BAD_INPUTS: list[tuple[str, str]] = [
    ("{not json", "invalid_json"),
    ("[1, 2]", "invalid_message"),
    ('{"text": "no type"}', "invalid_message"),
    ('{"type": "dance"}', "unknown_type"),
    ('{"type": "text", "text": 5}', "invalid_message"),
    ('{"type": "text", "text": "x", "context": ""}', "invalid_message"),
    ('{"type": "text", "text": "x", "context": 3}', "invalid_message"),
    ('{"type": "text", "text": "x", "voise": "v1"}', "invalid_message"),
    ('{"type": "start", "voice": "nobody"}', "unknown_voice"),
    ('{"type": "start", "encoding": "vorbis"}', "unsupported_encoding"),
    ('{"type": "start", "sample_rate_hz": 44100}', "unsupported_sample_rate"),
    ('{"type": "start", "sample_rate_hz": "fast"}', "invalid_message"),
    ('{"type": "start", "speed": 100}', "invalid_message"),
    ('{"type": "start", "bit_rate_kbps": 64}', "unsupported_bit_rate"),
    ('{"type": "start", "bit_rate_kbps": 1000}', "invalid_message"),
    ('{"type": "start", "chunk_size": true}', "invalid_message"),
    ('{"type": "flush", "context": "nope"}', "unknown_context"),
    ('{"type": "end", "context": "nope"}', "unknown_context"),
    ('{"type": "cancel", "context": "nope"}', "unknown_context"),
    ('{"type": "ping", "id": [1]}', "invalid_message"),
    ('{"type": "text", "text": "' + "x" * 101 + '"}', "text_too_long"),
]


@pytest.mark.parametrize(("raw", "code"), BAD_INPUTS)
def test_bad_input_gets_a_stable_error_and_loses_nothing_else(raw: str, code: str) -> None:
    s = make_session(max_text_chars=100)
    [job] = jobs(feed(s, context="keep", type="text", text="Keep this going "))
    out = s.receive_text_frame(raw, 0.0)
    assert error_codes(out) == [code]
    [error] = [o for o in out if isinstance(o, Send)]
    assert error.urgent
    assert not any(isinstance(o, Close) for o in out)
    # the other context is untouched
    out = s.job_audio(job.job.job_id, "a", 10, 0)
    assert [o.pcm for o in out if isinstance(o, Audio)] == ["a"]


def test_binary_frames_are_refused() -> None:
    assert error_codes(make_session().receive_binary_frame(b"\x01\x02", 0)) == [
        "binary_not_supported"
    ]


def test_context_rules() -> None:
    s = make_session(max_contexts=2)
    feed(s, context="a", type="start")
    assert error_codes(feed(s, context="a", type="start")) == ["context_exists"]
    feed(s, context="b", type="text", text="x")
    assert error_codes(feed(s, context="c", type="text", text="x")) == ["too_many_contexts"]
    feed(s, context="b", type="end")
    assert error_codes(feed(s, context="b", type="text", text="more")) == ["context_ended"]
    assert error_codes(feed(s, context="b", type="end")) == ["context_ended"]


def test_buffered_text_per_context_is_bounded() -> None:
    s = make_session(max_buffered_chars=30)
    feed(s, type="text", text="x" * 20)
    out = feed(s, type="text", text="y" * 11)
    assert error_codes(out) == ["text_too_long"]
    assert error_codes(feed(s, type="text", text="y" * 10)) == []


def test_start_options_apply_to_the_context() -> None:
    s = make_session()
    out = feed(
        s,
        context="c",
        type="start",
        voice="v2",
        encoding="pcm_f32le",
        sample_rate_hz=16000,
        speed=1.5,
        min_text_length=13,
        chunk_size=40,
    )
    [opened] = [o for o in out if isinstance(o, OpenStream)]
    assert (opened.encoding, opened.sample_rate_hz) == ("pcm_f32le", 16000)
    assert jobs(feed(s, context="c", type="text", text="Hello there ")) == []
    [job] = jobs(feed(s, context="c", type="text", text="friend "))
    assert job.job.voice == "v2" and job.job.speed == 1.5
    assert job.job.segment.text == "Hello there friend "


def test_too_many_errors_close_the_socket_with_policy_violation() -> None:
    s = make_session(max_errors=3)
    for _ in range(3):
        assert not any(isinstance(o, Close) for o in s.receive_text_frame("nope", 0))
    out = s.receive_text_frame("nope", 0)
    [close] = [o for o in out if isinstance(o, Close)]
    assert close.code is CloseCode.POLICY_VIOLATION


def test_close_cancels_every_dispatched_job() -> None:
    s = make_session()
    out = feed(s, type="text", text="Hello there. How are you? ")
    ids = {j.job.job_id for j in jobs(out)}
    [cancel] = s.close()
    assert isinstance(cancel, CancelJobs) and set(cancel.job_ids) == ids


def test_segment_event_reports_queue_and_engine_time() -> None:
    s = make_session()
    [job] = jobs(feed(s, type="text", text="Hello there "))
    [segment] = sends(s.job_audio(job.job.job_id, "a", 10, 0, timing=JobTiming(1.5, 20.25)))
    assert segment["queue_ms"] == 1.5 and segment["first_chunk_ms"] == 20.25


def test_words_are_cut_early_when_the_listener_would_run_out_of_audio() -> None:
    # a slow idle flush (1 s), so that only the playback deadline can cut here
    s = make_session(
        playback_low_water_ms=250.0,
        policy=SegmenterPolicy(streaming_threshold_s=1.0, natural_cuts=False),
    )
    [first] = jobs(feed(s, 10.0, type="text", text="Sure, I can help you"))
    assert first.job.segment.text == "Sure, "
    assert s.next_deadline_s() == pytest.approx(11.0)  # only the idle flush so far
    s.job_audio(first.job.job_id, "a", 400.0, 10.05)  # 400 ms of audio released at 10.05
    s.job_finished(first.job.job_id, 0.02, 0, 10.05)
    # "I can help " waits for its target length, but 400 ms of audio leaves until 10.45:
    # the words are cut 250 ms before that, even as text keeps arriving
    assert jobs(feed(s, 10.08, type="text", text=" with")) == []
    assert s.next_deadline_s() == pytest.approx(10.2)
    assert jobs(s.poll(10.19)) == []
    deadline = s.next_deadline_s()
    assert deadline is not None
    [cut] = jobs(s.poll(deadline))  # the driver polls at exactly the deadline it was given
    assert cut.job.segment.text == "I can help you "


def test_no_early_cut_while_the_context_is_being_synthesized() -> None:
    s = make_session(
        playback_low_water_ms=250.0,
        max_jobs_in_flight=1,
        policy=SegmenterPolicy(natural_cuts=False),
    )
    first, *_ = jobs(feed(s, 10.0, type="text", text="Sure, that is right. And more "))
    s.job_audio(first.job.job_id, "a", 100.0, 10.01)
    s.job_finished(first.job.job_id, 0.0, 0, 10.01)  # "that is right. " is now in flight
    assert s.next_deadline_s() == pytest.approx(10.1)  # the idle flush, not playback


def test_flush_after_end_is_refused_not_dropped() -> None:
    s = make_session()
    feed(s, type="text", text="Hello there ")
    feed(s, type="end")
    out = feed(s, type="flush")
    assert error_codes(out) == ["context_ended"]


def test_a_second_cancel_is_an_error_not_a_second_cancelled() -> None:
    s = make_session()
    feed(s, context="a", type="text", text="Hello there ")
    assert types(feed(s, context="a", type="cancel")) == ["cancelled"]
    out = feed(s, context="a", type="cancel")
    assert types(out) == ["error"] and error_codes(out) == ["unknown_context"]


def test_cancel_after_done_answers_once_and_drops_the_stream() -> None:
    s = make_session()
    [job] = jobs(feed(s, context="a", type="text", text="Hello "))
    feed(s, context="a", type="end")
    s.job_audio(job.job.job_id, "a", 10, 0)
    assert "done" in types(s.job_finished(job.job.job_id, 0, 0, 0))
    out = feed(s, context="a", type="cancel", played_ms=5)
    assert any(isinstance(o, DropStream) for o in out) and types(out) == ["cancelled"]
    assert error_codes(feed(s, context="a", type="cancel")) == ["unknown_context"]


def test_the_end_of_a_stream_names_its_last_announced_segment() -> None:
    s = make_session(max_jobs_in_flight=8, first_segment_budget_ms=0)
    first, second = jobs(feed(s, type="text", text="Hello there. "))
    [third] = jobs(feed(s, type="text", text="... ")) + jobs(feed(s, type="end"))
    for job, pcm in ((first, "a"), (second, "b")):
        s.job_audio(job.job.job_id, pcm, 10, 0)
        s.job_finished(job.job.job_id, 0, 0, 0)
    out = s.job_finished(third.job.job_id, 0, 0, 0)  # a silent last segment
    [close] = [o for o in out if isinstance(o, CloseStream)]
    assert close.last_segment == 2 == third.job.segment.index
    assert [m["seq"] for m in sends(out) if m["type"] == "segment"] == [2]


def test_an_empty_context_ends_with_no_segment_announced() -> None:
    s = make_session()
    feed(s, type="start")
    out = feed(s, type="end")
    [close] = [o for o in out if isinstance(o, CloseStream)]
    assert close.last_segment is None
    [done] = [m for m in sends(out) if m["type"] == "done"]
    assert done["metrics"]["ttfa_ms"] is None and done["metrics"]["audio_ms"] == 0


def test_a_huge_chunk_size_cannot_make_segments_longer_than_the_server_allows() -> None:
    # Regression (issue 14, defect 4): chunk_size 5000 made 10,000-character segments,
    # one engine job of minutes.
    s = make_session(max_jobs_in_flight=100, max_text_chars=20_000)
    feed(s, type="start", chunk_size=5000)
    out = feed(s, type="text", text="word " * 1600)
    out += feed(s, type="end")
    lengths = [len(j.job.segment.text) for j in jobs(out)]
    assert sum(lengths) == 8000 and max(lengths) <= SegmenterPolicy().max_segment_chars


def test_cuts_is_a_per_context_choice_reported_in_ready() -> None:
    s = make_session(max_jobs_in_flight=64)
    [ready] = sends(s.start())
    assert ready["settings"]["cuts"] == "natural"
    assert error_codes(feed(s, type="start", context="x", cuts="sometimes")) == ["invalid_message"]
    feed(s, type="start", context="e", cuts="eager")
    feed(s, type="start", context="n")
    text = "Well, that is a long sentence, with clauses, commas, and many words in it, truly. "
    eager = [j.job.segment.text for j in jobs(feed(s, context="e", type="text", text=text))]
    natural = [j.job.segment.text for j in jobs(feed(s, context="n", type="text", text=text))]
    assert len(eager) > len(natural) == 2


def test_later_segments_carry_the_time_their_listener_needs_them_by() -> None:
    s = make_session(max_jobs_in_flight=8, first_segment_budget_ms=0)
    first, second = jobs(feed(s, 10.0, type="text", text="Hello there. "))
    assert first.job.start_by_s == 10.0  # a first segment: at once
    # the second is needed once the first one's (forecast) audio has played
    assert 10.0 < second.job.start_by_s < 10.0 + 6 * 0.2
    s.job_audio(first.job.job_id, "a", 3000.0, 10.05)  # 3 s of audio from 10.05 on
    [third] = jobs(feed(s, 10.1, type="text", text="More words. "))
    assert 10.05 + 3.0 - 0.5 < third.job.start_by_s < 10.05 + 3.0 + 1.0


def test_contexts_beyond_the_engine_capacity_are_refused_busy_then_admitted() -> None:
    from speakstream.protocol.listener import Capacity, EngineSpeed

    speed = EngineSpeed(prior_ms_per_char=65.0, prior_audio_ms_per_char=65.0)  # 1 s/s
    capacity = Capacity(workers=2, speed=speed, fraction=1.0)
    s = make_session(capacity=capacity)
    other = make_session(capacity=capacity)  # capacity is server-wide
    feed(s, type="start", context="a")
    feed(other, type="start", context="b")
    out = feed(s, type="start", context="c")
    [error] = [m for m in sends(out) if m["type"] == "error"]
    assert error["code"] == "busy" and error["retryable"] and error["retry_after_ms"] > 0
    assert error_codes(feed(s, type="text", context="d", text="Hi there ")) == ["busy"]
    feed(other, type="cancel", context="b")
    assert capacity.active == 1
    assert error_codes(feed(s, type="start", context="c")) == []
    s.close()
    other.close()
    assert capacity.active == 0


def test_a_segment_of_spaces_and_a_bracket_is_not_a_crash() -> None:
    # Found by coverage-guided fuzzing (tests/test_fuzz_protocol.py).
    s = make_session(max_jobs_in_flight=64)
    feed(s, type="text", text="Hello there. ")
    out = feed(s, type="text", text="     ] ")
    out += feed(s, type="end")
    assert not error_codes(out)


def test_segments_cut_inside_a_sentence_carry_the_words_around_them() -> None:
    s = make_session(word_timings=True, max_jobs_in_flight=8, first_segment_budget_ms=500.0)
    feed(s, type="start", context="c")
    # the first segment is the first word; the engine also hears the complete words
    # already here after it ("why" may still grow: no space follows it yet)
    [first] = jobs(feed(s, context="c", type="text", text="Have you ever wondered why"))
    assert first.job.segment.text == "Have "
    assert (first.job.left_context, first.job.right_context) == ("", "you ever")
    out = feed(s, context="c", type="text", text=" the sky is orange? It is.")
    out += feed(s, context="c", type="end")
    [second, third] = jobs(out)
    # the rest of the sentence hears its beginning; it ends the sentence: nothing after
    assert second.job.segment.text == "you ever wondered why the sky is orange? "
    assert (second.job.left_context, second.job.right_context) == ("Have ", "")
    # a new sentence carries nothing of the one before
    assert third.job.segment.text == "It is."
    assert (third.job.left_context, third.job.right_context) == ("", "")


def test_no_context_is_carried_when_the_engine_has_no_word_timings() -> None:
    s = make_session(word_timings=False)
    feed(s, type="start", context="c")
    out = feed(s, context="c", type="text", text="Have you ever wondered why ")
    out += feed(s, context="c", type="end")
    assert jobs(out)
    assert all(j.job.left_context == j.job.right_context == "" for j in jobs(out))


def test_bit_rate_reaches_the_stream_and_is_checked_for_its_encoding_and_rate() -> None:
    s = make_session(
        encodings=frozenset({"pcm_s16le", "mp3", "opus"}), check_bit_rate=session_check_bit_rate
    )
    out = feed(s, context="a", type="start", encoding="mp3", bit_rate_kbps=128)
    [opened] = [o for o in out if isinstance(o, OpenStream)]
    assert (opened.encoding, opened.sample_rate_hz, opened.bit_rate_kbps) == ("mp3", 22050, 128)
    [opened] = [
        o for o in feed(s, context="b", type="start", encoding="mp3") if isinstance(o, OpenStream)
    ]
    assert opened.bit_rate_kbps is None  # the codec's default
    refused = [
        ({"encoding": "mp3", "bit_rate_kbps": 192}, "mp3 at 22050 Hz cannot be made at 192"),
        ({"encoding": "pcm_s16le", "bit_rate_kbps": 64}, "pcm_s16le has no bit rate"),
        ({"bit_rate_kbps": 64}, "pcm_s16le has no bit rate"),  # the default encoding
    ]
    for start, message in refused:
        out = feed(s, context="c", type="start", **start)
        [error] = [m for m in sends(out) if m["type"] == "error"]
        assert error["code"] == "unsupported_bit_rate" and error["context"] == "c"
        assert message in error["message"]
        assert not any(isinstance(o, OpenStream) for o in out)


def test_a_first_segment_carries_context_only_within_its_budget() -> None:
    # the budget is spent on the first word itself: it is said alone, for its listener
    s = make_session(word_timings=True, first_segment_budget_ms=1.0)
    feed(s, type="start", context="c")
    [first] = jobs(feed(s, context="c", type="text", text="Have you ever wondered why"))
    assert first.job.segment.text == "Have "
    assert (first.job.left_context, first.job.right_context) == ("", "")


def test_a_segment_behind_its_deadline_carries_context_only_when_its_context_is_alone() -> None:
    from speakstream.protocol.listener import Capacity, EngineSpeed

    def second_job(active: int) -> Synthesize:
        speed = EngineSpeed()
        capacity = Capacity(workers=2, speed=speed, fraction=1.0, active=active)
        s = make_session(word_timings=True, speed=speed, capacity=capacity)
        feed(s, type="start", context="c")
        [first] = jobs(feed(s, 0.0, context="c", type="text", text="Have you ever wondered "))
        s.job_audio(first.job.job_id, "a", 100.0, 0.05)  # 100 ms of audio from 0.05 s
        out = s.job_finished(first.job.job_id, 0.0, 0.0, 0.06)  # (speed model unchanged)
        # long after the listener ran dry, the rest of the sentence arrives
        out += feed(s, 5.0, context="c", type="text", text="why the sky is orange? ")
        [second] = jobs(out)
        return second

    # alone, the listener waits for text, not for the engine: the words before are said
    alone = second_job(active=0)
    assert alone.job.left_context == "Have "
    # with other contexts speaking, this late work would make them wait too: said alone
    shared = second_job(active=3)
    assert (shared.job.left_context, shared.job.right_context) == ("", "")


def test_engine_options_reach_every_job_and_are_refused_by_an_engine_without_them() -> None:
    s = make_session(engine_options=frozenset({"exaggeration", "seed"}))
    feed(s, type="start", context="c", exaggeration=0.9, seed=7)
    out = feed(s, context="c", type="text", text="Hello there. How are you?")
    out += feed(s, context="c", type="end")
    assert jobs(out)
    assert all(dict(j.job.engine_options) == {"exaggeration": 0.9, "seed": 7} for j in jobs(out))
    # Piper has none of them: asked anyway, the context is refused with a clear reason
    piper = make_session()
    out = feed(piper, type="start", context="p", temperature=0.7)
    [error] = [m for m in sends(out) if m["type"] == "error"]
    assert error["code"] == "invalid_message" and error["context"] == "p"
    assert "'temperature'" in error["message"] and "none" in error["message"]
    assert not any(isinstance(o, OpenStream) for o in out)


def test_engine_work_leaves_the_backlog_when_it_ends_however_it_ends() -> None:
    # A job left in the server-wide backlog would make every other listener's forecast
    # wait for it forever.
    from speakstream.protocol.listener import Capacity, EngineSpeed

    capacity = Capacity(workers=2, speed=EngineSpeed(), fraction=0.0)
    s = make_session(capacity=capacity, max_jobs_in_flight=64)
    text = "One sentence here. Another sentence there. And a third one now. "
    for cid in ("done", "failed", "cancelled", "closed"):
        feed(s, type="start", context=cid)
    out = []
    for cid in ("done", "failed", "cancelled", "closed"):
        out += feed(s, 0.0, type="text", context=cid, text=text)
    dispatched = {
        cid: [j.job for j in jobs(out) if j.job.context == cid]
        for cid in ("done", "failed", "cancelled", "closed")
    }
    assert len(capacity.backlog) == sum(len(v) for v in dispatched.values()) > 0
    s.job_started(dispatched["done"][0].job_id, 0.01)
    for job in dispatched["done"]:
        s.job_audio(job.job_id, "a", 100.0, 0.1)
        s.job_finished(job.job_id, 0.05, 0.0, 0.1)
    error = ProtocolError(ErrorCode.SYNTHESIS_FAILED, "boom", "failed")
    for job in dispatched["failed"]:
        s.job_failed(job.job_id, error, 0.1)
    feed(s, 0.2, type="cancel", context="cancelled")
    remaining = len(dispatched["closed"])
    assert len(capacity.backlog) == remaining
    s.close()
    assert len(capacity.backlog) == 0


def test_phrase_words_is_a_per_context_choice_reported_in_ready() -> None:
    s = make_session(max_jobs_in_flight=64)
    [ready] = sends(s.start())
    assert ready["settings"]["phrase_words"] == 2
    for bad in (0, 51, 1.5, "two"):
        codes = error_codes(feed(s, type="start", context="x", phrase_words=bad))
        assert codes == ["invalid_message"], bad
    feed(s, type="start", context="one", phrase_words=1)
    feed(s, type="start", context="default")
    one, default = s.context("one"), s.context("default")
    assert one is not None and one.segmenter.policy.phrase_words == 1
    assert default is not None and default.segmenter.policy.phrase_words == 2


def _done_metrics(outputs: list[Output]) -> dict[str, Any]:
    [done] = [m for m in sends(outputs) if m["type"] == "done"]
    metrics: dict[str, Any] = done["metrics"]
    return metrics


def test_a_listener_waiting_for_audio_whose_text_had_come_has_stalled() -> None:
    s = make_session(max_jobs_in_flight=8, first_segment_budget_ms=0)
    first, second = jobs(feed(s, 10.0, type="text", text="Hello there. "))
    out = feed(s, 10.01, type="end")
    s.job_audio(first.job.job_id, "a", 500.0, 10.1)  # plays 10.1 to 10.6
    s.job_finished(first.job.job_id, 0.05, 0.0, 10.1)
    # the second segment (cut at 10.0) comes 0.3 s after the listener ran dry
    out = s.job_audio(second.job.job_id, "b", 500.0, 10.9)
    out += s.job_finished(second.job.job_id, 0.05, 0.0, 10.9)
    metrics = _done_metrics(out)
    assert metrics["stalls"] == 1 and metrics["stall_ms"] == pytest.approx(300.0)


def test_a_cancelled_context_reports_the_stalls_its_listener_heard() -> None:
    # Regression: only ``done`` carried the metrics, so the stalls of a context cancelled
    # (a barge-in) reached neither its client nor Prometheus.
    s = make_session(max_jobs_in_flight=8, first_segment_budget_ms=0)
    first, second, _ = jobs(feed(s, 10.0, type="text", text="Hello there. And more. "))
    s.job_audio(first.job.job_id, "a", 500.0, 10.1)  # plays 10.1 to 10.6
    s.job_finished(first.job.job_id, 0.05, 0.0, 10.1)
    s.job_audio(second.job.job_id, "b", 500.0, 10.9)  # 0.3 s after the listener ran dry
    s.job_finished(second.job.job_id, 0.05, 0.0, 10.9)
    [cancelled] = sends(feed(s, 11.0, type="cancel"))
    assert cancelled["type"] == "cancelled"
    metrics = cancelled["metrics"]
    assert metrics["stalls"] == 1 and metrics["stall_ms"] == pytest.approx(300.0)
    assert metrics["audio_ms"] == 1000.0 and metrics["ttfa_ms"] == pytest.approx(100.0)


def _hello_played() -> Session:
    """A session whose one context's first word ("Hello ", at 10.0) played 10.05 to 10.35."""
    s = make_session(max_jobs_in_flight=8, first_segment_budget_ms=0)
    [first] = jobs(feed(s, 10.0, type="text", text="Hello "))
    s.job_audio(first.job.job_id, "a", 300.0, 10.05)  # plays 10.05 to 10.35
    s.job_finished(first.job.job_id, 0.05, 0.0, 10.05)
    return s


def test_a_listener_waiting_for_text_that_had_not_come_has_not_stalled() -> None:
    # a typist slower than speech: each word comes after the audio before it has played
    s = _hello_played()
    out = feed(s, 11.0, type="text", text="there.")
    out += feed(s, 11.0, type="end")
    [second] = jobs(out)
    out = s.job_audio(second.job.job_id, "b", 300.0, 11.1)
    out += s.job_finished(second.job.job_id, 0.05, 0.0, 11.1)
    metrics = _done_metrics(out)
    assert (metrics["stalls"], metrics["stall_ms"]) == (0, 0.0)


def test_a_gap_shorter_than_a_stall_is_not_counted() -> None:
    s = make_session(max_jobs_in_flight=8, first_segment_budget_ms=0)
    first, second = jobs(feed(s, 10.0, type="text", text="Hello there. "))
    feed(s, 10.0, type="end")
    s.job_audio(first.job.job_id, "a", 500.0, 10.1)
    s.job_finished(first.job.job_id, 0.05, 0.0, 10.1)
    out = s.job_audio(second.job.job_id, "b", 500.0, 10.61)  # 10 ms after the listener ran dry
    out += s.job_finished(second.job.job_id, 0.05, 0.0, 10.61)
    assert _done_metrics(out)["stalls"] == 0


def test_a_listener_that_waited_is_planned_from_where_it_resumed() -> None:
    # Regression: the model kept the first byte's clock, so a listener that once waited
    # (here for a typist) looked ever behind: its segments' start-by times fell a second
    # early, and the engine pool, earliest deadline first, ran them before others' due work.
    s = _hello_played()
    out = feed(s, 11.0, type="text", text="there ")
    [second] = jobs(out + s.poll(11.2))  # the input paused: the word goes
    s.job_audio(second.job.job_id, "b", 2000.0, 11.3)  # the listener resumes: 11.3 to 13.3
    s.job_finished(second.job.job_id, 0.05, 0.0, 11.3)
    [third] = jobs(feed(s, 11.35, type="text", text="my friend. "))
    # due when the resumed listener runs dry less engine time and margin (the old clock
    # said 10.05 + 2.3 s of audio = 12.35, and a start-by of 12.05)
    assert 13.3 - 0.4 < third.job.start_by_s < 13.3
