"""What the session is configured with and what it asks the driver to do (records only).

* ``Send``: a server message. ``urgent`` ones (errors about input, ``pong``,
  ``cancelled``) may jump ahead of queued audio; the others keep their order with audio.
* ``Audio``: PCM of one segment of one stream, released strictly in text order.
* ``OpenStream`` / ``CloseStream``: a context's audio stream begins / ends (in order).
* ``DropStream``: a cancelled stream; nothing more of it may be sent, starting now.
* ``Synthesize`` / ``CancelJobs``: engine work to start / stop.
* ``Close``: close the socket with this code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from speakstream.protocol.carry import CarryPolicy
from speakstream.protocol.errors import CloseCode, ErrorCode, ProtocolError
from speakstream.protocol.listener import Capacity, EngineSpeed
from speakstream.protocol.server_messages import ServerMessage
from speakstream.segmenter import Boundary, Segment, SegmenterPolicy


def no_bit_rate(encoding: str, sample_rate_hz: int, bit_rate_kbps: int) -> None:
    """The simplest bit-rate rule: no encoding may be asked for a bit rate."""
    raise ProtocolError(
        ErrorCode.UNSUPPORTED_BIT_RATE, f"{encoding} cannot be asked for a bit rate here"
    )


def native_rate_only(encoding: str, requested_hz: int | None, voice_rate_hz: int) -> int:
    """The simplest format rule: any known encoding, at the voice's own rate only."""
    if requested_hz not in (None, voice_rate_hz):
        raise ProtocolError(
            ErrorCode.UNSUPPORTED_SAMPLE_RATE,
            f"{encoding} cannot be sent at {requested_hz} Hz; it takes {voice_rate_hz} Hz",
        )
    return voice_rate_hz


@dataclass(frozen=True, slots=True)
class SessionConfig:
    voices: dict[str, int]  # voice name -> native sample rate in Hz
    default_voice: str
    encodings: frozenset[str]
    default_encoding: str = "pcm_s16le"
    # (encoding, requested rate or None, voice rate) -> output rate; raises ProtocolError
    # (unsupported_sample_rate) for a rate the encoding cannot take.
    resolve_rate_hz: Callable[[str, int | None, int], int] = native_rate_only
    # (encoding, output rate, bit rate in kb/s) -> None; raises ProtocolError
    # (unsupported_bit_rate) for a bit rate the encoding cannot be made at, at that rate.
    check_bit_rate: Callable[[str, int, int], None] = no_bit_rate
    word_timings: bool = False  # the engine reports word timings: `alignment` may be asked
    engine_options: frozenset[str] = frozenset()  # the ``ENGINE_OPTIONS`` the engine has
    # natural cuts: the margin kept between a segment's forecast arrival and the moment
    # its listener would run dry; eager cuts: cut whole words when the audio released has
    # this little left to play (0: off)
    playback_low_water_ms: float = 250.0
    policy: SegmenterPolicy = field(default_factory=SegmenterPolicy)
    immediate_send: bool = True
    max_contexts: int = 8
    max_text_chars: int = 10_000
    max_buffered_chars: int = 50_000
    max_jobs_in_flight: int = 2  # dispatched and not yet released, per connection
    # the first segment may take the first clause when the engine makes it within this
    first_segment_budget_ms: float = 35.0
    # context-carrying synthesis (engines with word timings only)
    carry: CarryPolicy = field(default_factory=CarryPolicy)
    speed: EngineSpeed = field(default_factory=EngineSpeed)  # shared by a server's sessions
    capacity: Capacity | None = None  # server-wide admission (shared); None: no limit
    max_finished_streams: int = 256  # done contexts remembered for a late cancel
    max_errors: int = 100
    ready_info: dict[str, Any] = field(default_factory=dict)  # extra fields for ``ready``


@dataclass(frozen=True, slots=True)
class SynthesisJob:
    job_id: int
    context: str
    stream: int
    segment: Segment
    voice: str
    speed: float
    volume: float
    pause_before: Boundary  # what ended the text before this segment
    first: bool  # the context's first segment: scheduled ahead of others
    # when the engine must start it at the latest for its listener not to run dry
    # (session clock; a first segment: at once); the pool serves the earliest first
    start_by_s: float = 0.0
    # words of the same sentence the engine says around the segment, whose audio is not
    # kept (``protocol/carry.py``): set when it is dispatched
    left_context: str = ""
    right_context: str = ""
    engine_options: tuple[tuple[str, float], ...] = ()  # (name, value), ``ENGINE_OPTIONS``


@dataclass(frozen=True, slots=True)
class Send:
    message: ServerMessage
    stream: int | None = None
    urgent: bool = False


@dataclass(frozen=True, slots=True)
class Audio:
    stream: int
    segment: int
    pcm: Any  # engine PCM (speakstream.audio.PcmChunk); opaque here


@dataclass(frozen=True, slots=True)
class OpenStream:
    stream: int
    context: str
    encoding: str
    sample_rate_hz: int  # what the client gets
    voice_rate_hz: int  # what the engine makes
    bit_rate_kbps: int | None = None  # a compressed encoding's; None: the codec's default


@dataclass(frozen=True, slots=True)
class CloseStream:
    stream: int
    last_segment: int | None  # seq of the stream's last ``segment`` event (None: no segment)


@dataclass(frozen=True, slots=True)
class DropStream:
    stream: int


@dataclass(frozen=True, slots=True)
class Synthesize:
    job: SynthesisJob


@dataclass(frozen=True, slots=True)
class CancelJobs:
    job_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Close:
    code: CloseCode
    reason: str


Output = Send | Audio | OpenStream | CloseStream | DropStream | Synthesize | CancelJobs | Close
