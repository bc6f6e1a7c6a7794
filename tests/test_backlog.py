"""The engine backlog's forecast of how long a job waits for a worker."""

from __future__ import annotations

import pytest

from speakstream.protocol.backlog import Backlog


def test_queued_work_due_no_later_is_ahead_shared_by_the_workers() -> None:
    backlog = Backlog(workers=2)
    backlog.add("a", "ctx-a", start_by_s=1.0, forecast_ms=100.0, now_s=0.0)
    backlog.add("b", "ctx-b", start_by_s=3.0, forecast_ms=300.0, now_s=0.0)
    assert backlog.wait_ms(2.0, "me") == pytest.approx(50.0)  # only "a" is due before
    assert backlog.wait_ms(3.0, "me") == pytest.approx(200.0)  # both
    assert backlog.wait_ms(0.5, "me") == 0.0


def test_running_work_counts_what_is_left_of_it_whatever_its_deadline() -> None:
    backlog = Backlog(workers=1)
    backlog.add("late", "ctx", start_by_s=9.0, forecast_ms=300.0, now_s=0.0)
    backlog.start("late", now_s=0.0)
    backlog.add("x", "other", start_by_s=9.0, forecast_ms=10.0, now_s=0.1)  # clock: 0.1 s
    assert backlog.wait_ms(1.0, "me") == pytest.approx(200.0)  # 300 ms, 100 ms done
    backlog.remove("x", now_s=0.5)
    assert backlog.wait_ms(1.0, "me") == 0.0  # past its forecast: nothing left of it


def test_a_contexts_own_work_is_not_its_wait_and_removed_work_is_gone() -> None:
    backlog = Backlog(workers=1)
    backlog.add(("me", 1), "me", start_by_s=0.0, forecast_ms=100.0, now_s=0.0)
    backlog.add(("you", 1), "you", start_by_s=0.0, forecast_ms=40.0, now_s=0.0)
    assert backlog.wait_ms(1.0, "me") == pytest.approx(40.0)
    assert backlog.others("me") and backlog.others("you")
    backlog.remove(("you", 1))
    assert backlog.wait_ms(1.0, "me") == 0.0
    assert not backlog.others("me")
    backlog.remove(("you", 1))  # twice: no error
    assert len(backlog) == 1
