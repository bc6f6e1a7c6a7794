"""Benchmarks, by name: ``speakstream bench [NAME]`` (``latency`` when no name is given).

``BENCHMARKS`` maps a name to ``"module:function"``; the module is imported only when that
benchmark runs, so adding one is one line here. Each function takes keyword arguments
``quick`` (a short smoke run) and ``output`` (results file, or None for its default under
``bench/results/``) and returns the process exit status. A module may also define
``markdown_table(results) -> str`` for ``speakstream bench NAME --table FILE``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

BENCHMARKS: dict[str, str] = {
    "latency": "speakstream.bench.latency:run",
    "encoders": "speakstream.bench.encoders:run",
    "soak": "speakstream.bench.soak:run",
    "quality": "speakstream.bench.quality:run",
    "load": "speakstream.bench.load:run",
    "pairs": "speakstream.bench.pairs:run",
    "compat": "speakstream.bench.compat:run",
    "wyoming": "speakstream.bench.wyoming:run",
    "chatterbox": "speakstream.bench.chatterbox:run",
}
DEFAULT_BENCHMARK = "latency"


class Benchmark(Protocol):
    def __call__(self, *, quick: bool, output: Path | None) -> int: ...


def _module(name: str) -> tuple[Any, str]:
    try:
        target = BENCHMARKS[name]
    except KeyError:
        known = ", ".join(BENCHMARKS)
        raise ValueError(f"no benchmark named {name!r}; there are: {known}") from None
    module, _, function = target.partition(":")
    return importlib.import_module(module), function


def load_benchmark(name: str) -> Benchmark:
    """The benchmark's entry point (imports its module); ``ValueError`` for unknown names."""
    module, function = _module(name)
    benchmark: Benchmark = getattr(module, function)
    return benchmark


def load_table(name: str) -> Callable[[dict[str, Any]], str] | None:
    """The benchmark's ``markdown_table`` (README table from a results file), if it has one."""
    module, _ = _module(name)
    table: Callable[[dict[str, Any]], str] | None = getattr(module, "markdown_table", None)
    return table
