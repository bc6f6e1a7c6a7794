"""Parts the benchmarks share: percentiles, a free loopback port, a server process, results.

``percentiles(values)`` gives p50/p95/p99/mean/n (rounded to 0.01); ``free_port()`` a TCP
port free on 127.0.0.1 now; ``server_process(*flags)`` runs ``speakstream serve`` in its
own process on such a port and yields its WebSocket URL once it answers (stopped on exit;
``server_with_pid`` also yields the process id and can keep its log);
``write_results(results, output, default)`` writes the JSON results file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from speakstream.client import connect


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def pct(p: float) -> float:
        k = (len(ordered) - 1) * p / 100.0
        lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
        return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)

    return {
        "p50": round(pct(50), 2),
        "p95": round(pct(95), 2),
        "p99": round(pct(99), 2),
        "mean": round(statistics.fmean(ordered), 2),
        "n": len(ordered),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def server_process(*flags: str) -> AsyncIterator[str]:
    """A real server in its own process (its own GIL), on a free loopback port."""
    async with server_with_pid(*flags) as (url, _):
        yield url


async def stop_process(proc: asyncio.subprocess.Process, grace_s: float = 10.0) -> None:
    """Terminate ``proc`` and wait for it; kill it if it is still there after ``grace_s``.
    One that exited already is left alone (it cannot be signalled)."""
    if proc.returncode is not None:
        return
    proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), grace_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()


@contextlib.asynccontextmanager
async def server_with_pid(
    *flags: str, log_to: Path | None = None
) -> AsyncIterator[tuple[str, int]]:
    """``server_process``, also giving the process id; its log (stderr) goes to ``log_to``."""
    port = free_port()
    log = log_to.open("wb") if log_to is not None else None
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "speakstream",
        "serve",
        "--port",
        str(port),
        "--log-level",
        "warning",
        *flags,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    url = f"ws://127.0.0.1:{port}/v1/stream"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = await connect(url, open_timeout_s=2)
                await conn.close()
                break
            except OSError:
                if proc.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError("the benchmark server did not start") from None
                await asyncio.sleep(0.2)
        yield url, proc.pid
    finally:
        await stop_process(proc)
        if log is not None:
            log.close()


def write_results(results: dict[str, Any], output: Path | None, default: str) -> Path:
    """Write ``results`` as indented JSON to ``output`` (or ``default``); return the path."""
    path = output or Path(default)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nresults written to {path}")
    return path


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` (Linux), MB."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0
