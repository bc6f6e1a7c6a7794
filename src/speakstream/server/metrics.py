"""Prometheus metrics of one server (``prometheus-client``), scraped at ``GET /metrics``.

``Metrics`` owns its own ``CollectorRegistry`` (two servers in one process never share
counters). It is fed from what a connection already sees, never from inside the
session or the scheduler:

* ``ConnectionMetrics.observe(message, voice)``: each server message a connection
  queues: ``done`` (time to first audio, end-to-end time, real-time factor, characters,
  audio seconds, segments), ``segment`` (generation latency: job start to first audio),
  ``cancelled``, ``error`` (by code);
* ``ConnectionMetrics.job_finished(voice, synthesis_s, queue_s)``: each segment's
  synthesis time and queue wait;
* ``ConnectionMetrics.sent(seconds)``: each frame written to the socket;
* ``Metrics.refused(endpoint, reason)``: a connection or request refused before it was
  served (auth, origin, limits, drain);
* the engine pool's running and queued jobs are read at scrape time.

Labels are bounded: ``endpoint`` (a route of the app, or ``other``), ``engine``,
``voice`` (the engine's voices), ``code`` (``ErrorCode`` values), ``reason`` (a fixed
set). Nothing is labelled per connection or per key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from speakstream.protocol.listener import Capacity
from speakstream.protocol.server_messages import (
    Cancelled,
    Done,
    ErrorMessage,
    SegmentEvent,
    ServerMessage,
)

NAMESPACE = "speakstream"
# seconds: from a few milliseconds (a warm engine's first chunk) to a minute
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SEND_BUCKETS_S = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0)
RTF_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0)
REFUSAL_REASONS = (
    "unauthorized",
    "forbidden_origin",
    "too_many_connections",
    "too_many_connections_per_key",
    "rate_limited",
    "draining",
)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(
        self,
        engine: str,
        running_jobs: Callable[[], int],
        waiting_jobs: Callable[[], int],
        capacity: Capacity | None = None,
    ) -> None:
        self.engine = engine
        self.registry = registry = CollectorRegistry()

        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(name, doc, labels, namespace=NAMESPACE, registry=registry)

        def counter(name: str, doc: str, labels: tuple[str, ...]) -> Counter:
            return Counter(name, doc, labels, namespace=NAMESPACE, registry=registry)

        def histogram(
            name: str, doc: str, labels: tuple[str, ...], buckets: tuple[float, ...]
        ) -> Histogram:
            return Histogram(
                name, doc, labels, namespace=NAMESPACE, registry=registry, buckets=buckets
            )

        self.connections_active = gauge(
            "connections_active", "WebSocket connections being served", ("endpoint",)
        )
        self.connections = counter(
            "connections", "WebSocket connections served", ("endpoint", "engine")
        )
        gauge("engine_jobs_running", "synthesis jobs running in the engine pool").set_function(
            lambda: float(running_jobs())
        )
        gauge("engine_jobs_queued", "synthesis jobs waiting for an engine worker").set_function(
            lambda: float(waiting_jobs())
        )
        if capacity is not None:
            gauge(
                "engine_load",
                "share of the engine the open contexts' listeners need, each playing in real "
                "time (learned engine speed; 1: all of it)",
            ).set_function(lambda: capacity.load)
            gauge(
                "engine_listeners_limit", "contexts admitted before new ones get busy"
            ).set_function(lambda: float(capacity.listeners_limit))
            gauge(
                "engine_backlog_jobs",
                "segments handed to the engine pool and not over (queued or running)",
            ).set_function(lambda: float(len(capacity.backlog)))
        ev = ("endpoint", "engine", "voice")
        jv = ("engine", "voice")
        self.ttfa = histogram(
            "time_to_first_audio_seconds",
            "per context: first text received to first audio queued to send",
            ev,
            LATENCY_BUCKETS_S,
        )
        self.end_to_end = histogram(
            "end_to_end_latency_seconds",
            "per context: first text received to done",
            ev,
            LATENCY_BUCKETS_S,
        )
        self.generation = histogram(
            "generation_latency_seconds",
            "per segment: synthesis start to its first audio chunk",
            jv,
            LATENCY_BUCKETS_S,
        )
        self.queue_wait = histogram(
            "queue_wait_seconds", "per segment: waiting for an engine worker", jv, LATENCY_BUCKETS_S
        )
        self.synthesis = histogram(
            "synthesis_seconds", "per segment: engine time", jv, LATENCY_BUCKETS_S
        )
        self.send = histogram(
            "send_seconds",
            "per frame: time to write it to the socket",
            ("endpoint",),
            SEND_BUCKETS_S,
        )
        self.rtf = histogram(
            "real_time_factor", "per context: synthesis time / audio duration", ev, RTF_BUCKETS
        )
        self.characters = counter("characters", "characters of text spoken", ev)
        self.audio_seconds = counter("audio_seconds", "seconds of audio produced", ev)
        self.segments = counter("segments", "segments synthesized", ev)
        self.stalls = counter(
            "listener_stalls",
            "times a context's listener, playing in real time from its first audio, ran dry "
            "waiting for audio whose text had come (the server fell behind)",
            ev,
        )
        self.stall_seconds = counter(
            "listener_stall_seconds", "the silence of those stalls, in all", ev
        )
        self.cancels = counter("cancels", "contexts cancelled", ("endpoint", "engine"))
        self.errors = counter("errors", "error messages sent, by code", ("endpoint", "code"))
        self.refused_connections = counter(
            "refused_connections", "connections refused before being served", ("endpoint", "reason")
        )

    def refused(self, endpoint: str, reason: str) -> None:
        self.refused_connections.labels(endpoint, reason).inc()

    def for_connection(self, endpoint: str) -> ConnectionMetrics:
        return ConnectionMetrics(self, endpoint)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


class ConnectionMetrics:
    """The metrics of one connection, labelled with its endpoint."""

    def __init__(self, metrics: Metrics, endpoint: str) -> None:
        self.metrics = metrics
        self.endpoint = endpoint

    def opened(self) -> None:
        self.metrics.connections_active.labels(self.endpoint).inc()
        self.metrics.connections.labels(self.endpoint, self.metrics.engine).inc()

    def closed(self) -> None:
        self.metrics.connections_active.labels(self.endpoint).dec()

    def observe(self, message: ServerMessage, voice: str) -> None:
        m = self.metrics
        if isinstance(message, Done):
            self.context_over(message.metrics, voice, finished=True)
        elif isinstance(message, SegmentEvent):
            if message.first_chunk_ms is not None:
                m.generation.labels(m.engine, voice).observe(message.first_chunk_ms / 1000)
        elif isinstance(message, Cancelled):
            m.cancels.labels(self.endpoint, m.engine).inc()
            if message.metrics is not None:  # what it had made and heard until the cancel
                self.context_over(message.metrics, voice, finished=False)
        elif isinstance(message, ErrorMessage):
            m.errors.labels(self.endpoint, message.code).inc()

    def context_over(self, values: dict[str, Any], voice: str, *, finished: bool) -> None:
        """One context's ``done`` metrics. Of one cancelled or left by its connection
        (not ``finished``): its first audio, the audio it released and its stalls, not
        what the end cut short (end-to-end time, real-time factor) or counted before it
        was spoken (characters received, segments cut)."""
        m = self.metrics
        labels = (self.endpoint, m.engine, voice)
        if values.get("ttfa_ms") is not None:
            m.ttfa.labels(*labels).observe(values["ttfa_ms"] / 1000)
        m.audio_seconds.labels(*labels).inc((values.get("audio_ms") or 0) / 1000)
        m.stalls.labels(*labels).inc(values.get("stalls") or 0)
        m.stall_seconds.labels(*labels).inc((values.get("stall_ms") or 0) / 1000)
        if not finished:
            return
        if values.get("duration_ms") is not None:
            m.end_to_end.labels(*labels).observe(values["duration_ms"] / 1000)
        if values.get("rtf") is not None:
            m.rtf.labels(*labels).observe(values["rtf"])
        m.characters.labels(*labels).inc(values.get("characters") or 0)
        m.segments.labels(*labels).inc(values.get("segments") or 0)

    def job_finished(self, voice: str, synthesis_s: float, queue_s: float) -> None:
        m = self.metrics
        m.synthesis.labels(m.engine, voice).observe(synthesis_s)
        m.queue_wait.labels(m.engine, voice).observe(queue_s)

    def sent(self, seconds: float) -> None:
        self.metrics.send.labels(self.endpoint).observe(seconds)
