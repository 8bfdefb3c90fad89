"""What a process says while the store is away: one line when it goes (with the reason), a
reminder at a slowing interval, one line when it is back.

Each worker and the health monitor retry the store every second or so; a traceback per retry
buried an outage of 22 s under 28,000 log lines per instance (issue 13).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from appgw.store.watch import one_line

log = logging.getLogger("appgw.state")

# The first reminder comes this long after the outage began, each next one twice as late, up
# to the last interval: an operator watching sees it is still down, a long outage stays short.
FIRST_REMINDER = 30.0
LAST_REMINDER_INTERVAL = 900.0


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class StoreOutage:
    def __init__(self, process: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.process = process  # names the process in each line
        self.clock = clock
        self.since: float | None = None  # when the current outage began
        self._next_reminder = 0.0
        self._interval = FIRST_REMINDER

    @property
    def ongoing(self) -> bool:
        return self.since is not None

    def failed(self, error: BaseException, doing: str) -> None:
        """A store access failed; `doing` says what was being done with the store."""
        now = self.clock()
        if self.since is None:
            self.since = now
            self._interval = FIRST_REMINDER
            self._next_reminder = now + self._interval
            log.error(
                "%s: the store is unreachable (%s); %s, retrying",
                self.process,
                one_line(error),
                doing,
            )
        elif now >= self._next_reminder:
            self._interval = min(self._interval * 2, LAST_REMINDER_INTERVAL)
            self._next_reminder = now + self._interval
            log.warning(
                "%s: the store is still unreachable after %s (%s); %s",
                self.process,
                duration(now - self.since),
                one_line(error),
                doing,
            )

    def recovered(self) -> None:
        if self.since is not None:
            log.info(
                "%s: the store is reachable again after %s",
                self.process,
                duration(self.clock() - self.since),
            )
            self.since = None
