"""Logging (server.access_log, server.log_format): one INFO line per context and one per
connection, none per chunk; JSON lines carry the fields."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from speakstream.client import connect
from speakstream.engines import Engine
from speakstream.server.log_format import JsonFormatter
from tests.conftest import running_server, wait_for

pytestmark = pytest.mark.timeout(120)

TEXT = "One line for this context. And nothing for each of its many audio chunks."


async def test_one_line_per_context_and_per_connection(
    piper_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_server(piper_engine) as srv:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="speakstream"):
            async with connect(srv.stream_url) as conn:
                ctx = conn.context("a")
                await ctx.send(TEXT)
                await ctx.end()
                result = await ctx.collect()
            await wait_for(lambda: srv.runtime.connections == 0)
    assert len(result.chunks) > 2
    ours = [
        r for r in caplog.records if r.name.startswith("speakstream") and r.levelno >= logging.INFO
    ]
    assert [r.fields["event"] for r in ours] == ["context done", "connection closed"]  # type: ignore[attr-defined]
    context, connection = (r.fields for r in ours)  # type: ignore[attr-defined]
    metrics = result.first("done").data["metrics"]  # type: ignore[union-attr]
    assert context["context"] == "a" and context["voice"] == "en_US-joe-medium"
    assert context["characters"] == len(TEXT)
    assert context["audio_s"] == pytest.approx(metrics["audio_ms"] / 1000, abs=1e-3)
    assert context["first_audio_ms"] == pytest.approx(metrics["ttfa_ms"], abs=0.1)
    assert connection["client"].startswith("127.0.0.1:")
    assert connection["endpoint"] == "/v1/stream" and connection["key_id"] is None
    assert connection["request_id"] == conn.ready["request_id"]
    assert connection["contexts"] == 1 and connection["characters"] == len(TEXT)
    assert connection["close_code"] == 1000 and connection["errors"] == {}


def test_json_lines() -> None:
    formatter = JsonFormatter()
    record = logging.LogRecord(
        "speakstream.access", logging.INFO, __file__, 1, "done: %s", ("x",), None
    )
    record.fields = {"event": "context done", "characters": 3}
    line = json.loads(formatter.format(record))
    assert line["message"] == "done: x" and line["level"] == "INFO"
    assert line["logger"] == "speakstream.access" and line["characters"] == 3
    assert line["time"].endswith("+00:00")
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    assert "ValueError: boom" in json.loads(formatter.format(failed))["exception"]


def test_a_cancelled_context_gets_its_line_without_the_text_it_never_spoke(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from speakstream.protocol.server_messages import Cancelled
    from speakstream.server.access_log import ConnectionLog

    log = ConnectionLog("127.0.0.1:1", None, "/v1/stream", "r1")
    with caplog.at_level(logging.INFO, logger="speakstream"):
        so_far = {"ttfa_ms": 80.04, "audio_ms": 1500.0, "characters": 300}
        log.observe(Cancelled("a", metrics=so_far), "v")
        log.observe(Cancelled("b"), "v")  # its done was sent: no second line
        log.finish()
    context, connection = (r.fields for r in caplog.records)  # type: ignore[attr-defined]
    assert context["event"] == "context cancelled" and "characters" not in context
    assert (context["context"], context["audio_s"], context["first_audio_ms"]) == ("a", 1.5, 80.0)
    assert connection["contexts"] == 1 and connection["characters"] == 0
    assert connection["audio_s"] == 1.5
