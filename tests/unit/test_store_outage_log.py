"""What a follower logs while the store is away: a line when it goes, slowing reminders, a line
when it is back; never a line per retry."""

from __future__ import annotations

import itertools
import logging

import pytest

from appgw.state.outage import FIRST_REMINDER, StoreOutage


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_outage_is_a_line_reminders_at_a_slowing_interval_and_a_line_at_the_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    outage = StoreOutage("worker-0", clock)
    error = ConnectionError("connection failed: connection refused\n\tIs the server running?")
    caplog.set_level(logging.INFO, logger="appgw.state")

    reminders_at = []
    for _ in range(4 * 3600):  # an hour of retries, four a second
        lines = len(caplog.records)
        outage.failed(error, "serving what was applied")
        if len(caplog.records) > lines and outage.since != clock.now:
            reminders_at.append(clock.now - 1000.0)
        clock.now += 0.25
    outage.recovered()

    first, *_, last = caplog.records
    assert first.levelno == logging.ERROR
    assert first.getMessage() == (
        "worker-0: the store is unreachable (connection failed: connection refused Is the "
        "server running?); serving what was applied, retrying"
    )
    assert last.getMessage() == "worker-0: the store is reachable again after 60 min"
    assert reminders_at[0] == FIRST_REMINDER
    gaps = [b - a for a, b in itertools.pairwise(reminders_at)]
    assert gaps == sorted(gaps) and gaps[0] > FIRST_REMINDER  # slowing down
    assert len(caplog.records) == 2 + len(reminders_at) <= 12
    assert "still unreachable after" in caplog.records[1].getMessage()


def test_nothing_is_said_when_the_store_never_went_away(caplog: pytest.LogCaptureFixture) -> None:
    outage = StoreOutage("health", Clock())
    outage.recovered()
    assert not caplog.records
    assert not outage.ongoing
