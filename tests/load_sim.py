"""Many listeners on a virtual clock: real sessions, a scripted engine pool, exact times.

N contexts (each on its own connection, i.e. its own ``Session``) share one engine speed
model and one ``Capacity`` (its backlog included), as a server's do. The pool has
``workers`` scripted workers and serves waiting jobs as ``speakstream.scheduler`` does:
earliest ``start_by_s`` first, then first segments, then arrival; while a first segment
runs, later segments not yet due wait; a later segment due beyond ``horizon_s`` does not
take the last free worker. A job takes ``overhead_ms + ms_per_char *
characters`` (context words included; ``alone_ms_per_char`` when no other job runs as it
starts, as Piper's lone runs get every core) and makes ``audio_ms_per_char`` per letter or digit
of its own text; from ``slower_from_s`` on, every job takes ``slower_by`` times as long
(the machine slowing down). Each listener plays its audio in real time from its first
byte plus ``jitter_ms``; every moment the playhead passes the audio received is an
underrun. ``admission_fraction`` > 0: admission control as the server's (``Capacity``);
a stream whose context is refused (``busy``) sends nothing more.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
from dataclasses import dataclass, field
from typing import Any

from speakstream.protocol.listener import Capacity, EngineSpeed
from speakstream.protocol.outputs import (
    Audio,
    Output,
    Send,
    SessionConfig,
    SynthesisJob,
    Synthesize,
)
from speakstream.protocol.session import Session
from speakstream.scheduler import RESERVE_HORIZON_S
from speakstream.segmenter import SegmenterPolicy


@dataclass
class Listened:
    """One listener: its first audio and every underrun (time, ms silent)."""

    first_text_s: float | None = None
    first_audio_s: float | None = None
    played_until_s: float = 0.0
    underruns: list[tuple[float, float]] = field(default_factory=list)
    segments: int = 0
    refused: bool = False  # its context was refused (busy): it sends nothing more

    @property
    def ttfa_ms(self) -> float | None:
        if self.first_audio_s is None or self.first_text_s is None:
            return None
        return 1000.0 * (self.first_audio_s - self.first_text_s)

    @property
    def underrun_ms(self) -> float:
        return sum(ms for _, ms in self.underruns)


@dataclass(order=True)
class _Waiting:
    start_by_s: float
    priority: int
    order: int
    session: int = field(compare=False)
    job: SynthesisJob = field(compare=False)


def tokens(text: str, gap_s: float, start_s: float = 0.0) -> list[tuple[float, str]]:
    """``text`` as word tokens, one every ``gap_s`` from ``start_s`` (an LLM)."""
    words = text.split(" ")
    return [(start_s + i * gap_s, w if i == 0 else " " + w) for i, w in enumerate(words)]


def simulate_load(
    streams: list[list[tuple[float, str]]],
    *,
    workers: int = 2,
    overhead_ms: float = 15.0,
    ms_per_char: float = 5.7,
    alone_ms_per_char: float = 3.3,
    audio_ms_per_char: float = 65.0,
    jitter_ms: float = 100.0,
    horizon_s: float = RESERVE_HORIZON_S,
    admission_fraction: float = 0.0,
    slower_from_s: float = math.inf,
    slower_by: float = 1.0,
    trace: list[dict[str, Any]] | None = None,
    **config: Any,
) -> list[Listened]:
    """Run one context per entry of ``streams`` ((arrival s, text) pieces; the context
    ends with its last piece). ``trace``: a record of every job run is appended to it."""
    speed = EngineSpeed(
        prior_overhead_ms=overhead_ms,
        prior_ms_per_char=alone_ms_per_char,
        prior_audio_ms_per_char=audio_ms_per_char,
        loaded=EngineSpeed(
            prior_overhead_ms=overhead_ms,
            prior_ms_per_char=ms_per_char,
            prior_audio_ms_per_char=audio_ms_per_char,
        ),
    )
    capacity = Capacity(workers, speed, admission_fraction)
    cfg = SessionConfig(
        voices={"v": 16000},
        default_voice="v",
        encodings=frozenset({"pcm_s16le"}),
        policy=SegmenterPolicy(),
        speed=speed,
        capacity=capacity,
        word_timings=True,
        max_text_chars=100_000,
        **config,
    )
    sessions = [Session(cfg) for _ in streams]
    heard = [Listened() for _ in streams]
    order = itertools.count()
    events: list[tuple[float, int, str, int, Any]] = []
    for index, pieces in enumerate(streams):
        for at_s, text in pieces:
            heapq.heappush(events, (at_s, next(order), "text", index, text))
        heapq.heappush(events, (pieces[-1][0], next(order), "end", index, None))
    waiting: list[_Waiting] = []
    running: dict[tuple[int, int], bool] = {}  # (session, job id) -> first segment
    polls: dict[int, float] = {}

    def release(index: int, outputs: list[Output], now_s: float) -> None:
        listened = heard[index]
        for out in outputs:
            if isinstance(out, Synthesize):
                job = out.job
                key = _Waiting(job.start_by_s, 0 if job.first else 1, next(order), index, job)
                heapq.heappush(waiting, key)
                listened.segments += 1
            elif isinstance(out, Send) and getattr(out.message, "code", None) == "busy":
                listened.refused = True
            elif isinstance(out, Audio):
                duration_s = out.pcm / 1000.0
                if listened.first_audio_s is None:
                    listened.first_audio_s = now_s
                    listened.played_until_s = now_s + jitter_ms / 1000.0
                elif now_s > listened.played_until_s + 1e-9:
                    listened.underruns.append((now_s, 1000 * (now_s - listened.played_until_s)))
                    listened.played_until_s = now_s
                listened.played_until_s += duration_s

    grants: set[float] = set()

    def regrant(at_s: float) -> None:
        if at_s not in grants:
            grants.add(at_s)
            heapq.heappush(events, (at_s, next(order), "grant", -1, None))

    def grant(now_s: float) -> None:
        first_running = any(running.values())
        held: list[_Waiting] = []
        while waiting and len(running) < workers:
            item = heapq.heappop(waiting)
            if item.priority > 0 and first_running and item.start_by_s > now_s:
                held.append(item)
                regrant(item.start_by_s)
                continue
            free = workers - len(running)
            if item.priority > 0 and free < 2 <= workers and item.start_by_s > now_s + horizon_s:
                held.append(item)
                regrant(item.start_by_s - horizon_s)
                continue
            job = item.job
            chars = len(job.segment.text) + len(job.left_context) + len(job.right_context)
            per_char_ms = ms_per_char if running else alone_ms_per_char
            # from slower_from_s on, the machine is slower (another tenant, say)
            slower = slower_by if now_s >= slower_from_s else 1.0
            done_s = now_s + slower * (overhead_ms + per_char_ms * chars) / 1000.0
            running[(item.session, job.job_id)] = job.first
            first_running = first_running or job.first
            sessions[item.session].job_started(job.job_id, now_s)
            if trace is not None:
                trace.append(
                    {
                        "stream": item.session,
                        "segment": job.segment.index,
                        "chars": len(job.segment.text),
                        "carried": chars - len(job.segment.text),
                        "start_by_s": job.start_by_s,
                        "started_s": now_s,
                        "done_s": done_s,
                    }
                )
            heapq.heappush(
                events, (done_s, next(order), "done", item.session, (job, done_s - now_s))
            )
        for item in held:
            heapq.heappush(waiting, item)

    for index, session in enumerate(sessions):
        release(index, session.start(), 0.0)
    while events:
        now_s, _, kind, index, payload = heapq.heappop(events)
        if kind == "grant":
            grants.discard(now_s)
            grant(now_s)
            continue
        session = sessions[index]
        if kind in ("text", "end") and heard[index].refused:
            continue
        if kind == "text":
            if heard[index].first_text_s is None:
                heard[index].first_text_s = now_s
            message = {"type": "text", "context": "c", "text": payload}
            out = session.receive_text_frame(json.dumps(message), now_s)
        elif kind == "end":
            out = session.receive_text_frame('{"type":"end","context":"c"}', now_s)
        elif kind == "done":
            job, synthesis_s = payload
            running.pop((index, job.job_id), None)
            spoken = sum(ch.isalnum() for ch in job.segment.text)
            audio_ms = audio_ms_per_char * spoken
            out = session.job_audio(job.job_id, audio_ms, audio_ms, now_s) if spoken else []
            out += session.job_finished(job.job_id, synthesis_s, 0.0, now_s)
        else:  # poll
            polls.pop(index, None)
            out = session.poll(now_s)
        release(index, out, now_s)
        grant(now_s)
        deadline = session.next_deadline_s()
        if deadline is not None and polls.get(index) != deadline:
            polls[index] = max(deadline, now_s)
            heapq.heappush(events, (polls[index], next(order), "poll", index, None))
        # others' work moves this session's deadlines too: look at every session again
        for other, other_session in enumerate(sessions):
            if other == index:
                continue
            deadline = other_session.next_deadline_s()
            if deadline is not None and (polls.get(other) is None or deadline < polls[other]):
                polls[other] = max(deadline, now_s)
                heapq.heappush(events, (polls[other], next(order), "poll", other, None))
    assert all(session.active_contexts == 0 for session in sessions)
    assert len(capacity.backlog) == 0  # every job left the backlog
    return heard
