"""Shared by the compatibility endpoint tests: decoding, the native reference, README
snippets, and the counters that must return to zero."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import av

from speakstream.client import connect
from speakstream.server.runtime import Runtime
from tests.conftest import RunningServer, wait_for

README = Path(__file__).resolve().parent.parent / "README.md"
SHORT_TEXT = (
    "This sentence is long enough to measure a duration well. It goes on, with a clause or two."
)
# Long enough that synthesizing all of it takes far longer than its first segment.
LONG_TEXT = " ".join(
    f"Sentence number {i} of a long answer goes on for a while, so that the listener hears "
    "the start long before the end is spoken."
    for i in range(30)
)
# Tolerance against the native endpoint's duration for the same text: Piper's durations
# vary a few percent between runs, where a sentence is cut depends on timing (the
# listener's deadlines: under load, more cuts), and codecs add priming and padding.
# Measured: 8.6 % apart once on a loaded machine; a lost or doubled sentence is 40 %+.
REL_TOLERANCE = 0.12
PADDING_S = 0.15


def http_url(srv: RunningServer) -> str:
    return f"http://127.0.0.1:{srv.port}"


def decode_seconds(data: bytes, **open_args: Any) -> float:
    """The duration of ``data`` decoded with PyAV (raw formats need ``format``/``options``)."""
    with av.open(io.BytesIO(data), **open_args) as container:
        stream = container.streams.audio[0]
        return sum(f.samples for f in container.decode(stream)) / stream.rate


def raw_seconds(data: bytes, fmt: str, rate_hz: int) -> float:
    return decode_seconds(
        data, format=fmt, options={"sample_rate": str(rate_hz), "ch_layout": "mono"}
    )


async def native_seconds(srv: RunningServer, text: str) -> float:
    """The audio duration the native endpoint gives for ``text``."""
    async with await connect(srv.stream_url) as conn:
        ctx = await conn.open_context("reference")
        await ctx.send(text)
        await ctx.end()
        result = await ctx.collect()
    done = result.first("done")
    assert done is not None
    return float(done.data["metrics"]["audio_ms"]) / 1000


def assert_duration(decoded_s: float, native_s: float) -> None:
    assert native_s > 2
    assert native_s * (1 - REL_TOLERANCE) <= decoded_s <= native_s * (1 + REL_TOLERANCE) + PADDING_S


async def counters_back_to_zero(runtime: Runtime) -> None:
    await wait_for(
        lambda: (
            runtime.connections == 0
            and runtime.active_streams == 0
            and runtime.pool.running_jobs == 0
        )
    )


def readme_snippet(name: str) -> str:
    """The Python block after ``<!-- snippet: NAME -->`` in the README."""
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"<!-- snippet: {name} -->\s*```python\n(.*?)```", text, re.S)
    assert match is not None, f"no snippet {name!r} in the README"
    return match.group(1)


def run_snippet(
    code: str, base_url: str, cwd: Path, replacements: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Run a README snippet against ``base_url`` (it names http://127.0.0.1:8000), in
    ``cwd``, with each of ``replacements`` (e.g. the Wyoming port) made in its text first;
    returns the names it defined (the services a framework snippet sets up)."""
    import os

    source = code.replace("http://127.0.0.1:8000", base_url).replace(
        "ws://127.0.0.1:8000", base_url.replace("http://", "ws://")
    )
    for old, new in (replacements or {}).items():
        assert old in source, f"the snippet does not name {old!r}"
        source = source.replace(old, new)
    namespace: dict[str, Any] = {"__name__": "snippet"}
    here = Path.cwd()
    os.chdir(cwd)
    try:
        exec(compile(source, "README snippet", "exec"), namespace)
    finally:
        os.chdir(here)
    return namespace
