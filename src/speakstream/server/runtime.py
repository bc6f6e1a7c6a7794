"""What all connections of one server share: settings, the engine, the worker pool, the
synthesizer, metrics, auth, the drain, counters; and how each component's settings are
built from ``Settings``."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speakstream.audio.bit_rates import session_check_bit_rate
from speakstream.audio.encoders import (
    ENCODINGS,
    FORMATS,
    UnsupportedFormatError,
    allowed_rates_hz,
    resolve_rate_hz,
)
from speakstream.audio.seams import SeamPolicy
from speakstream.config import ConfigError, Settings
from speakstream.engines import Engine, EngineSettings, load_engine
from speakstream.protocol.carry import CarryPolicy
from speakstream.protocol.errors import ErrorCode, ProtocolError
from speakstream.protocol.listener import Capacity, EngineSpeed
from speakstream.protocol.outputs import SessionConfig
from speakstream.scheduler import EnginePool
from speakstream.segmenter import SegmenterPolicy
from speakstream.server import memory
from speakstream.server.auth import Auth, check_bind
from speakstream.server.calibration import calibrate
from speakstream.server.drain import Drain
from speakstream.server.metrics import Metrics
from speakstream.server.voices import VoiceMap
from speakstream.synthesis import Synthesizer
from speakstream.version import __version__

_LOGGER = logging.getLogger(__name__)


def segmenter_policy(settings: Settings) -> SegmenterPolicy:
    return SegmenterPolicy(
        min_text_length=settings.min_text_length,
        chunk_size=settings.chunk_size,
        chunk_growth=settings.chunk_growth,
        max_chunk_size=settings.max_chunk_size,
        preemptive_generation=settings.preemptive_generation,
        streaming_threshold_s=settings.streaming_threshold,
        partial_word_timeout_s=settings.partial_word_timeout,
        max_segment_chars=max(400, 2 * settings.max_chunk_size),
        natural_cuts=settings.cuts == "natural",
        phrase_words=settings.phrase_words,
    )


def seam_policy(settings: Settings) -> SeamPolicy:
    return SeamPolicy(
        trim_silence=settings.trim_silence,
        clause_pause_ms=settings.clause_pause_ms,
        sentence_pause_ms=settings.sentence_pause_ms,
        paragraph_pause_ms=settings.paragraph_pause_ms,
    )


def session_rate_hz(encoding: str, requested_hz: int | None, voice_rate_hz: int) -> int:
    try:
        return resolve_rate_hz(encoding, requested_hz, voice_rate_hz)
    except UnsupportedFormatError as exc:
        raise ProtocolError(ErrorCode.UNSUPPORTED_SAMPLE_RATE, str(exc)) from None


def engine_settings(settings: Settings, options: dict[str, Any] | None = None) -> EngineSettings:
    return EngineSettings(
        default_voice=settings.voice or None,
        voices_dir=Path(settings.voices_dir) if settings.voices_dir else None,
        threads=settings.engine_threads or None,
        options=options or settings.engine_options(),
    )


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    pool: EnginePool
    session_config: SessionConfig
    synthesizer: Synthesizer
    voice_map: VoiceMap
    metrics: Metrics
    auth: Auth
    connections: int = 0
    active_streams: int = 0
    connections_total: int = 0
    backpressure_waits: int = 0  # times a connection stopped reading: its outbox was full
    shutting_down: bool = False
    owns_engine: bool = True
    drain: Drain = field(default_factory=Drain)

    @classmethod
    def build(cls, settings: Settings, engine: Engine | None = None) -> Runtime:
        auth = Auth(settings)
        check_bind(settings, auth.keys)  # before the engine loads: a refusal is quick
        encoding = settings.default_encoding
        if encoding not in ENCODINGS:
            raise ConfigError(
                f"setting 'default_encoding': {encoding!r} is not one of {', '.join(ENCODINGS)}"
            )
        # a separate model for segments that start while another runs (Piper: one core
        # each instead of all; its prior: half the lone speed, until it has learned)
        speed = EngineSpeed(
            loaded=EngineSpeed(prior_ms_per_char=2 * EngineSpeed().prior_ms_per_char)
        )
        owns_engine = engine is None
        if engine is None:
            memory.limit_arenas()  # before the engine's threads allocate
            engine = load_engine(settings.engine, engine_settings(settings))
            # (an engine handed in, by tests, keeps the priors its test expects)
            calibrate(
                engine, engine.capabilities.default_voice, speed, settings.max_concurrent_tasks
            )
            memory.trim()  # what loading the model and calibrating freed
        caps = engine.capabilities
        capacity = Capacity(settings.max_concurrent_tasks, speed, settings.admission_fraction)
        session_config = SessionConfig(
            speed=speed,
            capacity=capacity,
            voices={v.name: v.sample_rate_hz for v in caps.voices},
            default_voice=caps.default_voice,
            encodings=frozenset(ENCODINGS),
            default_encoding=encoding,
            resolve_rate_hz=session_rate_hz,
            check_bit_rate=session_check_bit_rate,
            word_timings=caps.word_timings,
            engine_options=frozenset(caps.options),
            playback_low_water_ms=settings.playback_low_water_ms,
            first_segment_budget_ms=settings.first_segment_budget_ms,
            carry=CarryPolicy(
                settings.carry_left_words,
                settings.carry_right_words,
                settings.carry_filler,
                max_load=settings.carry_max_load,
            ),
            policy=segmenter_policy(settings),
            immediate_send=settings.immediate_send,
            max_contexts=settings.max_contexts,
            max_text_chars=settings.max_text_chars,
            max_buffered_chars=settings.max_buffered_chars,
            max_jobs_in_flight=settings.max_jobs_in_flight,
            max_errors=settings.max_errors,
            ready_info={
                "server": f"speakstream {__version__}",
                "capabilities": {
                    "engine": caps.engine,
                    **({"variant": caps.variant} if caps.variant else {}),
                    "voices": [
                        {"name": v.name, "sample_rate_hz": v.sample_rate_hz, "language": v.language}
                        for v in caps.voices
                    ],
                    "encodings": {
                        name: {
                            "sample_rates_hz": sorted(
                                allowed_rates_hz(name, caps.voices[0].sample_rate_hz)
                            ),
                            "default_sample_rate_hz": resolve_rate_hz(
                                name, None, caps.voices[0].sample_rate_hz
                            ),
                            "content_type": FORMATS[name].content_type,
                        }
                        for name in ENCODINGS
                    },
                    "streams_within_sentence": caps.streams_within_sentence,
                    "word_timings": caps.word_timings,
                    "alignment": caps.word_timings,
                    "options": list(caps.options),
                },
                "server_limits": {
                    "max_message_bytes": settings.max_message_bytes,
                    "queue_size": settings.queue_size,
                    "max_concurrent_tasks": settings.max_concurrent_tasks,
                    "max_jobs_in_flight": settings.max_jobs_in_flight,
                    "task_timeout_s": settings.task_timeout,
                },
            },
        )
        pool = EnginePool(
            engine,
            settings.max_concurrent_tasks,
            reserve_horizon_s=settings.reserve_horizon_s,
            first_extra_workers=settings.first_segment_extra_workers,
        )
        synthesizer = Synthesizer(engine, pool, seam_policy(settings), settings.task_timeout)
        voice_map = VoiceMap(settings, session_config.voices, caps.default_voice)  # live
        metrics = Metrics(
            caps.engine, lambda: pool.running_jobs, lambda: pool.waiting_jobs, capacity
        )
        return cls(
            settings,
            engine,
            pool,
            session_config,
            synthesizer,
            voice_map,
            metrics,
            auth,
            owns_engine=owns_engine,
        )

    async def after_connection(self) -> None:
        """A connection ended: once nothing else runs, give freed memory back."""
        if self.connections == 0 and self.pool.running_jobs == 0:
            await asyncio.to_thread(memory.trim)

    @property
    def ready(self) -> tuple[bool, str]:
        """Whether new work should come here, and why not."""
        if self.shutting_down or self.drain.draining:
            return False, "draining"
        if self.connections >= self.settings.max_connections:
            return False, f"at max_connections ({self.settings.max_connections})"
        capacity = self.session_config.capacity
        if capacity is not None and capacity.full:
            return False, f"at capacity ({capacity.active} contexts speaking)"
        return True, "ok"

    def close(self) -> None:
        self.pool.close()
        if self.owns_engine:
            self.engine.close()
