"""Property-based fuzzing of the sans-I/O session (issue 14): random valid and invalid
messages over several contexts, random engine progress (audio, finish, failure), cancels,
idle polls, in any order. Invariants checked on every output:

* no exception escapes the session;
* every ``segment`` event, audio chunk and ``flushed``/``done`` is on a stream that was
  opened and not dropped; segments of a stream are announced in order, each once, and
  audio only follows its own segment's announcement;
* nothing of a context is sent after its ``cancelled``;
* jobs in flight never exceed the bound, and a cancelled job is never dispatched;
* once every context is ended and the engine finishes its work, every context opened has
  exactly one ``done`` or one ``cancelled``, and nothing is left in flight.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from speakstream.protocol.errors import ErrorCode, SynthesisError
from speakstream.protocol.outputs import (
    Audio,
    CancelJobs,
    CloseStream,
    DropStream,
    OpenStream,
    Output,
    Send,
    SessionConfig,
    Synthesize,
)
from speakstream.protocol.session import Session
from speakstream.segmenter import SegmenterPolicy

CONTEXTS = ("a", "b", "c")
WORDS = ("Hello", "there,", "how", "are", "you?", "Fine.", "1,234", "Dr.", "ok", "\n")

text_piece = st.lists(st.sampled_from(WORDS), min_size=1, max_size=6).map(
    lambda words: " ".join(words) + " "
)


valid_message = st.one_of(
    st.builds(
        lambda c, t: {"type": "text", "context": c, "text": t},
        st.sampled_from(CONTEXTS),
        text_piece,
    ),
    st.builds(lambda c: {"type": "start", "context": c}, st.sampled_from(CONTEXTS)),
    st.builds(lambda c: {"type": "flush", "context": c}, st.sampled_from(CONTEXTS)),
    st.builds(lambda c: {"type": "end", "context": c}, st.sampled_from(CONTEXTS)),
    st.builds(
        lambda c, p: {"type": "cancel", "context": c} | ({} if p is None else {"played_ms": p}),
        st.sampled_from(CONTEXTS),
        st.none() | st.floats(0, 5000),
    ),
    st.just({"type": "ping", "id": 7}),
)
invalid_frame = st.one_of(
    st.just("{not json"),
    st.just('{"type":"text","text":""}'),
    st.just('{"type":"text","text":"\\ud800"}'),
    st.just('{"type":"start","voice":null}'),
    st.just('{"type":"launch"}'),
    st.just('{"type":"ping","id":' + "9" * 5000 + "}"),
    st.just("[1, 2]"),
)
action = st.one_of(
    valid_message.map(lambda m: ("frame", json.dumps(m))),
    invalid_frame.map(lambda raw: ("frame", raw)),
    st.tuples(st.just("audio"), st.integers(0, 10), st.floats(1, 400)),
    st.tuples(st.just("finish"), st.integers(0, 10)),
    st.tuples(st.just("fail"), st.integers(0, 10)),
    st.tuples(st.just("poll"), st.floats(0, 2)),
)


@dataclass
class Checker:
    max_in_flight: int
    open_streams: dict[int, str] = field(default_factory=dict)  # stream -> context
    dropped: set[int] = field(default_factory=set)
    announced: dict[int, int] = field(default_factory=dict)  # stream -> last seq announced
    ended: dict[int, str] = field(default_factory=dict)  # stream -> "done" / "cancelled"
    contexts_opened: int = 0
    finals: list[tuple[str, str]] = field(default_factory=list)  # (context, done|cancelled)
    running: list[int] = field(default_factory=list)  # job ids dispatched, not finished
    cancelled_jobs: set[int] = field(default_factory=set)
    last_dropped: int | None = None

    def check(self, session: Session, outputs: list[Output]) -> None:
        for out in outputs:
            if isinstance(out, OpenStream):
                assert out.stream not in self.open_streams
                self.open_streams[out.stream] = out.context
                self.contexts_opened += 1
            elif isinstance(out, Synthesize):
                assert out.job.job_id not in self.cancelled_jobs
                self.running.append(out.job.job_id)
            elif isinstance(out, CancelJobs):
                for job_id in out.job_ids:
                    self.cancelled_jobs.add(job_id)
                    if job_id in self.running:
                        self.running.remove(job_id)
            elif isinstance(out, DropStream):
                self.dropped.add(out.stream)
                self.last_dropped = out.stream
            elif isinstance(out, CloseStream):
                assert out.stream in self.open_streams and out.stream not in self.dropped
                assert out.last_segment == self.announced.get(out.stream)
            elif isinstance(out, Audio):
                assert out.stream in self.open_streams and out.stream not in self.dropped
                assert out.stream not in self.ended
                assert self.announced.get(out.stream) == out.segment
            elif isinstance(out, Send):
                self._check_send(out)
        assert session.jobs_in_flight <= self.max_in_flight

    def _check_send(self, out: Send) -> None:
        message = out.message.to_dict()
        kind = message["type"]
        if kind == "cancelled":
            stream = self.last_dropped  # a cancel drops its stream just before answering
            assert stream is not None and self.open_streams[stream] == message["context"]
            if stream not in self.ended:  # (a cancel just after done answers, and that's all)
                self.ended[stream] = "cancelled"
                self.finals.append((message["context"], "cancelled"))
            return
        if out.stream is None:
            assert kind in ("ready", "error", "pong"), message
            return
        stream = out.stream
        assert stream in self.open_streams and stream not in self.dropped, message
        assert stream not in self.ended, f"{kind} after the end of stream {stream}"
        if kind == "segment":
            expected = self.announced.get(stream, -1) + 1
            assert message["seq"] == expected, (message, expected)
            self.announced[stream] = message["seq"]
        elif kind == "done":
            self.ended[stream] = "done"
            self.finals.append((message["context"], "done"))


def run(actions: list[Any], max_in_flight: int) -> None:
    config = SessionConfig(
        voices={"v": 16000},
        default_voice="v",
        encodings=frozenset({"pcm_s16le"}),
        max_jobs_in_flight=max_in_flight,
        max_contexts=2,
        max_errors=10_000,
        policy=SegmenterPolicy(min_text_length=3, chunk_size=8, max_chunk_size=40),
    )
    session = Session(config)
    checker = Checker(max_in_flight)
    now_s = 0.0
    checker.check(session, session.start())
    for act in actions:
        now_s += 0.01
        kind = act[0]
        if kind == "frame":
            outputs = session.receive_text_frame(act[1], now_s)
        elif kind == "poll":
            now_s += act[1]
            outputs = session.poll(now_s)
        elif not checker.running:
            continue
        else:
            job_id = checker.running[act[1] % len(checker.running)]
            if kind == "audio":
                outputs = session.job_audio(job_id, b"pcm", act[2], now_s)
            elif kind == "finish":
                checker.running.remove(job_id)
                outputs = session.job_finished(job_id, 0.01, 0.0, now_s)
            else:
                checker.running.remove(job_id)
                error = SynthesisError(ErrorCode.SYNTHESIS_FAILED, "scripted", None)
                outputs = session.job_failed(job_id, error, now_s)
        checker.check(session, outputs)
    # Wind down: end every open context, and let the engine finish all its work.
    for context in CONTEXTS:
        checker.check(
            session,
            session.receive_text_frame(json.dumps({"type": "end", "context": context}), now_s),
        )
    while checker.running:
        job_id = checker.running.pop(0)
        checker.check(session, session.job_finished(job_id, 0.01, 0.0, now_s))
    assert session.active_contexts == 0
    assert session.jobs_in_flight == 0
    assert len(checker.finals) == checker.contexts_opened  # each exactly once
    for stream, context in checker.open_streams.items():
        assert stream in checker.ended, f"stream {stream} of {context} never ended"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(action, max_size=60), st.integers(1, 4))
def test_random_sessions_keep_every_invariant(actions: list[Any], max_in_flight: int) -> None:
    run(actions, max_in_flight)
