"""Metrics (server.metrics): a scrape after a real session moves each series by the right
amount; /readyz and /healthz answer."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from speakstream.client import connect
from speakstream.engines import Engine
from speakstream.server.metrics import Metrics
from tests.conftest import running_server, wait_for

pytestmark = pytest.mark.timeout(120)

SENTENCE = "Metrics count what was spoken. Every segment is measured."
VOICE = "en_US-joe-medium"


def scrape_text(base: str) -> str:
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        assert response.headers["content-type"].startswith("text/plain")
        return str(response.read().decode())


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def test_a_scrape_after_a_session(piper_engine: Engine) -> None:
    async with running_server(piper_engine) as srv:
        base = srv.url.replace("ws://", "http://")
        async with connect(srv.stream_url) as conn:
            ctx = conn.context("a")
            await ctx.send(SENTENCE)
            await ctx.end()
            result = await ctx.collect()
            done = result.first("done")
            assert done is not None
            # a cancelled context and a protocol error
            other = conn.context("b")
            await other.send("This one is cancelled before it ends, so it never finishes")
            await other.cancel()
            await other.collect()
            await conn.ws.send("not json")  # counted when read, before the close that follows
        await wait_for(lambda: srv.runtime.connections == 0)
        found = samples(await asyncio.to_thread(scrape_text, base))

    metrics = done.data["metrics"]
    ep = {"endpoint": "/v1/stream"}
    ctx_labels = {**ep, "engine": "piper", "voice": VOICE}
    assert value(found, "speakstream_characters_total", **ctx_labels) == len(SENTENCE)
    assert value(found, "speakstream_segments_total", **ctx_labels) == metrics["segments"]
    assert value(found, "speakstream_audio_seconds_total", **ctx_labels) == pytest.approx(
        metrics["audio_ms"] / 1000, abs=1e-3
    )
    assert value(found, "speakstream_listener_stalls_total", **ctx_labels) == metrics["stalls"]
    hist = "speakstream_time_to_first_audio_seconds"
    assert value(found, f"{hist}_count", **ctx_labels) == 1
    assert value(found, f"{hist}_sum", **ctx_labels) == pytest.approx(
        metrics["ttfa_ms"] / 1000, abs=1e-3
    )
    assert value(found, "speakstream_real_time_factor_count", **ctx_labels) == 1
    assert value(found, "speakstream_real_time_factor_sum", **ctx_labels) == pytest.approx(
        metrics["rtf"], abs=1e-3
    )
    assert value(found, "speakstream_end_to_end_latency_seconds_count", **ctx_labels) == 1
    job = {"engine": "piper", "voice": VOICE}
    segments_made = value(found, "speakstream_synthesis_seconds_count", **job)
    assert segments_made >= metrics["segments"]  # and those of the cancelled context
    assert value(found, "speakstream_queue_wait_seconds_count", **job) == segments_made
    assert (
        value(found, "speakstream_synthesis_seconds_sum", **job)
        >= metrics["synthesis_ms"] / 1000 - 1e-3
    )
    assert (
        value(found, "speakstream_generation_latency_seconds_count", **job) >= metrics["segments"]
    )
    frames = len(result.chunks) + len(result.events)
    assert value(found, "speakstream_send_seconds_count", **ep) >= frames
    assert value(found, "speakstream_cancels_total", **ep, engine="piper") == 1
    assert value(found, "speakstream_errors_total", **ep, code="invalid_json") == 1
    assert value(found, "speakstream_connections_total", **ep, engine="piper") == 1
    assert value(found, "speakstream_connections_active", **ep) == 0
    assert value(found, "speakstream_engine_jobs_running") == 0
    assert value(found, "speakstream_engine_jobs_queued") == 0
    assert value(found, "speakstream_engine_backlog_jobs") == 0  # every job left the backlog
    assert value(found, "speakstream_engine_load") == 0  # no context open
    assert value(found, "speakstream_engine_listeners_limit") >= 2


async def test_refused_connections_are_counted_by_reason(piper_engine: Engine) -> None:
    import websockets
    from websockets.exceptions import InvalidStatus

    async with running_server(piper_engine, max_connections=1) as srv:
        async with websockets.connect(srv.stream_url) as first:
            await first.recv()
            async with websockets.connect(srv.stream_url) as second:
                error = json.loads(await second.recv())
                assert error["code"] == "too_many_connections"
            with pytest.raises(InvalidStatus):
                async with websockets.connect(srv.stream_url, origin="https://elsewhere.example"):
                    pass
        found = samples(srv.runtime.metrics.render().decode())
    refused = "speakstream_refused_connections_total"
    assert value(found, refused, endpoint="/v1/stream", reason="too_many_connections") == 1
    assert value(found, refused, endpoint="/v1/stream", reason="forbidden_origin") == 1


def test_stalls_reported_in_done_are_counted() -> None:
    from speakstream.protocol.server_messages import Done

    metrics = Metrics("fake", lambda: 0, lambda: 0)
    conn = metrics.for_connection("/v1/stream")
    for stalls, stall_ms in ((2, 450.0), (1, 50.0), (0, 0.0)):
        conn.observe(Done("c", {"stalls": stalls, "stall_ms": stall_ms}), "v")
    found = samples(metrics.render().decode())
    labels = {"endpoint": "/v1/stream", "engine": "fake", "voice": "v"}
    assert value(found, "speakstream_listener_stalls_total", **labels) == 3
    assert value(found, "speakstream_listener_stall_seconds_total", **labels) == 0.5


def test_a_cancelled_context_counts_its_audio_and_stalls_not_its_unspoken_text() -> None:
    from speakstream.protocol.server_messages import Cancelled

    metrics = Metrics("fake", lambda: 0, lambda: 0)
    conn = metrics.for_connection("/v1/stream")
    so_far = {"ttfa_ms": 80.0, "audio_ms": 1500.0, "stalls": 1, "stall_ms": 250.0}
    conn.observe(Cancelled("c", metrics={**so_far, "characters": 300, "segments": 4}), "v")
    conn.observe(Cancelled("d"), "v")  # a context that had sent its done: nothing again
    found = samples(metrics.render().decode())
    labels = {"endpoint": "/v1/stream", "engine": "fake", "voice": "v"}
    assert value(found, "speakstream_cancels_total", endpoint="/v1/stream", engine="fake") == 2
    assert value(found, "speakstream_listener_stalls_total", **labels) == 1
    assert value(found, "speakstream_listener_stall_seconds_total", **labels) == 0.25
    assert value(found, "speakstream_audio_seconds_total", **labels) == 1.5
    assert value(found, "speakstream_time_to_first_audio_seconds_count", **labels) == 1
    # received, not spoken: a cancel leaves them out
    assert value(found, "speakstream_characters_total", **labels) == 0
    assert value(found, "speakstream_end_to_end_latency_seconds_count", **labels) == 0


def test_labels_are_bounded() -> None:
    metrics = Metrics("fake", lambda: 0, lambda: 0)
    for family in text_string_to_metric_families(metrics.render().decode()):
        assert family.name.startswith("speakstream_")
    label_names = set()
    for collector in metrics.registry._collector_to_names:
        label_names |= set(getattr(collector, "_labelnames", ()))
    assert label_names <= {"endpoint", "engine", "voice", "code", "reason"}


async def test_readyz_and_healthz(piper_engine: Engine) -> None:
    async with running_server(piper_engine, max_connections=1) as srv:
        base = srv.url.replace("ws://", "http://")

        def get(path: str) -> tuple[int, dict[str, Any]]:
            try:
                with urllib.request.urlopen(base + path, timeout=10) as response:
                    return response.status, json.loads(response.read())
            except urllib.error.HTTPError as exc:
                return exc.code, json.loads(exc.read())

        assert await asyncio.to_thread(get, "/readyz") == (200, {"status": "ready", "reason": "ok"})
        async with connect(srv.stream_url):
            status, body = await asyncio.to_thread(get, "/readyz")
            assert status == 503 and "max_connections" in body["reason"]
        await wait_for(lambda: srv.runtime.connections == 0)
        srv.runtime.drain.draining = True
        status, body = await asyncio.to_thread(get, "/readyz")
        assert (status, body["reason"]) == (503, "draining")
        status, body = await asyncio.to_thread(get, "/healthz")
        assert status == 200  # alive while draining


def test_the_grafana_dashboard_asks_only_for_metrics_that_exist() -> None:
    import re
    from pathlib import Path

    dashboard = json.loads(
        (Path(__file__).parent.parent / "deploy" / "grafana-dashboard.json").read_text()
    )
    exposed = {
        sample.name
        for family in text_string_to_metric_families(_one_of_each().render().decode())
        for sample in family.samples
    }
    asked = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"speakstream_[a-z_]+", target["expr"])
    }
    assert asked and asked <= exposed, asked - exposed


def _one_of_each() -> Metrics:
    """Metrics with a sample in every labelled series (unlabelled ones always show)."""
    from speakstream.protocol.server_messages import Cancelled, Done, ErrorMessage, SegmentEvent

    metrics = Metrics("fake", lambda: 0, lambda: 0)
    conn = metrics.for_connection("/v1/stream")
    conn.opened()
    done = {
        "ttfa_ms": 1,
        "duration_ms": 2,
        "rtf": 0.1,
        "characters": 1,
        "audio_ms": 1,
        "segments": 1,
    }
    conn.observe(Done("a", done), "v")
    conn.observe(Cancelled("a"), "v")
    conn.observe(SegmentEvent("a", 1, 0, "x", 0, 1, 0.0, 5.0), "v")
    conn.observe(ErrorMessage("invalid_json", "x", False), "")
    conn.job_finished("v", 0.1, 0.0)
    conn.sent(0.001)
    metrics.refused("/v1/stream", "unauthorized")
    return metrics
