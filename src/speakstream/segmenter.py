"""Incremental text segmentation with character offsets (sans-I/O, synchronous).

Text is appended in pieces of any size; a ``Segment`` comes out as soon as the policy says
the text so far is worth synthesizing. The rules, in order of precedence:

* A cut is only ever made right after a whitespace character that ends a token (so a
  number, decimal, price, time, URL or e-mail address, which contain no whitespace, is
  never split), or right after CJK sentence/clause punctuation. A token longer than
  ``max_segment_chars`` is the one exception: it is cut at that length.
* No cut after an abbreviation or an initial ("Dr.", "e.g.", "U.S.", "J.").
* First segment (preemptive generation): the first word, clause or sentence boundary at
  which at least ``min_text_length`` characters are buffered. Without preemptive
  generation, the first sentence end.
* Later segments aim at a target length that starts at ``chunk_size`` and grows by
  ``chunk_growth`` per segment up to ``max_chunk_size``: a sentence end always cuts (once
  ``min_text_length`` is reached), a clause boundary cuts at the target, a plain word
  boundary at 1.5 times the target. Segments thus grow toward whole sentences.
* After ``streaming_threshold_s`` without input, the complete words buffered are
  flushed; a word still being typed is flushed after ``partial_word_timeout_s``.
* ``flush()`` forces out everything buffered.
* ``limit_chars`` (set from outside, e.g. by a listener model under load): after the
  first segment, a segment reaching it at a boundary is cut there (after the last
  clause end if that is in its second half), sentence end or not; ``cut_to_limit()``
  also cuts the words buffered before it was lowered.

Decisions at a boundary depend only on the text before it, never on how the text was split
into pushes, so pushing the same text in any pieces yields the same segments (idle
flushes aside, which depend on time by design). Each character is scanned once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class SegmentReason(StrEnum):
    BOUNDARY = "boundary"
    IDLE = "idle"
    PLAYBACK = "playback"  # the listener would run out of audio: speak the words we have
    FLUSH = "flush"
    MAX_LENGTH = "max_length"


@dataclass(frozen=True, slots=True)
class Segment:
    """``text`` is ``full_text[start:end]`` of the context's text; ``index`` counts from 0."""

    index: int
    text: str
    start: int
    end: int
    reason: SegmentReason


@dataclass(frozen=True, slots=True)
class SegmenterPolicy:
    min_text_length: int = 5
    chunk_size: int = 25
    chunk_growth: float = 2.0
    max_chunk_size: int = 200
    preemptive_generation: bool = True
    streaming_threshold_s: float = 0.1
    partial_word_timeout_s: float = 1.0
    max_segment_chars: int = 400
    # After the first segment, cut inside a sentence only when asked (``flush_phrase``: the
    # listener would run dry), never at the growth targets: every such cut costs prosody.
    natural_cuts: bool = True
    # The first segment may run on to the first clause or sentence end within this many
    # characters when that text is already buffered (a paragraph sent whole); 0: it ends
    # at the first word boundary past min_text_length.
    first_segment_max_chars: int = 0
    # Natural cuts: a cut made because the listener runs dry waits for this many whole
    # words (or a clause end, or ``streaming_threshold_s`` of input silence); 1: each word
    # as soon as it is complete. A slow writer's words said in pairs sound far less
    # clipped than one at a time, at the cost of hearing each pair a word later.
    phrase_words: int = 2

    def __post_init__(self) -> None:
        if self.min_text_length < 1:
            raise ValueError("min_text_length must be at least 1")
        if self.chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        if self.chunk_growth < 1.0:
            raise ValueError("chunk_growth must be at least 1.0")
        if self.max_chunk_size < self.chunk_size:
            raise ValueError("max_chunk_size must be at least chunk_size")
        if self.streaming_threshold_s <= 0 or self.partial_word_timeout_s <= 0:
            raise ValueError("idle timeouts must be positive")
        if self.max_segment_chars < 2 * self.max_chunk_size:
            raise ValueError("max_segment_chars must be at least twice max_chunk_size")
        if not 0 <= self.first_segment_max_chars <= self.max_segment_chars:
            raise ValueError("first_segment_max_chars must be between 0 and max_segment_chars")
        if self.phrase_words < 1:
            raise ValueError("phrase_words must be at least 1")

    def target_chars(self, segment_index: int) -> int:
        """Target length of segment ``segment_index`` (>= 1): the growth schedule."""
        target = self.chunk_size * self.chunk_growth ** min(segment_index - 1, 64)
        return int(min(target, self.max_chunk_size))


