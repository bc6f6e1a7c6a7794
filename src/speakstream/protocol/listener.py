"""The listener model: how long a context's listener can keep playing, and when the text
buffered must be cut so that its audio arrives before the listener runs dry.

Every context has a listener playing its audio in real time from the first byte (one
that runs dry plays on when the next audio comes). From the audio released, the time
since its first byte, the audio still on its way (segments being synthesized) and the
engine's measured speed, ``cut_by_s`` says when the whole words buffered must go to the
engine at the latest. Before that, waiting for the end of the sentence costs nothing and
keeps the sentence whole (better prosody).

``EngineSpeed`` learns the engine's cost as ``overhead_ms + ms_per_char * characters``
by exponentially weighted least squares over the segments synthesized (one model shared
by every connection of a server), and the audio made per character.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from speakstream.protocol.backlog import Backlog
from speakstream.protocol.errors import ErrorCode, ProtocolError

RETRY_AFTER_S = 2.0  # the hint with ``busy``: about when some context usually finishes
# A listener silent this long waiting for audio that was due has stalled (shorter gaps are
# timer noise that any client's jitter buffer absorbs)
STALL_MIN_MS = 20.0


@dataclass(slots=True)
class EngineSpeed:
    """A learned forecast of synthesis time and audio length per segment.

    ``loaded``: a second model for segments whose synthesis starts while another runs
    (an engine may run slower then: Piper gives a lone run every core, concurrent ones
    one each, about half the speed); ``for_load(True)`` is it, where there is one. Both
    learn the audio made per character from every segment."""

    prior_overhead_ms: float = 15.0
    prior_ms_per_char: float = 1.5
    prior_audio_ms_per_char: float = 65.0
    decay: float = 0.97  # weight kept by older observations at each new one
    loaded: EngineSpeed | None = None
    _s: list[float] = field(default_factory=lambda: [0.0] * 5)  # w, wx, wy, wxx, wxy
    _audio_ms: float = 0.0
    _audio_chars: float = 0.0

    def __post_init__(self) -> None:
        # the prior as pseudo-observations at 10 and 60 characters, worth two segments
        for chars in (10.0, 60.0):
            self._add(chars, self.prior_overhead_ms + self.prior_ms_per_char * chars, 1.0)
        self._audio_ms = self.prior_audio_ms_per_char * 50.0
        self._audio_chars = 50.0

    def _add(self, x: float, y: float, weight: float) -> None:
        s = self._s
        for i in range(5):
            s[i] *= self.decay
        s[0] += weight
        s[1] += weight * x
        s[2] += weight * y
        s[3] += weight * x * x
        s[4] += weight * x * y

    def for_load(self, shared: bool) -> EngineSpeed:
        """The model for a segment that runs alongside others (``shared``) or alone."""
        return self.loaded if shared and self.loaded is not None else self

    def observe(
        self,
        chars: int,
        synthesis_ms: float,
        audio_ms: float,
        spoken_chars: int | None = None,
        shared: bool = False,
    ) -> None:
        """One job: the engine took ``synthesis_ms`` for ``chars`` characters, of which
        ``spoken_chars`` (all, if None) made the ``audio_ms`` sent (the others were context
        words, said and not kept); ``shared``: it started while another job ran."""
        if chars <= 0 or synthesis_ms <= 0:
            return
        if self.loaded is not None:
            self.loaded._learn_audio(chars, audio_ms, spoken_chars)
            if shared:
                self.loaded._add(float(chars), synthesis_ms, 1.0)
                self._learn_audio(chars, audio_ms, spoken_chars)
                return
        self._add(float(chars), synthesis_ms, 1.0)
        self._learn_audio(chars, audio_ms, spoken_chars)

    def _learn_audio(self, chars: int, audio_ms: float, spoken_chars: int | None) -> None:
        if audio_ms > 0:
            self._audio_ms = self.decay * self._audio_ms + audio_ms
            self._audio_chars = self.decay * self._audio_chars + (
                chars if spoken_chars is None else spoken_chars
            )

    @property
    def ms_per_char(self) -> float:
        w, wx, wy, wxx, wxy = self._s
        denominator = w * wxx - wx * wx
        if denominator <= 1e-9:
            return self.prior_ms_per_char
        return max(0.05, (w * wxy - wx * wy) / denominator)

    @property
    def overhead_ms(self) -> float:
        w, wx, wy, _, _ = self._s
        return max(0.0, (wy - self.ms_per_char * wx) / w)

    @property
    def audio_ms_per_char(self) -> float:
        return self._audio_ms / self._audio_chars

    def synthesis_ms(self, chars: int) -> float:
        """Forecast engine time for a segment of ``chars`` characters."""
        return self.overhead_ms + self.ms_per_char * chars

    def chars_within_ms(self, budget_ms: float) -> int:
        """The longest segment the engine makes within ``budget_ms`` (0: none)."""
        return max(0, int((budget_ms - self.overhead_ms) / self.ms_per_char))


@dataclass(slots=True)
class Listener:
    """A listener of one context, playing in real time from its first audio byte.

    Like every player, one that runs dry waits and plays the next audio when it comes:
    ``waited_ms`` shifts its playhead. (A model that kept the first byte's clock would
    think a listener that once waited is ever further behind than it is: its segments
    would seem overdue for good and, run earliest deadline first, push others' past
    theirs.)"""

    first_audio_s: float | None = None
    released_ms: float = 0.0  # audio released so far
    waited_ms: float = 0.0  # silent since its first byte, waiting for audio

    def runs_dry_s(self, on_the_way_ms: float = 0.0) -> float | None:
        """When the listener has played everything released (plus ``on_the_way_ms`` of
        audio still being made); None before the first byte."""
        if self.first_audio_s is None:
            return None
        return self.first_audio_s + (self.waited_ms + self.released_ms + on_the_way_ms) / 1000.0

    def hear(self, now_s: float, duration_ms: float) -> None:
        """``duration_ms`` of audio released at ``now_s``: played once what came before
        is, or at once if the listener has run dry."""
        dry_s = self.runs_dry_s()
        if dry_s is None:
            self.first_audio_s = now_s
        elif now_s > dry_s:
            self.waited_ms += 1000.0 * (now_s - dry_s)
        self.released_ms += duration_ms

    def stall_ms(self, now_s: float, cut_s: float) -> float:
        """How long the listener has been silent at ``now_s``, waiting for audio whose
        segment was cut at ``cut_s``, if that is a stall: ``STALL_MIN_MS`` or more, and the
        segment cut before the listener ran dry (the text was there, the audio was late; a
        listener waiting for text that had not come, a slow typist's, is not stalled).
        0: no stall."""
        dry_s = self.runs_dry_s()
        if dry_s is None or cut_s > dry_s:
            return 0.0
        silent_ms = 1000.0 * (now_s - dry_s)
        return silent_ms if silent_ms >= STALL_MIN_MS else 0.0

    def cut_by_s(
        self,
        buffered_chars: int,
        speed: EngineSpeed,
        on_the_way: OnTheWay,
        margin_ms: float,
    ) -> float | None:
        """The latest time to cut ``buffered_chars`` of whole words so their audio comes
        ``margin_ms`` before the listener runs dry, counting in the audio already on its
        way (made and waiting for its turn, or forecast for segments not yet made) and
        the engine time those segments still need first."""
        dry_s = self.runs_dry_s(on_the_way.audio_ms)
        if dry_s is None:
            return None
        needed_ms = on_the_way.synthesis_ms + speed.synthesis_ms(buffered_chars) + margin_ms
        return dry_s - needed_ms / 1000.0


@dataclass(frozen=True, slots=True)
class OnTheWay:
    """A context's segments cut but not yet released whole: their audio still to come
    (made or forecast) and the engine time they still need (forecast)."""

    audio_ms: float = 0.0
    synthesis_ms: float = 0.0


@dataclass(slots=True)
class Capacity:
    """Server-wide admission: how many contexts may speak at once before the engine can
    no longer keep every listener fed.

    The engine makes ``audio_ms_per_char / ms_per_char`` seconds of audio per second on
    each of its ``workers`` (learned as it runs, so under load it reflects the load); each
    real-time listener consumes one. New contexts are refused (``busy``) once the open
    ones reach ``fraction`` of that, never below ``workers``. ``fraction`` 0: off."""

    workers: int
    speed: EngineSpeed
    fraction: float = 0.9
    active: int = 0  # contexts open, server-wide
    backlog: Backlog = field(init=False)  # the engine work handed to the pool, server-wide

    def __post_init__(self) -> None:
        self.backlog = Backlog(self.workers)

    @property
    def load(self) -> float:
        """The share of the engine the open contexts' listeners need (1: all of it), if
        each plays in real time."""
        speed = self.speed.for_load(True)
        per_listener = speed.ms_per_char / speed.audio_ms_per_char
        return self.active * per_listener / self.workers

    @property
    def listeners_limit(self) -> int:
        speed = self.speed.for_load(True)  # with every worker busy
        per_worker = speed.audio_ms_per_char / speed.ms_per_char
        return max(self.workers, int(self.fraction * self.workers * per_worker + 1e-6))

    @property
    def full(self) -> bool:
        return self.fraction > 0 and self.active >= self.listeners_limit

    def busy(self, context: str | None = None) -> ProtocolError | None:
        """The ``busy`` refusal of a new context (or connection) now, or None."""
        if not self.full:
            return None
        return ProtocolError(
            ErrorCode.BUSY,
            f"the engine is at capacity ({self.active} contexts speaking); try again shortly",
            context,
            retry_after_s=RETRY_AFTER_S,
        )
