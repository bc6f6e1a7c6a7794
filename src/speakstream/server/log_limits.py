"""Client faults in uvicorn's log: one WARNING line each, no traceback, rate-limited.

uvicorn logs some things any client can trigger at will as if the server were broken:
an invalid UTF-8 text frame is an ERROR with a traceback. ``ClientFaultFilter``, installed
on the ``uvicorn.error`` logger by ``install_client_fault_filter()``, turns each record
whose message is one of ``CLIENT_FAULTS`` into a single WARNING line without traceback,
and lets at most ``burst`` lines of each kind through per ``window_s``; the first line
after a window in which lines were dropped says how many. Every other record passes
unchanged. Installing twice installs once.

``install_event_rate_limits()`` puts the same rate limit (without changing levels) on the
WARNING lines speakstream itself writes once per client-caused event (an engine failure
on a client's text, an encoder failure, a client that stopped reading), keyed by their
message template: a flood of such events cannot flood the log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

CLIENT_FAULTS: tuple[str, ...] = (
    "Invalid UTF-8 sequence received from client.",
    "Invalid HTTP request received.",
    "Unsupported upgrade request.",
)
UVICORN_ERROR_LOGGER = "uvicorn.error"


@dataclass(slots=True)
class _Window:
    started_s: float
    lines: int = 0
    dropped: int = 0


class ClientFaultFilter(logging.Filter):
    def __init__(
        self,
        *,
        burst: int = 10,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        kinds: tuple[str, ...] | None = CLIENT_FAULTS,
    ) -> None:
        """``kinds``: the messages turned into rate-limited WARNING lines; None: every
        WARNING record, keyed by its message template, rate-limited as it is."""
        super().__init__()
        self.kinds = kinds
        if burst < 1 or window_s <= 0:
            raise ValueError("burst must be at least 1 and window_s positive")
        self.burst = burst
        self.window_s = window_s
        self._clock = clock
        self._windows: dict[str, _Window] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        kind = record.msg if isinstance(record.msg, str) else ""
        if self.kinds is None:
            if record.levelno != logging.WARNING:
                return True
        elif kind not in self.kinds:
            return True
        else:
            record.levelno = logging.WARNING
            record.levelname = logging.getLevelName(logging.WARNING)
            record.exc_info = None
            record.exc_text = None
            record.stack_info = None
        now_s = self._clock()
        window = self._windows.get(kind)
        carried = 0
        if window is None or now_s - window.started_s >= self.window_s:
            carried = window.dropped if window is not None else 0
            window = self._windows[kind] = _Window(now_s)
        if window.lines >= self.burst:
            window.dropped += 1
            return False
        window.lines += 1
        if carried:
            record.msg = f"{kind} ({carried} more like it not logged)"
        return True


EVENT_LOGGERS = (
    "speakstream.synthesis",
    "speakstream.server.streams",
    "speakstream.server.connection",
)


def install_event_rate_limits(names: tuple[str, ...] = EVENT_LOGGERS) -> None:
    """Rate-limit the per-event WARNING lines of these loggers (installed once each)."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, ClientFaultFilter) for f in logger.filters):
            logger.addFilter(ClientFaultFilter(kinds=None))


def install_client_fault_filter(logger_name: str = UVICORN_ERROR_LOGGER) -> ClientFaultFilter:
    """The filter on ``logger_name``, added unless one is there already."""
    logger = logging.getLogger(logger_name)
    for existing in logger.filters:
        if isinstance(existing, ClientFaultFilter):
            return existing
    installed = ClientFaultFilter()
    logger.addFilter(installed)
    return installed
