"""A timeout that moves on every request but rarely fires, without timer churn.

A keep-alive connection re-arms its timeouts several times per request; an event-loop timer per
re-arm (create, cancel) is a measurable share of a small request's cost. A Deadline keeps one
timer armed at or before the current deadline: moving the deadline later costs an assignment,
and when the timer fires early it re-arms itself for what is left.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Deadline:
    __slots__ = ("_callback", "_handle", "_loop", "_when")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._when: float | None = None
        self._callback: Callable[[], None] | None = None
        self._handle: asyncio.TimerHandle | None = None

    def set(self, seconds: float, callback: Callable[[], None]) -> None:
        """Call `callback` in `seconds` unless set again or cleared first."""
        when = self._loop.time() + seconds
        self._when = when
        self._callback = callback
        handle = self._handle
        if handle is None or handle.when() > when:
            if handle is not None:
                handle.cancel()
            self._handle = self._loop.call_at(when, self._fire)

    def clear(self, callback: Callable[[], None] | None = None) -> None:
        """No call any more (only if `callback` is the pending one, when given)."""
        if callback is None or callback == self._callback:
            self._when = None
            self._callback = None

    def close(self) -> None:
        self.clear()
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        when = self._when
        if when is None:
            return
        if self._loop.time() < when:
            self._handle = self._loop.call_at(when, self._fire)
            return
        callback = self._callback
        self._when = None
        self._callback = None
        if callback is not None:
            callback()
