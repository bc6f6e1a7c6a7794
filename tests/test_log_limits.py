"""The client-fault log filter: one WARNING line each, no traceback, rate-limited (virtual clock)."""

from __future__ import annotations

import logging
import sys

from speakstream.server.log_limits import ClientFaultFilter, install_client_fault_filter

UTF8 = "Invalid UTF-8 sequence received from client."


def record(msg: str, level: int = logging.ERROR) -> logging.LogRecord:
    try:
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")
    except UnicodeDecodeError:
        exc_info = sys.exc_info()
    return logging.LogRecord("uvicorn.error", level, __file__, 1, msg, None, exc_info)


def test_a_client_fault_becomes_one_warning_line_without_traceback() -> None:
    rec = record(UTF8)
    assert ClientFaultFilter().filter(rec)
    assert (rec.levelno, rec.levelname, rec.exc_info) == (logging.WARNING, "WARNING", None)


def test_other_records_pass_unchanged() -> None:
    rec = record("Exception in ASGI application\n")
    assert ClientFaultFilter().filter(rec)
    assert rec.levelno == logging.ERROR and rec.exc_info is not None


def test_a_burst_is_cut_and_the_next_window_says_how_many_were_dropped() -> None:
    now_s = [0.0]
    limiter = ClientFaultFilter(burst=3, window_s=60.0, clock=lambda: now_s[0])
    passed = [limiter.filter(record(UTF8)) for _ in range(10)]
    assert passed == [True] * 3 + [False] * 7
    now_s[0] = 60.0
    rec = record(UTF8)
    assert limiter.filter(rec)
    assert "7 more like it not logged" in rec.getMessage()


def test_installing_twice_installs_once() -> None:
    logger = logging.getLogger("speakstream.test.log_limits")
    first = install_client_fault_filter(logger.name)
    assert install_client_fault_filter(logger.name) is first
    assert logger.filters.count(first) == 1
    logger.removeFilter(first)


def test_own_event_warnings_are_rate_limited_by_template_and_keep_their_level() -> None:
    now = [0.0]
    limit = ClientFaultFilter(burst=2, window_s=10.0, clock=lambda: now[0], kinds=None)
    record = logging.LogRecord(
        "speakstream.synthesis", logging.WARNING, "", 0, "engine %s", ("x",), None
    )
    assert [limit.filter(record) for _ in range(4)] == [True, True, False, False]
    other = logging.LogRecord("speakstream.synthesis", logging.WARNING, "", 0, "other", (), None)
    assert limit.filter(other) and record.levelno == logging.WARNING
    error = logging.LogRecord(
        "speakstream.synthesis", logging.ERROR, "", 0, "engine %s", ("x",), None
    )
    assert limit.filter(error)  # only WARNING lines are limited
    now[0] = 11.0
    assert limit.filter(record) and "2 more like it not logged" in record.msg