class Boundary(StrEnum):
    """What ends a piece of text (the pause after it follows from it)."""

    WORD = "word"
    CLAUSE = "clause"
    SENTENCE = "sentence"
    PARAGRAPH = "paragraph"


_SENTENCE_END = frozenset(".!?…")
_CLAUSE_END = frozenset(",;:—–")
_DASHES = frozenset({"-", "--", "—", "–"})
_CLOSERS = "\"')]}»”’"
_OPENERS = "\"'([{«“‘"
_CJK_SENTENCE = frozenset("。！？")
_CJK_CLAUSE = frozenset("，、；：")
_ABBREVIATIONS = frozenset(
    """
    mr. mrs. ms. dr. prof. sr. jr. st. mt. ft. vs. etc. e.g. i.e. a.m. p.m. no. nos. fig.
    approx. inc. ltd. co. corp. dept. est. gen. gov. sgt. capt. lt. col. rev. ave. blvd.
    rd. vol. pp. ca. cf. al. jan. feb. mar. apr. jun. jul. aug. sep. sept. oct. nov. dec.
    mon. tue. wed. thu. fri. sat. sun. u.s. u.k. e.u. ph.d. hon. pres. gov't
    """.split()
)


def _is_abbreviation(token: str) -> bool:
    word = token.lstrip(_OPENERS)
    if not word.endswith("."):
        return False
    if word.lower() in _ABBREVIATIONS:
        return True
    letters = word[:-1].split(".")
    # Initials and dotted acronyms: "J.", "U.S.", "a.k.a."
    return all(len(part) == 1 and part.isalpha() for part in letters)


def _classify(token: str, whitespace: str) -> Boundary | None:
    """The boundary after ``token`` followed by ``whitespace``; None: no cut here."""
    if _is_abbreviation(token):
        return None
    if whitespace == "\n":
        return Boundary.SENTENCE
    if token in _DASHES:
        return Boundary.CLAUSE
    core = token.rstrip(_CLOSERS)
    if not core:
        return Boundary.WORD
    last = core[-1]
    if last in _SENTENCE_END:
        return Boundary.SENTENCE
    if last in _CLAUSE_END:
        return Boundary.CLAUSE
    return Boundary.WORD


def boundary_after(text: str) -> Boundary:
    """What ends ``text`` (for the pause after it)."""
    stripped = text.rstrip()
    trailing = text[len(stripped) :]
    if "\n" in trailing and stripped:
        return Boundary.PARAGRAPH if trailing.count("\n") > 1 else Boundary.SENTENCE
    core = stripped.rstrip(_CLOSERS).rstrip()  # "  )" ends in nothing to classify
    if not core:
        return Boundary.WORD
    last = core[-1]
    if last in _SENTENCE_END or last in _CJK_SENTENCE:
        return Boundary.WORD if _is_abbreviation(core.split()[-1]) else Boundary.SENTENCE
    if last in _CLAUSE_END or last in _CJK_CLAUSE or core.split()[-1] in _DASHES:
        return Boundary.CLAUSE
    return Boundary.WORD


