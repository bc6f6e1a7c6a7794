"""Per-context options of ``start``, declared once.

Each option says its wire name, type and bounds; the parser validates ``start`` with
these declarations, the context stream applies the chunking ones to its segmenter policy,
and ``ready`` reports their server-wide defaults from the same table. Adding an option
is one entry here (plus, for a new kind of effect, its use in the stream).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from speakstream.segmenter import SegmenterPolicy

Value = str | int | float | bool


@dataclass(frozen=True, slots=True)
class Option:
    name: str  # the field in ``start`` (and in ``ready.settings`` for chunking options)
    kind: type  # str, int, float or bool
    low: float | None = None
    high: float | None = None
    help: str = ""
    choices: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class ChunkingOption(Option):
    """An option that overrides a field of the context's ``SegmenterPolicy``."""

    read: Callable[[SegmenterPolicy], Value] = lambda policy: 0
    apply: Callable[[SegmenterPolicy, Any], SegmenterPolicy] = lambda policy, value: policy


def _with_chunk_size(policy: SegmenterPolicy, chunk_size: int) -> SegmenterPolicy:
    """A client's target length, within the server's longest segment (which bounds the
    engine work of one job): targets up to half of it."""
    largest = min(max(policy.max_chunk_size, chunk_size), policy.max_segment_chars // 2)
    return dataclasses.replace(policy, chunk_size=min(chunk_size, largest), max_chunk_size=largest)


STREAM_OPTIONS: tuple[Option, ...] = (
    Option("voice", str, help="a voice listed in ready.capabilities.voices"),
    Option("encoding", str, help="an encoding listed in ready.capabilities.encodings"),
    Option("sample_rate_hz", int, 1, 384_000, "output rate; one the encoding lists"),
    Option(
        "bit_rate_kbps",
        int,
        6,
        320,
        "compressed encodings (mp3, opus, opus_packets, aac): kb/s, one the codec makes at "
        "the output rate",
    ),
    Option("speed", float, 0.25, 4.0, "speaking rate, 1.0 normal"),
    Option("volume", float, 0.0, 4.0, "gain, 1.0 unchanged"),
    Option("alignment", bool, help="send word and character timings"),
)

CHUNKING_OPTIONS: tuple[ChunkingOption, ...] = (
    ChunkingOption(
        "min_text_length",
        int,
        1,
        1000,
        "characters in the first segment, at least",
        read=lambda p: p.min_text_length,
        apply=lambda p, v: dataclasses.replace(p, min_text_length=v),
    ),
    ChunkingOption(
        "chunk_size",
        int,
        1,
        5000,
        "target length of the second segment",
        read=lambda p: p.chunk_size,
        apply=_with_chunk_size,
    ),
    ChunkingOption(
        "streaming_threshold_ms",
        int,
        1,
        60_000,
        "input silence (ms) that flushes whole words (natural cuts: only once the listener "
        "has run out of audio, the words short of phrase_words)",
        read=lambda p: round(p.streaming_threshold_s * 1000),
        apply=lambda p, v: dataclasses.replace(p, streaming_threshold_s=v / 1000.0),
    ),
    ChunkingOption(
        "cuts",
        str,
        help="natural: cut inside a sentence only when the listener would run dry; "
        "eager: also at growth targets and on every pause of the input (each word at once)",
        choices=("natural", "eager"),
        read=lambda p: "natural" if p.natural_cuts else "eager",
        apply=lambda p, v: dataclasses.replace(p, natural_cuts=v == "natural"),
    ),
    ChunkingOption(
        "phrase_words",
        int,
        1,
        50,
        "natural cuts: a listener that has run out of audio waits for this many whole words "
        "(or a clause end, or a pause in the input) before they are spoken; 1: each word at once",
        read=lambda p: p.phrase_words,
        apply=lambda p, v: dataclasses.replace(p, phrase_words=v),
    ),
    ChunkingOption(
        "preemptive_generation",
        bool,
        help="start the first segment before a sentence ends",
        read=lambda p: p.preemptive_generation,
        apply=lambda p, v: dataclasses.replace(p, preemptive_generation=v),
    ),
)

# Options only some engines have (``ready.capabilities.options`` lists the engine's own);
# asked of an engine without them, they are refused, never silently ignored.
ENGINE_OPTIONS: tuple[Option, ...] = (
    Option("exaggeration", float, 0.0, 2.0, "Chatterbox: emotion intensity, 0.5 neutral"),
    Option("cfg_weight", float, 0.0, 1.0, "Chatterbox: guidance weight, 0 none"),
    Option("temperature", float, 0.05, 5.0, "Chatterbox: sampling temperature"),
    Option("seed", int, 0, 2**31 - 1, "Chatterbox: sampling seed, for repeatable speech"),
)

START_OPTIONS: tuple[Option, ...] = STREAM_OPTIONS + ENGINE_OPTIONS + CHUNKING_OPTIONS


def apply_chunking(policy: SegmenterPolicy, overrides: Mapping[str, Value]) -> SegmenterPolicy:
    """``policy`` with a context's chunking overrides (names from ``CHUNKING_OPTIONS``)."""
    for option in CHUNKING_OPTIONS:
        if option.name in overrides:
            policy = option.apply(policy, overrides[option.name])
    return policy


def chunking_defaults(policy: SegmenterPolicy) -> dict[str, Value]:
    """The chunking options' values under ``policy`` (for ``ready.settings``)."""
    return {option.name: option.read(policy) for option in CHUNKING_OPTIONS}