class Segmenter:
    """Turns appended text into ``Segment``s. Not thread-safe; one per context."""

    def __init__(self, policy: SegmenterPolicy | None = None) -> None:
        self.policy = policy or SegmenterPolicy()
        self._buf = ""  # text not yet in a segment, starting at offset self._base
        self._base = 0
        self._scan = 0  # index in _buf of the next character to examine
        self._token_start = 0  # index in _buf where the current token began
        self._words_end = 0  # index in _buf just after the last whitespace seen
        self._phrase_end = 0  # index in _buf just after the last clause or sentence end
        self._next_index = 0
        self._last_input_s: float | None = None
        self._idle_flushed = False
        self.work_chars = 0  # characters scanned or copied: a deterministic cost measure
        # the longest segment wanted after the first (None: no limit); it applies to the
        # text scanned from now on
        self.limit_chars: int | None = None

    @property
    def buffered_chars(self) -> int:
        return len(self._buf)

    @property
    def offset(self) -> int:
        """Characters received so far (the end offset of all text pushed)."""
        return self._base + len(self._buf)

    def push(self, text: str, now_s: float) -> list[Segment]:
        """Append text; return the segments it completes."""
        if not text:
            return []
        self._last_input_s = now_s
        self._idle_flushed = False
        self._buf += text
        self.work_chars += len(self._buf)
        segments: list[Segment] = []
        self._scan_buffer(segments)
        return segments

    def cut_to_limit(self) -> list[Segment]:
        """After the first segment, cut the whole words buffered to ``limit_chars`` (when
        it was lowered after they were scanned: the scan only looks at the boundaries of
        new text)."""
        out: list[Segment] = []
        limit = self.limit_chars
        if limit is None or self._next_index == 0:
            return out
        limit = max(limit, self.policy.min_text_length)
        while self._words_end > limit:
            end = self._end_within(limit)
            if end <= 0:
                break
            self._cut(end, SegmentReason.PLAYBACK, out)
        return out

    def _end_within(self, limit: int) -> int:
        """Where to cut the complete words buffered at most ``limit`` characters in (or
        at the first boundary, if the first word is longer): after the last clause end
        in the second half of that, else after the last word."""
        word_end = phrase_end = token_start = 0
        for j in range(self._words_end):
            ch = self._buf[j]
            if not ch.isspace():
                continue
            if j + 1 > limit and word_end:
                break
            kind = _classify(self._buf[token_start:j], ch) if token_start < j else None
            token_start = j + 1
            if kind is None:
                continue
            word_end = j + 1
            if kind is not Boundary.WORD:
                phrase_end = j + 1
        self.work_chars += word_end
        return phrase_end if 2 * phrase_end >= limit else word_end

    def flush(self) -> list[Segment]:
        """Force everything buffered out as one segment (none if nothing is buffered)."""
        segments: list[Segment] = []
        if self._buf:
            self._cut(len(self._buf), SegmentReason.FLUSH, segments)
        return segments

    @property
    def has_complete_words(self) -> bool:
        """Whether whole words (followed by whitespace) are buffered."""
        return self._words_end > 0

    @property
    def segments_cut(self) -> int:
        return self._next_index

    def has_words(self, n: int) -> bool:
        """Whether at least ``n`` whole words are buffered (in what ``flush_words`` would
        cut: runs of characters other than white space and CJK punctuation). Counted from
        the last word back, so it reads only those ``n`` words."""
        words = 0
        in_word = False
        for j in range(self._words_end - 1, -1, -1):
            ch = self._buf[j]
            if ch.isspace() or ch in _CJK_SENTENCE or ch in _CJK_CLAUSE:
                in_word = False
            elif not in_word:
                in_word = True
                words += 1
                if words >= n:
                    return True
        return n <= 0

    @property
    def phrase_buffered(self) -> bool:
        """Whether a clause or sentence end is buffered (``flush_phrase`` would cut there)."""
        return self._phrase_end > 0

    @property
    def complete_chars(self) -> int:
        """Characters buffered in whole words (what ``flush_words`` would cut)."""
        return self._words_end

    def flush_words(self) -> list[Segment]:
        """Cut the whole words buffered now (the word being typed stays)."""
        segments: list[Segment] = []
        if self._words_end > 0:
            self._cut(self._words_end, SegmentReason.PLAYBACK, segments)
        return segments

    def flush_phrase(self) -> list[Segment]:
        """Cut where it costs the least: after the last clause buffered, or else after the
        last whole word (the listener is about to run out of audio)."""
        segments: list[Segment] = []
        end = self._phrase_end or self._words_end
        if end > 0:
            self._cut(end, SegmentReason.PLAYBACK, segments)
        return segments

    def idle_deadline_s(self) -> float | None:
        """When ``poll`` next has something to do, or None."""
        if not self._buf or self._last_input_s is None:
            return None
        if self._words_end > 0 and not self._idle_flushed:
            return self._last_input_s + self.policy.streaming_threshold_s
        return self._last_input_s + self.policy.partial_word_timeout_s

    def poll(self, now_s: float) -> list[Segment]:
        """Flush on input silence: complete words first, a partial word later."""
        deadline = self.idle_deadline_s()
        if deadline is None or self._last_input_s is None or now_s < deadline:
            return []
        segments: list[Segment] = []
        # The same sum as in idle_deadline_s: a difference could round the other way.
        partial_due = now_s >= self._last_input_s + self.policy.partial_word_timeout_s
        if partial_due or self._words_end in (0, len(self._buf)):
            self._cut(len(self._buf), SegmentReason.IDLE, segments)
        else:
            self._cut(self._words_end, SegmentReason.IDLE, segments)
            self._idle_flushed = True
        return segments

    # --- internals -------------------------------------------------------------------

    def _scan_buffer(self, segments: list[Segment]) -> None:
        policy = self.policy
        buf = self._buf
        seg_start = 0
        i = self._scan
        while i < len(buf):
            ch = buf[i]
            i += 1
            cut = False
            kind: Boundary | None = None
            if ch.isspace():
                if self._token_start < i - 1:
                    kind = _classify(buf[self._token_start : i - 1], ch)
                elif ch == "\n" and i - 1 > seg_start:
                    kind = Boundary.SENTENCE
                self._token_start = i
                self._words_end = i
            elif ch in _CJK_SENTENCE or ch in _CJK_CLAUSE:
                kind = Boundary.SENTENCE if ch in _CJK_SENTENCE else Boundary.CLAUSE
                self._token_start = i
                self._words_end = i
            length = i - seg_start
            if kind is not None:
                cut = self._should_cut(kind, length, i, seg_start)
                if not cut and kind is not Boundary.WORD:
                    self._phrase_end = i
            if cut:
                self._cut_at(seg_start, i, SegmentReason.BOUNDARY, segments)
                seg_start = i
            elif kind is not None and self._over_limit(length):
                # in the limit's second half, the last clause end rather than this word
                end = i
                if 2 * (self._phrase_end - seg_start) >= (self.limit_chars or 0):
                    end = self._phrase_end
                self._cut_at(seg_start, end, SegmentReason.PLAYBACK, segments)
                seg_start = end
            elif length >= policy.max_segment_chars:
                end = self._words_end if self._words_end > seg_start else i
                self._cut_at(seg_start, end, SegmentReason.MAX_LENGTH, segments)
                seg_start = end
                self._token_start = max(self._token_start, end)
        self.work_chars += i - self._scan
        self._scan = i
        self._drop_prefix(seg_start)

    def _should_cut(self, kind: Boundary, length: int, at: int, seg_start: int) -> bool:
        policy = self.policy
        if length < policy.min_text_length:
            return False
        if self._next_index == 0:
            if kind is Boundary.WORD and self._phrase_end_ahead(at, seg_start):
                return False  # the first clause is already here and short enough
            return policy.preemptive_generation or kind is Boundary.SENTENCE
        if kind is Boundary.SENTENCE:
            return True
        if policy.natural_cuts:
            return False
        target = policy.target_chars(self._next_index)
        if kind is Boundary.CLAUSE:
            return length >= target
        return length >= target + target // 2

    def _over_limit(self, length: int) -> bool:
        limit = self.limit_chars
        return (
            limit is not None
            and self._next_index > 0
            and length >= max(limit, self.policy.min_text_length)
        )

    def _phrase_end_ahead(self, at: int, seg_start: int) -> bool:
        """Whether the text already buffered after ``at`` ends a clause or sentence within
        ``first_segment_max_chars`` of the segment's start."""
        limit = seg_start + self.policy.first_segment_max_chars
        if limit <= at or not self.preemptive_lookahead:
            return False
        token_start = at
        for j in range(at, min(limit, len(self._buf))):
            ch = self._buf[j]
            if ch in _CJK_SENTENCE or ch in _CJK_CLAUSE:
                return True
            if ch.isspace():
                if token_start < j and _classify(self._buf[token_start:j], ch) not in (
                    None,
                    Boundary.WORD,
                ):
                    return True
                token_start = j + 1
        return False

    @property
    def preemptive_lookahead(self) -> bool:
        return self.policy.first_segment_max_chars > 0 and self.policy.preemptive_generation

    def _cut_at(self, start: int, end: int, reason: SegmentReason, out: list[Segment]) -> None:
        out.append(
            Segment(
                index=self._next_index,
                text=self._buf[start:end],
                start=self._base + start,
                end=self._base + end,
                reason=reason,
            )
        )
        self._next_index += 1

    def _cut(self, end: int, reason: SegmentReason, out: list[Segment]) -> None:
        self._cut_at(0, end, reason, out)
        self._drop_prefix(end)

    def _drop_prefix(self, n: int) -> None:
        if n == 0:
            return
        self._buf = self._buf[n:]
        self.work_chars += len(self._buf)
        self._base += n
        self._scan = max(0, self._scan - n)
        self._token_start = max(0, self._token_start - n)
        self._words_end = max(0, self._words_end - n)
        self._phrase_end = max(0, self._phrase_end - n)
